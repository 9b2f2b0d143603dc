package mirror

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"ferry/entry"
	"ferry/remote"
	"ferry/scanner"
)

// A path whose type changed (a local directory replaced by a file, or the
// reverse) finds the old type on the remote in its way. The deletion phase
// comes after every upload, too late for it, so the item itself removes
// what is in its way before it is put or made, under the rules of any
// deletion: only with --delete, never what someone else changed or what
// ferry keeps (conflict copies, excluded names), never past --max-delete,
// and never where something under it failed this run.

// replacer serialises the removals type changes make, and keeps the
// deletions they made this pass against --max-delete.
type replacer struct {
	mu      sync.Mutex // one replacement at a time: several items may find the same file in their way
	used    int64      // deletions made by replacements this pass
	refused int64      // replacements refused for --max-delete this pass
}

// reset starts a new pass's count.
func (p *replacer) reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.used, p.refused = 0, 0
}

func (p *replacer) counts() (used, refused int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.used, p.refused
}

// errKept says why a type change cannot remove what is in its way.
var errKept = errors.New("not replaced")

// inTheWay is the error of a type change without --delete.
func inTheWay(op, p string, remoteDir bool) error {
	what, ours := "file", "directory"
	if remoteDir {
		what, ours = "directory", "file"
	}
	return remote.Errorf(remote.KindExist, op, p, fmt.Errorf("the remote holds a %s of that name where the source has a %s; --delete would replace it", what, ours))
}

