package mirror

import (
	"context"
	"errors"
	"ferry/entry"
	"ferry/gitstage"
	"ferry/planner"
	"ferry/transfer"
	"fmt"
	"os"
	"sync"
	"time"

	"ferry/registry"
	"ferry/remote"
	"ferry/scanner"
)

// Session is a job held open: its lock, its registry, its logged-in
// connections and its counters. `ferry --once` makes one pass on it; the
// daemon keeps it for as long as it runs.
type Session struct {
	o         Options
	r         *stages
	db        *registry.DB
	unlock    func()
	first     remote.Conn // the connection Open made, until a pass takes it
	recovered int64
	started   time.Time
	// marker is what the last check of the target's marker found;
	// markerMark is the shipper's change count when this session last wrote
	// it, and markerOurs says it did.
	marker     markerCheck
	markerMark int64
	markerOurs bool
	// git is the job's Git stage, nil without one; gitErr why it could
	// not be opened. The daemon's live session may open it later (Serve),
	// hence the lock.
	gitMu  sync.Mutex
	git    *gitstage.Stage
	gitErr error
}

// Open checks the source, locks the job, opens the registry, logs in once
// (a wrong password or host key ends it here, with nothing written) and
// recovers what a dead run left. The Summary says what was found when it
// fails.
func Open(ctx context.Context, o Options) (*Session, *Summary, error) {
	o.defaults()
	start := o.Now()
	sum := &Summary{Job: o.Job, Source: o.Source, Target: o.Target.String(), DryRun: o.DryRun, Started: start}

	// The source is checked before anything: a missing or empty source
	// with --delete would otherwise plan to delete the whole remote.
	fi, err := os.Stat(o.Source)
	switch {
	case err != nil && o.Delete:
		return nil, sum, fail(Refused, "refused: source %s cannot be read (%v) and --delete is on; nothing was changed", o.Source, err)
	case err != nil:
		return nil, sum, fail(Aborted, "source %s: %v", o.Source, err)
	case !fi.IsDir():
		return nil, sum, fail(Aborted, "source %s: not a directory", o.Source)
	}
	if o.Delete {
		empty, err := sourceEmpty(o)
		if err != nil {
			return nil, sum, fail(Refused, "refused: source %s cannot be read (%v) and --delete is on; nothing was changed", o.Source, err)
		}
		if empty {
			return nil, sum, fail(Refused, "refused: source %s is empty and --delete would remove everything on %s; nothing was changed", o.Source, o.Target)
		}
	}
	if err := o.reserveMarker(); err != nil {
		return nil, sum, err
	}

	unlock, err := registry.Lock(o.StateDir, o.Job)
	if err != nil {
		return nil, sum, &Error{Outcome: Aborted, Err: err}
	}
	s := &Session{o: o, unlock: unlock, started: start}
	ok := false
	defer func() {
		if !ok {
			s.Close()
		}
	}()
	if s.db, err = registry.Open(ctx, o.StateDir); err != nil {
		return nil, sum, &Error{Outcome: Aborted, Err: err}
	}
	sum.Registry = s.db.Path()
	job, err := s.db.Job(ctx, o.Job, o.Source, o.Target.String())
	if err != nil {
		return nil, sum, &Error{Outcome: Aborted, Err: err}
	}

	// Connect once before changing anything: a wrong password or host key
	// ends the run here, with nothing written anywhere.
	first, err := o.Open(ctx, o.Target, o.RemoteOpts)
	if err != nil {
		if ctx.Err() != nil {
			return nil, sum, &Error{Outcome: Interrupted, Err: ctx.Err()}
		}
		return nil, sum, &Error{Outcome: Aborted, Err: fmt.Errorf("connect to %s: %w", o.Target, err)}
	}
	s.first = first
	caps := first.Caps()
	// One stat of the marker tells whether the remote is what the registry
	// says (and that the target exists); another registry's marker ends
	// the run here, with nothing written.
	if s.marker, err = s.checkMarker(ctx, first, job, o.Takeover); err != nil {
		return nil, sum, err
	}
	if s.marker.kind != markerTrusted && (s.marker.kind != markerNew || job.ListedAt != 0) {
		o.Logf("%s: listing the remote and repairing what is gone", s.marker.reason)
	}
	if !o.DryRun {
		// A dead run left rows "transferring": they become pending with a
		// remote check, and the remote is listed to find what completed
		// and the temporary files the crash left.
		if s.recovered, err = job.Recover(ctx); err != nil {
			return nil, sum, &Error{Outcome: Aborted, Err: err}
		}
	}
	git, blobs, err := openGit(ctx, o, s.db, job)
	s.git = git
	if err != nil {
		if ctx.Err() != nil {
			return nil, sum, &Error{Outcome: Interrupted, Err: ctx.Err()}
		}
		// The mirror goes on without the stage. What ships meanwhile has
		// no kept bytes; the first session with the repository reachable
		// keeps them (the planner sends every such file to a worker,
		// which proves the remote copy and reads the local bytes), or
		// this one, in the daemon, once the stage opens (Live.Serve).
		s.gitErr = err
		o.Logf("%v; mirroring without it: what ships meanwhile is committed once the repository can be reached", err)
	}
	r := &stages{o: o, job: job, caps: caps, conns: &stash{}, prog: o.Progress, excluded: scanner.Excluder(o.Excludes)}
	if r.prog == nil {
		r.prog = nopProgress{}
	}
	if !o.DryRun {
		r.w = job.NewWriter(25*time.Millisecond, 2000)
	}
	r.safety = &planner.Safety{Target: o.Target.String(), MaxDelete: o.MaxDelete, DeleteExcluded: o.DeleteExcluded, Excluded: r.excluded,
		InSync: func(ctx context.Context) (int64, error) { return job.Count(ctx, entry.Done) }}
	r.ship = transfer.NewShipper(transfer.ShipOptions{Source: o.Source, Caps: caps, Limiter: o.limiter(), Rec: r.w, Records: job,
		Safety: r.safety, Conflict: o.Conflict, Delete: o.Delete, Move: o.Move, Logf: o.Logf, Now: o.Now, Progress: r.prog, Keep: blobs})
	s.r = r
	ok = true
	return s, sum, nil
}

