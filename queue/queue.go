// Package queue owns the order in which work reaches the workers.
//
// There are two classes: High, for live edits, held in memory and always
// served first; and Low, for bulk scan work, which lives in the registry and
// of which the queue holds only a bounded window per weight lane, refilled
// by claiming rows. One path is never in flight twice: a path pushed while a
// worker holds it waits for that worker.
//
// Lanes are served by measured fair share: each lane accumulates the worker
// time its items really took, and a free worker takes from the non-empty
// lane that has received the least. Big files cannot starve small ones nor
// the reverse, whatever the mix, and no size threshold needs tuning: a lane
// of 4 KiB files and a lane of 1 GiB files each get half the worker time
// when both have work. Within a lane, the oldest first-out-of-sync time
// goes first, so a file that keeps changing is not starved either.
//
// item.go holds what flows (Item, Move, the lanes, Source); claim.go the
// refills from the source; pause.go and hold.go the classes paused and the
// directories held.
package queue

import (
	"cmp"
	"container/heap"
	"context"
	"errors"
	"slices"
	"sync"
	"time"
)

// ErrClosed is returned by Next once the queue is closed and drained.
var ErrClosed = errors.New("queue closed")

// Queue hands items to workers.
type Queue struct {
	src    Source
	window int
	// lanes are the source's lanes the queue's weight lanes draw from, in
	// order: all weight lanes, or one deferred phase (NewPhase).
	lanes []int

	mu       sync.Mutex
	wake     chan struct{} // closed and replaced whenever something may have changed
	high     itemHeap
	highIdx  map[string]*Item
	low      [Lanes][]Item // claimed, not yet handed out
	exhaust  [Lanes]bool   // the source had nothing for the lane at the last claim
	vtime    [Lanes]time.Duration
	avg      [Lanes]time.Duration // running mean service time, the dispatch estimate
	inflight map[string]inflight
	again    map[string]Item // pushed while in flight: served after Done
	closed   bool            // no more work will be produced
	refill   bool            // a claim is running
	// doneDuring are the paths finished while a claim ran: what it brings
	// back of them may stand for what was just shipped (see markWaited).
	doneDuring map[string]bool
	gen        int // bumped by More and Close: a claim that began before says nothing of new work
	errs       error
	// paused classes are not handed out; what is in flight finishes.
	pauseHigh, pauseLow bool
	// admit, when set, decides whether a bulk item may start now.
	admit func(Item) bool
	// held are directories whose items are not handed out (a directory
	// being renamed); dropped are those released while a claim ran, whose
	// items that claim must not keep (see hold.go).
	held    map[string]int
	dropped []string
}

type inflight struct {
	lane int // -1 for high
	est  time.Duration
}

// New returns a queue drawing bulk work from src (nil for none), holding up
// to window claimed items per lane.
func New(src Source, window int) *Queue {
	if window < 1 {
		window = 64
	}
	q := &Queue{src: src, window: window, lanes: []int{0, 1, 2, 3}, wake: make(chan struct{}), highIdx: map[string]*Item{},
		inflight: map[string]inflight{}, again: map[string]Item{}}
	for i := range q.avg {
		q.avg[i] = 10 * time.Millisecond
	}
	return q
}

// NewPhase returns a queue for one deferred phase: it draws only the
// source's lane phase (entry.LaneDeletes, say), which stands outside the
// weight lanes so that the phase's rows wait for it.
func NewPhase(src Source, window, phase int) *Queue {
	q := New(src, window)
	q.lanes = []int{phase}
	return q
}

func (q *Queue) notify() {
	close(q.wake)
	q.wake = make(chan struct{})
}

// Push adds a live (high class) item. Pushes of a path already queued merge
// into one, keeping the earliest DirtySince.
func (q *Queue) Push(it Item) {
	it.High = true
	q.mu.Lock()
	defer q.mu.Unlock()
	if _, busy := q.inflight[it.Path]; busy {
		if prev, ok := q.again[it.Path]; ok && prev.DirtySince < it.DirtySince {
			it.DirtySince = prev.DirtySince
		}
		it.Waited = true
		q.again[it.Path] = it
		return
	}
	if prev, ok := q.highIdx[it.Path]; ok {
		if it.DirtySince > prev.DirtySince {
			it.DirtySince = prev.DirtySince
		}
		*prev = it
		heap.Init(&q.high)
		return
	}
	p := &it
	q.highIdx[it.Path] = p
	heap.Push(&q.high, p)
	q.notify()
}

// More tells the queue that the source may have new work (the planner
// flushed), so lanes it found empty are worth claiming from again.
func (q *Queue) More() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.exhaust = [Lanes]bool{}
	q.gen++
	q.notify()
}

// Close says no more work will be produced: Next returns ErrClosed once
// everything queued, claimable and in flight is done.
func (q *Queue) Close() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.closed = true
	q.exhaust = [Lanes]bool{}
	q.gen++
	q.notify()
}

