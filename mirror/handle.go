package mirror

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"ferry/entry"
	"ferry/internal/digest"
	"ferry/queue"
	"ferry/remote"
	"ferry/transfer"
)

// errConflictSkipped marks a path left alone by --conflict skip.
var errConflictSkipped = errors.New("the remote copy was changed by someone else; left as it is (--conflict skip)")

// handle makes one attempt at an item on a worker's connection.
func (r *runner) handle(ctx context.Context, c remote.Conn, it queue.Item) error {
	switch m := it.Data.(type) {
	case liveMove:
		return r.move(ctx, c, m)
	case *dirMove:
		err := r.moveDir(ctx, c, m)
		if errors.Is(err, errDirMoveFallback) {
			m.err = err // not a failure: the caller settles the files instead
			return nil
		}
		return err
	}
	e := it.Data.(entry.Entry)
	if it.Waited && (e.Action == entry.Upload || e.Action == entry.Touch) {
		// Another item of this path shipped while this one waited (a
		// live change and the scan of its new directory both planned the
		// file): compare with the remote first, so what is already there
		// is adopted, not sent twice.
		e.Recheck = true
	}
	switch e.Action {
	case entry.Upload:
		return r.upload(ctx, c, e)
	case entry.Mkdir:
		if err := r.ensureDir(ctx, c, e.Path); err != nil {
			return err
		}
		e.MarkDone()
		e.RemoteSize, e.RemoteMtime, e.Hash = -1, 0, "" // what a file in the way was, if one was
		return r.record(e, 0)
	case entry.Touch:
		return r.touch(ctx, c, e)
	case entry.Cleanup:
		if err := c.Remove(ctx, e.Path); err != nil && !errors.Is(err, remote.ErrNotExist) {
			return err
		}
		r.cleaned.Add(1)
		return r.forget(e.Path)
	case entry.Delete:
		return r.remove(ctx, c, e)
	}
	return fmt.Errorf("%s: unknown action %v", e.Path, e.Action)
}

func (r *runner) local(rel string) string {
	return filepath.Join(r.o.Source, filepath.FromSlash(rel))
}

// upload ships one file. When the registry asks for a recheck (ferry shipped
// this path before, the remote listing showed a file there, or a run died
// while sending it), the remote copy is stat-ed first: identical means
// adopt it without sending; changed by someone else means the conflict
// policy decides.
func (r *runner) upload(ctx context.Context, c remote.Conn, e entry.Entry) error {
	if e.Recheck {
		done, err := r.recheck(ctx, c, &e)
		if err != nil || done {
			return err
		}
	}
	if err := r.ensureDir(ctx, c, path.Dir(e.Path)); err != nil {
		return err
	}
	began := time.Now()
	shipped, err := transfer.Upload(ctx, c, r.local(e.Path), e.Path, r.lim)
	r.noteLeftover(err)
	if err == nil {
		r.rate.note(shipped.Size, time.Since(began))
	}
	if r.dirInTheWay(ctx, c, e.Path, err) {
		// A directory ferry knew nothing of: replace it, then send again.
		if err := r.clearDir(ctx, c, e.Path); err != nil {
			return err
		}
		shipped, err = transfer.Upload(ctx, c, r.local(e.Path), e.Path, r.lim)
		r.noteLeftover(err)
	}
	if errors.Is(err, remote.ErrNotExist) && !errors.Is(err, transfer.ErrVanished) {
		// The parent went away behind our back: make it again, once.
		r.dirs.forget(path.Dir(e.Path))
		if err := r.ensureDir(ctx, c, path.Dir(e.Path)); err != nil {
			return err
		}
		shipped, err = transfer.Upload(ctx, c, r.local(e.Path), e.Path, r.lim)
		r.noteLeftover(err)
	}
	if err != nil {
		return err
	}
	e.LocalSize, e.LocalMtime = shipped.Size, shipped.LocalMtime.UnixNano()
	e.RemoteSize, e.RemoteMtime, e.Hash = shipped.Size, shipped.RemoteMtime.UnixNano(), shipped.Hash
	e.MarkDone()
	r.transferred.Add(1)
	r.bytes.Add(shipped.Size)
	if err := r.record(e, shipped.Size); err != nil {
		return err
	}
	if r.o.Move {
		return r.moveDone(ctx, e, shipped)
	}
	return nil
}

