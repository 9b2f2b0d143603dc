package daemon

import (
	"ferry/config"
	"ferry/schedule"
)

// retune applies the keys a reload can change without restarting the job:
// workers (the pool is resized), the settle and maximum delays, the scan
// interval and the protected hours.
func (j *job) retune(c config.Job) error {
	prot, err := schedule.ParseWindows(c.ProtectedHours)
	if err != nil {
		return err
	}
	j.mu.Lock()
	old := j.cfg
	j.cfg.Workers, j.cfg.SettleDelay, j.cfg.MaxDelay = c.Workers, c.SettleDelay, c.MaxDelay
	j.cfg.ScanInterval, j.cfg.ProtectedHours, j.cfg.ProtectedLive = c.ScanInterval, c.ProtectedHours, c.ProtectedLive
	j.prot = prot
	live, w := j.live, j.watcher
	j.mu.Unlock()
	if live != nil && c.Workers != old.Workers {
		live.Pool().Resize(c.Workers)
		j.log.Info("workers resized", "from", old.Workers, "to", c.Workers)
	}
	if w != nil {
		w.SetDelays(c.SettleDelay.Duration, c.MaxDelay.Duration)
	}
	if c.ScanInterval != old.ScanInterval {
		select {
		case j.retuned <- struct{}{}:
		default:
		}
	}
	j.applyPause()
	return nil
}
