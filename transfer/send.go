package transfer

import (
	"context"
	"errors"
	"io"
	"os"
	"path"
	"time"

	"ferry/entry"
	"ferry/internal/digest"
	"ferry/planner"
	"ferry/remote"
)

// upload ships one file. When the registry asks for a recheck (ferry shipped
// this path before, the remote listing showed a file there, or a run died
// while sending it), the remote copy is stat-ed first: identical means
// adopt it without sending; changed by someone else means the conflict
// policy decides.
func (s *Shipper) upload(ctx context.Context, c remote.Conn, e entry.Entry) error {
	keep, end := s.keeping()
	defer end()
	if e.Recheck {
		done, err := s.recheck(ctx, c, &e, keep)
		if err != nil || done {
			return err
		}
	}
	if err := s.EnsureDir(ctx, c, path.Dir(e.Path)); err != nil {
		return err
	}
	began := time.Now()
	shipped, err := Upload(ctx, c, s.local(e.Path), e.Path, s.o.Limiter, keep)
	s.noteLeftover(err)
	if err == nil {
		s.rate.note(shipped.Size, time.Since(began))
	}
	if s.dirInTheWay(ctx, c, e.Path, err) {
		// A directory ferry knew nothing of: replace it, then send again.
		if err := s.clearDir(ctx, c, e.Path); err != nil {
			return err
		}
		shipped, err = Upload(ctx, c, s.local(e.Path), e.Path, s.o.Limiter, keep)
		s.noteLeftover(err)
	}
	if errors.Is(err, remote.ErrNotExist) && !errors.Is(err, ErrVanished) {
		// The parent went away behind our back: make it again, once.
		s.Dirs.Forget(path.Dir(e.Path))
		if err := s.EnsureDir(ctx, c, path.Dir(e.Path)); err != nil {
			return err
		}
		shipped, err = Upload(ctx, c, s.local(e.Path), e.Path, s.o.Limiter, keep)
		s.noteLeftover(err)
	}
	if err != nil {
		return err
	}
	e.LocalSize, e.LocalMtime = shipped.Size, shipped.LocalMtime.UnixNano()
	e.RemoteSize, e.RemoteMtime, e.Hash, e.GitBlob = shipped.Size, shipped.RemoteMtime.UnixNano(), shipped.Hash, shipped.GitBlob
	e.GitExec = shipped.Exec
	e.MarkDone()
	s.Counters.Transferred.Add(1)
	s.Counters.Bytes.Add(shipped.Size)
	if err := s.record(e, shipped.Size); err != nil {
		return err
	}
	if s.o.Move {
		return s.moveDone(ctx, e, shipped)
	}
	return nil
}

// dirInTheWay reports whether an upload failed because a directory stands
// under the file's name on the remote.
func (s *Shipper) dirInTheWay(ctx context.Context, c remote.Conn, p string, err error) bool {
	var le *LocalError
	if err == nil || ctx.Err() != nil || remote.IsTemporary(err) || errors.As(err, &le) ||
		errors.Is(err, remote.ErrNotExist) || errors.Is(err, ErrVanished) || errors.Is(err, ErrChanged) || errors.Is(err, ErrVerify) {
		return false
	}
	st, serr := c.Stat(ctx, p)
	return serr == nil && st.IsDir
}

