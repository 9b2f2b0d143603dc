package queue

import (
	"context"
	"testing"
	"time"
)

// TestHold keeps a held directory's items (live and bulk) from being handed
// out, waits for the one in flight, and drops what is left on release,
// without touching a sibling whose name shares the prefix.
func TestHold(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	src := &fakeSource{}
	src.add(Item{Path: "docs/bulk.txt", Size: 1, DirtySince: 1}, Item{Path: "docsx/bulk.txt", Size: 1, DirtySince: 2})
	q := New(src, 8)
	q.Push(Item{Path: "docs/a/live.txt", DirtySince: 0})
	busy, err := q.Next(ctx)
	if err != nil || busy.Path != "docs/a/live.txt" {
		t.Fatalf("Next = %v, %v", busy.Path, err)
	}
	q.Push(Item{Path: "docs/again.txt", DirtySince: 3})
	q.Push(Item{Path: "other.txt", DirtySince: 4})
	q.Hold("docs")

	// Only the items outside docs/ come out while it is held.
	var got []string
	for range 2 {
		it, err := q.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, it.Path)
		q.Done(it, 0)
	}
	if got[0] != "other.txt" || got[1] != "docsx/bulk.txt" {
		t.Fatalf("handed out %q while docs/ was held", got)
	}
	waited := make(chan error, 1)
	go func() { waited <- q.WaitHeld(ctx, "docs") }()
	select {
	case err := <-waited:
		t.Fatalf("WaitHeld returned (%v) while docs/a/live.txt was in flight", err)
	case <-time.After(20 * time.Millisecond):
	}
	q.Done(busy, 0)
	if err := <-waited; err != nil {
		t.Fatal(err)
	}
	if n := q.Release("docs", true); n != 2 {
		t.Fatalf("Release dropped %d items, want 2 (docs/again.txt, docs/bulk.txt)", n)
	}
	if h, l, f := q.Depth(); h+l+f != 0 {
		t.Fatalf("after release: %d live, %d bulk, %d in flight; want none", h, l, f)
	}
	q.Close()
	if it, err := q.Next(ctx); err != ErrClosed {
		t.Fatalf("Next after release = %q, %v; want ErrClosed", it.Path, err)
	}
}
