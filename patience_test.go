package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"ferry/entry"
	"ferry/internal/testrig"
)

// stoppable is a real server a test can stop (SIGSTOP) under ferry.
type stoppable struct {
	liveServer
	args   []string // credentials flags of --once
	freeze func() (*testrig.Frozen, error)
	settle bool // wait for the resumed sessions to end before the next pass
}

func stoppableServers(t *testing.T) []stoppable {
	ftp := testrig.FTP(t, testrig.FTPOptions{})
	ssh := testrig.SSH(t, testrig.SSHOptions{})
	return []stoppable{
		{liveServer: liveServer{name: "vsftpd", target: ftp.URL("/mirror"), env: []string{"FERRY_PASSWORD=" + ftp.Password},
			disk: filepath.Join(ftp.Root, "mirror"), xferLog: ftp.XferLog}, freeze: ftp.Freeze},
		{liveServer: liveServer{name: "openssh", target: ssh.URL("mirror"),
			keys: fmt.Sprintf("identity_file = %q\nknown_hosts = %q\n", ssh.IdentityFile, ssh.KnownHostsFile),
			disk: filepath.Join(ssh.Root, "mirror")},
			args: []string{"--identity-file", ssh.IdentityFile, "--known-hosts", ssh.KnownHostsFile}, freeze: ssh.Freeze, settle: true},
	}
}

// waitFiles polls the server's disk until at least n files are there.
func waitFiles(t *testing.T, disk string, n int, limit time.Duration, done <-chan error) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for arrived(t, disk) < n {
		select {
		case err := <-done:
			t.Fatalf("ferry ended (%v) before %d files reached the server", err, n)
		case <-time.After(5 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("fewer than %d files on the server after %v", n, limit)
		}
	}
}

// sameAsSource checks every file under its final name on the server: it
// must be the source's bytes, never a half-written copy. It returns how
// many there are, the marker left out.
func sameAsSource(t *testing.T, src, disk string) int {
	t.Helper()
	n := 0
	_ = filepath.WalkDir(disk, func(p string, d os.DirEntry, err error) error {
		// ferry's marker at the root is bookkeeping, not a mirrored file.
		if err != nil || !d.Type().IsRegular() || entry.IsTemp(d.Name()) || p == filepath.Join(disk, testrig.DefaultMarker) {
			return nil
		}
		rel, _ := filepath.Rel(disk, p)
		want, rerr := os.ReadFile(filepath.Join(src, rel))
		got, gerr := os.ReadFile(p)
		if rerr != nil || gerr != nil || !bytes.Equal(got, want) {
			t.Errorf("%s on the server is not the source's copy (%d of %d bytes)", rel, len(got), len(want))
		}
		n++
		return nil
	})
	return n
}