// Next blocks until an item is available and returns it. The caller must
// call Done (or Requeue) with it.
func (q *Queue) Next(ctx context.Context) (Item, error) {
	for {
		if err := ctx.Err(); err != nil {
			return Item{}, err
		}
		q.mu.Lock()
		if q.errs != nil {
			err := q.errs
			q.mu.Unlock()
			return Item{}, err
		}
		// Refill short lanes before choosing, so the choice is between
		// all lanes that have work, not just those whose window is full.
		needClaim := q.src != nil && !q.refill && q.claimable()
		if !needClaim {
			if it, ok := q.take(); ok {
				q.mu.Unlock()
				return it, nil
			}
		}
		if !needClaim && !q.refill && q.closed && len(q.inflight) == 0 && len(q.again) == 0 && q.empty() && q.allExhausted() {
			q.mu.Unlock()
			return Item{}, ErrClosed
		}
		wake := q.wake
		if needClaim {
			q.refill = true
			q.mu.Unlock()
			q.claim(ctx)
			continue
		}
		q.mu.Unlock()
		select {
		case <-wake:
		case <-ctx.Done():
			return Item{}, ctx.Err()
		}
	}
}

// claimable reports whether some lane is short and not known to be empty.
func (q *Queue) claimable() bool {
	for l := range q.lanes {
		if !q.exhaust[l] && len(q.low[l]) < q.window/2+1 {
			return true
		}
	}
	return false
}

func (q *Queue) allExhausted() bool {
	if q.src == nil {
		return true
	}
	for _, e := range q.exhaust[:len(q.lanes)] {
		if !e {
			return false
		}
	}
	return true
}

func (q *Queue) empty() bool {
	if len(q.high) > 0 {
		return false
	}
	for _, l := range q.low {
		if len(l) > 0 {
			return false
		}
	}
	return true
}

// take picks the next item: high first, then the lane with the least
// service so far. Callers hold q.mu.
func (q *Queue) take() (Item, bool) {
	var aside []*Item // held: they stay queued
	defer func() {
		for _, p := range aside {
			heap.Push(&q.high, p)
		}
	}()
	for len(q.high) > 0 && !q.pauseHigh {
		p := heap.Pop(&q.high).(*Item)
		if q.isHeld(p.Path) {
			aside = append(aside, p)
			continue
		}
		delete(q.highIdx, p.Path)
		if _, busy := q.inflight[p.Path]; busy {
			p.Waited = true
			q.again[p.Path] = *p
			continue
		}
		q.inflight[p.Path] = inflight{lane: -1}
		return *p, true
	}
	if q.pauseLow {
		return Item{}, false
	}
	// Lanes by the service they have had, least first; the first item
	// that may start (not in flight, admitted) goes.
	order := make([]int, 0, Lanes)
	for l := 0; l < Lanes; l++ {
		if len(q.low[l]) > 0 {
			order = append(order, l)
		}
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(q.vtime[a], q.vtime[b]) })
	for _, l := range order {
		lane := q.low[l]
		for i, it := range lane {
			if _, busy := q.inflight[it.Path]; busy || q.isHeld(it.Path) {
				continue
			}
			if q.admit != nil && !q.admit(it) {
				continue
			}
			if i == 0 {
				// The usual case: the lane's head. Copying the rest
				// of the lane each time made a pass over a window of
				// n items cost n² item copies.
				lane[0] = Item{}
				q.low[l] = lane[1:]
			} else {
				q.low[l] = slices.Delete(lane, i, i+1)
			}
			est := q.avg[l]
			q.vtime[l] += est
			q.inflight[it.Path] = inflight{lane: l, est: est}
			return it, true
		}
	}
	return Item{}, false
}

// Done reports that it has been handled; took is the worker time it used.
func (q *Queue) Done(it Item, took time.Duration) {
	q.mu.Lock()
	defer q.mu.Unlock()
	f, ok := q.inflight[it.Path]
	if !ok {
		return
	}
	delete(q.inflight, it.Path)
	if f.lane >= 0 {
		q.vtime[f.lane] += took - f.est
		q.avg[f.lane] = (q.avg[f.lane]*7 + took) / 8
	}
	q.markWaited(it.Path)
	if again, ok := q.again[it.Path]; ok {
		delete(q.again, it.Path)
		p := &again
		q.highIdx[again.Path] = p
		heap.Push(&q.high, p)
	}
	q.notify()
}

// markWaited marks every queued item of p as having waited for the one
// that just finished: a live item and a bulk one claimed before it was
// planned can both stand for the same save.
func (q *Queue) markWaited(p string) {
	if q.refill {
		if q.doneDuring == nil {
			q.doneDuring = map[string]bool{}
		}
		q.doneDuring[p] = true
	}
	if h, ok := q.highIdx[p]; ok {
		h.Waited = true
	}
	for l := range q.low {
		for i := range q.low[l] {
			if q.low[l][i].Path == p {
				q.low[l][i].Waited = true
			}
		}
	}
}

// Requeue gives back an item that was not handled (its worker is going
// away), at the head of its class.
func (q *Queue) Requeue(it Item) {
	q.mu.Lock()
	defer q.mu.Unlock()
	f, ok := q.inflight[it.Path]
	if !ok {
		return
	}
	delete(q.inflight, it.Path)
	if f.lane >= 0 {
		q.vtime[f.lane] -= f.est
		q.low[f.lane] = append([]Item{it}, q.low[f.lane]...)
	} else {
		p := &it
		q.highIdx[it.Path] = p
		heap.Push(&q.high, p)
	}
	q.notify()
}

type itemHeap []*Item

func (h itemHeap) Len() int           { return len(h) }
func (h itemHeap) Less(i, j int) bool { return h[i].DirtySince < h[j].DirtySince }
func (h itemHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *itemHeap) Push(x any)        { *h = append(*h, x.(*Item)) }
func (h *itemHeap) Pop() any {
	old := *h
	n := len(old)
	it := old[n-1]
	*h = old[:n-1]
	return it
}
