package mirror

import (
	"context"
	"errors"
	"sort"
	"strings"

	"ferry/entry"
	"ferry/planner"
	"ferry/queue"
)

// deletes runs the deletion phase, after every upload: files in parallel,
// then directories deepest first. Nothing is deleted if the plan exceeds
// --max-delete, and nothing under a directory where something failed.
func (r *stages) deletes(ctx context.Context, pl *planner.Planner) (Outcome, error) {
	lanes, err := r.job.PendingLanes(ctx)
	if err != nil {
		return Aborted, err
	}
	n := int64(lanes[entry.LaneDeletes] + lanes[entry.LaneDirDeletes])
	if n == 0 {
		return Complete, nil
	}
	// Type changes deleted what stood in their way already this pass:
	// they count against the limit too.
	if err := r.safety.AllowDeletes(ctx, n); err != nil {
		if errors.Is(err, planner.ErrTooManyDeletes) {
			return Refused, err
		}
		return Aborted, err
	}
	for d := range pl.ErrDirs {
		r.safety.Failed(d)
	}
	q := queue.NewPhase(claimer{r.job, r.w}, 256, entry.LaneDeletes)
	q.Close()
	pool := r.newPool(q, r.o.Workers, func() int { _, low, _ := q.Depth(); return low })
	if err := pool.Run(ctx); err != nil {
		if ctx.Err() != nil {
			return Interrupted, err
		}
		return Aborted, r.poolErr(err)
	}
	// Directories, deepest first, on one connection.
	var dirs []entry.Entry
	for {
		batch, err := r.job.Claim(ctx, entry.LaneDirDeletes, 1000)
		if err != nil {
			return Aborted, err
		}
		if len(batch) == 0 {
			break
		}
		dirs = append(dirs, batch...)
	}
	if len(dirs) == 0 {
		return Complete, r.w.Flush(ctx)
	}
	sort.Slice(dirs, func(i, j int) bool { return strings.Count(dirs[i].Path, "/") > strings.Count(dirs[j].Path, "/") })
	c := r.conns.take()
	if c == nil {
		var err error
		if c, err = r.o.Open(ctx, r.o.Target, r.o.RemoteOpts); err != nil {
			return Aborted, err
		}
	}
	defer r.conns.give(c)
	for _, e := range dirs {
		err := r.ship.Remove(ctx, c, e)
		if ctx.Err() != nil {
			return Interrupted, ctx.Err()
		}
		r.result(queue.Item{Path: e.Path, Entry: e}, err, 1)
	}
	return Complete, r.w.Flush(ctx)
}