// recheck settles a path against its remote copy before sending, by the
// planner's verdict on what it finds. It returns done when nothing needs
// sending.
func (s *Shipper) recheck(ctx context.Context, c remote.Conn, e *entry.Entry, keep Blobs) (bool, error) {
	st, err := c.Stat(ctx, e.Path)
	if err != nil && !errors.Is(err, remote.ErrNotExist) {
		return false, err
	}
	found := planner.Found{Missing: err != nil, IsDir: err == nil && st.IsDir}
	if found.Missing || found.IsDir {
		if s.o.Conflict.Decide(found) == planner.ReplaceDir {
			// A directory became a file: the old directory goes first.
			return false, s.clearDir(ctx, c, e.Path)
		}
		return false, nil
	}
	lfi, err := os.Stat(s.local(e.Path))
	if err != nil {
		return false, nil // the upload reports what is wrong locally
	}
	found.Ours = s.describes(st, *e)
	if !found.Ours && e.Shipped() {
		// The item may have been planned while an upload of this path was
		// under way (saved again meanwhile): that upload replaced the copy
		// the item describes, and recorded what it put there before this
		// item could start. Taking its copy for someone else's would move
		// it aside as a conflict, or adopt the new save unsent when the
		// two saves have the same size within one mtime tick.
		cur, known, err := s.lastRecord(ctx, e.Path)
		if err != nil {
			return false, err
		}
		if known && cur.Shipped() && s.describes(st, cur) {
			e.RemoteSize, e.RemoteMtime, e.Hash = cur.RemoteSize, cur.RemoteMtime, cur.Hash
			found.Ours = true
		}
	}
	found.Same = st.Size == lfi.Size() && s.o.Caps.SetModTime && entry.MtimeMatch(st.ModTime, lfi.ModTime(), s.o.Caps.ModTimePrecision)
	var sum, blob string
	var exec bool
	if found.Same {
		// Already there (sent by a run that died before recording it, or
		// by another tool with the same mtime). If it is the copy ferry
		// shipped, size and mtime are not proof enough: the bytes must be
		// what was shipped. With the Git stage the same read keeps them:
		// adopted counts as shipped.
		if keep != nil {
			sum, blob, exec, err = keepFile(keep, s.local(e.Path))
		} else {
			sum, err = digest.File(s.local(e.Path))
		}
		if err != nil {
			return false, nil // the upload reports what is wrong locally
		}
		// A copy adopted from a listing has no recorded digest: its size
		// and mtime were all there was, and they still match.
		found.HashMatch = sum == e.Hash || e.Hash == ""
	}
	verdict := s.o.Conflict.Decide(found)
	switch verdict {
	case planner.Adopt:
		e.LocalSize, e.LocalMtime = lfi.Size(), lfi.ModTime().UnixNano()
		e.RemoteSize, e.RemoteMtime, e.Hash, e.GitBlob, e.GitExec = st.Size, st.ModTime.UnixNano(), sum, blob, exec
		e.MarkDone()
		s.Counters.Adopted.Add(1)
		return true, s.record(*e, 0)
	case planner.Send:
		return false, nil // our own copy: overwrite it
	case planner.OverwriteTheirs:
		s.Counters.Conflicts.Add(1)
		s.o.Logf("conflict: %s was changed on the remote; overwriting (--conflict overwrite)", e.Path)
		return false, nil
	case planner.SkipTheirs:
		s.Counters.Conflicts.Add(1)
		return false, remote.Errorf(remote.KindOther, "upload", e.Path, errConflictSkipped)
	}
	s.Counters.Conflicts.Add(1)
	aside := entry.ConflictName(e.Path, s.o.Now())
	if err := c.Rename(ctx, e.Path, aside); err != nil {
		return false, err
	}
	s.o.Logf("conflict: %s was changed on the remote; its copy is kept as %s", e.Path, aside)
	return false, nil
}

// describes reports whether e records st as the copy ferry shipped.
func (s *Shipper) describes(st entry.FileInfo, e entry.Entry) bool {
	caps := s.o.Caps
	return e.Shipped() && st.Size == e.RemoteSize &&
		(!caps.SetModTime || entry.MtimeMatch(st.ModTime, time.Unix(0, e.RemoteMtime), caps.ModTimePrecision))
}

// lastRecord reads what the registry holds for p once everything recorded
// so far is committed: an upload of p that ended before this item began
// recorded its result before letting p go (the queue never has one path in
// flight twice).
func (s *Shipper) lastRecord(ctx context.Context, p string) (entry.Entry, bool, error) {
	if err := s.o.Rec.Flush(ctx); err != nil {
		return entry.Entry{}, false, err
	}
	return s.o.Records.Get(ctx, p)
}

