package mirror

import (
	"context"
	"errors"
	"ferry/gitstage"
	"fmt"
	"path/filepath"
	"sync"
	"time"

	"ferry/entry"
	"ferry/internal/digest"
	"ferry/planner"
	"ferry/queue"
	"ferry/registry"
	"ferry/remote"
	"ferry/scanner"
	"ferry/transfer"
)

// Live is the daemon's side of a session: one queue for the session's
// life, drained by a pool that runs until the daemon stops. Live changes go
// to the queue's high class; scans plan into the registry, which backs the
// low class.
type Live struct {
	s    *Session
	o    LiveOptions
	q    *queue.Queue
	pool *transfer.Pool
	scan sync.Mutex // one scan at a time
	walk *scanner.Walker
}

// Live prepares the session for the daemon. Serve must run for anything
// to be shipped.
func (s *Session) Live(o LiveOptions) *Live {
	o.defaults()
	l := &Live{s: s, o: o, q: queue.New(claimer{s.r.job, s.r.w}, 256),
		walk: scanner.NewWalker(s.o.Source, scanner.Options{Excludes: s.o.Excludes, Links: s.o.Links})}
	if s.first != nil {
		s.r.conns.give(s.first)
		s.first = nil
	}
	// The daemon never gives up on a silent server: its workers wait with
	// capped back-off, and status shows the silence (Pool.Silence).
	l.pool = s.r.pool(l.q, s.o.Workers, func() int { h, lo, _ := l.q.Depth(); return h + lo }, 0)
	return l
}

// Queue is the live queue (for status and pausing).
func (l *Live) Queue() *queue.Queue { return l.q }

// Pool is the live pool (for status and resizing).
func (l *Live) Pool() *transfer.Pool { return l.pool }

// Git is the job's Git stage (for status and `ferry sync --git`), nil
// without one or while it could not be opened.
func (l *Live) Git() *gitstage.Stage {
	g, _ := l.s.gitStage()
	return g
}

// GitError is why the job's Git stage could not be opened (its repository
// unreachable when the clone was to be made): the job mirrors without it,
// and Serve tries again.
func (l *Live) GitError() error {
	_, err := l.s.gitStage()
	return err
}

// Serve runs the pool, and the Git stage when the job has one, until ctx
// ends; every registry flush may hold new bulk work, so it also tells the
// queue. A stage the session could not open is opened as soon as its
// repository can be reached (openGitLate).
func (l *Live) Serve(ctx context.Context) error {
	done := make(chan struct{})
	gctx, stopGit := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-l.s.r.w.Flushed():
				l.q.More()
			case <-done:
				return
			}
		}
	})
	wg.Go(func() {
		g := l.Git()
		if g == nil {
			if g = l.openGitLate(gctx); g == nil {
				return
			}
			wg.Go(func() { l.rescanUnkept(gctx) })
		}
		// Its failures are in its status and the log; the mirror goes on.
		_ = g.Run(gctx)
	})
	err := l.pool.Run(ctx)
	close(done)
	stopGit()
	wg.Wait()
	return err
}

// ScanResult is what a scan found and did.
type ScanResult struct {
	Plan    planner.Stats
	Deleted int64
	Outcome Outcome // Refused when --max-delete held deletions back (or another registry's marker)
	Err     error
	// MarkerWritten says the scan wrote a new token in the target's marker.
	MarkerWritten bool
}

