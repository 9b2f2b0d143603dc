package queue

import (
	"context"
	"time"
)

// claim refills the short lanes from the source, outside the lock.
func (q *Queue) claim(ctx context.Context) {
	var got [Lanes][]Item
	var err error
	var tried [Lanes]bool
	q.mu.Lock()
	gen := q.gen
	want := [Lanes]int{}
	for l := range q.lanes {
		if !q.exhaust[l] && len(q.low[l]) < q.window/2+1 {
			want[l] = q.window - len(q.low[l])
		}
	}
	q.mu.Unlock()
	for l := 0; l < len(q.lanes) && err == nil; l++ {
		if want[l] == 0 {
			continue
		}
		tried[l] = true
		got[l], err = q.src.Claim(ctx, q.lanes[l], want[l])
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	q.refill = false
	q.dropClaimed(&got)
	for l := range got {
		for i := range got[l] {
			if q.doneDuring[got[l][i].Path] {
				got[l][i].Waited = true
			}
		}
	}
	q.doneDuring = nil
	if err != nil && ctx.Err() == nil {
		q.errs = err
	}
	for l := 0; l < Lanes; l++ {
		if !tried[l] {
			continue
		}
		if len(q.low[l]) == 0 && len(got[l]) > 0 {
			q.catchUp(l)
		}
		q.low[l] = append(q.low[l], got[l]...)
		// A short claim means the lane is empty, unless More came while
		// it ran: the rows More announced may have missed this claim.
		if len(got[l]) < want[l] && err == nil && gen == q.gen {
			q.exhaust[l] = true
		}
	}
	q.notify()
}

// catchUp moves an idle lane's clock up to the busy lanes' before it gets
// work again: time it did not ask for is not credit it can spend later to
// monopolise the workers. Callers hold q.mu.
func (q *Queue) catchUp(l int) {
	var busy [Lanes]bool
	for _, f := range q.inflight {
		if f.lane >= 0 {
			busy[f.lane] = true
		}
	}
	min, any := time.Duration(0), false
	for o := 0; o < Lanes; o++ {
		if o != l && (len(q.low[o]) > 0 || busy[o]) && (!any || q.vtime[o] < min) {
			min, any = q.vtime[o], true
		}
	}
	if any && q.vtime[l] < min {
		q.vtime[l] = min
	}
}
