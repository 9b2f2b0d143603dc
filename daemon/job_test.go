package daemon

import (
	"errors"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"ferry/gitstage"
	"ferry/mirror"
	"ferry/remote"
	"ferry/schedule"
	"ferry/transfer"
)

// TestAdmits: before a protected window, a transfer starts only if the
// measured rate says it ends before the window opens; inside one, none.
func TestAdmits(t *testing.T) {
	w, err := schedule.Parse("12:00-13:00")
	if err != nil {
		t.Fatal(err)
	}
	prot := schedule.Windows{w}
	noon := time.Date(2026, 11, 23, 12, 0, 0, 0, time.Local)
	for _, tc := range []struct {
		name string
		now  time.Time
		size int64
		rate float64
		want bool
	}{
		{"small file, a minute before", noon.Add(-time.Minute), 1 << 20, 10 << 20, true},
		{"fits exactly", noon.Add(-10 * time.Second), 100 << 20, 10 << 20, true},
		{"would overrun the window", noon.Add(-10 * time.Second), 101 << 20, 10 << 20, false},
		{"unmeasured rate assumes 1 MiB/s", noon.Add(-10 * time.Second), 11 << 20, 0, false},
		{"unmeasured rate, small file", noon.Add(-10 * time.Second), 9 << 20, 0, true},
		{"inside the window", noon.Add(time.Minute), 1, 10 << 20, false},
		{"after the window", noon.Add(61 * time.Minute), 1 << 30, 10 << 20, true},
	} {
		if got := admits(prot, tc.now, tc.size, tc.rate); got != tc.want {
			t.Errorf("%s: admits = %v, want %v", tc.name, got, tc.want)
		}
	}
	if !admits(nil, noon, 1<<40, 1) {
		t.Error("without protected hours everything is admitted")
	}
}

// TestPermanent: which job failures stop the daemon and which make the job
// wait and start again.
func TestPermanent(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"wrong password", &mirror.Error{Outcome: mirror.Aborted, Err: fmt.Errorf("connect: %w", remote.Errorf(remote.KindAuth, "login", "", errors.New("530")))}, true},
		{"host key", remote.Errorf(remote.KindHostKey, "login", "", errors.New("changed")), true},
		{"server down at start", &mirror.Error{Outcome: mirror.Aborted, Err: fmt.Errorf("connect: %w", remote.Errorf(remote.KindTransport, "dial", "", errors.New("connection refused")))}, false},
		{"server gone while running", fmt.Errorf("%w: %w", transfer.ErrNoConnection, remote.Errorf(remote.KindTransport, "dial", "", errors.New("refused"))), false},
		{"missing source", &mirror.Error{Outcome: mirror.Aborted, Err: errors.New("source /x: no such file or directory")}, true},
		{"refused for safety", &mirror.Error{Outcome: mirror.Refused, Err: errors.New("refused: source is empty")}, true},
		{"anything else", errors.New("registry: disk I/O error"), false},
	} {
		if got := permanent(tc.err); got != tc.want {
			t.Errorf("%s: permanent = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestNeedsRestart: a reload restarts a job only when its session's
// options changed; the worker count and the tuning are retuned in place,
// and the functions a reload builds anew are not a change.
func TestNeedsRestart(t *testing.T) {
	base := Job{Name: "site", Watch: true, Options: mirror.Options{
		Source: "/src", Target: &remote.Target{Scheme: "sftp", Host: "127.0.0.1", Path: "/x"}, StateDir: "/state",
		Workers: 4, Excludes: []string{"*.tmp"}, RemoteOpts: remote.Options{Password: "pw"},
	}}
	running := newJob(base, slog.New(slog.DiscardHandler))
	running.mo.Logf = func(string, ...any) {} // as run sets it
	for _, tc := range []struct {
		name string
		edit func(*Job)
		want bool
	}{
		{"nothing", func(*Job) {}, false},
		{"workers", func(j *Job) { j.Options.Workers = 8 }, false},
		{"tuning", func(j *Job) { j.Tuning.ScanInterval, j.Tuning.ProtectedLive = time.Minute, true }, false},
		{"fresh functions", func(j *Job) {
			j.Options.Logf, j.Options.Now = func(string, ...any) {}, time.Now
			j.Options.RemoteOpts.Warnf = func(string, ...any) {}
		}, false},
		{"excludes", func(j *Job) { j.Options.Excludes = []string{"*.log"} }, true},
		{"password", func(j *Job) { j.Options.RemoteOpts.Password = "new" }, true},
		{"target", func(j *Job) { j.Options.Target = &remote.Target{Scheme: "sftp", Host: "127.0.0.1", Path: "/y"} }, true},
		{"state dir", func(j *Job) { j.Options.StateDir = "/other" }, true},
		{"watch", func(j *Job) { j.Watch = false }, true},
		{"delete", func(j *Job) { j.Options.Delete = true }, true},
		{"git stage on", func(j *Job) {
			j.Options.Git = gitstage.Options{Repository: "/srv/site.git", Branch: "main", Push: true}
		}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			next := base
			next.Options.Excludes = append([]string(nil), base.Options.Excludes...)
			tc.edit(&next)
			if got := needsRestart(running, next); got != tc.want {
				t.Errorf("needsRestart = %v, want %v", got, tc.want)
			}
		})
	}
}
