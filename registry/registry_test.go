package registry

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"ferry/entry"
)

func open(t *testing.T) (*DB, *Job) {
	t.Helper()
	ctx := context.Background()
	db, err := Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	j, err := db.Job(ctx, "site", "/src", "sftp://u@h/dst")
	if err != nil {
		t.Fatal(err)
	}
	return db, j
}

func TestReopenKeepsStateAndRefusesChangedJob(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db, err := Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	j, _ := db.Job(ctx, "site", "/src", "ftp://h/x")
	w := j.NewWriter(time.Hour, 1000)
	w.Put(entry.Entry{Path: "a/b.txt", LocalSize: 3, RemoteSize: 3, State: entry.Done})
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	db.Close()

	db, err = Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	j, err = db.Job(ctx, "site", "/src", "ftp://h/x")
	if err != nil {
		t.Fatal(err)
	}
	e, ok, err := j.Get(ctx, "a/b.txt")
	if err != nil || !ok || e.State != entry.Done || e.RemoteSize != 3 {
		t.Fatalf("after reopen Get = %+v %v %v", e, ok, err)
	}
	if _, err := db.Job(ctx, "site", "/other", "ftp://h/x"); !errors.Is(err, ErrChanged) {
		t.Fatalf("reused job name with another source: %v", err)
	}
}

func TestDirListsOneDirectory(t *testing.T) {
	ctx := context.Background()
	_, j := open(t)
	w := j.NewWriter(time.Hour, 1000)
	for _, p := range []string{"x", "a/1", "a/2", "a/b/3", "a.txt"} {
		w.Put(entry.Entry{Path: p, State: entry.Done})
	}
	if err := w.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	var got []string
	j.Dir(ctx, "a", func(e entry.Entry) error { got = append(got, e.Path); return nil })
	if fmt.Sprint(got) != "[a/1 a/2]" {
		t.Fatalf("Dir(a) = %v", got)
	}
	got = nil
	j.Dir(ctx, "", func(e entry.Entry) error { got = append(got, e.Path); return nil })
	if fmt.Sprint(got) != "[a.txt x]" {
		t.Fatalf("Dir(root) = %v", got)
	}
	w.Forget("a/1")
	w.Close()
	if _, ok, _ := j.Get(ctx, "a/1"); ok {
		t.Fatalf("Forget did not remove a/1")
	}
}

func TestClaimOrderAndRecover(t *testing.T) {
	ctx := context.Background()
	_, j := open(t)
	w := j.NewWriter(time.Millisecond, 10)
	for i := 0; i < 10; i++ {
		lane := i % 2
		w.Put(entry.Entry{Path: fmt.Sprintf("f%d", i), State: entry.Pending, Lane: lane, DirtySince: int64(100 - i)})
	}
	w.Put(entry.Entry{Path: "done", State: entry.Done})
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	lanes, _ := j.PendingLanes(ctx)
	if lanes[0] != 5 || lanes[1] != 5 {
		t.Fatalf("PendingLanes = %v", lanes)
	}
	got, err := j.Claim(ctx, 0, 3)
	if err != nil {
		t.Fatal(err)
	}
	// Lane 0 holds f0,f2,...,f8; oldest dirty_since first: f8, f6, f4.
	if len(got) != 3 || got[0].Path != "f8" || got[1].Path != "f6" || got[2].Path != "f4" {
		t.Fatalf("Claim = %v", got)
	}
	again, _ := j.Claim(ctx, 0, 10)
	if len(again) != 2 {
		t.Fatalf("second claim got %d, want the 2 unclaimed", len(again))
	}
	// A crash now: claimed rows are transferring. Recover marks them for a
	// recheck, and no upload is claimable until a planner settles it again.
	n, err := j.Recover(ctx)
	if err != nil || n != 5 {
		t.Fatalf("Recover = %d, %v; want 5", n, err)
	}
	if lanes, _ := j.PendingLanes(ctx); len(lanes) != 0 {
		t.Fatalf("after Recover, PendingLanes = %v; want nothing claimable", lanes)
	}
	for _, c := range []struct {
		path    string
		state   entry.State
		recheck bool
	}{
		{"f8", entry.Stale, true},  // in flight
		{"f1", entry.Stale, false}, // planned, never claimed
		{"done", entry.Done, false},
	} {
		e, _, _ := j.Get(ctx, c.path)
		if e.State != c.state || e.Recheck != c.recheck {
			t.Errorf("%s after Recover: state %v recheck %v; want %v %v", c.path, e.State, e.Recheck, c.state, c.recheck)
		}
	}
}

