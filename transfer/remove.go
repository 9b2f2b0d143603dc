package transfer

import (
	"context"
	"errors"
	"path"

	"ferry/entry"
	"ferry/remote"
)

// Remove deletes one remote path, after checking that it is still what
// ferry recorded: a file someone changed since is not deleted, and nothing
// is deleted under a directory where something failed this pass.
func (s *Shipper) Remove(ctx context.Context, c remote.Conn, e entry.Entry) error {
	if s.o.Safety.HeldBack(e.Path) {
		e.Defer()
		s.o.Logf("not deleting %s: something under %s failed this run", e.Path, path.Dir(e.Path))
		return s.o.Rec.Put(e)
	}
	st, err := c.Stat(ctx, e.Path)
	if errors.Is(err, remote.ErrNotExist) {
		return s.forget(e.Path)
	}
	if err != nil {
		return err
	}
	if e.IsDir {
		if err := c.Remove(ctx, e.Path); err != nil {
			if errors.Is(err, remote.ErrNotExist) {
				return s.forget(e.Path)
			}
			if !st.IsDir {
				return err
			}
			// Not empty: it holds something ferry keeps (a conflict copy).
			s.o.Logf("kept remote directory %s: it is not empty (%v)", e.Path, err)
			e.KeepDir()
			return s.o.Rec.Put(e)
		}
		s.Counters.Deleted.Add(1)
		return s.forget(e.Path)
	}
	prec := s.o.Caps.ModTimePrecision
	if e.LocalSize < 0 { // known from a listing only
		prec = s.o.Caps.ListModTimePrecision
	}
	if !s.matches(st, e, prec) {
		s.Counters.Conflicts.Add(1)
		return remote.Errorf(remote.KindOther, "delete", e.Path, errors.New("changed on the remote since ferry recorded it; not deleted"))
	}
	if err := c.Remove(ctx, e.Path); err != nil && !errors.Is(err, remote.ErrNotExist) {
		return err
	}
	s.Counters.Deleted.Add(1)
	return s.forget(e.Path)
}