// touch sets the remote mtime of a file whose bytes did not change.
func (s *Shipper) touch(ctx context.Context, c remote.Conn, e entry.Entry) error {
	caps := s.o.Caps
	lfi, err := os.Stat(s.local(e.Path))
	if err != nil || !caps.SetModTime {
		e.Action = entry.Upload
		return s.upload(ctx, c, e)
	}
	st, err := c.Stat(ctx, e.Path)
	if err != nil || st.Size != e.RemoteSize || !entry.MtimeMatch(st.ModTime, time.Unix(0, e.RemoteMtime), caps.ModTimePrecision) {
		// Gone or changed on the remote: a full upload settles it.
		e.Action = entry.Upload
		return s.upload(ctx, c, e)
	}
	if err := c.Chtimes(ctx, e.Path, lfi.ModTime()); err != nil {
		return err
	}
	e.LocalSize, e.LocalMtime = lfi.Size(), lfi.ModTime().UnixNano()
	e.RemoteMtime = lfi.ModTime().Truncate(max(caps.ModTimePrecision, time.Nanosecond)).UnixNano()
	e.MarkDone()
	s.Counters.Touched.Add(1)
	return s.record(e, 0)
}

// moveDone removes the local file once its upload is recorded durably and
// only if it is still what was shipped (--move).
func (s *Shipper) moveDone(ctx context.Context, e entry.Entry, sh Shipped) error {
	if err := s.o.Rec.Flush(ctx); err != nil {
		return err
	}
	p := s.local(e.Path)
	fi, err := os.Stat(p)
	if err != nil || fi.Size() != sh.Size || !fi.ModTime().Equal(sh.LocalMtime) {
		return nil // changed since: keep it, the next run ships it
	}
	if err := os.Remove(p); err != nil {
		s.o.Logf("--move: %s is on the remote but could not be removed locally: %v", p, err)
	}
	return nil
}

// rename renames the remote copy of from to to.Path after checking that it
// is still what ferry shipped; anything unexpected falls back to an upload.
func (s *Shipper) rename(ctx context.Context, c remote.Conn, from, to entry.Entry) error {
	caps := s.o.Caps
	st, err := c.Stat(ctx, from.Path)
	same := err == nil && !st.IsDir && st.Size == from.RemoteSize &&
		(!caps.SetModTime || from.RemoteMtime == 0 || entry.MtimeMatch(st.ModTime, time.Unix(0, from.RemoteMtime), caps.ModTimePrecision))
	if same {
		if _, err := c.Stat(ctx, to.Path); err == nil {
			same = false // something is at the new name: the upload path handles it (conflict policy)
		} else if !errors.Is(err, remote.ErrNotExist) {
			return err
		}
	}
	if !same {
		e := to
		e.RemoteSize, e.RemoteMtime, e.Hash, e.Recheck = -1, 0, "", false
		return s.upload(ctx, c, e)
	}
	if err := s.EnsureDir(ctx, c, path.Dir(to.Path)); err != nil {
		return err
	}
	if err := c.Rename(ctx, from.Path, to.Path); err != nil {
		return err
	}
	if err := s.forget(from.Path); err != nil {
		return err
	}
	e := to
	e.MarkDone()
	s.Counters.Moved.Add(1)
	return s.record(e, 0)
}

// keepFile reads the local file p once into a blob kept in keep, returning
// its digest, the blob's id and whether the file, as opened, was
// executable.
func keepFile(keep Blobs, p string) (sum, blob string, exec bool, err error) {
	f, err := os.Open(p)
	if err != nil {
		return "", "", false, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", "", false, err
	}
	b, err := keep.NewBlob(fi.Size())
	if err != nil {
		return "", "", false, err
	}
	h := digest.New()
	if _, err := io.Copy(io.MultiWriter(h, b), f); err != nil {
		b.Abort()
		return "", "", false, err
	}
	if blob, err = b.Close(); err != nil {
		return "", "", false, err
	}
	return digest.Sum(h), blob, isExec(fi), nil
}
