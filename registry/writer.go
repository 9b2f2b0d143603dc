package registry

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"time"

	"ferry/entry"
)

// Writer batches changes to a job's entries into transactions: one commit
// per few milliseconds instead of one per file, which is what makes
// recording 10,000 small uploads cheap. A crash loses at most the last
// unflushed batch, and Recover plus a remote stat repair exactly that.
type Writer struct {
	job   *Job
	every time.Duration
	max   int

	apply func([]op) error // Job.apply; tests hold a flush in the middle with their own

	mu      sync.Mutex
	pending []op
	// added counts the changes ever added, applied those a completed
	// flush committed: Flush waits for applied to reach what added was
	// when it was called, which a flush already under way (its batch
	// taken before the latest changes came) does not give.
	added, applied int64
	err            error // first flush error; later writes are refused
	kick           chan struct{}
	flushed        chan struct{} // closed and replaced after every flush
	wg             sync.WaitGroup
	cancel         context.CancelFunc
}

type opKind int

const (
	opPut opKind = iota
	opDelete
	opPlan
)

type op struct {
	kind opKind
	e    entry.Entry
}

// NewWriter starts a writer that commits every interval or every max
// changes, whichever comes first. Close flushes and stops it.
func (j *Job) NewWriter(interval time.Duration, max int) *Writer {
	return j.newWriter(interval, max, j.apply)
}

func (j *Job) newWriter(interval time.Duration, max int, apply func([]op) error) *Writer {
	ctx, cancel := context.WithCancel(context.Background())
	w := &Writer{job: j, every: interval, max: max, apply: apply, kick: make(chan struct{}, 1),
		flushed: make(chan struct{}), cancel: cancel}
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		w.loop(ctx)
	}()
	return w
}

// Put records e (insert or replace).
func (w *Writer) Put(e entry.Entry) error { return w.add(op{kind: opPut, e: e}) }

// Plan records a planned upload or touch e whose remote side (size, mtime,
// hash) the planner copied from the row it read. A worker may record a new
// remote copy of the path between that read and this write (a file saved
// again while its upload was under way); written blindly, the plan would
// put the old remote side back, and the next upload would take ferry's own
// copy for someone else's. So when the row's remote side is no longer the
// plan's, the row's stands, the upload rechecks the remote first, and a
// touch becomes an upload (the bytes it meant to keep are gone). A plan
// for a bulk lane is dropped when the row is queued live by then: the live
// queue ships the file as it is when its turn comes, and a bulk copy of
// the same item would send it twice.
func (w *Writer) Plan(e entry.Entry) error { return w.add(op{kind: opPlan, e: e}) }

// Forget removes the entry for path.
func (w *Writer) Forget(path string) error {
	return w.add(op{kind: opDelete, e: entry.Entry{Path: path}})
}

func (w *Writer) add(o op) error {
	w.mu.Lock()
	if w.err != nil {
		err := w.err
		w.mu.Unlock()
		return err
	}
	w.pending = append(w.pending, o)
	w.added++
	full := len(w.pending) >= w.max
	w.mu.Unlock()
	if full {
		w.poke()
	}
	return nil
}

func (w *Writer) poke() {
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// Flush commits everything added so far and returns once it is durable in
// the WAL (or the error that prevented it).
func (w *Writer) Flush(ctx context.Context) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	// Not "until the next flush ends": one may be under way with a batch
	// taken before the latest changes were added.
	want := w.added
	for w.applied < want && w.err == nil {
		ch := w.flushed
		w.mu.Unlock()
		w.poke()
		select {
		case <-ch:
		case <-ctx.Done():
			w.mu.Lock()
			return ctx.Err()
		}
		w.mu.Lock()
	}
	return w.err
}

// Flushed returns a channel closed at the next flush that commits a change.
func (w *Writer) Flushed() <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.flushed
}

func (w *Writer) loop(ctx context.Context) {
	t := time.NewTicker(w.every)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-w.kick:
		case <-ctx.Done():
			w.flush()
			return
		}
		w.flush()
	}
}

func (w *Writer) flush() {
	w.mu.Lock()
	batch, upto := w.pending, w.added
	w.pending = nil
	w.mu.Unlock()
	var err error
	if len(batch) > 0 {
		err = w.apply(batch)
	}
	w.mu.Lock()
	if err != nil && w.err == nil {
		w.err = err
	}
	w.applied = upto
	// Only a flush that committed something is news: waking the watchers
	// of Flushed at every idle tick kept a busy queue from ever going idle
	// (a daemon scan waiting for it to drain before its deletions waited
	// for good). An empty batch leaves nothing for Flush to wait for either.
	if len(batch) > 0 || err != nil {
		close(w.flushed)
		w.flushed = make(chan struct{})
	}
	w.mu.Unlock()
}