// TestRecoverOtherActions: what is not a file's bytes (a directory to make,
// a deletion, a cleanup) goes back to pending at once, failed ones too.
func TestRecoverOtherActions(t *testing.T) {
	ctx := context.Background()
	_, j := open(t)
	w := j.NewWriter(time.Millisecond, 10)
	w.Put(entry.Entry{Path: "d", IsDir: true, State: entry.Pending, Action: entry.Mkdir})
	w.Put(entry.Entry{Path: "gone", State: entry.Failed, Action: entry.Delete, Lane: entry.LaneDeletes})
	w.Put(entry.Entry{Path: ".ferry-tmp-0-x", State: entry.Pending, Action: entry.Cleanup})
	w.Put(entry.Entry{Path: "f", State: entry.Failed, Action: entry.Upload})
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if got, _ := j.Claim(ctx, 0, 10); len(got) != 2 {
		t.Fatalf("claimed %d, want the mkdir and the cleanup", len(got))
	}
	if _, err := j.Recover(ctx); err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]entry.State{"d": entry.Pending, "gone": entry.Pending, ".ferry-tmp-0-x": entry.Pending, "f": entry.Stale} {
		if e, _, _ := j.Get(ctx, p); e.State != want {
			t.Errorf("%s after Recover: %v, want %v", p, e.State, want)
		}
	}
}

func TestLockIsExclusive(t *testing.T) {
	dir := t.TempDir()
	unlock, err := Lock(dir, "site/www")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Lock(dir, "site/www"); !errors.Is(err, ErrLocked) {
		t.Fatalf("second lock: %v", err)
	}
	other, err := Lock(dir, "other")
	if err != nil {
		t.Fatalf("another job's lock: %v", err)
	}
	other()
	unlock()
	again, err := Lock(dir, "site/www")
	if err != nil {
		t.Fatalf("lock after unlock: %v", err)
	}
	again()
}

func TestRuns(t *testing.T) {
	ctx := context.Background()
	_, j := open(t)
	r1, _ := j.StartRun(ctx, time.Now())
	r1.Transferred, r1.ExitCode, r1.Ended, r1.GitCommit = 7, 0, time.Now(), "c0ffee"
	if err := j.EndRun(r1); err != nil {
		t.Fatal(err)
	}
	r2, _ := j.StartRun(ctx, time.Now())
	last, err := j.LastRun(ctx, r2.ID)
	if err != nil || last == nil || last.Transferred != 7 || last.ExitCode != 0 || last.GitCommit != "c0ffee" {
		t.Fatalf("LastRun = %+v, %v", last, err)
	}
	if first, _ := j.LastRun(ctx, r1.ID); first != nil {
		t.Fatalf("LastRun before the first = %+v", first)
	}
}

// TestConcurrentFirstOpen: the jobs of a daemon open one new state
// directory at the same moment. Every open succeeds (none may apply a
// migration another has just applied) and they all find one identity
// (the marker each job writes names it, so two identities would make a
// restart refuse a job's own target).
func TestConcurrentFirstOpen(t *testing.T) {
	ctx := context.Background()
	for round := range 10 {
		dir := t.TempDir()
		const n = 6
		ids := make([]string, n)
		errs := make([]error, n)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				<-start
				db, err := Open(ctx, dir)
				if err != nil {
					errs[i] = err
					return
				}
				ids[i] = db.ID()
				db.Close()
			})
		}
		close(start)
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("round %d: open %d of %d: %v", round, i+1, n, err)
			}
		}
		db, err := Open(ctx, dir)
		if err != nil {
			t.Fatal(err)
		}
		id := db.ID()
		db.Close()
		for i, got := range ids {
			if got != id {
				t.Fatalf("round %d: open %d found the identity %s, the registry keeps %s", round, i+1, got, id)
			}
		}
	}
}
