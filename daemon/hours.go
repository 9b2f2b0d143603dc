package daemon

import (
	"context"
	"time"

	"ferry/queue"
	"ferry/schedule"
)

// applyPause sets the queue's classes from the user's pause and the
// protected hours.
func (j *job) applyPause() {
	j.mu.Lock()
	inProt, _ := j.tune.Protected.Active(j.now())
	changed := inProt != j.protected
	j.protected = inProt
	user, liveOK, live := j.paused || j.refused, j.tune.ProtectedLive, j.live
	j.mu.Unlock()
	if live != nil {
		live.Queue().Pause(user || (inProt && !liveOK), user || inProt)
	}
	if changed {
		if inProt {
			j.log.Info("protected hours: bulk work paused", "live_allowed", liveOK)
		} else {
			j.log.Info("protected hours over: bulk work resumes")
		}
	}
	j.refreshState()
}

// protectedClock re-applies the pause every 15 seconds until ctx ends, so
// protected hours start and end on the clock, not only on a command.
func (j *job) protectedClock(ctx context.Context) error {
	t := time.NewTicker(15 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			j.applyPause()
		}
	}
}

// refuse stops all shipping until a restart: another registry wrote the
// target, and shipping on would make two registries write one target.
func (j *job) refuse() {
	j.mu.Lock()
	j.refused, j.state = true, StateFailed
	j.mu.Unlock()
	j.applyPause()
}

// assumedRate is the upload rate per connection taken for the admission
// check until one is measured: low, so a big file is not started into a
// window on optimism.
const assumedRate = 1 << 20

// admit lets a bulk item start unless, at the rate measured so far, it
// would still be running when the next protected window opens.
func (j *job) admit(it queue.Item) bool {
	j.mu.Lock()
	prot, live := j.tune.Protected, j.live
	j.mu.Unlock()
	rate := 0.0
	if live != nil {
		rate = live.Rate()
	}
	return admits(prot, j.now(), it.Size, rate)
}

// admits is admit's arithmetic.
func admits(prot schedule.Windows, now time.Time, size int64, rate float64) bool {
	if len(prot) == 0 {
		return true
	}
	if rate <= 0 {
		rate = assumedRate
	}
	est := time.Duration(float64(size) / rate * float64(time.Second))
	return prot.Fits(now, est)
}
