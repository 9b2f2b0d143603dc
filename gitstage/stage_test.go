package gitstage

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// memStore is the registry's side of the stage in memory: pending
// changes, and batches that keep their rows until committed.
type memStore struct {
	mu        sync.Mutex
	pending   []Change
	shippedAt time.Time
	batches   []*memBatch
	pushed    []string // commits recorded as pushed through
	failOnce  error    // the next Committed fails with it (a crash after the commit)
}

type memBatch struct {
	id      int64
	changes []Change
	commit  string
	pushed  bool
}

func (m *memStore) Waiting(context.Context) (int64, time.Time, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := len(m.pending)
	for _, b := range m.batches {
		if b.commit == "" {
			n += len(b.changes)
		}
	}
	return int64(n), m.shippedAt, nil
}

func (m *memStore) OpenBatch(_ context.Context, max int, _ time.Time) (int64, []Change, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, b := range m.batches {
		if b.commit == "" {
			return b.id, b.changes, nil
		}
	}
	if len(m.pending) == 0 {
		return 0, nil, nil
	}
	n := min(max, len(m.pending))
	b := &memBatch{id: int64(len(m.batches) + 1), changes: m.pending[:n:n]}
	m.pending = m.pending[n:]
	m.batches = append(m.batches, b)
	return b.id, b.changes, nil
}

func (m *memStore) Committed(_ context.Context, id int64, commit string, _ time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.failOnce; err != nil {
		m.failOnce = nil
		return err
	}
	m.batches[id-1].commit = commit
	return nil
}

func (m *memStore) Pushed(_ context.Context, commit string, _ time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.pushed = append(m.pushed, commit)
	for _, b := range m.batches {
		if b.commit != "" && b.commit != NoCommit {
			b.pushed = true
		}
	}
	return nil
}

func (m *memStore) Failed(context.Context, int64, string) error { return nil }

func (m *memStore) Unpushed(context.Context) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, b := range m.batches {
		if b.commit != "" && b.commit != NoCommit && !b.pushed {
			n++
		}
	}
	return n, nil
}

func (m *memStore) ship(t *testing.T, r *Repo, files ...string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, f := range files {
		m.pending = append(m.pending, Change{Path: f, Blob: blobT(t, r, "content of "+f)})
	}
}

var stageNow = time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)

func newStageT(t *testing.T, mod func(*Options)) (*Stage, *memStore, *Repo, string) {
	t.Helper()
	target := newTarget(t)
	r := openT(t, target, func(o *Options) {
		o.Push, o.BatchFiles, o.BatchDelay = true, 3, time.Hour
		if mod != nil {
			mod(o)
		}
	})
	st := &memStore{shippedAt: stageNow}
	return NewStage(r, st, "site", "reg/site", func() time.Time { return stageNow }, t.Logf), st, r, target
}

// TestStageDrain: what waits is committed in batches of BatchFiles, each
// pushed, the message listing its paths; nothing waiting, nothing made.
func TestStageDrain(t *testing.T) {
	s, st, r, target := newStageT(t, nil)
	st.ship(t, r, "a.html", "b.html", "c.html", "d/e.html", "d/f.html", "g.css", "h.js")
	made, err := s.Drain(context.Background())
	if err != nil || len(made) != 3 {
		t.Fatalf("Drain made %v, %v; want 3 commits", made, err)
	}
	if got := gitT(t, target, "rev-parse", "main"); got != made[2] {
		t.Fatalf("the target's main is %s, want the last commit %s", got, made[2])
	}
	if n := gitT(t, target, "rev-list", "--count", "main"); n != "3" {
		t.Fatalf("%s commits in the target", n)
	}
	msg := gitT(t, target, "log", "-1", "--format=%B", made[0])
	for _, want := range []string{"ferry site: 3 files (3 added, 0 changed, 0 deleted)", "A a.html", "Ferry-Batch: reg/site#1"} {
		if !containsLine(msg, want) {
			t.Fatalf("the first commit's message lacks %q:\n%s", want, msg)
		}
	}
	if stt := s.Status(); stt.Commits != 3 || stt.Unpushed != 0 || stt.LastCommit != made[2] || stt.Err != "" {
		t.Fatalf("status %+v", stt)
	}
	if more, err := s.Drain(context.Background()); err != nil || len(more) != 0 {
		t.Fatalf("a second Drain made %v, %v", more, err)
	}
}

