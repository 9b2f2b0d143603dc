package mirror

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"
	"golang.org/x/time/rate"

	"ferry/planner"
	"ferry/queue"
	"ferry/registry"
	"ferry/remote"
	"ferry/scanner"
	"ferry/transfer"
)

// Exit codes of the user-facing contract.
const (
	ExitOK          = 0
	ExitFailed      = 1   // some files failed; the rest is done
	ExitUsage       = 2   // usage, config, connection or authentication error
	ExitRefused     = 3   // refused for safety
	ExitInterrupted = 130 // interrupted; the registry is saved
)

// Error carries the exit code a failure maps to.
type Error struct {
	Code int
	Err  error
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

func fail(code int, format string, args ...any) *Error {
	return &Error{Code: code, Err: fmt.Errorf(format, args...)}
}

// runner holds one pass's state.
type runner struct {
	o     Options
	job   *registry.Job
	w     *registry.Writer
	caps  remote.Caps
	lim   *rate.Limiter // shared by all workers: --bwlimit is for the job
	conns *stash        // logged-in connections between phases
	dirs  *dirCache
	sum   *Summary
	prog  Progress
	errMu sync.Mutex
	// failedDirs are directories under which something failed in this
	// pass (the daemon: in this scan): no deletion is made there. Guarded
	// by errMu, since the planner and the workers write it concurrently.
	failedDirs map[string]bool
	// excluded matches the job's exclude patterns against remote paths
	// (nil = none); replace holds the type changes' removals.
	excluded func(rel string, isDir bool) bool
	replace  replacer

	// listedAll is set when this pass listed the whole remote.
	listedAll bool

	transferred, bytes, touched, adopted, deleted, failed, conflicts, cleaned, moved atomic.Int64
	rate                                                                             rateMeter // per connection, for protected hours

	sessionsLost atomic.Int64 // sessions an item's attempt lost and redialed
}

// Run makes one pass: it mirrors Source to Target and returns what it did.
// The error, when not nil, is an *Error with the exit code.
func Run(ctx context.Context, o Options) (*Summary, error) {
	s, sum, err := Open(ctx, o)
	if err != nil {
		return sum, err
	}
	defer s.Close()
	return s.Once(ctx)
}

// Session is a job held open: its lock, its registry, its logged-in
// connections and its counters. `ferry --once` makes one pass on it; the
// daemon keeps it for as long as it runs.
type Session struct {
	o         Options
	r         *runner
	db        *registry.DB
	unlock    func()
	first     remote.Conn // the connection Open made, until a pass takes it
	recovered int64
	started   time.Time
	// marker is what the last check of the target's marker found;
	// markerMark is the runner's change count when this session last wrote
	// it, and markerOurs says it did.
	marker     markerCheck
	markerMark int64
	markerOurs bool
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
		return nil, sum, fail(ExitRefused, "refused: source %s cannot be read (%v) and --delete is on; nothing was changed", o.Source, err)
	case err != nil:
		return nil, sum, fail(ExitUsage, "source %s: %v", o.Source, err)
	case !fi.IsDir():
		return nil, sum, fail(ExitUsage, "source %s: not a directory", o.Source)
	}
	if o.Delete {
		empty, err := sourceEmpty(o)
		if err != nil {
			return nil, sum, fail(ExitRefused, "refused: source %s cannot be read (%v) and --delete is on; nothing was changed", o.Source, err)
		}
		if empty {
			return nil, sum, fail(ExitRefused, "refused: source %s is empty and --delete would remove everything on %s; nothing was changed", o.Source, o.Target)
		}
	}
	if err := o.reserveMarker(); err != nil {
		return nil, sum, err
	}

	unlock, err := registry.Lock(o.StateDir, o.Job)
	if err != nil {
		return nil, sum, &Error{Code: ExitUsage, Err: err}
	}
	s := &Session{o: o, unlock: unlock, started: start}
	ok := false
	defer func() {
		if !ok {
			s.Close()
		}
	}()
	if s.db, err = registry.Open(ctx, o.StateDir); err != nil {
		return nil, sum, &Error{Code: ExitUsage, Err: err}
	}
	sum.Registry = s.db.Path()
	job, err := s.db.Job(ctx, o.Job, o.Source, o.Target.String())
	if err != nil {
		return nil, sum, &Error{Code: ExitUsage, Err: err}
	}

	// Connect once before changing anything: a wrong password or host key
	// ends the run here, with nothing written anywhere.
	first, err := o.Open(ctx, o.Target, o.RemoteOpts)
	if err != nil {
		if ctx.Err() != nil {
			return nil, sum, &Error{Code: ExitInterrupted, Err: ctx.Err()}
		}
		return nil, sum, &Error{Code: ExitUsage, Err: fmt.Errorf("connect to %s: %w", o.Target, err)}
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
			return nil, sum, &Error{Code: ExitUsage, Err: err}
		}
	}
	s.r = &runner{o: o, job: job, caps: caps, lim: o.limiter(), dirs: newDirCache(), failedDirs: map[string]bool{}, conns: &stash{}, prog: o.Progress,
		excluded: scanner.Excluder(o.Excludes)}
	if s.r.prog == nil {
		s.r.prog = nopProgress{}
	}
	if !o.DryRun {
		s.r.w = job.NewWriter(25*time.Millisecond, 2000)
	}
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
	r.sum = sum
	var run *registry.Run
	if !o.DryRun {
		var err error
		if run, err = r.job.StartRun(ctx, s.started); err != nil {
			return sum, &Error{Code: ExitUsage, Err: err}
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
		return sum, &Error{Code: ExitUsage, Err: fmt.Errorf("connect to %s: %w", o.Target, err)}
	}
	code, err := r.pass(ctx, first, listRemote)
	if r.w != nil {
		if ferr := r.w.Flush(context.WithoutCancel(ctx)); ferr != nil && err == nil {
			err, code = ferr, ExitUsage
		}
	}
	if err == nil || code == ExitRefused {
		wrote, merr := s.settleMarker(ctx, code, r.listedAll, r.sum.Plan.Mkdirs)
		if merr != nil && err == nil {
			err, code = merr, ExitUsage
		}
		sum.MarkerWritten = wrote
	}
	sum.Transferred, sum.Bytes, sum.Touched = r.transferred.Load(), r.bytes.Load(), r.touched.Load()
	// Adopted by a worker's stat or by the planner from the listing: each
	// path is settled by one of them, so together with the transfers and
	// the unchanged they count every file once.
	sum.Adopted = r.adopted.Load() + sum.Plan.Adopted
	sum.Deleted, sum.Failed, sum.Conflicts, sum.Cleaned = r.deleted.Load(), r.failed.Load(), r.conflicts.Load(), r.cleaned.Load()
	sum.SessionsLost = r.sessionsLost.Load()
	sum.Ended = o.Now()
	sum.finish()
	if run != nil {
		run.Ended, run.Planned, run.Transferred, run.Skipped = sum.Ended, sum.Plan.Uploads+sum.Plan.Touches+sum.Plan.Mkdirs+sum.Plan.Deletes, sum.Transferred, sum.Plan.Unchanged
		run.Deleted, run.Failed, run.Bytes, run.ExitCode = sum.Deleted, sum.Failed, sum.Bytes, code
		if code == ExitInterrupted {
			run.ExitCode = ExitInterrupted
		}
		if eerr := r.job.EndRun(run); eerr != nil && err == nil {
			err, code = eerr, ExitUsage
		}
		if fails, ferr := r.job.Failures(context.Background()); ferr == nil {
			for _, e := range fails {
				sum.Failures = append(sum.Failures, Failure{Path: e.Path, Error: e.LastError, Attempts: e.Attempts})
			}
		}
	}
	sum.ExitCode = code
	if err != nil {
		return sum, &Error{Code: code, Err: err}
	}
	if code != ExitOK {
		return sum, &Error{Code: code, Err: fmt.Errorf("%d of the files failed", sum.Failed)}
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

// pass runs the stages and returns the exit code.
func (r *runner) pass(ctx context.Context, first remote.Conn, listRemote bool) (int, error) {
	o := r.o
	if o.DryRun {
		return r.dryRun(ctx, first, listRemote)
	}
	q := queue.New(claimer{r.job, r.w}, 256)
	pl := planner.New(r.job, r.w, r.planOptions())
	r.replace.reset()

	// When the remote is listed, the first connection serves listings
	// (with a few more) and they all go when the scan is over, so the
	// server then sees --workers connections, not more. Otherwise the
	// first connection becomes the pool's first worker.
	var listers *listers
	if listRemote {
		listers = newListers(first, o, r.noteLost)
		defer listers.close()
	} else {
		r.conns.give(first)
	}

	g, gctx := errgroup.WithContext(ctx)
	planDone := make(chan struct{})
	r.prog.Phase("scanning")
	g.Go(func() error {
		defer close(planDone)
		defer q.Close()
		err := r.plan(gctx, pl, listers, listRemote, "")
		r.sum.Plan = pl.Stats
		if listers != nil {
			listers.close()
		}
		return err
	})
	g.Go(func() error {
		// Every flush of the planner's writes may hold new work.
		for {
			select {
			case <-r.w.Flushed():
				q.More()
			case <-planDone:
				return nil
			case <-gctx.Done():
				return nil
			}
		}
	})
	pool := r.newPool(q, o.Workers, func() int { _, low, _ := q.Depth(); return low })
	g.Go(func() error {
		r.prog.Phase("syncing")
		return pool.Run(gctx)
	})
	err := g.Wait()
	if ctx.Err() != nil {
		return ExitInterrupted, ctx.Err()
	}
	if err != nil {
		return ExitUsage, r.poolErr(err)
	}
	if code, err := r.settleLate(ctx); err != nil {
		return code, err
	}
	if listRemote && len(pl.Stats.DirErrors) == 0 {
		if err := r.job.MarkListed(ctx, r.o.Now()); err != nil {
			return ExitUsage, err
		}
		r.listedAll = true
	}
	if o.Delete {
		r.prog.Phase("deleting")
		if code, err := r.deletes(ctx, pl); code != ExitOK || err != nil {
			return code, err
		}
	}
	if _, refused := r.replace.counts(); refused > 0 {
		return ExitRefused, fmt.Errorf("refused: %d paths whose type changed would delete more on %s than --max-delete allows; they were left as they are", refused, r.o.Target)
	}
	if r.failed.Load() > 0 || len(pl.Stats.DirErrors) > 0 {
		return ExitFailed, nil
	}
	return ExitOK, nil
}

// settleLate runs what was recorded after the queue had drained (the
// cleanup of a temporary file a dying connection left, say) with a short
// second round of the pool, so a pass ends with nothing left pending.
func (r *runner) settleLate(ctx context.Context) (int, error) {
	for round := 0; round < 3; round++ {
		if err := r.w.Flush(ctx); err != nil {
			return ExitUsage, err
		}
		lanes, err := r.job.PendingLanes(ctx)
		if err != nil {
			return ExitUsage, err
		}
		left := 0
		for lane, n := range lanes {
			if lane >= 0 {
				left += n
			}
		}
		if left == 0 {
			return ExitOK, nil
		}
		q := queue.New(claimer{r.job, r.w}, 256)
		q.Close()
		pool := r.newPool(q, min(r.o.Workers, left), nil)
		if err := pool.Run(ctx); err != nil {
			if ctx.Err() != nil {
				return ExitInterrupted, err
			}
			return ExitUsage, r.poolErr(err)
		}
	}
	return ExitOK, r.w.Flush(ctx)
}

// plan walks the tree and settles every directory; with --delete it also
// walks the subtrees that exist only on the remote.
func (r *runner) plan(ctx context.Context, pl *planner.Planner, ls *listers, listRemote bool, start string) error {
	w := scanner.NewWalker(r.o.Source, scanner.Options{Excludes: r.o.Excludes, Links: r.o.Links, Start: start})
	var list scanner.ListFunc
	ahead := 4
	if listRemote {
		list, ahead = ls.list, ls.parallel()
	}
	var lastFiles, lastBytes int64
	err := scanner.WalkPairs(ctx, w, list, ahead, func(p *scanner.Pair) error {
		if p.RemoteErr != nil && !pl.RemoteNotDir(p.Local.Path) {
			return fmt.Errorf("list remote %q: %w", p.Local.Path, p.RemoteErr)
		}
		if err := pl.Dir(ctx, p); err != nil {
			return err
		}
		if p.Local.Err != nil {
			r.o.Logf("%v", p.Local.Err)
		}
		switch {
		case p.Listed && !p.Missing:
			r.dirs.markKnown(p.Local.Path)
		case p.Listed && p.Missing:
			// Gone from the remote (wiped, or removed by someone else):
			// made again before anything is put in it, not trusted from
			// an earlier pass.
			r.dirs.forget(p.Local.Path)
		}
		files := pl.Stats.Uploads + pl.Stats.Touches + pl.Stats.Mkdirs
		if files != lastFiles {
			r.prog.Planned(files-lastFiles, pl.Stats.UploadSize-lastBytes)
			lastFiles, lastBytes = files, pl.Stats.UploadSize
		}
		return nil
	})
	if err != nil {
		return err
	}
	if len(pl.RemoteOnlyDirs) > 0 {
		if err := pl.RemoteOnly(ctx, ls.list, ls.parallel()); err != nil {
			return err
		}
	}
	return r.w.Flush(ctx)
}

// planOptions are the planner's options for this job's scans.
func (r *runner) planOptions() planner.Options {
	o := r.o
	return planner.Options{Source: o.Source, Delete: o.Delete, Checksum: o.Checksum, ListPrecision: r.caps.ListModTimePrecision, Now: o.Now,
		Excluded: r.excluded, DeleteExcluded: o.DeleteExcluded}
}

// newPool returns a worker pool for one phase; it takes logged-in
// connections from the stash before dialing, and gives them back after.
// It gives up on a server silent for the job's patience.
func (r *runner) newPool(q *queue.Queue, workers int, backlog func() int) *transfer.Pool {
	return r.pool(q, workers, backlog, r.o.patience())
}

// pool is newPool with the patience given: 0 waits for a silent server for
// as long as it takes (the daemon's live pool).
func (r *runner) pool(q *queue.Queue, workers int, backlog func() int, patience time.Duration) *transfer.Pool {
	return transfer.NewPool(q, transfer.Options{
		Workers: workers,
		Open:    func(ctx context.Context) (remote.Conn, error) { return r.o.Open(ctx, r.o.Target, r.o.RemoteOpts) },
		Handle:  r.handle,
		Result:  r.result,
		Backlog: backlog,
		Logf:    r.o.Logf,
		Take:    r.conns.take,
		Give:    r.conns.give,

		Patience: patience,
		Lost:     func(error) { r.sessionsLost.Add(1) },
	})
}

// stash holds logged-in connections between the phases of a pass (scan,
// uploads, late cleanups, deletions) so each phase does not log in again.
type stash struct {
	mu    sync.Mutex
	conns []remote.Conn
}

func (s *stash) take() remote.Conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.conns) == 0 {
		return nil
	}
	c := s.conns[len(s.conns)-1]
	s.conns = s.conns[:len(s.conns)-1]
	return c
}

