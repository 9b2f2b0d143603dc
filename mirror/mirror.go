package mirror

import (
	"context"
	"ferry/transfer"
	"fmt"
	"sync/atomic"

	"golang.org/x/sync/errgroup"

	"ferry/planner"
	"ferry/queue"
	"ferry/registry"
	"ferry/remote"
	"ferry/scanner"
)

// stages are what a session wires for its job and keeps for as long as it
// is open: the registry and its writer, the shipper with its counters and
// directory cache, the deletion rules and the logged-in connections. A
// pass (mirror.go) and the daemon's scans (live.go) run on them.
type stages struct {
	o     Options
	job   *registry.Job
	w     *registry.Writer
	caps  remote.Caps
	conns *stash // logged-in connections between phases
	prog  Progress
	// ship ships and records each item; safety holds the planner's
	// deletion rules, which the workers and the delete phase share.
	ship   *transfer.Shipper
	safety *planner.Safety
	// excluded matches the job's exclude patterns against remote paths
	// (nil = none).
	excluded func(rel string, isDir bool) bool

	sessionsLost atomic.Int64 // sessions an item's attempt lost and redialed
}

// Run makes one pass: it mirrors Source to Target and returns what it did.
// The error, when not nil, is an *Error with the outcome.
func Run(ctx context.Context, o Options) (*Summary, error) {
	s, sum, err := Open(ctx, o)
	if err != nil {
		return sum, err
	}
	defer s.Close()
	return s.Once(ctx)
}

// passed is what one pass found, for its caller to sum up; the stages keep
// what outlives a pass (the shipper's counters, the safety rules, the
// connections, the registry).
type passed struct {
	plan      planner.Stats
	listedAll bool // the pass listed the whole remote without an error
}

// pass runs the stages and returns their outcome.
func (r *stages) pass(ctx context.Context, first remote.Conn, listRemote bool) (passed, Outcome, error) {
	o := r.o
	var res passed
	if o.DryRun {
		code, err := r.dryRun(ctx, first, listRemote, &res)
		return res, code, err
	}
	q := queue.New(claimer{r.job, r.w}, 256)
	pl := planner.New(r.job, r.w, r.planOptions())
	r.safety.Reset()

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
		res.plan = pl.Stats
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
		return res, Interrupted, ctx.Err()
	}
	if err != nil {
		return res, Aborted, r.poolErr(err)
	}
	if code, err := r.settleLate(ctx); err != nil {
		return res, code, err
	}
	if listRemote && len(pl.Stats.DirErrors) == 0 {
		if err := r.job.MarkListed(ctx, r.o.Now()); err != nil {
			return res, Aborted, err
		}
		res.listedAll = true
	}
	if o.Delete {
		r.prog.Phase("deleting")
		if code, err := r.deletes(ctx, pl); code != Complete || err != nil {
			return res, code, err
		}
	}
	if _, refused := r.safety.Replacements(); refused > 0 {
		return res, Refused, fmt.Errorf("refused: %d paths whose type changed would delete more on %s than the deletion limit allows (--max-delete, or max_delete in the config); they were left as they are", refused, r.o.Target)
	}
	if r.ship.Counters.Failed.Load() > 0 || len(pl.Stats.DirErrors) > 0 {
		return res, Partial, nil
	}
	return res, Complete, nil
}

// settleLate runs what was recorded after the queue had drained (the
// cleanup of a temporary file a dying connection left, say) with a short
// second round of the pool, so a pass ends with nothing left pending.
func (r *stages) settleLate(ctx context.Context) (Outcome, error) {
	for round := 0; round < 3; round++ {
		if err := r.w.Flush(ctx); err != nil {
			return Aborted, err
		}
		lanes, err := r.job.PendingLanes(ctx)
		if err != nil {
			return Aborted, err
		}
		left := 0
		for lane, n := range lanes {
			if lane >= 0 {
				left += n
			}
		}
		if left == 0 {
			return Complete, nil
		}
		q := queue.New(claimer{r.job, r.w}, 256)
		q.Close()
		pool := r.newPool(q, min(r.o.Workers, left), nil)
		if err := pool.Run(ctx); err != nil {
			if ctx.Err() != nil {
				return Interrupted, err
			}
			return Aborted, r.poolErr(err)
		}
	}
	return Complete, r.w.Flush(ctx)
}

// plan walks the tree and settles every directory; with --delete it also
// walks the subtrees that exist only on the remote.
func (r *stages) plan(ctx context.Context, pl *planner.Planner, ls *listers, listRemote bool, start string) error {
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
			r.ship.Dirs.MarkKnown(p.Local.Path)
		case p.Listed && p.Missing:
			// Gone from the remote (wiped, or removed by someone else):
			// made again before anything is put in it, not trusted from
			// an earlier pass.
			r.ship.Dirs.Forget(p.Local.Path)
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
func (r *stages) planOptions() planner.Options {
	o := r.o
	return planner.Options{Source: o.Source, Delete: o.Delete, Checksum: o.Checksum, ListPrecision: r.caps.ListModTimePrecision, Now: o.Now,
		Excluded: r.excluded, DeleteExcluded: o.DeleteExcluded, KeepBytes: o.Git.Enabled() && !o.DryRun}
}

type nopProgress struct{}

func (nopProgress) Planned(int64, int64) {}
func (nopProgress) Done(string, int64)   {}
func (nopProgress) Failed(string, error) {}
func (nopProgress) Phase(string)         {}
