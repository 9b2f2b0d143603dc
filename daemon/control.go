package daemon

import (
	"context"
	"fmt"
	"os"
	"slices"
	"time"

	"ferry/control"
	"ferry/gitstage"
	"ferry/mirror"
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
	d.mu.Lock()
	started := d.started
	d.mu.Unlock()
	st := control.Status{PID: os.Getpid(), Version: d.o.Version, Started: started}
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

// GitSync asks the Git stage of the named job, or of every job that has
// one, to commit and push what waits now (and to try again if it stopped).
// The stage works on it in its own goroutine: status shows the result.
func (d *Daemon) GitSync(name string) ([]string, error) {
	jobs, err := d.pick(name)
	if err != nil {
		return nil, err
	}
	var asked, closed, names []string
	var unopened error
	for _, j := range jobs {
		names = append(names, j.name)
		l := j.liveNow()
		if g := stageOf(l); g != nil {
			g.Sync()
			asked = append(asked, j.name)
			j.log.Info("git: commit and push asked")
		} else if j.given.Git.Enabled() && !j.given.DryRun {
			closed = append(closed, j.name)
			if l != nil && unopened == nil {
				unopened = l.GitError()
			}
		}
	}
	switch {
	case len(asked) > 0:
		return asked, nil
	case name != "" && unopened != nil:
		return nil, fmt.Errorf("job %q has %w running now: %v (it is tried again; see ferry status)", name, control.ErrNoGit, unopened)
	case name != "" && len(closed) > 0:
		return nil, fmt.Errorf("job %q has %w running now: its session is not open (see ferry status)", name, control.ErrNoGit)
	case name != "":
		return nil, fmt.Errorf("job %q has %w", name, control.ErrNoGit)
	case len(closed) > 0:
		return nil, fmt.Errorf("%w running now: the sessions of %v are not open (see ferry status)", control.ErrNoGit, closed)
	default:
		return nil, fmt.Errorf("%w in any job (this daemon runs: %v)", control.ErrNoGit, names)
	}
}

// stageOf is the Git stage of a job's live side, nil without one (or
// without a live side yet).
func stageOf(l *mirror.Live) *gitstage.Stage {
	if l == nil {
		return nil
	}
	return l.Git()
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
	if g := l.Git(); g != nil {
		gs := g.Status()
		s.Git = &control.GitStatus{Branch: j.given.Git.Branch, Push: j.given.Git.Push, Waiting: gs.Waiting,
			LastCommit: gs.LastCommit, LastCommitAt: gs.LastCommitAt, LastPushAt: gs.LastPushAt, Unpushed: gs.Unpushed,
			Commits: gs.Commits, Pushes: gs.Pushes, Error: gs.Err, Stopped: gs.Stopped}
	} else if err := l.GitError(); err != nil {
		// The repository could not be reached when the clone was to be
		// made: the job mirrors without the stage, which the session
		// tries to open again (the error is the last attempt's).
		s.Git = &control.GitStatus{Branch: j.given.Git.Branch, Push: j.given.Git.Push, Error: err.Error(), Stopped: true}
	}
	for _, w := range l.Pool().Workers() {
		s.Workers = append(s.Workers, control.WorkerStatus{ID: w.ID, State: w.State, Path: w.Path, Since: w.Since, Done: w.Done})
	}
	return s
}
