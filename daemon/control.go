package daemon

import (
	"context"
	"fmt"
	"os"
	"slices"
	"time"

	"ferry/control"
)

// The daemon is the control socket's Controller.
var _ control.Controller = (*Daemon)(nil)

// pick returns the jobs a command is for: one by name, or all.
func (d *Daemon) pick(name string) ([]*job, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if name == "" {
		return slices.Clone(d.jobs), nil
	}
	for _, j := range d.jobs {
		if j.name == name {
			return []*job{j}, nil
		}
	}
	var names []string
	for _, j := range d.jobs {
		names = append(names, j.name)
	}
	return nil, fmt.Errorf("%w %q (this daemon runs: %v)", control.ErrNoJob, name, names)
}

// Status reports every job.
func (d *Daemon) Status(ctx context.Context) control.Status {
	st := control.Status{PID: os.Getpid(), Version: d.o.Version, Started: d.started}
	jobs, _ := d.pick("")
	for _, j := range jobs {
		st.Jobs = append(st.Jobs, j.status(ctx))
	}
	return st
}

// Pause stops handing out work (in-flight transfers finish).
func (d *Daemon) Pause(name string) error { return d.setPaused(name, true) }

// Resume undoes Pause.
func (d *Daemon) Resume(name string) error { return d.setPaused(name, false) }

func (d *Daemon) setPaused(name string, paused bool) error {
	jobs, err := d.pick(name)
	if err != nil {
		return err
	}
	for _, j := range jobs {
		j.mu.Lock()
		j.paused = paused
		j.mu.Unlock()
		j.applyPause()
		j.log.Info(map[bool]string{true: "paused", false: "resumed"}[paused])
	}
	return nil
}

// Sync asks for a full scan now (local tree and remote listing).
func (d *Daemon) Sync(name string) error {
	jobs, err := d.pick(name)
	if err != nil {
		return err
	}
	for _, j := range jobs {
		j.want("")
	}
	return nil
}

// Retry makes the failed files pending again.
func (d *Daemon) Retry(ctx context.Context, name string) (int, error) {
	jobs, err := d.pick(name)
	if err != nil {
		return 0, err
	}
	total := 0
	for _, j := range jobs {
		l := j.liveNow()
		if l == nil {
			continue
		}
		n, err := l.RetryFailed(ctx)
		if err != nil {
			return total, fmt.Errorf("job %q: %w", j.name, err)
		}
		total += n
		j.log.Info("retrying failed files", "files", n)
	}
	return total, nil
}

// status is one job's row.
func (j *job) status(ctx context.Context) control.JobStatus {
	j.refreshState()
	j.mu.Lock()
	s := control.JobStatus{Name: j.name, State: j.state, Source: j.mo.Source, Target: j.mo.Target.String(),
		Paused: j.paused, Protected: j.protected, LastErrors: append([]string(nil), j.lastErr...)}
	s.Scan.Running = j.scanning
	s.Scan.Since = j.scanSince
	if r := j.lastScan; r != nil {
		s.Scan.Last, s.Scan.LastTook = j.lastScanAt, j.lastScanTook.Seconds()
		s.Scan.Uploads, s.Scan.Deletes, s.Scan.Files = r.Plan.Uploads, r.Plan.Deletes, r.Plan.Files
		if r.Err != nil {
			s.Scan.Error = r.Err.Error()
		}
	}
	l := j.live
	j.mu.Unlock()
	s.Scan.PlannedFiles, s.Scan.PlannedBytes = j.progress.plannedFiles.Load(), j.progress.plannedBytes.Load()
	s.Scan.DoneFiles, s.Scan.DoneBytes = j.progress.doneFiles.Load(), j.progress.doneBytes.Load()
	s.Totals.Live = j.liveQueued.Load()
	if l == nil {
		return s
	}
	h, lo, f := l.Queue().Depth()
	s.Queue = control.QueueStatus{Live: h, Bulk: lo, InFlight: f}
	qctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if pending, failed, err := l.Backlog(qctx); err == nil {
		s.Queue.Pending, s.FailedFiles = int(pending), failed
	}
	c := l.Counters()
	s.Totals.Transferred, s.Totals.Bytes, s.Totals.Touched = c.Transferred, c.Bytes, c.Touched
	s.Totals.Moved, s.Totals.Deleted, s.Totals.Failed = c.Moved, c.Deleted, c.Failed
	s.Totals.SessionsLost = c.SessionsLost
	s.ServerSilentSince = j.silence(l)
	s.WorkersTarget, _ = l.Pool().Size()
	for _, w := range l.Pool().Workers() {
		s.Workers = append(s.Workers, control.WorkerStatus{ID: w.ID, State: w.State, Path: w.Path, Since: w.Since, Done: w.Done})
	}
	return s
}
