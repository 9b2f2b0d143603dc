package watcher

import (
	"container/heap"
	"os"
	"time"

	"github.com/fsnotify/fsnotify"
)

// pend is a path with events not yet released.
type pend struct {
	kind  Kind // Changed, Removed or Moved
	from  string
	first time.Time
	at    time.Time // when it is next looked at
}

// event folds one fsnotify event into the pending set.
func (w *Watcher) event(ev fsnotify.Event) {
	rel := w.rel(ev.Name)
	if rel == "" {
		return // the root itself: its own removal shows in the scans
	}
	rel, stale := w.followMoves(rel)
	if stale {
		return
	}
	renamedFrom, renamedDir := w.lastRename, w.renamedDir
	w.lastRename, w.renamedDir = "", false
	now := w.o.Now()
	switch {
	case ev.Has(fsnotify.Create):
		fi, err := os.Lstat(ev.Name)
		if err == nil && fi.IsDir() {
			if w.o.Excluded(rel, true) {
				return
			}
			if renamedFrom != "" && renamedDir {
				w.movedDir(renamedFrom, rel, now)
				return
			}
			if renamedFrom != "" {
				w.mark(renamedFrom, Removed, "", now)
			}
			// Files may have landed before the watch did: scan it.
			if err := w.addTree(rel); err != nil {
				w.o.Logf("%v", err)
			}
			w.ready = append(w.ready, Change{Kind: Rescan, Path: rel, Since: now})
			return
		}
		if w.o.Excluded(rel, false) {
			return
		}
		if renamedFrom != "" {
			if !w.renamedUnsettled {
				// A file ferry may have shipped moved: the consumer checks
				// its content before renaming on the remote.
				w.forget(renamedFrom)
				w.mark(rel, Moved, renamedFrom, now)
				return
			}
			w.mark(renamedFrom, Removed, "", now) // never shipped as it was
		}
		w.mark(rel, Changed, "", now)
	case ev.Has(fsnotify.Write), ev.Has(fsnotify.Chmod):
		if w.o.Excluded(rel, false) {
			return
		}
		w.mark(rel, Changed, "", now)
	case ev.Has(fsnotify.Rename):
		p := w.pending[rel]
		w.lastRename, w.renamedUnsettled = rel, p != nil && p.kind != Removed
		w.renamedDir = w.unwatch(rel)
		w.mark(rel, Removed, "", now)
	case ev.Has(fsnotify.Remove):
		w.unwatch(rel)
		w.mark(rel, Removed, "", now)
	}
}

// mark records an event on rel and pushes its release back.
func (w *Watcher) mark(rel string, kind Kind, from string, now time.Time) {
	p := w.pending[rel]
	if p == nil {
		p = &pend{first: now}
		w.pending[rel] = p
	}
	switch {
	case kind == Moved:
		p.kind, p.from = Moved, from
	case p.kind == Moved && kind == Changed:
		// written after the move: still a move, then an upload if the
		// content differs, which the consumer finds out
	default:
		p.kind, p.from = kind, ""
	}
	p.at = now.Add(w.settleDelay())
	if limit := p.first.Add(w.maxDelay()); p.at.After(limit) {
		p.at = limit
	}
	heap.Push(&w.due, dueItem{at: p.at, path: rel})
}

func (w *Watcher) forget(rel string) { delete(w.pending, rel) }

// settle releases the paths that are due and have settled.
func (w *Watcher) settle() {
	now := w.o.Now()
	for len(w.due) > 0 && !w.due[0].at.After(now) {
		it := heap.Pop(&w.due).(dueItem)
		p := w.pending[it.path]
		if p == nil || !p.at.Equal(it.at) {
			continue // forgotten, or pushed back by a later event
		}
		if again, ok := w.check(it.path, p, now); !ok {
			p.at = again
			heap.Push(&w.due, dueItem{at: again, path: it.path})
			continue
		}
		delete(w.pending, it.path)
	}
}

// check decides whether p can be released now; if not, when to look again.
func (w *Watcher) check(rel string, p *pend, now time.Time) (time.Time, bool) {
	fi, err := os.Lstat(w.abs(rel))
	switch {
	case err != nil:
		// Gone: whatever happened before, the path must not exist remotely.
		w.ready = append(w.ready, Change{Kind: Removed, Path: rel, Since: p.first})
		return time.Time{}, true
	case fi.IsDir():
		if p.kind == Removed { // replaced by a directory
			w.ready = append(w.ready, Change{Kind: Removed, Path: rel, Since: p.first})
		}
		return time.Time{}, true
	}
	// Still being written (its mtime is younger than the settle delay)?
	// Wait, unless it has waited long enough already.
	settle, maxDelay := w.settleDelay(), w.maxDelay()
	if quiet := now.Sub(fi.ModTime()); quiet < settle && now.Sub(p.first) < maxDelay {
		again := fi.ModTime().Add(settle)
		if limit := p.first.Add(maxDelay); again.After(limit) {
			again = limit
		}
		return again, false
	}
	c := Change{Kind: Changed, Path: rel, Since: p.first}
	if p.kind == Moved {
		c.Kind, c.From = Moved, p.from
	}
	w.ready = append(w.ready, c)
	return time.Time{}, true
}

// dueItem is a path and when to look at it; stale items (the path was
// pushed back since) are skipped when popped.
type dueItem struct {
	at   time.Time
	path string
}

type dueHeap []dueItem

func (h dueHeap) Len() int           { return len(h) }
func (h dueHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h dueHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *dueHeap) Push(x any)        { *h = append(*h, x.(dueItem)) }
func (h *dueHeap) Pop() any {
	old := *h
	it := old[len(old)-1]
	*h = old[:len(old)-1]
	return it
}