// Close flushes what is left and stops the writer.
func (w *Writer) Close() error {
	w.cancel()
	w.wg.Wait()
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// apply runs a batch in one transaction. It uses a background context: a
// batch of verified uploads must be recorded even while the run is being
// cancelled, or the next run would send those bytes again.
//
// The same transaction records what the Git stage commits next (see
// gitWriteOf): a crash can lose a batch of records, never the record of a
// shipped version without the version itself.
func (j *Job) apply(batch []op) error {
	ctx := context.Background()
	// Before the transaction: it holds the registry's one connection, and
	// preparing on the DB would wait for it.
	ws, err := j.db.writerStmts(ctx)
	if err != nil {
		return err
	}
	tx, err := j.db.sql.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("registry: begin: %w", err)
	}
	defer tx.Rollback()
	put := tx.StmtContext(ctx, ws.put)
	g := gitStmts{added: tx.StmtContext(ctx, ws.gitAdded), remove: tx.StmtContext(ctx, ws.gitRemove)}
	now := j.clock().UnixNano()
	var del, cur *sql.Stmt // bound on first use
	for _, o := range batch {
		e := o.e
		dir, name := split(e.Path)
		if o.kind == opPlan {
			if cur == nil {
				cur = tx.StmtContext(ctx, ws.cur)
			}
			var skip bool
			if e, skip, err = keepRemoteSide(ctx, cur, j.ID, dir, name, e); err != nil {
				return err
			}
			if skip {
				continue
			}
		}
		switch o.kind {
		case opPut, opPlan:
			gw, blob, exec := gitWriteOf(e), "", false
			switch gw {
			case gitShip:
				blob, exec = e.GitBlob, e.GitExec
				err = g.shipped(ctx, j.ID, e.Path, dir, name, blob, exec, e.DirtySince, now)
			case gitGone:
				err = g.gone(ctx, j.ID, e.Path, dir, name, now)
			}
			if err != nil {
				return fmt.Errorf("registry: record %q: %w", e.Path, err)
			}
			_, err = put.ExecContext(ctx, j.ID, dir, name, e.IsDir, e.LocalSize, e.LocalMtime, e.RemoteSize, e.RemoteMtime, e.Hash, e.State, e.Action, e.Lane, e.Attempts, e.LastError, e.DirtySince, e.Recheck,
				gw == gitKeep, j.ID, dir, name, blob, gw == gitKeep, j.ID, dir, name, exec)
		case opDelete:
			if err = g.gone(ctx, j.ID, e.Path, dir, name, now); err != nil {
				return fmt.Errorf("registry: record %q: %w", e.Path, err)
			}
			if del == nil {
				del = tx.StmtContext(ctx, ws.del)
			}
			_, err = del.ExecContext(ctx, j.ID, dir, name)
		}
		if err != nil {
			return fmt.Errorf("registry: record %q: %w", e.Path, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("registry: commit: %w", err)
	}
	return nil
}

// keepRemoteSide gives a plan the row's current remote side when a worker
// recorded another one since the plan read it, and says to skip a bulk
// plan of a row queued live meanwhile (see Writer.Plan).
func keepRemoteSide(ctx context.Context, cur *sql.Stmt, job int64, dir, name string, e entry.Entry) (entry.Entry, bool, error) {
	var isDir bool
	var size, mtime int64
	var hash string
	var state entry.State
	var lane int
	err := cur.QueryRowContext(ctx, job, dir, name).Scan(&isDir, &size, &mtime, &hash, &state, &lane)
	if errors.Is(err, sql.ErrNoRows) {
		return e, false, nil
	}
	if err != nil {
		return e, false, fmt.Errorf("registry: read %q: %w", e.Path, err)
	}
	if isDir {
		return e, false, nil
	}
	if state == entry.Pending && lane == entry.LaneLive && e.Lane != entry.LaneLive {
		return e, true, nil
	}
	if size == e.RemoteSize && mtime == e.RemoteMtime && hash == e.Hash {
		return e, false, nil
	}
	e.RemoteSize, e.RemoteMtime, e.Hash, e.Recheck = size, mtime, hash, true
	if e.Action == entry.Touch {
		e.Action = entry.Upload
	}
	return e, false, nil
}