// TestOnceGivesUpOnStoppedServer: the server's processes are stopped (not
// killed: sockets stay open, nothing answers) under `ferry --once`. The run
// gives up within its server patience with exit 2, naming the server and
// how long it was silent, having failed no file and left nothing
// half-written under a final name; once the server runs again, the next run
// completes and leaves no temporary file.
func TestOnceGivesUpOnStoppedServer(t *testing.T) {
	const files = 3000
	for _, srv := range stoppableServers(t) {
		t.Run(srv.name, func(t *testing.T) {
			dir := t.TempDir()
			src, state := filepath.Join(dir, "src"), filepath.Join(dir, "state")
			// A first pass lists the (empty) remote and writes the marker,
			// so the pass under test ships without listing: the stop lands
			// in the uploads, the part the patience judges. (A listing
			// under a silent server ends the pass after one timeout.)
			writeFile(t, filepath.Join(src, "first.txt"), "first")
			args := append([]string{"--once", "--workers", "4", "--state", state, "--timeout", "2", "--server-patience", "5s", "--json"}, srv.args...)
			if r := ferry(t, srv.env, nil, append(args, src, srv.target)...); r.code != 0 {
				t.Fatalf("first pass: exit %d\n%s%s", r.code, r.stdout, r.stderr)
			}
			writeTree(t, src, files-1, 10)
			run := startFerry(t, srv.env, append(args, src, srv.target)...)
			out, errb, done := &run.out, &run.errb, run.done
			waitFiles(t, srv.disk, 100, 60*time.Second, done)
			frozen, err := srv.freeze()
			if err != nil {
				t.Fatal(err)
			}
			stopped := time.Now()
			var code int
			select {
			case err := <-done:
				code = exitCode(err)
			case <-time.After(90 * time.Second):
				frozen.Thaw()
				t.Fatalf("ferry still running 90 s after the server stopped (patience 5 s):\n%s", errb.String())
			}
			took := time.Since(stopped)
			t.Logf("%s: gave up %v after the server stopped (timeout 2s, server patience 5s)", srv.name, took.Round(100*time.Millisecond))
			if os.Getenv("FERRY_TEST_VERBOSE") != "" {
				t.Logf("stderr:\n%s", errb.String())
			}
			if err := frozen.Thaw(); err != nil {
				t.Fatal(err)
			}
			// A resumed sshd session first runs what its client sent before
			// it stopped (creating a temporary file, say), then sees the
			// client gone: the next pass must come after, to find it.
			// (vsftpd's stopped sessions wait out its idle timeouts.)
			if srv.settle {
				if err := frozen.Settle(60 * time.Second); err != nil {
					t.Fatal(err)
				}
			}
			var sum struct {
				Transferred, Failed int64
				Error               string
			}
			if err := json.Unmarshal([]byte(out.String()), &sum); err != nil {
				t.Fatalf("summary: %v\n%s\n%s", err, out.String(), errb.String())
			}
			u, _ := url.Parse(srv.target)
			if code != 2 || !strings.Contains(sum.Error, "server "+u.Host+" ") || !strings.Contains(sum.Error, "silent") ||
				!regexp.MustCompile(`for [0-9]+s`).MatchString(sum.Error) {
				t.Fatalf("exit %d, error %q; want 2 naming the server and how long it was silent\n%s", code, sum.Error, errb.String())
			}
			if sum.Failed != 0 {
				t.Errorf("%d files failed because the server was stopped; want 0", sum.Failed)
			}
			if sum.Transferred >= files {
				t.Fatalf("the run sent every file before the server stopped; the test proves nothing")
			}
			sameAsSource(t, src, srv.disk)

			r := ferry(t, srv.env, nil, append([]string{"--once", "--workers", "4", "--state", state}, append(srv.args, src, srv.target)...)...)
			if r.code != 0 {
				t.Fatalf("the run after the server resumed: exit %d\n%s%s", r.code, r.stdout, r.stderr)
			}
			if n := sameAsSource(t, src, srv.disk); n != files {
				t.Fatalf("%d of %d files on the server after the second run", n, files)
			}
			noTemps(t, srv.disk)
		})
	}
}