// dirInTheWay reports whether an upload failed because a directory stands
// under the file's name on the remote.
func (r *runner) dirInTheWay(ctx context.Context, c remote.Conn, p string, err error) bool {
	var le *transfer.LocalError
	if err == nil || ctx.Err() != nil || remote.IsTemporary(err) || errors.As(err, &le) ||
		errors.Is(err, remote.ErrNotExist) || errors.Is(err, transfer.ErrVanished) || errors.Is(err, transfer.ErrChanged) || errors.Is(err, transfer.ErrVerify) {
		return false
	}
	st, serr := c.Stat(ctx, p)
	return serr == nil && st.IsDir
}

// noteLeftover records a temporary file a failed upload could not remove,
// so that a cleanup removes it later in this pass or in the next one.
func (r *runner) noteLeftover(err error) {
	var tl *remote.TempLeftError
	if errors.As(err, &tl) {
		_ = r.w.Put(entry.Entry{Path: tl.Temp, LocalSize: -1, RemoteSize: -1, State: entry.Pending, Action: entry.Cleanup, DirtySince: r.o.Now().UnixNano()})
	}
}

// recheck settles a path against its remote copy before sending. It returns
// done when nothing needs sending.
func (r *runner) recheck(ctx context.Context, c remote.Conn, e *entry.Entry) (bool, error) {
	st, err := c.Stat(ctx, e.Path)
	if errors.Is(err, remote.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if st.IsDir {
		// A directory became a file: the old directory goes first.
		return false, r.clearDir(ctx, c, e.Path)
	}
	lfi, err := os.Stat(r.local(e.Path))
	if err != nil {
		return false, nil // the upload reports what is wrong locally
	}
	prec := r.caps.ModTimePrecision
	ours := r.describes(st, *e)
	if !ours && e.Shipped() {
		// The item may have been planned while an upload of this path was
		// under way (saved again meanwhile): that upload replaced the copy
		// the item describes, and recorded what it put there before this
		// item could start. Taking its copy for someone else's would move
		// it aside as a conflict, or adopt the new save unsent when the
		// two saves have the same size within one mtime tick.
		cur, known, err := r.lastRecord(ctx, e.Path)
		if err != nil {
			return false, err
		}
		if known && cur.Shipped() && r.describes(st, cur) {
			e.RemoteSize, e.RemoteMtime, e.Hash = cur.RemoteSize, cur.RemoteMtime, cur.Hash
			ours = true
		}
	}
	if st.Size == lfi.Size() && r.caps.SetModTime && entry.MtimeMatch(st.ModTime, lfi.ModTime(), prec) {
		// Already there (sent by a run that died before recording it,
		// or by another tool with the same mtime): record, do not send.
		// If it is the copy ferry shipped, size and mtime are not proof
		// enough: the bytes must be what was shipped (--checksum).
		sum, err := digest.File(r.local(e.Path))
		if err != nil {
			return false, nil
		}
		if ours && sum != e.Hash {
			return false, nil
		}
		e.LocalSize, e.LocalMtime = lfi.Size(), lfi.ModTime().UnixNano()
		e.RemoteSize, e.RemoteMtime, e.Hash = st.Size, st.ModTime.UnixNano(), sum
		e.MarkDone()
		r.adopted.Add(1)
		return true, r.record(*e, 0)
	}
	if ours {
		return false, nil // our own copy: overwrite it
	}
	// Someone else wrote this path.
	r.conflicts.Add(1)
	switch r.o.Conflict {
	case Overwrite:
		r.o.Logf("conflict: %s was changed on the remote; overwriting (--conflict overwrite)", e.Path)
		return false, nil
	case Skip:
		return false, remote.Errorf(remote.KindOther, "upload", e.Path, errConflictSkipped)
	}
	aside := entry.ConflictName(e.Path, r.o.Now())
	if err := c.Rename(ctx, e.Path, aside); err != nil {
		return false, err
	}
	r.o.Logf("conflict: %s was changed on the remote; its copy is kept as %s", e.Path, aside)
	return false, nil
}

// describes reports whether e records st as the copy ferry shipped.
func (r *runner) describes(st entry.FileInfo, e entry.Entry) bool {
	return e.Shipped() && st.Size == e.RemoteSize &&
		(!r.caps.SetModTime || entry.MtimeMatch(st.ModTime, time.Unix(0, e.RemoteMtime), r.caps.ModTimePrecision))
}

// lastRecord reads what the registry holds for p once everything recorded
// so far is committed: an upload of p that ended before this item began
// recorded its result before letting p go (the queue never has one path in
// flight twice).
func (r *runner) lastRecord(ctx context.Context, p string) (entry.Entry, bool, error) {
	if err := r.w.Flush(ctx); err != nil {
		return entry.Entry{}, false, err
	}
	return r.job.Get(ctx, p)
}

// touch sets the remote mtime of a file whose bytes did not change.
func (r *runner) touch(ctx context.Context, c remote.Conn, e entry.Entry) error {
	lfi, err := os.Stat(r.local(e.Path))
	if err != nil || !r.caps.SetModTime {
		e.Action = entry.Upload
		return r.upload(ctx, c, e)
	}
	st, err := c.Stat(ctx, e.Path)
	if err != nil || st.Size != e.RemoteSize || !entry.MtimeMatch(st.ModTime, time.Unix(0, e.RemoteMtime), r.caps.ModTimePrecision) {
		// Gone or changed on the remote: a full upload settles it.
		e.Action = entry.Upload
		return r.upload(ctx, c, e)
	}
	if err := c.Chtimes(ctx, e.Path, lfi.ModTime()); err != nil {
		return err
	}
	e.LocalSize, e.LocalMtime = lfi.Size(), lfi.ModTime().UnixNano()
	e.RemoteMtime = lfi.ModTime().Truncate(max(r.caps.ModTimePrecision, time.Nanosecond)).UnixNano()
	e.MarkDone()
	r.touched.Add(1)
	return r.record(e, 0)
}

// moveDone removes the local file once its upload is recorded durably and
// only if it is still what was shipped.
func (r *runner) moveDone(ctx context.Context, e entry.Entry, s transfer.Shipped) error {
	if err := r.w.Flush(ctx); err != nil {
		return err
	}
	p := r.local(e.Path)
	fi, err := os.Stat(p)
	if err != nil || fi.Size() != s.Size || !fi.ModTime().Equal(s.LocalMtime) {
		return nil // changed since: keep it, the next run ships it
	}
	if err := os.Remove(p); err != nil {
		r.o.Logf("--move: %s is on the remote but could not be removed locally: %v", p, err)
	}
	return nil
}

func (r *runner) record(e entry.Entry, bytes int64) error {
	r.prog.Done(e.Path, bytes)
	return r.w.Put(e)
}

func (r *runner) forget(p string) error {
	r.prog.Done(p, 0)
	return r.w.Forget(p)
}

// result records a final failure (successes are recorded by handle).
func (r *runner) result(it queue.Item, err error, attempts int) {
	if m, ok := it.Data.(*dirMove); ok {
		// Its caller waits for the outcome and falls back on a failure.
		if err != nil {
			m.err = err
		}
		close(m.done)
		return
	}
	if err == nil {
		return
	}
	e := entryOf(it)
	if errors.Is(err, transfer.ErrVanished) {
		// Deleted locally since the scan: the next scan settles it.
		if !e.Shipped() {
			_ = r.w.Forget(e.Path)
		} else {
			e.State = entry.Done
			_ = r.w.Put(e)
		}
		r.prog.Done(e.Path, 0)
		return
	}
	r.failed.Add(1)
	r.markFailedDir(path.Dir(e.Path))
	e.MarkFailed(attempts, err)
	_ = r.w.Put(e)
	r.prog.Failed(e.Path, err)
	r.o.Logf("failed: %v", err)
}

// entryOf is the registry entry an item stands for.
func entryOf(it queue.Item) entry.Entry {
	if m, ok := it.Data.(liveMove); ok {
		return m.to
	}
	return it.Data.(entry.Entry)
}

func (r *runner) markFailedDir(d string) {
	r.errMu.Lock()
	defer r.errMu.Unlock()
	r.failedDirs[d] = true
}

// clearFailedDirs forgets the failures at or under dir ("" = everywhere).
// A daemon's scan calls it first: the scan plans every failed path under
// dir again, so a failure that persists is marked again, and one that was
// fixed no longer holds back the deletions next to it.
func (r *runner) clearFailedDirs(dir string) {
	r.errMu.Lock()
	defer r.errMu.Unlock()
	for d := range r.failedDirs {
		if dir == "" || d == dir || strings.HasPrefix(d, dir+"/") {
			delete(r.failedDirs, d)
		}
	}
}

// rateMeter keeps a running estimate of one connection's upload rate,
// from files big enough for the rate to show through the round trips.
type rateMeter struct {
	mu  sync.Mutex
	bps float64 // bytes per second; 0 = not measured yet
}

func (m *rateMeter) note(size int64, took time.Duration) {
	if size < 256<<10 || took <= 0 {
		return
	}
	v := float64(size) / took.Seconds()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.bps == 0 {
		m.bps = v
	} else {
		m.bps = 0.8*m.bps + 0.2*v
	}
}

func (m *rateMeter) get() float64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.bps
}
