package transfer

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"ferry/entry"
	"ferry/planner"
	"ferry/remote"
	"ferry/scanner"
)

// A path whose type changed (a local directory replaced by a file, or the
// reverse) finds the old type on the remote in its way. The deletion phase
// comes after every upload, too late for it, so the item itself removes
// what is in its way before it is put or made, under the rules of any
// deletion (the planner's Safety): only with --delete, never what someone
// else changed or what ferry keeps (conflict copies, excluded names), never
// past --max-delete, and never where something under it failed this run.

// inTheWay is the error of a type change without --delete.
func inTheWay(op, p string, remoteDir bool) error {
	what, ours := "file", "directory"
	if remoteDir {
		what, ours = "directory", "file"
	}
	return remote.Errorf(remote.KindExist, op, p, fmt.Errorf("the remote holds a %s of that name where the source has a %s; --delete would replace it", what, ours))
}

// EnsureDir makes dir (and its parents) on the remote; when a file stands
// where one of them must be, it is replaced first (--delete) or reported.
func (s *Shipper) EnsureDir(ctx context.Context, c remote.Conn, dir string) error {
	err := s.Dirs.Ensure(ctx, c, dir)
	if err == nil || ctx.Err() != nil || remote.IsTemporary(err) {
		return err
	}
	blocker, found, serr := fileAbove(ctx, c, dir)
	if serr != nil {
		return err
	}
	if found {
		if err := s.clearFile(ctx, c, blocker); err != nil {
			return err
		}
	}
	// Made again also when no file is in the way now: another item (the
	// parent's own) may have replaced it between our mkdir and the look.
	return s.Dirs.Ensure(ctx, c, dir)
}

// fileAbove finds the first path from the root down to dir that is a file
// on the remote.
func fileAbove(ctx context.Context, c remote.Conn, dir string) (string, bool, error) {
	if dir == "" || dir == "." {
		return "", false, nil
	}
	parts := strings.Split(dir, "/")
	for i := range parts {
		p := strings.Join(parts[:i+1], "/")
		st, err := c.Stat(ctx, p)
		if errors.Is(err, remote.ErrNotExist) {
			return "", false, nil
		}
		if err != nil {
			return "", false, err
		}
		if !st.IsDir {
			return p, true, nil
		}
	}
	return "", false, nil
}

// reserve asks the planner's Safety for n deletions a type change at p
// would make; a refusal becomes the item's error.
func (s *Shipper) reserve(ctx context.Context, op, p string, n int64) error {
	err := s.o.Safety.Reserve(ctx, n)
	if errors.Is(err, planner.ErrTooManyDeletes) {
		return remote.Errorf(remote.KindOther, op, p, err)
	}
	return err
}

// matches reports whether the remote file st is still what e recorded.
func (s *Shipper) matches(st entry.FileInfo, e entry.Entry, prec time.Duration) bool {
	return !st.IsDir && st.Size == e.RemoteSize && (!s.o.Caps.SetModTime || e.RemoteMtime == 0 || entry.MtimeMatch(st.ModTime, time.Unix(0, e.RemoteMtime), prec))
}

// clearFile removes the remote file p that stands where the source has a
// directory, if it is still what ferry recorded (or listed) there.
func (s *Shipper) clearFile(ctx context.Context, c remote.Conn, p string) error {
	if !s.o.Delete {
		return inTheWay("mkdir", p, false)
	}
	defer s.o.Safety.Replacing()()
	st, err := c.Stat(ctx, p)
	if errors.Is(err, remote.ErrNotExist) || (err == nil && st.IsDir) {
		return nil // another item replaced it already
	}
	if err != nil {
		return err
	}
	if s.o.Safety.Kept(p, false) {
		return remote.Errorf(remote.KindExist, "mkdir", p, fmt.Errorf("%w: the remote file of that name is excluded, so not ferry's to delete (--delete-excluded would)", planner.ErrKept))
	}
	if err := s.o.Rec.Flush(ctx); err != nil {
		return err
	}
	e, known, err := s.o.Records.Get(ctx, p)
	if err != nil {
		return err
	}
	// The entry is the file ferry shipped, or the directory planned in
	// its place carrying what the file was (see the planner).
	if known && e.RemoteSize >= 0 {
		prec := s.o.Caps.ModTimePrecision
		if e.Hash == "" {
			prec = s.o.Caps.ListModTimePrecision // known from a listing
		}
		if !s.matches(st, e, prec) {
			s.Counters.Conflicts.Add(1)
			return remote.Errorf(remote.KindOther, "mkdir", p, fmt.Errorf("%w: the remote file of that name was changed by someone else since ferry recorded it; not deleted", planner.ErrKept))
		}
	}
	if err := s.reserve(ctx, "mkdir", p, 1); err != nil {
		return err
	}
	if err := c.Remove(ctx, p); err != nil && !errors.Is(err, remote.ErrNotExist) {
		return err
	}
	s.Counters.Deleted.Add(1)
	s.o.Safety.Replaced()
	s.o.Logf("replaced remote file %s with a directory (--delete)", p)
	if known && !e.IsDir {
		return s.o.Rec.Forget(p)
	}
	return nil
}

