package gitstage

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// served makes a bare repository under a git daemon on 127.0.0.1 and
// returns its directory, its git:// URL, and the daemon.
func served(t *testing.T) (dir, url string, d *daemon) {
	t.Helper()
	base := t.TempDir()
	dir = filepath.Join(base, "target.git")
	gitT(t, "", "init", "-q", "--bare", "--initial-branch=main", dir)
	fsckAtEnd(t, dir)
	port := freePort(t)
	d = startDaemon(t, base, port)
	return dir, fmt.Sprintf("git://127.0.0.1:%d/target.git", port), d
}

// Another clone pushes between ferry's fetch and its push: the push is
// rejected, the batch is rebuilt on the new tip (its paths win, the
// other's stay) and pushed again, over the network, never forced.
func TestRejectedPushRebuilt(t *testing.T) {
	ctx := ctxT(t)
	dir, url, _ := served(t)
	r := openT(t, url, nil)
	var rebuilt [][2]string
	r.OnRebuild = func(old, new string) { rebuilt = append(rebuilt, [2]string{old, new}) }
	c1, err := r.Publish(ctx, []Change{{Path: "a.txt", Blob: blobT(t, r, "a1\n")}}, "ferry one", when, true)
	if err != nil {
		t.Fatal(err)
	}
	var other string
	attempts := 0
	r.test.beforePush = func(attempt int) {
		attempts++
		if attempt == 0 {
			other = pushOther(t, url, map[string]string{"a.txt": "theirs\n", "other.txt": "other\n"}, "other clone")
		}
	}
	c2, err := r.Publish(ctx, []Change{{Path: "a.txt", Blob: blobT(t, r, "a2\n")}, {Path: "b.txt", Blob: blobT(t, r, "b\n")}}, "ferry two", when, true)
	if err != nil {
		t.Fatal(err)
	}
	if attempts != 2 {
		t.Errorf("%d push attempts, want 2 (rejected, then rebuilt)", attempts)
	}
	h := history(t, dir, "main")
	want := []string{c2 + " " + other + " ferry two", other + " " + c1 + " other clone", c1 + " ferry one"}
	if strings.Join(h, "\n") != strings.Join(want, "\n") {
		t.Errorf("target history:\n%s\nwant\n%s", strings.Join(h, "\n"), strings.Join(want, "\n"))
	}
	linear(t, dir, "main")
	sameFiles(t, files(t, dir, "main"), map[string]string{
		"a.txt": "100644 a2\n", "b.txt": "100644 b\n", "other.txt": "100644 other\n",
	})
	if len(rebuilt) != 1 || rebuilt[0][1] != c2 || rebuilt[0][0] == c2 {
		t.Errorf("OnRebuild calls %q, want one, to %s", rebuilt, c2)
	}
	if tip, _ := r.Tip(ctx); tip != c2 {
		t.Errorf("clone's tip %s, want %s", tip, c2)
	}
	if got := gitT(t, dir, "log", "-1", "--format=%an %ad", "--date=raw", "main"); got != "ferry 1796288400 +0100" {
		t.Errorf("the rebuilt commit's author and date: %q", got)
	}
}