// Scan walks the tree (or the subtree dir) against the registry, listing
// the remote too when listRemote is set, and waits until what it planned
// is shipped; with delete on, the deletions follow, as in a --once pass.
// Each scan checks the target's marker first: another registry's refuses
// the scan (ErrNotOurs), and a missing or outdated one turns the scan into
// a full one with a listing.
func (l *Live) Scan(ctx context.Context, dir string, listRemote bool) ScanResult {
	l.scan.Lock()
	defer l.scan.Unlock()
	r, o := l.s.r, l.s.o
	chk, err := l.s.rescanMarker(ctx)
	var me *Error
	switch {
	case err == nil:
	case ctx.Err() == nil && !(errors.As(err, &me) && me.Outcome == Refused) && (remote.IsTemporary(err) || remote.Unreachable(err)):
		// The server is down or silent: the scan's work waits for it in
		// the queue like any other (the daemon waits, it does not give
		// up), under the last verdict; the next scan checks again.
		o.Logf("the marker could not be checked (%v); scanning on with the last check's verdict", err)
		chk = l.s.marker
	default:
		res := ScanResult{Outcome: Aborted, Err: err}
		if errors.As(err, &me) {
			res.Outcome = me.Outcome
		}
		return res
	}
	if chk.kind != markerTrusted && (dir != "" || !listRemote) {
		o.Logf("%s: scanning everything with a remote listing", chk.reason)
		dir, listRemote = "", true
	}
	// Failures hold back deletions for the scan in which they happen: this
	// one retries every failed path under dir and marks again what still
	// fails, so a fixed failure holds nothing back until a restart.
	r.safety.Retry(dir)
	pl := planner.New(r.job, r.w, r.planOptions())
	r.safety.Reset() // --max-delete is counted per scan
	var ls *listers
	if listRemote {
		c := r.conns.take()
		if c == nil {
			var err error
			if c, err = o.Open(ctx, o.Target, o.RemoteOpts); err != nil {
				return ScanResult{Outcome: Aborted, Err: fmt.Errorf("connect to %s to list it: %w", o.Target, err)}
			}
		}
		ls = newListers(c, o, r.noteLost)
		defer ls.close()
	}
	deleted := r.ship.Counters.Deleted.Load()
	err = r.plan(ctx, pl, ls, listRemote, dir)
	if ls != nil {
		ls.close()
	}
	res := ScanResult{Plan: pl.Stats}
	if err != nil {
		res.Outcome, res.Err = Aborted, err
		if ctx.Err() != nil {
			res.Outcome = Interrupted
		}
		return res
	}
	l.q.More()
	if err := l.q.WaitIdle(ctx); err != nil {
		res.Outcome, res.Err = Interrupted, err
		return res
	}
	listedAll := listRemote && dir == "" && len(pl.Stats.DirErrors) == 0
	if listedAll {
		if err := r.job.MarkListed(ctx, o.Now()); err != nil {
			res.Outcome, res.Err = Aborted, err
			return res
		}
	}
	if o.Delete {
		res.Outcome, res.Err = r.deletes(ctx, pl)
	}
	res.Deleted = r.ship.Counters.Deleted.Load() - deleted
	// A new token after a full scan (the daemon's changes since the last
	// one included), or after any scan that repaired an untrusted remote.
	if res.Err == nil && (dir == "" || l.s.marker.kind != markerTrusted) {
		wrote, err := l.s.settleMarker(ctx, res.Outcome, listedAll, pl.Stats.Mkdirs)
		if err != nil {
			res.Outcome, res.Err = Aborted, err
		}
		res.MarkerWritten = wrote
	}
	return res
}

// Sync makes what the workers recorded so far readable: call it before a
// batch of Changed and Moved, which read the registry.
func (l *Live) Sync(ctx context.Context) error { return l.s.r.w.Flush(ctx) }

// Changed settles a file the watcher reported changed and, if it is out of
// sync, queues it ahead of bulk work. It reports whether it queued it.
func (l *Live) Changed(ctx context.Context, rel string, since time.Time) (bool, error) {
	r := l.s.r
	f, ok, err := l.walk.Stat(rel)
	if err != nil || !ok || f.IsDir || f.Link {
		return false, err // gone, left out, or a directory (scanned instead)
	}
	e, known, err := r.job.Get(ctx, rel)
	if err != nil {
		return false, err
	}
	var planned *entry.Entry
	pl := planner.New(r.job, captureSink{put: func(e entry.Entry) { planned = &e }, w: r.w},
		planner.Options{Source: l.s.o.Source, Checksum: l.s.o.Checksum, Now: l.s.o.Now})
	if err := pl.File(rel, f, e, known); err != nil {
		return false, err
	}
	if planned == nil {
		return false, nil // already in sync
	}
	planned.Lane = entry.LaneLive
	if !since.IsZero() && (planned.DirtySince == 0 || since.UnixNano() < planned.DirtySince) {
		planned.DirtySince = since.UnixNano()
	}
	// Plan, not Put: an upload of this path may be under way, and its
	// record of the new remote copy must stand when it lands first.
	if err := r.w.Plan(*planned); err != nil {
		return false, err
	}
	// A bulk item of this path (a scan planned it) may be shipping this very
	// save, or have shipped it between the read and the push: this item
	// then compares with the remote first instead of sending it twice.
	bulk := known && (e.State == entry.Transferring || e.State == entry.Pending && e.Lane != entry.LaneLive)
	l.q.Push(queue.Item{Path: rel, Size: f.Size, DirtySince: planned.DirtySince, Entry: *planned, Waited: bulk})
	return true, nil
}

