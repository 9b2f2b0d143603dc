// Package scanner owns finding out what exists: the local tree (walked
// directory by directory, never held whole) and the remote tree (listed over
// remote.Conn, several directories at a time). Both stream one directory at
// a time to the planner, which compares them and drops them.
package scanner

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/go-git/go-git/v5/plumbing/format/gitignore"

	"ferry/entry"
)

// Links says what the local walk does with symbolic links.
type Links int

// Symlink policies.
const (
	SkipLinks   Links = iota // count and skip them (default: a link may point anywhere)
	FollowLinks              // mirror what they point to; loops are detected and skipped
)

// Options shape the local walk.
type Options struct {
	// Excludes are gitignore-style patterns matched against paths relative
	// to the root ("*.tmp", "/build/", "node_modules/", "!keep.tmp").
	Excludes []string
	Links    Links
	// Start is the subtree to walk, relative to the root ("" = all of it):
	// the daemon rescans only where the watcher lost track.
	Start string
}

// File is one local entry.
type File struct {
	Name  string
	IsDir bool
	Size  int64
	Mtime time.Time
	// Link is true when the entry is a symbolic link that the walk skipped
	// (SkipLinks) or followed into a loop.
	Link bool
}

// Dir is one local directory's content.
type Dir struct {
	Path  string // relative, slash-separated; "" is the root
	Files []File // sorted by name; excluded entries are left out
	// Err is set when the directory could not be read; Files is then
	// empty, and the caller must not conclude that anything was deleted.
	Err error
}

// Walker walks a local tree.
type Walker struct {
	root string
	opts Options
	ign  gitignore.Matcher
}

// NewWalker prepares a walk of root.
func NewWalker(root string, opts Options) *Walker {
	return &Walker{root: root, opts: opts, ign: matcher(opts.Excludes)}
}

func matcher(patterns []string) gitignore.Matcher {
	var ps []gitignore.Pattern
	for _, p := range patterns {
		if p = strings.TrimSpace(p); p != "" {
			ps = append(ps, gitignore.ParsePattern(p, nil))
		}
	}
	return gitignore.NewMatcher(ps)
}

// Excluded reports whether a relative path is excluded by the patterns or is
// one of ferry's own temporary files.
func (w *Walker) Excluded(rel string, isDir bool) bool {
	if entry.IsTemp(path.Base(rel)) {
		return true
	}
	return w.ign.Match(strings.Split(rel, "/"), isDir)
}

// Excluder returns the test the walk applies to the patterns alone (not to
// temporary names), for paths found on the remote: an excluded name is not
// ferry's there either, and a directory pattern such as "cache/" matches a
// remote directory as it matches a local one. It returns nil when there is
// no pattern.
func Excluder(patterns []string) func(rel string, isDir bool) bool {
	ign := matcher(patterns)
	for _, p := range patterns {
		if strings.TrimSpace(p) != "" {
			return func(rel string, isDir bool) bool { return ign.Match(strings.Split(rel, "/"), isDir) }
		}
	}
	return nil
}

// Walk calls fn for every directory, parents before children, depth first.
// fn may return fs.SkipDir to skip a directory's children. Only the stack
// of directories still to visit is held in memory.
func (w *Walker) Walk(ctx context.Context, fn func(*Dir) error) error {
	start := filepath.Join(w.root, filepath.FromSlash(w.opts.Start))
	fi, err := os.Stat(start)
	if err != nil {
		return fmt.Errorf("source %s: %w", start, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("source %s: not a directory", start)
	}
	type frame struct {
		rel     string
		devIno  [2]uint64
		parents map[[2]uint64]bool // only for FollowLinks loop detection
	}
	stack := []frame{{rel: w.opts.Start, devIno: devIno(fi)}}
	for len(stack) > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		f := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		d := w.read(f.rel)
		err := fn(d)
		if errors.Is(err, fs.SkipDir) {
			continue
		}
		if err != nil {
			return err
		}
		// Push children in reverse so they are visited in name order.
		for i := len(d.Files) - 1; i >= 0; i-- {
			c := d.Files[i]
			if !c.IsDir || c.Link {
				continue
			}
			child := frame{rel: path.Join(f.rel, c.Name)}
			if w.opts.Links == FollowLinks {
				st, err := os.Stat(filepath.Join(w.root, filepath.FromSlash(child.rel)))
				if err != nil {
					continue
				}
				child.devIno = devIno(st)
				child.parents = map[[2]uint64]bool{f.devIno: true}
				for k := range f.parents {
					child.parents[k] = true
				}
				if child.parents[child.devIno] {
					continue // a link back to an ancestor
				}
			}
			stack = append(stack, child)
		}
	}
	return nil
}

// read lists one directory, stat-ing each entry without following links
// unless asked to.
func (w *Walker) read(rel string) *Dir {
	d := &Dir{Path: rel}
	abs := filepath.Join(w.root, filepath.FromSlash(rel))
	ents, err := os.ReadDir(abs)
	if err != nil {
		d.Err = fmt.Errorf("read directory %s: %w", abs, err)
		return d
	}
	for _, de := range ents {
		name := de.Name()
		crel := path.Join(rel, name)
		fi, err := de.Info()
		if errors.Is(err, fs.ErrNotExist) {
			continue // gone since the listing
		}
		if err != nil {
			d.Err = fmt.Errorf("stat %s: %w", filepath.Join(abs, name), err)
			continue
		}
		if f, ok := w.entry(filepath.Join(abs, name), crel, fi); ok {
			d.Files = append(d.Files, f)
		}
	}
	return d // os.ReadDir sorts by name
}

// entry turns what Lstat said of a path into a File, following the walk's
// rules for links, special files and excludes; ok is false when the path
// is left out.
func (w *Walker) entry(abs, rel string, fi fs.FileInfo) (File, bool) {
	f := File{Name: path.Base(rel)}
	if fi.Mode()&fs.ModeSymlink != 0 {
		if w.opts.Links == SkipLinks {
			f.Link = true
			return f, !w.Excluded(rel, false)
		}
		target, err := os.Stat(abs)
		if err != nil {
			f.Link = true // dangling: nothing to mirror
			return f, true
		}
		fi = target
	}
	switch {
	case fi.IsDir():
		f.IsDir = true
	case fi.Mode().IsRegular():
		f.Size = fi.Size()
	default:
		return f, false // sockets, devices, fifos are not mirrored
	}
	f.Mtime = fi.ModTime()
	if w.Excluded(rel, f.IsDir) {
		return f, false
	}
	return f, true
}

// Stat looks at one path as the walk would see it in its directory: ok is
// false when it does not exist or is left out (excluded, special file).
func (w *Walker) Stat(rel string) (f File, ok bool, err error) {
	abs := filepath.Join(w.root, filepath.FromSlash(rel))
	fi, err := os.Lstat(abs)
	if errors.Is(err, fs.ErrNotExist) {
		return File{}, false, nil
	}
	if err != nil {
		return File{}, false, fmt.Errorf("stat %s: %w", abs, err)
	}
	f, ok = w.entry(abs, rel, fi)
	return f, ok, nil
}

func devIno(fi fs.FileInfo) [2]uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return [2]uint64{uint64(st.Dev), st.Ino}
	}
	return [2]uint64{}
}
