package mirror

import (
	"context"
	"errors"
	"fmt"
	"path"
	"sort"
	"strings"
	"time"

	"ferry/entry"
	"ferry/planner"
	"ferry/queue"
	"ferry/registry"
	"ferry/remote"
)

// deletes runs the deletion phase, after every upload: files in parallel,
// then directories deepest first. Nothing is deleted if the plan exceeds
// --max-delete, and nothing under a directory where something failed.
func (r *runner) deletes(ctx context.Context, pl *planner.Planner) (Outcome, error) {
	lanes, err := r.job.PendingLanes(ctx)
	if err != nil {
		return Aborted, err
	}
	n := int64(lanes[entry.LaneDeletes] + lanes[entry.LaneDirDeletes])
	if n == 0 {
		return Complete, nil
	}
	total, err := r.job.Count(ctx, entry.Done)
	if err != nil {
		return Aborted, err
	}
	// Type changes deleted what stood in their way already this pass.
	used, _ := r.replace.counts()
	if limit := r.o.MaxDelete.Limit(total + n); limit >= 0 && n+used > limit {
		return Refused, fmt.Errorf("refused: %d deletions planned on %s (and %d made to replace paths whose type changed), more than the deletion limit allows (%d: --max-delete, or max_delete in the config); nothing was deleted (check the source, then raise the limit)", n, r.o.Target, used, limit)
	}
	for d := range pl.ErrDirs {
		r.markFailedDir(d)
	}
	q := queue.New(deferredClaimer{r.job, r.w, entry.LaneDeletes}, 256)
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
		err := r.remove(ctx, c, e)
		if ctx.Err() != nil {
			return Interrupted, ctx.Err()
		}
		r.result(queue.Item{Path: e.Path, Data: e}, err, 1)
	}
	return Complete, r.w.Flush(ctx)
}

// deferredClaimer serves one deferred lane as the queue's lane 0.
type deferredClaimer struct {
	job  *registry.Job
	w    *registry.Writer
	lane int
}

func (d deferredClaimer) Claim(ctx context.Context, lane, n int) ([]queue.Item, error) {
	if lane != 0 {
		return nil, nil
	}
	return claimer{d.job, d.w}.claimLane(ctx, d.lane, n)
}

// heldBack reports whether p lies under a directory where something failed
// this run: its deletion waits for a run without errors there.
func (r *runner) heldBack(p string) bool {
	r.errMu.Lock()
	defer r.errMu.Unlock()
	for d := path.Dir(p); ; d = path.Dir(d) {
		if d == "." {
			d = ""
		}
		if r.failedDirs[d] {
			return true
		}
		if d == "" {
			return false
		}
	}
}

// remove deletes one remote path, after checking that it is still what
// ferry recorded: a file someone changed since is not deleted.
func (r *runner) remove(ctx context.Context, c remote.Conn, e entry.Entry) error {
	if r.heldBack(e.Path) {
		e.State = entry.Pending
		r.o.Logf("not deleting %s: something under %s failed this run", e.Path, path.Dir(e.Path))
		return r.w.Put(e)
	}
	st, err := c.Stat(ctx, e.Path)
	if errors.Is(err, remote.ErrNotExist) {
		return r.forget(e.Path)
	}
	if err != nil {
		return err
	}
	if e.IsDir {
		if err := c.Remove(ctx, e.Path); err != nil {
			if errors.Is(err, remote.ErrNotExist) {
				return r.forget(e.Path)
			}
			if !st.IsDir {
				return err
			}
			// Not empty: it holds something ferry keeps (a conflict copy).
			r.o.Logf("kept remote directory %s: it is not empty (%v)", e.Path, err)
			e.State, e.Action, e.Lane = entry.Done, entry.Mkdir, 0
			return r.w.Put(e)
		}
		r.deleted.Add(1)
		return r.forget(e.Path)
	}
	prec := r.caps.ModTimePrecision
	if e.LocalSize < 0 { // known from a listing only
		prec = r.caps.ListModTimePrecision
	}
	if st.IsDir || st.Size != e.RemoteSize || (r.caps.SetModTime && e.RemoteMtime != 0 && !entry.MtimeMatch(st.ModTime, time.Unix(0, e.RemoteMtime), prec)) {
		r.conflicts.Add(1)
		return remote.Errorf(remote.KindOther, "delete", e.Path, errors.New("changed on the remote since ferry recorded it; not deleted"))
	}
	if err := c.Remove(ctx, e.Path); err != nil && !errors.Is(err, remote.ErrNotExist) {
		return err
	}
	r.deleted.Add(1)
	return r.forget(e.Path)
}
