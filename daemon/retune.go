package daemon

// retune applies what a reload can change without restarting the job: the
// worker count (the pool is resized), the settle and maximum delays, the
// scan interval and the protected hours.
func (j *job) retune(jc Job) {
	t := jc.Tuning
	j.mu.Lock()
	old, workers := j.tune, j.workers
	j.tune, j.workers = t, jc.Options.Workers
	live, w := j.live, j.watcher
	j.mu.Unlock()
	if live != nil && jc.Options.Workers != workers {
		live.Pool().Resize(jc.Options.Workers)
		j.log.Info("workers resized", "from", workers, "to", jc.Options.Workers)
	}
	if w != nil {
		w.SetDelays(t.SettleDelay, t.MaxDelay)
	}
	if t.ScanInterval != old.ScanInterval {
		select {
		case j.retuned <- struct{}{}:
		default:
		}
	}
	j.applyPause()
}
