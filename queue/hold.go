package queue

import (
	"container/heap"
	"context"
	"strings"
)

// A directory renamed on the remote must not have an item under its old
// name in flight while it is renamed, nor handed out after: Hold keeps its
// items queued, WaitHeld waits for those in flight, and Release drops what
// is still queued under the old name (the caller re-plans it under the new
// one).

// Hold stops handing out items at or under dir ("a/b": a/b and a/b/…)
// until Release; what is in flight goes on.
func (q *Queue) Hold(dir string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.held == nil {
		q.held = map[string]int{}
	}
	q.held[dir]++
}

// WaitHeld blocks until no item at or under dir is in flight.
func (q *Queue) WaitHeld(ctx context.Context, dir string) error {
	for {
		q.mu.Lock()
		busy := false
		for p := range q.inflight {
			if under(p, dir) {
				busy = true
				break
			}
		}
		wake := q.wake
		q.mu.Unlock()
		if !busy {
			return nil
		}
		select {
		case <-wake:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Release ends a Hold of dir. With drop, the items still queued at or under
// dir are dropped, and so are those a claim running now brings back: their
// paths no longer exist. It returns how many were dropped.
func (q *Queue) Release(dir string, drop bool) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.held[dir]--; q.held[dir] <= 0 {
		delete(q.held, dir)
	}
	n := 0
	if drop {
		for i := len(q.high) - 1; i >= 0; i-- {
			if p := q.high[i]; under(p.Path, dir) {
				delete(q.highIdx, p.Path)
				q.high = append(q.high[:i], q.high[i+1:]...)
				n++
			}
		}
		rebuild := n > 0
		for l := range q.low {
			kept := q.low[l][:0]
			for _, it := range q.low[l] {
				if under(it.Path, dir) {
					n++
					continue
				}
				kept = append(kept, it)
			}
			q.low[l] = kept
		}
		for p := range q.again {
			if under(p, dir) {
				delete(q.again, p)
				n++
			}
		}
		if rebuild {
			heap.Init(&q.high)
		}
		if q.refill {
			q.dropped = append(q.dropped, dir)
		}
		// The rows dropped may be claimable under their new names.
		q.exhaust = [Lanes]bool{}
		q.gen++
	}
	q.notify()
	return n
}

// dropClaimed removes from a claim's result the items under a directory
// released while the claim ran. Callers hold q.mu.
func (q *Queue) dropClaimed(got *[Lanes][]Item) {
	if len(q.dropped) == 0 {
		return
	}
	for l := range got {
		kept := got[l][:0]
		for _, it := range got[l] {
			drop := false
			for _, d := range q.dropped {
				drop = drop || under(it.Path, d)
			}
			if !drop {
				kept = append(kept, it)
			}
		}
		got[l] = kept
	}
	q.dropped = nil
}

// isHeld reports whether p is at or under a held directory. Callers hold
// q.mu.
func (q *Queue) isHeld(p string) bool {
	for d := range q.held {
		if under(p, d) {
			return true
		}
	}
	return false
}

// under reports whether p is dir or lies under it.
func under(p, dir string) bool {
	return p == dir || strings.HasPrefix(p, dir+"/")
}
