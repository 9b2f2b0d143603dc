// Package watcher owns live change detection: fsnotify over a whole tree,
// new directories watched as they appear, the events on one path coalesced
// into one Change, released once the path has settled. It decides nothing
// about the remote: it says what changed locally, and when events were lost
// it says which subtree must be scanned again.
package watcher

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Kind is what happened to a path.
type Kind int

// The kinds of Change.
const (
	Changed Kind = iota // a file was created or written and has settled
	Removed             // a file or directory is gone
	Moved               // a file (or, with Dir, a directory) was renamed from From to Path inside the tree
	Rescan              // the subtree at Path must be scanned: new, or events were lost
)

func (k Kind) String() string {
	return [...]string{"changed", "removed", "moved", "rescan"}[k]
}

// Change is one settled change. Paths are slash-separated and relative to
// the root ("" is the root itself).
type Change struct {
	Kind  Kind
	Path  string
	From  string    // Moved: the old path
	Dir   bool      // Moved: a directory moved, with everything under it
	Since time.Time // the first event of the burst: the path's out-of-sync date
}

// Options configure a Watcher.
type Options struct {
	// Excluded leaves paths out (the job's exclude patterns).
	Excluded func(rel string, isDir bool) bool
	// Settle is how long a file must be quiet (no event, mtime unchanged)
	// before it is released; MaxDelay releases a file that never settles.
	Settle, MaxDelay time.Duration
	// Logf reports what the watcher cannot do (watch limit, overflow).
	Logf func(format string, args ...any)
	// Now is the clock (tests).
	Now func() time.Time
}

// Watcher watches one tree.
type Watcher struct {
	root string
	o    Options
	fsw  *fsnotify.Watcher
	// settleD and maxD are o.Settle and o.MaxDelay, changeable while Run
	// runs (a config reload).
	settleD, maxD atomic.Int64

	pending map[string]*pend
	due     dueHeap
	ready   []Change
	// lastRename is the path of the event just before, when it was a
	// rename away: inotify reports a move as that, then a create.
	// renamedUnsettled says that path still had unreleased changes, so it
	// never was shipped as it is and the move is not a remote rename.
	lastRename       string
	renamedUnsettled bool
	// renamedDir says lastRename was a watched directory.
	renamedDir bool
	// dirs are the directories watched (relative paths).
	dirs map[string]bool
	// moves are the last directory moves, oldest first: events the kernel
	// queued before the watches followed a move still carry the old name.
	moves []dirMove
}

// dirMove is a directory moved inside the tree.
type dirMove struct{ from, to string }

// New watches root and everything under it that is not excluded.
func New(root string, o Options) (*Watcher, error) {
	if o.Excluded == nil {
		o.Excluded = func(string, bool) bool { return false }
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.MaxDelay < o.Settle {
		o.MaxDelay = o.Settle
	}
	fsw, err := fsnotify.NewBufferedWatcher(4096)
	if err != nil {
		return nil, fmt.Errorf("watch %s: %w%s", root, err, limitHint(err))
	}
	w := &Watcher{root: root, o: o, fsw: fsw, pending: map[string]*pend{}, dirs: map[string]bool{}}
	w.SetDelays(o.Settle, o.MaxDelay)
	if err := w.addTree(""); err != nil {
		fsw.Close()
		return nil, err
	}
	return w, nil
}

// limitHint tells which sysctl to raise when the kernel refused a watch.
func limitHint(err error) string {
	switch {
	case errors.Is(err, syscall.ENOSPC):
		return " (the kernel's inotify watch limit is reached: raise the sysctl fs.inotify.max_user_watches)"
	case errors.Is(err, syscall.EMFILE):
		return " (too many inotify instances: raise the sysctl fs.inotify.max_user_instances)"
	}
	return ""
}

// addTree watches dir and its subdirectories. A directory the kernel will
// not watch is reported and left to the scans.
func (w *Watcher) addTree(dir string) error {
	return filepath.WalkDir(w.abs(dir), func(p string, d fs.DirEntry, err error) error {
		rel := w.rel(p)
		if err != nil {
			if rel == dir && dir == "" {
				return fmt.Errorf("watch %s: %w", w.root, err)
			}
			return nil // vanished or unreadable: the scan reports it
		}
		if !d.IsDir() {
			return nil
		}
		if rel != "" && w.o.Excluded(rel, true) {
			return filepath.SkipDir
		}
		if err := w.fsw.Add(p); err != nil {
			if rel == "" {
				return fmt.Errorf("watch %s: %w%s", w.root, err, limitHint(err))
			}
			w.o.Logf("watch %s: %v%s; changes under it are found by the periodic scans only", p, err, limitHint(err))
			return filepath.SkipDir
		}
		w.dirs[rel] = true
		return nil
	})
}

// SetDelays changes the settle and maximum delays, for what is released
// from now on.
func (w *Watcher) SetDelays(settle, maxDelay time.Duration) {
	w.settleD.Store(int64(settle))
	w.maxD.Store(int64(max(maxDelay, settle)))
}

func (w *Watcher) settleDelay() time.Duration { return time.Duration(w.settleD.Load()) }
func (w *Watcher) maxDelay() time.Duration    { return time.Duration(w.maxD.Load()) }

// Close stops watching.
func (w *Watcher) Close() error { return w.fsw.Close() }

func (w *Watcher) abs(rel string) string { return filepath.Join(w.root, filepath.FromSlash(rel)) }

func (w *Watcher) rel(abs string) string {
	r, err := filepath.Rel(w.root, abs)
	if err != nil || r == "." {
		return ""
	}
	return filepath.ToSlash(r)
}

// Run delivers changes to out until ctx ends or the watcher fails. The
// events keep being read while out is not ready, so a slow consumer never
// makes the kernel drop events.
func (w *Watcher) Run(ctx context.Context, out chan<- Change) error {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		w.arm(timer)
		var send chan<- Change
		var next Change
		if len(w.ready) > 0 {
			send, next = out, w.ready[0]
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case ev, ok := <-w.fsw.Events:
			if !ok {
				return errors.New("watcher closed")
			}
			w.event(ev)
		case err, ok := <-w.fsw.Errors:
			if !ok {
				return errors.New("watcher closed")
			}
			w.failure(err)
		case <-timer.C:
			w.settle()
		case send <- next:
			w.ready = w.ready[1:]
		}
	}
}

// arm points the timer at the earliest path due.
func (w *Watcher) arm(t *time.Timer) {
	t.Stop()
	select {
	case <-t.C:
	default:
	}
	if len(w.due) > 0 {
		t.Reset(max(0, w.due[0].at.Sub(w.o.Now())))
	}
}

// failure handles an error from the kernel's side: events were lost, so the
// whole tree is scanned again.
func (w *Watcher) failure(err error) {
	if errors.Is(err, fsnotify.ErrEventOverflow) {
		w.o.Logf("watch %s: the kernel's event queue overflowed, so changes were lost; the tree is scanned again "+
			"(raise the sysctl fs.inotify.max_queued_events if this repeats)", w.root)
	} else {
		w.o.Logf("watch %s: %v; the tree is scanned again", w.root, err)
	}
	w.ready = append(w.ready, Change{Kind: Rescan, Path: "", Since: w.o.Now()})
}
