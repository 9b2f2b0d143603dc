package mirror

import (
	"context"
	"errors"
	"fmt"
	"path"

	"ferry/entry"
	"ferry/queue"
	"ferry/registry"
	"ferry/remote"
)

// errDirMoveFallback says a directory move cannot be one remote rename: its
// files are settled one by one instead (uploads, and deletions of the old
// name with delete on).
var errDirMoveFallback = errors.New("not renamed on the remote")

// MovedDir handles a local directory renamed from from to to inside the
// tree. When ferry made the remote directory from and nothing is at to,
// the remote directory is renamed in one request and the registry's rows
// follow; the caller then scans to, which uploads only the files that
// differ from what was shipped. It reports whether the remote was renamed;
// when not, the caller scans from's parent too, so the old name is deleted
// (with delete on) as for any removed directory.
func (l *Live) MovedDir(ctx context.Context, from, to string) (renamed bool, files int64, err error) {
	if !l.s.o.Delete || from == "" || to == "" {
		// Without delete, ferry never removes a remote name, so the new
		// directory is uploaded and the old one stays.
		return false, 0, nil
	}
	r := l.s.r
	// A scan may run meanwhile (MovedDir must not wait for one: the
	// daemon calls it in line with the live changes). One that took the
	// old name for removed, or planned the new one, makes MovePrefix
	// refuse, and the remote rename is undone.
	if err := r.w.Flush(ctx); err != nil {
		return false, 0, err
	}
	old, known, err := r.job.Get(ctx, from)
	if err != nil || !known || !old.IsDir || old.State != entry.Done {
		return false, 0, err // never made on the remote by ferry
	}
	if _, taken, err := r.job.Get(ctx, to); err != nil || taken {
		return false, 0, err
	}
	// Nothing under the old name may be in flight while it is renamed, nor
	// start under it after: what is queued there is dropped and re-planned
	// under the new name by the scan that follows.
	l.q.Hold(from)
	released := false
	defer func() {
		if !released {
			l.q.Release(from, false)
		}
	}()
	if err := l.q.WaitHeld(ctx, from); err != nil {
		return false, 0, err
	}
	if err := r.w.Flush(ctx); err != nil { // what those items recorded
		return false, 0, err
	}
	// The worker that takes it renames the remote directory when it is
	// still what ferry made and nothing is in the way, re-keys the
	// registry and says how it went.
	m := &queue.Move{From: entry.Entry{Path: from, IsDir: true}, Done: make(chan struct{})}
	l.q.Push(queue.Item{Path: to, DirtySince: l.s.o.Now().UnixNano(), Entry: entry.Entry{Path: to, IsDir: true}, Move: m})
	select {
	case <-m.Done:
	case <-ctx.Done():
		return false, 0, ctx.Err()
	}
	if m.Renamed {
		released = true
		l.q.Release(from, true)
		l.q.More()
		return true, m.Files, nil
	}
	if m.Err != nil && !errors.Is(m.Err, errDirMoveFallback) {
		r.o.Logf("rename %s to %s on the remote: %v; its files are sent again instead", from, to, m.Err)
	}
	return false, 0, nil
}

// moveDir renames the remote directory it.Move.From to it.Path when it is
// a directory and nothing is at the new name (a rename cannot replace a
// directory, and one someone else made is theirs), then re-keys the
// registry and the directory cache. Anything else is errDirMoveFallback.
func (r *stages) moveDir(ctx context.Context, c remote.Conn, it queue.Item) error {
	m := it.Move
	from, to := m.From.Path, it.Path
	st, err := c.Stat(ctx, from)
	switch {
	case errors.Is(err, remote.ErrNotExist):
		return fmt.Errorf("rename %s: %w: the remote directory is gone", from, errDirMoveFallback)
	case err != nil:
		return err
	case !st.IsDir:
		return fmt.Errorf("rename %s: %w: the remote holds a file of that name", from, errDirMoveFallback)
	}
	if _, err := c.Stat(ctx, to); err == nil {
		return fmt.Errorf("rename %s to %s: %w: the new name exists on the remote", from, to, errDirMoveFallback)
	} else if !errors.Is(err, remote.ErrNotExist) {
		return err
	}
	if err := r.ship.Dirs.Ensure(ctx, c, path.Dir(to)); err != nil {
		return err
	}
	if err := c.Rename(ctx, from, to); err != nil {
		return err
	}
	// The registry is re-keyed at once, not through the writer: the rows
	// must never name a directory that no longer exists once the rename is
	// made. A crash between the two leaves rows under the old name, which
	// the next scan settles (the old name is gone, the new one is listed
	// and adopted or sent).
	n, err := r.job.MovePrefix(ctx, from, to)
	if errors.Is(err, registry.ErrMoveSource) || errors.Is(err, registry.ErrMoveTarget) {
		// A scan planned the old name's deletion or the new name's upload
		// since the checks: its plan stands, on the names it planned for.
		if uerr := c.Rename(ctx, to, from); uerr != nil {
			r.o.Logf("rename %s back to %s on the remote: %v", to, from, uerr)
		}
		return fmt.Errorf("%w: %w", errDirMoveFallback, err)
	}
	if err != nil {
		return fmt.Errorf("rename %s to %s: %w", from, to, err)
	}
	r.ship.Dirs.Move(from, to)
	m.Renamed, m.Files = true, n
	r.ship.Counters.Moved.Add(n)
	return nil
}