// ensureDir makes dir (and its parents) on the remote; when a file stands
// where one of them must be, it is replaced first (--delete) or reported.
func (r *runner) ensureDir(ctx context.Context, c remote.Conn, dir string) error {
	err := r.dirs.ensure(ctx, c, dir)
	if err == nil || ctx.Err() != nil || remote.IsTemporary(err) {
		return err
	}
	blocker, found, serr := fileAbove(ctx, c, dir)
	if serr != nil {
		return err
	}
	if found {
		if err := r.clearFile(ctx, c, blocker); err != nil {
			return err
		}
	}
	// Made again also when no file is in the way now: another item (the
	// parent's own) may have replaced it between our mkdir and the look.
	return r.dirs.ensure(ctx, c, dir)
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

// clearFile removes the remote file p that stands where the source has a
// directory, if it is still what ferry recorded (or listed) there.
func (r *runner) clearFile(ctx context.Context, c remote.Conn, p string) error {
	if !r.o.Delete {
		return inTheWay("mkdir", p, false)
	}
	r.replace.mu.Lock()
	defer r.replace.mu.Unlock()
	st, err := c.Stat(ctx, p)
	if errors.Is(err, remote.ErrNotExist) || (err == nil && st.IsDir) {
		return nil // another item replaced it already
	}
	if err != nil {
		return err
	}
	if r.excluded != nil && !r.o.DeleteExcluded && r.excluded(p, false) {
		return remote.Errorf(remote.KindExist, "mkdir", p, fmt.Errorf("%w: the remote file of that name is excluded, so not ferry's to delete (--delete-excluded would)", errKept))
	}
	if err := r.w.Flush(ctx); err != nil {
		return err
	}
	e, known, err := r.job.Get(ctx, p)
	if err != nil {
		return err
	}
	// The entry is the file ferry shipped, or the directory planned in
	// its place carrying what the file was (see the planner).
	if known && e.RemoteSize >= 0 {
		prec := r.caps.ModTimePrecision
		if e.Hash == "" {
			prec = r.caps.ListModTimePrecision // known from a listing
		}
		if st.Size != e.RemoteSize || (r.caps.SetModTime && e.RemoteMtime != 0 && !entry.MtimeMatch(st.ModTime, time.Unix(0, e.RemoteMtime), prec)) {
			r.conflicts.Add(1)
			return remote.Errorf(remote.KindOther, "mkdir", p, fmt.Errorf("%w: the remote file of that name was changed by someone else since ferry recorded it; not deleted", errKept))
		}
	}
	if err := r.reserveLocked(ctx, "mkdir", p, 1); err != nil {
		return err
	}
	if err := c.Remove(ctx, p); err != nil && !errors.Is(err, remote.ErrNotExist) {
		return err
	}
	r.deleted.Add(1)
	r.replace.used++
	r.o.Logf("replaced remote file %s with a directory (--delete)", p)
	if known && !e.IsDir {
		return r.w.Forget(p)
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
func (r *runner) clearDir(ctx context.Context, c remote.Conn, p string) error {
	if !r.o.Delete {
		return inTheWay("upload", p, true)
	}
	r.replace.mu.Lock()
	defer r.replace.mu.Unlock()
	if d := r.failedUnder(p); d != "" {
		return remote.Errorf(remote.KindOther, "upload", p, fmt.Errorf("%w: the remote directory of that name is kept this run, since something under %s failed", errKept, d))
	}
	if err := r.w.Flush(ctx); err != nil {
		return err
	}
	recorded, err := r.recordedUnder(ctx, p)
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
		if err := r.mayRemove(ctx, c, o); err != nil {
			return remote.Errorf(remote.KindOther, "upload", p, fmt.Errorf("%w: the remote directory of that name %v; nothing in it was deleted", errKept, err))
		}
	}
	n := int64(len(dirs)) + 1
	for _, o := range files {
		if !entry.IsTemp(o.fi.Name) {
			n++
		}
	}
	if err := r.reserveLocked(ctx, "upload", p, n); err != nil {
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
			r.cleaned.Add(1)
		} else {
			r.deleted.Add(1)
			r.replace.used++
		}
		if o.fi.IsDir {
			r.dirs.forget(o.path)
		}
	}
	// Whatever ferry recorded under p is gone with it.
	for q := range recorded {
		if err := r.w.Forget(q); err != nil {
			return err
		}
	}
	r.o.Logf("replaced remote directory %s with a file (--delete): %d entries deleted", p, n)
	return nil
}

// mayRemove says why one entry of a directory a file replaces must stay.
func (r *runner) mayRemove(ctx context.Context, c remote.Conn, o oldEntry) error {
	switch {
	case entry.IsConflictCopy(o.fi.Name):
		return fmt.Errorf("holds the conflict copy %s (someone else's version, kept)", o.path)
	case entry.IsTemp(o.fi.Name):
		return nil // a dead run's temporary file
	case r.excluded != nil && !r.o.DeleteExcluded && r.excluded(o.path, o.fi.IsDir):
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
	prec := r.caps.ModTimePrecision
	if e.LocalSize < 0 {
		prec = r.caps.ListModTimePrecision
	}
	if st.IsDir || st.Size != e.RemoteSize || (r.caps.SetModTime && e.RemoteMtime != 0 && !entry.MtimeMatch(st.ModTime, time.Unix(0, e.RemoteMtime), prec)) {
		r.conflicts.Add(1)
		return fmt.Errorf("holds %s, changed on the remote since ferry recorded it", o.path)
	}
	return nil
}

// reserveLocked checks that n more deletions keep this pass within
// --max-delete; r.replace.mu is held.
func (r *runner) reserveLocked(ctx context.Context, op, p string, n int64) error {
	if !r.o.MaxDelete.Set {
		return nil
	}
	total, err := r.job.Count(ctx, entry.Done)
	if err != nil {
		return err
	}
	if limit := r.o.MaxDelete.Limit(total); r.replace.used+n > limit {
		r.replace.refused++
		return remote.Errorf(remote.KindOther, op, p, fmt.Errorf("%w: refused: replacing it deletes %d remote entries, more than the deletion limit allows (%d: --max-delete, or max_delete in the config; %d were used this run); nothing was deleted", errKept, n, limit, r.replace.used))
	}
	return nil
}

// failedUnder returns a directory at or under p where something failed
// this run, "" when none.
func (r *runner) failedUnder(p string) string {
	r.errMu.Lock()
	defer r.errMu.Unlock()
	for d := range r.failedDirs {
		if d == p || strings.HasPrefix(d, p+"/") {
			return d
		}
	}
	return ""
}

// recordedUnder returns what the registry holds under directory p.
func (r *runner) recordedUnder(ctx context.Context, p string) (map[string]entry.Entry, error) {
	out := map[string]entry.Entry{}
	todo := []string{p}
	for len(todo) > 0 {
		d := todo[len(todo)-1]
		todo = todo[:len(todo)-1]
		if err := r.job.Dir(ctx, d, func(e entry.Entry) error {
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