// TestDaemonWaitsForStoppedServer: the daemon's server is stopped while
// saves arrive. The job waits, shows the silence in status and the
// metrics, fails no file, and ships everything by itself once the server
// runs again.
func TestDaemonWaitsForStoppedServer(t *testing.T) {
	for _, srv := range stoppableServers(t) {
		t.Run(srv.name, func(t *testing.T) {
			dir := t.TempDir()
			writeTree(t, filepath.Join(dir, "src"), 5, 1)
			cfg := writeConfig(t, dir, srv.liveServer, "timeout = \"1s\"\n")
			body, _ := os.ReadFile(cfg)
			writeFile(t, cfg, "metrics_listen = \"127.0.0.1:0\"\n"+string(body))
			d := startDaemon(t, cfg, srv.env)
			frozen, err := srv.freeze()
			if err != nil {
				t.Fatal(err)
			}
			defer frozen.Thaw()
			for i := range 20 {
				writeFile(t, filepath.Join(dir, "src", "while-stopped", fmt.Sprintf("f%02d.txt", i)), fmt.Sprintf("saved while stopped %d", i))
			}
			type jobStatus struct {
				State             string    `json:"state"`
				ServerSilentSince time.Time `json:"server_silent_since"`
				FailedFiles       int64     `json:"failed_files"`
			}
			status := func() jobStatus {
				r := ferry(t, nil, nil, "status", "--json", "--config", cfg)
				var st struct{ Jobs []jobStatus }
				if err := json.Unmarshal([]byte(r.stdout), &st); err != nil || len(st.Jobs) != 1 {
					t.Fatalf("status: %v\n%s%s", err, r.stdout, r.stderr)
				}
				return st.Jobs[0]
			}
			deadline := time.Now().Add(60 * time.Second)
			var st jobStatus
			for st = status(); st.ServerSilentSince.IsZero(); st = status() {
				if time.Now().After(deadline) {
					t.Fatalf("status never showed the server silent: %+v", st)
				}
				time.Sleep(100 * time.Millisecond)
			}
			if st.State != "waiting" {
				t.Errorf("state %q while the server is silent, want waiting", st.State)
			}
			r := ferry(t, nil, nil, "status", "--config", cfg)
			if !strings.Contains(r.stdout, "server silent since") {
				t.Errorf("status text does not show the silence:\n%s", r.stdout)
			}
			m := regexp.MustCompile(`msg=metrics url=(http://\S+)`).FindStringSubmatch(d.log.String())
			if m == nil {
				t.Fatalf("no metrics URL in the log")
			}
			resp, err := http.Get(m[1])
			if err != nil {
				t.Fatal(err)
			}
			metrics, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if !regexp.MustCompile(`ferry_server_silent_seconds\{job="live"\} [1-9]`).Match(metrics) ||
				!strings.Contains(string(metrics), `ferry_job_state{job="live",state="waiting"} 1`) {
				t.Errorf("metrics do not show the silence:\n%s", metrics)
			}
			// Several timeouts pass (each worker waits again after each):
			// nothing may be failed for them.
			for strings.Count(d.log.String(), "not counted against the file") < 6 {
				if time.Now().After(deadline) {
					t.Fatalf("the workers did not keep waiting:\n%s", d.log)
				}
				time.Sleep(50 * time.Millisecond)
			}
			if err := frozen.Thaw(); err != nil {
				t.Fatal(err)
			}
			for i := range 20 {
				rel := fmt.Sprintf("while-stopped/f%02d.txt", i)
				arrival(t, srv.disk, rel, []byte(fmt.Sprintf("saved while stopped %d", i)), 90*time.Second)
			}
			if st := status(); st.FailedFiles != 0 || !st.ServerSilentSince.IsZero() {
				t.Errorf("after the server resumed: %+v; want no failed file and no silence", st)
			}
			if code := d.stop(t, 30*time.Second); code != 0 {
				t.Fatalf("SIGTERM: exit %d", code)
			}
			noTemps(t, srv.disk)
		})
	}
}

// TestOnceSessionKilled: vsftpd sessions are killed one at a time under
// `ferry --once` (as vsftpd does itself with "500 OOPS" under load). A
// session that ends is the session's failure, not the file's: the run
// redials, fails no file, exits 0, and counts the sessions lost.
func TestOnceSessionKilled(t *testing.T) {
	const files = 1500
	ftp := testrig.FTP(t, testrig.FTPOptions{})
	dir := t.TempDir()
	src, disk := filepath.Join(dir, "src"), filepath.Join(ftp.Root, "mirror")
	writeTree(t, src, files, 5)
	run := startFerry(t, []string{"FERRY_PASSWORD=" + ftp.Password}, "--once", "--workers", "4", "--state", filepath.Join(dir, "state"), "--json", src, ftp.URL("/mirror"))
	out, errb, done := &run.out, &run.errb, run.done
	killed := 0
	for _, at := range []int{100, 300, 500} {
		waitFiles(t, disk, at, 60*time.Second, done)
		if _, err := ftp.KillSession(); err != nil {
			t.Fatal(err)
		}
		killed++
	}
	var code int
	select {
	case err := <-done:
		code = exitCode(err)
	case <-time.After(120 * time.Second):
		t.Fatalf("ferry did not finish:\n%s", errb.String()) // the cleanup kills it
	}
	var sum struct {
		Failed       int64 `json:"failed"`
		SessionsLost int64 `json:"sessions_lost"`
	}
	if err := json.Unmarshal([]byte(out.String()), &sum); err != nil {
		t.Fatalf("summary: %v\n%s", err, out.String())
	}
	if code != 0 || sum.Failed != 0 {
		t.Fatalf("exit %d, %d failed after %d killed sessions; want 0 and 0\n%s", code, sum.Failed, killed, errb.String())
	}
	if sum.SessionsLost < 1 {
		t.Errorf("sessions_lost = %d after %d killed sessions\n%s", sum.SessionsLost, killed, errb.String())
	}
	if n := sameAsSource(t, src, disk); n != files {
		t.Fatalf("%d of %d files on the server", n, files)
	}
	noTemps(t, disk)
}