// oldEntry is one path of a remote directory a file replaces.
type oldEntry struct {
	path string
	fi   entry.FileInfo
	rec  *entry.Entry // what ferry recorded of it, if anything
}

// clearDir removes the remote directory p, and all it holds, that stands
// where the source has a file. Nothing is removed unless all of it may be.
func (s *Shipper) clearDir(ctx context.Context, c remote.Conn, p string) error {
	if !s.o.Delete {
		return inTheWay("upload", p, true)
	}
	defer s.o.Safety.Replacing()()
	if d := s.o.Safety.FailedUnder(p); d != "" {
		return remote.Errorf(remote.KindOther, "upload", p, fmt.Errorf("%w: the remote directory of that name is kept this run, since something under %s failed", planner.ErrKept, d))
	}
	if err := s.o.Rec.Flush(ctx); err != nil {
		return err
	}
	recorded, err := s.recordedUnder(ctx, p)
	if err != nil {
		return err
	}
	var files, dirs []oldEntry
	err = scanner.RemoteWalk(ctx, scanner.ListWith(c), p, 1, func(dir string, ents []entry.FileInfo) error {
		for _, fi := range ents {
			o := oldEntry{path: dir + "/" + fi.Name, fi: fi}
			if e, ok := recorded[o.path]; ok {
				o.rec = &e
			}
			if fi.IsDir {
				dirs = append(dirs, o)
			} else {
				files = append(files, o)
			}
		}
		return nil
	})
	if errors.Is(err, remote.ErrNotExist) {
		return nil // gone since
	}
	if err != nil {
		return err
	}
	for _, o := range append(files, dirs...) {
		if err := s.mayRemove(ctx, c, o); err != nil {
			return remote.Errorf(remote.KindOther, "upload", p, fmt.Errorf("%w: the remote directory of that name %v; nothing in it was deleted", planner.ErrKept, err))
		}
	}
	n := int64(len(dirs)) + 1
	for _, o := range files {
		if !entry.IsTemp(o.fi.Name) {
			n++
		}
	}
	if err := s.reserve(ctx, "upload", p, n); err != nil {
		return err
	}
	// Files first, then directories deepest first, then p itself.
	sort.SliceStable(dirs, func(i, j int) bool {
		return strings.Count(dirs[i].path, "/") > strings.Count(dirs[j].path, "/")
	})
	for _, o := range append(append(files, dirs...), oldEntry{path: p, fi: entry.FileInfo{IsDir: true}}) {
		if err := c.Remove(ctx, o.path); err != nil && !errors.Is(err, remote.ErrNotExist) {
			return fmt.Errorf("replace the remote directory %q with a file: %w", p, err)
		}
		if entry.IsTemp(o.fi.Name) {
			s.Counters.Cleaned.Add(1)
		} else {
			s.Counters.Deleted.Add(1)
			s.o.Safety.Replaced()
		}
		if o.fi.IsDir {
			s.Dirs.Forget(o.path)
		}
	}
	// Whatever ferry recorded under p is gone with it.
	for q := range recorded {
		if err := s.o.Rec.Forget(q); err != nil {
			return err
		}
	}
	s.o.Logf("replaced remote directory %s with a file (--delete): %d entries deleted", p, n)
	return nil
}

// mayRemove says why one entry of a directory a file replaces must stay.
func (s *Shipper) mayRemove(ctx context.Context, c remote.Conn, o oldEntry) error {
	switch {
	case entry.IsConflictCopy(o.fi.Name):
		return fmt.Errorf("holds the conflict copy %s (someone else's version, kept)", o.path)
	case entry.IsTemp(o.fi.Name):
		return nil // a dead run's temporary file
	case s.o.Safety.Kept(o.path, o.fi.IsDir):
		return fmt.Errorf("holds %s, which the excludes leave alone (--delete-excluded would delete it)", o.path)
	case o.fi.IsDir || o.rec == nil || o.rec.RemoteSize < 0:
		return nil // a directory, or a file ferry never recorded: --delete removes it
	}
	e := o.rec
	st, err := c.Stat(ctx, o.path)
	if errors.Is(err, remote.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	prec := s.o.Caps.ModTimePrecision
	if e.LocalSize < 0 {
		prec = s.o.Caps.ListModTimePrecision
	}
	if !s.matches(st, *e, prec) {
		s.Counters.Conflicts.Add(1)
		return fmt.Errorf("holds %s, changed on the remote since ferry recorded it", o.path)
	}
	return nil
}

// recordedUnder returns what the registry holds under directory p.
func (s *Shipper) recordedUnder(ctx context.Context, p string) (map[string]entry.Entry, error) {
	out := map[string]entry.Entry{}
	todo := []string{p}
	for len(todo) > 0 {
		d := todo[len(todo)-1]
		todo = todo[:len(todo)-1]
		if err := s.o.Records.Dir(ctx, d, func(e entry.Entry) error {
			out[e.Path] = e
			if e.IsDir {
				todo = append(todo, e.Path)
			}
			return nil
		}); err != nil {
			return nil, err
		}
	}
	return out, nil
}
