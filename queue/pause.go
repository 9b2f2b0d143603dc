package queue

import "context"

// Pause stops handing out the classes given (true) and resumes the others;
// items in flight are not affected. The daemon pauses everything on
// request, and the low class during protected hours.
func (q *Queue) Pause(high, low bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.pauseHigh, q.pauseLow = high, low
	q.notify()
}

// SetAdmit installs a check every bulk item must pass to start: during
// the hours before a protected window, an item that would not finish in
// time waits. A refused item stays queued; it is asked again whenever the
// queue changes (Pause, with the same settings, is a way to make it).
func (q *Queue) SetAdmit(f func(Item) bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.admit = f
	q.notify()
}

// Paused reports which classes are paused.
func (q *Queue) Paused() (high, low bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.pauseHigh, q.pauseLow
}

// WaitIdle blocks until nothing is queued, claimable or in flight: every
// item handed out is Done and the source had nothing more at its last
// claim. Workers must be running for it to happen.
func (q *Queue) WaitIdle(ctx context.Context) error {
	for {
		q.mu.Lock()
		if q.errs != nil {
			err := q.errs
			q.mu.Unlock()
			return err
		}
		idle := !q.refill && len(q.inflight) == 0 && len(q.again) == 0 && q.empty() && q.allExhausted()
		wake := q.wake
		q.mu.Unlock()
		if idle {
			return nil
		}
		select {
		case <-wake:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Depth returns the number of items waiting in memory per class, and in
// flight.
func (q *Queue) Depth() (high, low, inFlight int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, l := range q.low {
		low += len(l)
	}
	return len(q.high), low, len(q.inflight)
}

// itemHeap orders live items by first-out-of-sync time.