// A push the repository refuses (a hook) is a clear error wrapping
// ErrPush, tried once; the commit stays in the clone and PushPending
// pushes it once the repository accepts.
func TestRefusedPush(t *testing.T) {
	ctx := ctxT(t)
	target := newTarget(t)
	hook := filepath.Join(target, "hooks", "pre-receive")
	attempts := filepath.Join(t.TempDir(), "attempts")
	if err := os.WriteFile(hook, []byte("#!/bin/sh\necho attempt >> "+attempts+"\necho 'pushes are closed today' >&2\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	r := openT(t, target, nil)
	sleeps := 0
	r.test.sleep = func(context.Context, time.Duration) error { sleeps++; return nil }
	c, err := r.Publish(ctx, []Change{{Path: "a", Blob: blobT(t, r, "a\n")}}, "refused", when, true)
	if !errors.Is(err, ErrPush) || errors.Is(err, ErrRejected) || isTransient(err) {
		t.Fatalf("refused push: %v, want ErrPush (permanent, not ErrRejected)", err)
	}
	for _, s := range []string{target, "pre-receive hook declined", "pushes are closed today"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("the error does not say %q: %v", s, err)
		}
	}
	if b, _ := os.ReadFile(attempts); strings.Count(string(b), "attempt") != 1 || sleeps != 0 {
		t.Errorf("%d pushes, %d back-offs, want one push and none", strings.Count(string(b), "attempt"), sleeps)
	}
	if tip, _ := r.Tip(ctx); c == "" || tip != c {
		t.Errorf("the commit %q is not the clone's tip %q", c, tip)
	}
	if _, err := gitTry(target, "", "rev-parse", "--verify", "-q", "main"); err == nil {
		t.Error("the target has a main")
	}
	os.Remove(hook)
	pushed, err := r.PushPending(ctx)
	if err != nil || pushed != c {
		t.Fatalf("PushPending: %q, %v, want %s", pushed, err, c)
	}
	if got := gitT(t, target, "rev-parse", "main"); got != c {
		t.Errorf("target main %s, want %s", got, c)
	}
	if pushed, err := r.PushPending(ctx); pushed != "" || err != nil {
		t.Errorf("PushPending with nothing pending: %q, %v", pushed, err)
	}
}

// Commits made with push off, while another clone pushed unrelated
// history, are rebuilt one by one on top of it by PushPending: messages,
// authors and dates kept, the other's files kept, history linear.
func TestPushPendingRebuilds(t *testing.T) {
	ctx := ctxT(t)
	target := newTarget(t)
	r := openT(t, target, nil)
	rebuilt := map[string]string{}
	r.OnRebuild = func(old, new string) { rebuilt[old] = new }
	c1, err := r.Publish(ctx, []Change{{Path: "a", Blob: blobT(t, r, "a\n")}, {Path: "d/x", Blob: blobT(t, r, "x\n")}}, "one", when, false)
	if err != nil {
		t.Fatal(err)
	}
	c2, err := r.Publish(ctx, []Change{{Path: "d"}, {Path: "b", Blob: blobT(t, r, "b\n"), Exec: true}}, "two", when.Add(time.Minute), false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := gitTry(target, "", "rev-parse", "--verify", "-q", "main"); err == nil {
		t.Fatal("push off pushed")
	}
	other := pushOther(t, target, map[string]string{"other": "o\n", "d/y": "y\n"}, "other root")
	pushed, err := r.PushPending(ctx)
	if err != nil {
		t.Fatal(err)
	}
	h := history(t, target, "main")
	if len(h) != 3 || !strings.HasSuffix(h[0], " two") || !strings.HasSuffix(h[1], " one") || h[2] != other+" other root" {
		t.Fatalf("target history %q", h)
	}
	linear(t, target, "main")
	if pushed != strings.Fields(h[0])[0] || rebuilt[c2] != pushed || rebuilt[c1] != strings.Fields(h[1])[0] || len(rebuilt) != 2 {
		t.Errorf("pushed %s, rebuilt %q", pushed, rebuilt)
	}
	sameFiles(t, files(t, target, "main"), map[string]string{"a": "100644 a\n", "b": "100755 b\n", "other": "100644 o\n", "d/y": "100644 y\n"})
	for i, want := range []string{"ferry 1796288460 +0100 two", "ferry 1796288400 +0100 one"} {
		if got := gitT(t, target, "log", "-1", "--format=%an %ad %s", "--date=raw", fmt.Sprintf("main~%d", i)); got != want {
			t.Errorf("rebuilt commit %d: %q, want %q", i, got, want)
		}
	}
}

// A network failure is retried with back-off; it succeeds once the
// repository is back.
func TestTransientFailuresRetried(t *testing.T) {
	ctx := ctxT(t)
	dir, url, d := served(t)
	r := openT(t, url, nil)
	if _, err := r.Publish(ctx, []Change{{Path: "a", Blob: blobT(t, r, "a\n")}}, "one", when, true); err != nil {
		t.Fatal(err)
	}
	// The server goes away just before the push; the first back-off
	// brings it back on the same port.
	sleeps := 0
	r.test.beforePush = func(attempt int) {
		if attempt == 0 {
			d.stop()
		}
	}
	r.test.sleep = func(context.Context, time.Duration) error {
		sleeps++
		if sleeps == 1 {
			startDaemon(t, filepath.Dir(dir), d.port)
		}
		return nil
	}
	c, err := r.Publish(ctx, []Change{{Path: "b", Blob: blobT(t, r, "b\n")}}, "two", when, true)
	if err != nil {
		t.Fatalf("Publish across a restart of the repository's server: %v", err)
	}
	if sleeps != 1 {
		t.Errorf("%d back-offs, want 1", sleeps)
	}
	if got := gitT(t, dir, "rev-parse", "main"); got != c {
		t.Errorf("target main %s, want %s", got, c)
	}
}

// A repository out of reach does not keep a batch from its commit: it is
// committed in the clone, the error says the fetch failed, and
// PushPending pushes it once the repository is back.
func TestPublishWhileUnreachable(t *testing.T) {
	ctx := ctxT(t)
	dir, url, d := served(t)
	r := openT(t, url, nil)
	sleeps := 0
	r.test.sleep = func(context.Context, time.Duration) error { sleeps++; return nil }
	d.stop()
	c, err := r.Publish(ctx, []Change{{Path: "a", Blob: blobT(t, r, "a\n")}}, "offline", when, true)
	if !errors.Is(err, ErrFetch) || !strings.Contains(err.Error(), url) || c == "" {
		t.Fatalf("Publish with the repository down: %q, %v; want a commit and ErrFetch naming %s", c, err, url)
	}
	if sleeps != r.retry.attempts-1 {
		t.Errorf("%d back-offs, want %d", sleeps, r.retry.attempts-1)
	}
	if tip, _ := r.Tip(ctx); tip != c {
		t.Errorf("clone's tip %s, want %s", tip, c)
	}
	startDaemon(t, filepath.Dir(dir), d.port)
	if pushed, err := r.PushPending(ctx); err != nil || pushed != c {
		t.Fatalf("PushPending: %q, %v", pushed, err)
	}
	if got := gitT(t, dir, "rev-parse", "main"); got != c {
		t.Errorf("target main %s, want %s", got, c)
	}
}

// A wrong repository is a clear error naming it and quoting git, and
// leaves no clone behind; a password in a URL is not repeated.
func TestWrongRepository(t *testing.T) {
	ctx := ctxT(t)
	missing := filepath.Join(t.TempDir(), "nope.git")
	state := filepath.Join(t.TempDir(), "git")
	_, err := Open(ctx, state, Options{Repository: missing})
	if !errors.Is(err, ErrFetch) || !strings.Contains(err.Error(), missing) || !strings.Contains(err.Error(), "does not appear to be a git repository") {
		t.Errorf("a missing repository: %v", err)
	}
	if _, serr := os.Stat(state); !errors.Is(serr, os.ErrNotExist) {
		t.Errorf("a failed Open left %s: %v", state, serr)
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(state), ".*")); len(left) != 0 {
		t.Errorf("a failed Open left %q", left)
	}
	port := freePort(t)
	url := fmt.Sprintf("https://ferry:s3cret@127.0.0.1:%d/site.git", port)
	_, err = Open(ctx, state, Options{Repository: url})
	if !errors.Is(err, ErrFetch) || strings.Contains(err.Error(), "s3cret") || !strings.Contains(err.Error(), fmt.Sprintf("127.0.0.1:%d/site.git", port)) {
		t.Errorf("an unreachable URL with a password: %v", err)
	}
	if _, err := Open(ctx, state, Options{Repository: missing, Branch: "no..way"}); err == nil || !strings.Contains(err.Error(), "no..way") {
		t.Errorf("a bad branch name: %v", err)
	}
	if _, err := Open(ctx, state, Options{Repository: "--upload-pack=touch /tmp/x"}); err == nil {
		t.Error("a repository that is an option was accepted")
	}
}

// A password git repeats is not repeated in ferry's errors.
func TestScrub(t *testing.T) {
	r := &Repo{secret: secretOf("https://u:p%40ss@example.org/x.git")}
	if got := r.scrub("fatal: https://u:p@ss@example.org/x.git: denied"); got != "fatal: https://u:xxxxx@example.org/x.git: denied" {
		t.Errorf("scrub: %q", got)
	}
	if got := (&Repo{}).scrub("no secret"); got != "no secret" {
		t.Errorf("scrub without a secret: %q", got)
	}
}

// Re-opening keeps the clone and its branch; a clone made for another
// repository is refused, naming both.
func TestReopen(t *testing.T) {
	ctx := ctxT(t)
	target := newTarget(t)
	r := openT(t, target, nil)
	c, err := r.Publish(ctx, []Change{{Path: "a", Blob: blobT(t, r, "a\n")}}, "one", when, false)
	if err != nil {
		t.Fatal(err)
	}
	t.Chdir(filepath.Dir(target))
	again, err := Open(ctx, r.Dir(), Options{Repository: "target.git"})
	if err != nil {
		t.Fatalf("re-open with the same repository, as a relative path: %v", err)
	}
	if tip, _ := again.Tip(ctx); tip != c {
		t.Errorf("re-opened tip %q, want %s", tip, c)
	}
	other := newTarget(t)
	_, err = Open(ctx, r.Dir(), Options{Repository: other})
	if !errors.Is(err, ErrOtherRepository) || !strings.Contains(err.Error(), target) || !strings.Contains(err.Error(), other) {
		t.Errorf("re-open with another repository: %v", err)
	}
	// Once pushed, a new clone starts from the repository's branch.
	if _, err := again.PushPending(ctx); err != nil {
		t.Fatal(err)
	}
	fresh := openT(t, target, nil)
	c2, err := fresh.Publish(ctx, []Change{{Path: "b", Blob: blobT(t, fresh, "b\n")}}, "two", when, true)
	if err != nil {
		t.Fatal(err)
	}
	if h := history(t, target, "main"); len(h) != 2 || h[0] != c2+" "+c+" two" {
		t.Errorf("history %q", h)
	}
}

// Cancelling stops a git command that waits on the network, at once.
func TestCancelKillsGit(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	defer close(done)
	go func() {
		// A server that accepts and never answers; the connection
		// arriving is the moment to cancel.
		conn, err := l.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		cancel()
		<-done
	}()
	start := time.Now()
	_, err = Open(ctx, filepath.Join(t.TempDir(), "git"), Options{Repository: "git://" + l.Addr().String() + "/x.git"})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Open against a server that never answers, cancelled: %v", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("cancelling took %v", d)
	}
}