// Moved handles a local rename. When the remote copy of from is what ferry
// shipped and the file at to has the same content, the remote copy is
// renamed; otherwise to is settled as a change. It reports whether a
// rename was queued; when not, the caller rescans from's directory so a
// deletion (with delete on) follows.
func (l *Live) Moved(ctx context.Context, from, to string, since time.Time) (bool, error) {
	r := l.s.r
	if !l.s.o.Delete {
		// Without delete, ferry never removes a remote file, so a move is
		// an upload of the new name.
		_, err := l.Changed(ctx, to, since)
		return false, err
	}
	old, known, err := r.job.Get(ctx, from)
	if err != nil {
		return false, err
	}
	f, ok, err := l.walk.Stat(to)
	if err != nil || !ok || f.IsDir || f.Link {
		return false, err
	}
	if known && !old.IsDir && old.State == entry.Done && old.Hash != "" && old.LocalSize == f.Size {
		if sum, err := digest.File(filepath.Join(l.s.o.Source, filepath.FromSlash(to))); err == nil && sum == old.Hash {
			now := l.s.o.Now().UnixNano()
			dst := old
			dst.Path, dst.LocalSize, dst.LocalMtime = to, f.Size, f.Mtime.UnixNano()
			dst.State, dst.Action, dst.Lane, dst.DirtySince = entry.Pending, entry.Upload, entry.LaneLive, now
			// Recorded as an upload: after a crash mid-rename the next scan
			// settles it like any other change.
			if err := r.w.Put(dst); err != nil {
				return false, err
			}
			l.q.Push(queue.Item{Path: to, Size: 0, DirtySince: now, Entry: dst, Move: &queue.Move{From: old}})
			return true, nil
		}
	}
	_, err = l.Changed(ctx, to, since)
	return false, err
}

// captureSink keeps the entry a one-file plan puts, and forgets paths for
// real (a file that replaced a directory).
type captureSink struct {
	put func(entry.Entry)
	w   *registry.Writer
}

func (c captureSink) Put(e entry.Entry) error  { c.put(e); return nil }
func (c captureSink) Plan(e entry.Entry) error { c.put(e); return nil }
func (c captureSink) Forget(p string) error    { return c.w.Forget(p) }

// Counters are what the session did since it opened.
type Counters struct {
	Transferred, Bytes, Touched, Moved, Deleted, Failed int64
	SessionsLost                                        int64 // sessions lost mid-item and redialed
}

// Counters returns the session's totals.
func (l *Live) Counters() Counters {
	r := l.s.r
	return Counters{Transferred: r.ship.Counters.Transferred.Load(), Bytes: r.ship.Counters.Bytes.Load(), Touched: r.ship.Counters.Touched.Load(),
		Moved: r.ship.Counters.Moved.Load(), Deleted: r.ship.Counters.Deleted.Load(), Failed: r.ship.Counters.Failed.Load(), SessionsLost: r.sessionsLost.Load()}
}

// Backlog counts what the registry holds out of sync (not yet claimed or
// deferred until the deletions) and what has failed.
func (l *Live) Backlog(ctx context.Context) (pending, failed int64, err error) {
	lanes, err := l.s.r.job.PendingLanes(ctx)
	if err != nil {
		return 0, 0, err
	}
	for _, n := range lanes {
		pending += int64(n)
	}
	failed, err = l.s.r.job.Count(ctx, entry.Failed)
	return pending, failed, err
}

// RetryFailed makes every failed path pending again, in its weight lane,
// and tells the queue; it returns how many.
func (l *Live) RetryFailed(ctx context.Context) (int, error) {
	r := l.s.r
	if err := r.w.Flush(ctx); err != nil {
		return 0, err
	}
	fails, err := r.job.Failures(ctx)
	if err != nil {
		return 0, err
	}
	for _, e := range fails {
		e.State, e.Attempts = entry.Pending, 0
		if e.Lane == entry.LaneLive { // not claimable: give it its weight lane
			e.Lane = queue.LaneOf(max(e.LocalSize, 0))
		}
		if err := r.w.Put(e); err != nil {
			return 0, err
		}
	}
	if err := r.w.Flush(ctx); err != nil {
		return 0, err
	}
	l.q.More()
	return len(fails), nil
}

// Rate is the measured upload rate of one connection in bytes per second
// (0 until a file big enough to tell has been sent).
func (l *Live) Rate() float64 { return l.s.r.ship.Rate() }