func (s *stash) give(c remote.Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.conns = append(s.conns, c)
}

func (s *stash) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.conns {
		c.Close()
	}
	s.conns = nil
}

// claimer adapts the registry to the queue's Source.
type claimer struct {
	job *registry.Job
	w   *registry.Writer
}

func (c claimer) Claim(ctx context.Context, lane, n int) ([]queue.Item, error) {
	return c.claimLane(ctx, lane, n)
}

func (c claimer) claimLane(ctx context.Context, lane, n int) ([]queue.Item, error) {
	// A worker records its result, then lets the path go; the record may
	// still sit in the writer's batch. Claimed from before the commit, a
	// row done a moment ago would look pending and ship a second time.
	if err := c.w.Flush(ctx); err != nil {
		return nil, err
	}
	es, err := c.job.Claim(ctx, lane, n)
	if err != nil {
		return nil, err
	}
	out := make([]queue.Item, len(es))
	for i, e := range es {
		out[i] = queue.Item{Path: e.Path, Size: max(e.LocalSize, 0), DirtySince: e.DirtySince, Data: e}
	}
	return out, nil
}

type nopProgress struct{}

func (nopProgress) Planned(int64, int64) {}
func (nopProgress) Done(string, int64)   {}
func (nopProgress) Failed(string, error) {}
func (nopProgress) Phase(string)         {}