// TestStageDue: a batch waits until BatchFiles paths wait or the oldest
// waited BatchDelay.
func TestStageDue(t *testing.T) {
	s, st, r, _ := newStageT(t, nil)
	st.ship(t, r, "a", "b")
	ctx := context.Background()
	if c, err := s.step(ctx, false, true); c != "" || err != nil {
		t.Fatalf("2 of 3 files, shipped just now: committed %q, %v", c, err)
	}
	st.shippedAt = stageNow.Add(-2 * time.Hour)
	if c, err := s.step(ctx, false, true); c == "" || err != nil {
		t.Fatalf("2 files waiting 2 h with a 1 h delay: committed %q, %v", c, err)
	}
	st.shippedAt = stageNow
	st.ship(t, r, "c", "d", "e")
	if c, err := s.step(ctx, false, true); c == "" || err != nil {
		t.Fatalf("3 files waiting: committed %q, %v", c, err)
	}
}

// TestStageCrashAfterCommit: a run that committed a batch and died before
// recording it leaves the commit on the clone's branch; the next stage
// finds it by its trailer and records it, instead of committing the batch
// a second time.
func TestStageCrashAfterCommit(t *testing.T) {
	s, st, r, target := newStageT(t, func(o *Options) { o.Push = false })
	st.ship(t, r, "a", "b", "c")
	st.failOnce = errors.New("killed")
	ctx := context.Background()
	if _, err := s.step(ctx, true, true); err == nil {
		t.Fatal("the step recorded a commit the store refused")
	}
	tip, _ := r.Tip(ctx)
	if tip == "" {
		t.Fatal("no commit was made before the crash")
	}
	again := NewStage(r, st, "site", "reg/site", func() time.Time { return stageNow }, t.Logf)
	made, err := again.Drain(ctx)
	if err != nil || len(made) != 1 || made[0] != tip {
		t.Fatalf("after the restart: made %v (%v), want the commit %s recorded", made, err, tip)
	}
	if n := gitT(t, r.Dir(), "rev-list", "--count", "main"); n != "1" {
		t.Fatalf("%s commits in the clone, want 1", n)
	}
	if st.batches[0].commit != tip {
		t.Fatalf("the batch recorded %q", st.batches[0].commit)
	}
	// Push off: the target has nothing yet; a stage with push on sends it.
	if _, err := gitTry(target, "", "rev-parse", "--verify", "-q", "main"); err == nil {
		t.Fatal("pushed with push off")
	}
}

// TestStageNothingToCommit: a batch whose changes the tree holds already
// (a deletion of a path it never had, the same bytes again) makes no
// commit; it is recorded as held by the tip, or by none.
func TestStageNothingToCommit(t *testing.T) {
	s, st, r, target := newStageT(t, nil)
	ctx := context.Background()
	st.pending = []Change{{Path: "never.html"}}
	if made, err := s.Drain(ctx); err != nil || len(made) != 0 || st.batches[0].commit != NoCommit {
		t.Fatalf("a deletion on an empty branch: made %v (%v), recorded %q", made, err, st.batches[0].commit)
	}
	st.ship(t, r, "a")
	first, err := s.Drain(ctx)
	if err != nil || len(first) != 1 {
		t.Fatalf("one file: made %v, %v", first, err)
	}
	st.ship(t, r, "a") // the same bytes again
	if made, err := s.Drain(ctx); err != nil || len(made) != 0 {
		t.Fatalf("the same bytes again: made %v, %v", made, err)
	}
	if st.batches[2].commit != first[0] {
		t.Fatalf("the unchanged batch recorded %q, want the tip %s", st.batches[2].commit, first[0])
	}
	if n := gitT(t, target, "rev-list", "--count", "main"); n != "1" {
		t.Fatalf("%s commits in the target, want 1", n)
	}
}

func containsLine(msg, line string) bool {
	return hasLine(msg, line)
}

