package cli

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"ferry/control"
)

// TestGitStatusLine: `ferry status` gives a job's Git stage one line —
// what waits, the last commit, the last push, what is not pushed — and a
// second for its error, or for why it stopped.
func TestGitStatusLine(t *testing.T) {
	now := time.Now()
	for _, tc := range []struct {
		name string
		g    control.GitStatus
		want string
	}{
		{"committed and pushed", control.GitStatus{Push: true, Waiting: 3, LastCommit: "0123456789abcdef0123456789abcdef01234567",
			LastCommitAt: now.Add(-2 * time.Minute), LastPushAt: now.Add(-time.Minute), Unpushed: 1},
			"  git: 3 waiting, last commit 0123456789ab (2m0s ago), pushed 1m0s ago, 1 unpushed\n"},
		{"nothing yet", control.GitStatus{Push: true}, "  git: 0 waiting, no commit since start, no push since start, 0 unpushed\n"},
		{"push off", control.GitStatus{Waiting: 1, LastCommit: "abc", LastCommitAt: now.Add(-time.Second)},
			"  git: 1 waiting, last commit abc (1s ago), push off\n"},
		{"failed", control.GitStatus{Push: true, Error: "fetch: connection refused"},
			"  git: 0 waiting, no commit since start, no push since start, 0 unpushed\n  git error: fetch: connection refused\n"},
		{"stopped", control.GitStatus{Push: true, Unpushed: 2, Error: "push refused by a hook", Stopped: true},
			"  git: 0 waiting, no commit since start, no push since start, 2 unpushed\n  git stopped: push refused by a hook (the mirror goes on; ferry sync --git tries again)\n"},
	} {
		var out bytes.Buffer
		writeGitStatus(&App{Stdout: &out}, tc.g)
		if out.String() != tc.want {
			t.Errorf("%s:\n got %q\nwant %q", tc.name, out.String(), tc.want)
		}
	}

	// A job without a stage has no such line.
	var out bytes.Buffer
	writeStatus(&App{Stdout: &out}, control.Status{Started: now, Jobs: []control.JobStatus{{Name: "plain"}, {Name: "site", Git: &control.GitStatus{Waiting: 7}}}})
	if n := strings.Count(out.String(), "git: "); n != 1 || !strings.Contains(out.String(), "site: ") ||
		!strings.Contains(out.String()[strings.Index(out.String(), "site: "):], "git: 7 waiting") {
		t.Errorf("status of a job without a stage and one with:\n%s", out.String())
	}
}

// TestGitFlagIsForSync: --git asks the Git stage, so only sync takes it.
func TestGitFlagIsForSync(t *testing.T) {
	var stdout, stderr bytes.Buffer
	a := &App{Stdout: &stdout, Stderr: &stderr, Getenv: func(string) string { return "" }}
	if code := a.Run(context.Background(), []string{"status", "--git", "--state", t.TempDir()}); code != exitUsage ||
		!strings.Contains(stderr.String(), "--git is for ferry sync") {
		t.Errorf("status --git: exit %d, %q", code, stderr.String())
	}
}
