package registry

import (
	"context"
	"testing"
	"time"

	"ferry/entry"
)

// TestFlushWaitsForAFlushUnderWay: Flush returns once everything put before
// it is committed, also when a flush is under way that took its batch
// before (nothing pending, yet nothing committed) or before the latest Put
// (its end is not the end of the wait). The daemon flushes, then reads the
// row a worker has just recorded to plan the next save of that file.
func TestFlushWaitsForAFlushUnderWay(t *testing.T) {
	for _, tc := range []struct {
		name string
		add  bool // "b" is put after the flush of "a" took its batch
	}{
		{"nothing pending while a flush is under way", false},
		{"a change put while a flush is under way", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			_, j := open(t)
			entered := make(chan []op, 4)
			gate := make(chan struct{})
			w := j.newWriter(time.Hour, 1000, func(b []op) error {
				entered <- b
				select { // held until the test lets it go
				case <-gate:
				case <-ctx.Done():
				}
				return j.apply(b)
			})
			defer func() {
				cancel() // lets a held batch go
				w.Close()
			}()
			batch := func(want string) {
				t.Helper()
				if b := <-entered; len(b) != 1 || b[0].e.Path != want {
					t.Fatalf("batch = %v, want %s alone", b, want)
				}
			}

			w.Put(entry.Entry{Path: "a", State: entry.Done})
			first := make(chan error, 1)
			go func() { first <- w.Flush(ctx) }()
			batch("a") // the flush of "a" is under way, held
			last := "a"
			if tc.add {
				w.Put(entry.Entry{Path: "b", State: entry.Done})
				last = "b"
			}
			second := make(chan error, 1)
			go func() { second <- w.Flush(ctx) }()
			// The second Flush waits once it has poked the loop (the
			// first one's poke was taken when the flush of "a" began).
			for len(w.kick) == 0 {
				select {
				case err := <-second:
					t.Fatalf("Flush returned (%v) while %q was being committed", err, last)
				case <-ctx.Done():
					t.Fatal("the second Flush never poked the writer")
				case <-time.After(time.Millisecond):
				}
			}
			if tc.add {
				gate <- struct{}{} // "a" is committed, "b" not yet
				if err := <-first; err != nil {
					t.Fatal(err)
				}
				batch("b") // held
			}
			// Give the second Flush a moment to return wrongly: a slow
			// machine can hide the fault, never fail a correct writer.
			select {
			case err := <-second:
				t.Fatalf("Flush returned (%v) before %q was committed", err, last)
			case <-time.After(200 * time.Millisecond):
			}
			gate <- struct{}{}
			if err := <-second; err != nil {
				t.Fatal(err)
			}
			if e, ok, err := j.Get(ctx, last); err != nil || !ok || e.State != entry.Done {
				t.Fatalf("after Flush, Get(%s) = %+v %v %v", last, e, ok, err)
			}
			if !tc.add {
				if err := <-first; err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

// TestFlushedOnlyWhenSomethingCommitted: an idle writer's ticks are not
// news. Waking Flushed's watchers at every tick told a daemon's queue
// "more work may be here" forty times a second, and a queue told that never
// counted as idle, so a scan waiting for it to drain waited for good.
func TestFlushedOnlyWhenSomethingCommitted(t *testing.T) {
	_, j := open(t)
	w := j.NewWriter(2*time.Millisecond, 1000)
	defer w.Close()
	ch := w.Flushed()
	select {
	case <-ch:
		t.Fatal("Flushed fired with nothing committed")
	case <-time.After(100 * time.Millisecond): // fifty idle ticks
	}
	if err := w.Put(entry.Entry{Path: "a", State: entry.Done}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatal("Flushed did not fire after a commit")
	}
	if err := w.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// TestPlanKeepsAFresherRemoteSide: a plan written after a worker recorded a
// new remote copy must not put the old one back (the next upload would
// take ferry's own copy for someone else's); a plan that read the current
// row is written as it is.
func TestPlanKeepsAFresherRemoteSide(t *testing.T) {
	ctx := context.Background()
	old := entry.Entry{Path: "d/f", LocalSize: 5, LocalMtime: 10, RemoteSize: 5, RemoteMtime: 10, Hash: "h1", State: entry.Done, Action: entry.Upload}
	fresh := entry.Entry{Path: "d/f", LocalSize: 6, LocalMtime: 20, RemoteSize: 6, RemoteMtime: 20, Hash: "h2", State: entry.Done, Action: entry.Upload}
	plan := func(a entry.Action) entry.Entry { // read before fresh was recorded
		return entry.Entry{Path: "d/f", LocalSize: 7, LocalMtime: 30, RemoteSize: 5, RemoteMtime: 10, Hash: "h1", State: entry.Pending, Action: a, Lane: 2}
	}
	for _, tc := range []struct {
		name string
		rows []entry.Entry // recorded before the plan lands
		plan entry.Entry
		want entry.Entry
	}{
		{"row unchanged since the read", []entry.Entry{old}, plan(entry.Upload), plan(entry.Upload)},
		{"no row", nil, plan(entry.Upload), plan(entry.Upload)},
		{"a worker recorded a new copy", []entry.Entry{old, fresh}, plan(entry.Upload),
			entry.Entry{Path: "d/f", LocalSize: 7, LocalMtime: 30, RemoteSize: 6, RemoteMtime: 20, Hash: "h2", State: entry.Pending, Action: entry.Upload, Lane: 2, Recheck: true}},
		{"a touch of bytes no longer there", []entry.Entry{old, fresh}, plan(entry.Touch),
			entry.Entry{Path: "d/f", LocalSize: 7, LocalMtime: 30, RemoteSize: 6, RemoteMtime: 20, Hash: "h2", State: entry.Pending, Action: entry.Upload, Lane: 2, Recheck: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, j := open(t)
			w := j.NewWriter(time.Hour, 1000)
			defer w.Close()
			for _, e := range tc.rows {
				if err := w.Put(e); err != nil {
					t.Fatal(err)
				}
			}
			if err := w.Plan(tc.plan); err != nil {
				t.Fatal(err)
			}
			if err := w.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			got, ok, err := j.Get(ctx, "d/f")
			if err != nil || !ok {
				t.Fatalf("Get: %v %v", ok, err)
			}
			if got != tc.want {
				t.Fatalf("row = %+v\nwant  %+v", got, tc.want)
			}
		})
	}
}