// Close saves what is pending in the registry, logs out and unlocks the job.
func (s *Session) Close() error {
	var err error
	if s.r != nil {
		if s.r.w != nil {
			err = s.r.w.Close()
			s.r.w = nil
		}
		s.r.conns.close()
	}
	if s.first != nil {
		s.first.Close()
		s.first = nil
	}
	if s.db != nil {
		s.db.Close()
		s.db = nil
	}
	if s.unlock != nil {
		s.unlock()
		s.unlock = nil
	}
	return err
}

// takeFirst hands over the connection Open made, once.
func (s *Session) takeFirst(ctx context.Context) (remote.Conn, error) {
	if c := s.first; c != nil {
		s.first = nil
		return c, nil
	}
	if c := s.r.conns.take(); c != nil {
		return c, nil
	}
	return s.o.Open(ctx, s.o.Target, s.o.RemoteOpts)
}

// Once makes the one pass of `ferry --once` and sums it up.
func (s *Session) Once(ctx context.Context) (*Summary, error) {
	o, r := s.o, s.r
	sum := &Summary{Job: o.Job, Source: o.Source, Target: o.Target.String(), DryRun: o.DryRun, Started: s.started,
		Registry: s.db.Path(), Recovered: s.recovered}
	var run *registry.Run
	if !o.DryRun {
		var err error
		if run, err = r.job.StartRun(ctx, s.started); err != nil {
			return sum, &Error{Outcome: Aborted, Err: err}
		}
		if last, _ := r.job.LastRun(ctx, run.ID); last != nil && last.ExitCode < 0 {
			sum.Recovered++ // the last run died; list the remote this time
		}
	}
	listRemote := r.job.ListedAt == 0 || o.CheckRemote || sum.Recovered > 0 || s.marker.kind != markerTrusted
	sum.ListedRemote = listRemote
	if s.marker.kind != markerTrusted && (s.marker.kind != markerNew || r.job.ListedAt != 0) {
		sum.Marker, sum.MarkerReason = s.marker.kind.String(), s.marker.reason
	}
	first, err := s.takeFirst(ctx)
	if err != nil {
		return sum, &Error{Outcome: Aborted, Err: fmt.Errorf("connect to %s: %w", o.Target, err)}
	}
	res, code, err := r.pass(ctx, first, listRemote)
	sum.Plan = res.plan
	if r.w != nil {
		if ferr := r.w.Flush(context.WithoutCancel(ctx)); ferr != nil && err == nil {
			err, code = ferr, Aborted
		}
	}
	if err == nil || code == Refused {
		wrote, merr := s.settleMarker(ctx, code, res.listedAll, res.plan.Mkdirs)
		if merr != nil && err == nil {
			err, code = merr, Aborted
		}
		sum.MarkerWritten = wrote
	}
	if gerr := s.commitShipped(ctx, sum, run); gerr != nil {
		// The remote is as it should be; the commit waits for the next
		// run, which starts with it.
		if gerr != s.gitErr { // that one was said at the start
			o.Logf("%v; the shipped files wait in the registry for the next run to commit them", gerr)
		}
		if err == nil {
			err, code = gerr, Partial
		}
	}
	sum.Transferred, sum.Bytes, sum.Touched = r.ship.Counters.Transferred.Load(), r.ship.Counters.Bytes.Load(), r.ship.Counters.Touched.Load()
	// Adopted by a worker's stat or by the planner from the listing: each
	// path is settled by one of them, so together with the transfers and
	// the unchanged they count every file once.
	sum.Adopted = r.ship.Counters.Adopted.Load() + sum.Plan.Adopted
	sum.Deleted, sum.Failed, sum.Conflicts, sum.Cleaned = r.ship.Counters.Deleted.Load(), r.ship.Counters.Failed.Load(), r.ship.Counters.Conflicts.Load(), r.ship.Counters.Cleaned.Load()
	sum.SessionsLost = r.sessionsLost.Load()
	sum.Ended = o.Now()
	sum.finish()
	if run != nil {
		run.Ended, run.Planned, run.Transferred, run.Skipped = sum.Ended, sum.Plan.Uploads+sum.Plan.Touches+sum.Plan.Mkdirs+sum.Plan.Deletes, sum.Transferred, sum.Plan.Unchanged
		run.Deleted, run.Failed, run.Bytes, run.ExitCode = sum.Deleted, sum.Failed, sum.Bytes, o.ExitCode(code)
		if eerr := r.job.EndRun(run); eerr != nil && err == nil {
			err, code = eerr, Aborted
		}
		if fails, ferr := r.job.Failures(context.Background()); ferr == nil {
			for _, e := range fails {
				sum.Failures = append(sum.Failures, Failure{Path: e.Path, Error: e.LastError, Attempts: e.Attempts})
			}
		}
	}
	sum.Outcome, sum.ExitCode = code, o.ExitCode(code)
	if err != nil {
		return sum, &Error{Outcome: code, Err: err}
	}
	if code != Complete {
		return sum, &Error{Outcome: code, Err: fmt.Errorf("%d of the files failed", sum.Failed)}
	}
	return sum, nil
}

// sourceEmpty reports whether the source holds nothing to mirror.
func sourceEmpty(o Options) (bool, error) {
	w := scanner.NewWalker(o.Source, scanner.Options{Excludes: o.Excludes, Links: o.Links})
	empty := true
	stop := errors.New("stop")
	err := w.Walk(context.Background(), func(d *scanner.Dir) error {
		if d.Err != nil {
			return d.Err
		}
		empty = len(d.Files) == 0
		return stop
	})
	if err != nil && !errors.Is(err, stop) {
		return false, err
	}
	return empty, nil
}