// TestStageSyncPushesWithPushOff: with push off, commits stay in the clone
// until the button (Sync) pushes them.
func TestStageSyncPushesWithPushOff(t *testing.T) {
	s, st, r, target := newStageT(t, func(o *Options) { o.Push = false })
	st.ship(t, r, "a", "b", "c")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() { cancel(); <-done }()
	for deadline := time.Now().Add(30 * time.Second); s.Status().Commits == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("3 files in batches of 3: no commit")
		}
	}
	if _, err := gitTry(target, "", "rev-parse", "--verify", "-q", "main"); err == nil {
		t.Fatal("pushed with push off before the button")
	}
	if got := s.Status(); got.Waiting != 0 || got.Unpushed != 1 {
		t.Fatalf("status once the batch is committed: %d waiting, %d unpushed; want 0 and 1", got.Waiting, got.Unpushed)
	}
	s.Sync()
	for deadline := time.Now().Add(30 * time.Second); s.Status().Pushes == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the button did not push: %+v", s.Status())
		}
	}
	if got, tip := gitT(t, target, "rev-parse", "main"), s.Status().LastCommit; got != tip {
		t.Fatalf("the target's main is %s, the stage's last commit %s", got, tip)
	}
}

// TestStageStoppedStillCounts: a stage stopped by a refused push commits
// nothing more until the button, but what waits still shows in its status.
func TestStageStoppedStillCounts(t *testing.T) {
	s, st, r, target := newStageT(t, func(o *Options) { o.BatchDelay = 200 * time.Millisecond })
	hook := filepath.Join(target, "hooks", "pre-receive")
	if err := os.WriteFile(hook, []byte("#!/bin/sh\necho 'pushes are closed today' >&2\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	st.ship(t, r, "a", "b", "c")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() { cancel(); <-done }()
	waitStatus := func(what string, ok func(Status) bool) {
		t.Helper()
		for deadline := time.Now().Add(30 * time.Second); !ok(s.Status()); time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: %+v", what, s.Status())
			}
		}
	}
	waitStatus("stopped by the refused push", func(s Status) bool { return s.Stopped && s.Commits == 1 })
	st.ship(t, r, "d", "e")
	waitStatus("2 waiting while stopped", func(s Status) bool { return s.Waiting == 2 })
	if got := s.Status(); !got.Stopped || got.Commits != 1 || got.Unpushed != 1 {
		t.Fatalf("the stopped stage went on, or does not count its unpushed commit: %+v", got)
	}
}

// TestStageCommitsThroughAnOutage: with the repository down, a running
// stage goes on committing its batches in the clone, is not stopped, and
// tries the push again only after its back-off; the button pushes them all
// once the repository is back.
func TestStageCommitsThroughAnOutage(t *testing.T) {
	dir, url, d := served(t)
	r := openT(t, url, func(o *Options) { o.Push, o.BatchFiles, o.BatchDelay = true, 3, 200*time.Millisecond })
	fetches := 0
	r.test.sleep = func(context.Context, time.Duration) error { fetches++; return nil }
	st := &memStore{shippedAt: stageNow}
	s := NewStage(r, st, "site", "reg/site", func() time.Time { return stageNow }, t.Logf)
	d.stop()
	st.ship(t, r, "a", "b", "c")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() { cancel(); <-done }()
	waitFor := func(what string, ok func(Status) bool) {
		t.Helper()
		for deadline := time.Now().Add(30 * time.Second); !ok(s.Status()); time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: %+v", what, s.Status())
			}
		}
	}
	waitFor("the first batch committed, its push failed", func(s Status) bool { return s.Commits == 1 && s.Err != "" })
	st.ship(t, r, "d", "e", "f")
	waitFor("the second batch committed while the repository is down", func(s Status) bool { return s.Commits == 2 })
	time.Sleep(500 * time.Millisecond) // a few polls: none may push before the back-off
	got := s.Status()
	if got.Stopped || got.Pushes != 0 || !strings.Contains(got.Err, url) {
		t.Fatalf("status through the outage: %+v", got)
	}
	if fetches != r.retry.attempts-1 {
		t.Errorf("%d retries of the fetch, want the %d of one push: the next waits for the back-off", fetches, r.retry.attempts-1)
	}
	startDaemon(t, filepath.Dir(dir), d.port)
	s.Sync()
	waitFor("the button pushed both batches", func(s Status) bool { return s.Pushes == 1 && s.Err == "" && s.Unpushed == 0 })
	if tip := gitT(t, dir, "rev-parse", "main"); tip != s.Status().LastCommit {
		t.Fatalf("the repository's main is %s, the stage's last commit %s", tip, s.Status().LastCommit)
	}
	if n := gitT(t, dir, "rev-list", "--count", "main"); n != "2" {
		t.Fatalf("%s commits on main, want 2", n)
	}
}
