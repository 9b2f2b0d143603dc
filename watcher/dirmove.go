package watcher

import (
	"container/heap"
	"os"
	"strings"
	"time"
)

// A directory renamed inside the tree arrives as a rename of the old name
// then a create of the new one in its (watched) parent. The kernel's
// watches follow the directory, but fsnotify names events by the path a
// watch was added with, so the old subtree's watches are dropped at the
// rename and the new subtree is watched afresh at the create.

// under reports whether p is dir or lies under it.
func under(p, dir string) bool { return p == dir || strings.HasPrefix(p, dir+"/") }

// unwatch forgets the watches at and under rel, if rel was a watched
// directory, and reports whether it was.
func (w *Watcher) unwatch(rel string) bool {
	if !w.dirs[rel] {
		return false
	}
	for d := range w.dirs {
		if under(d, rel) {
			delete(w.dirs, d)
			// Already gone when the kernel dropped it (a removal, or
			// fsnotify's own handling of the moved directory).
			_ = w.fsw.Remove(w.abs(d))
		}
	}
	return true
}

// movedDir handles a watched directory renamed from from to to inside the
// tree: its new subtree is watched, the changes still pending under the
// old name follow it, and one Moved change with Dir says what happened.
// The consumer renames the remote directory if it can, and settles what
// differs by scanning to.
func (w *Watcher) movedDir(from, to string, now time.Time) {
	delete(w.pending, from) // marked removed by the rename: it moved instead
	for p, pd := range w.pending {
		if !under(p, from) {
			continue
		}
		delete(w.pending, p)
		if pd.kind == Removed {
			continue // gone before the move: the scan of to settles it
		}
		np := to + p[len(from):]
		moved := *pd
		moved.kind = Changed
		if pd.kind == Moved && under(pd.from, from) {
			moved.kind, moved.from = Moved, to+pd.from[len(from):]
		} else if pd.kind == Moved {
			moved.kind, moved.from = Moved, pd.from
		}
		w.pending[np] = &moved
		heap.Push(&w.due, dueItem{at: moved.at, path: np})
	}
	if err := w.addTree(to); err != nil {
		w.o.Logf("%v", err)
	}
	w.moves = append(w.moves, dirMove{from: from, to: to})
	if len(w.moves) > 8 {
		w.moves = w.moves[1:]
	}
	w.ready = append(w.ready, Change{Kind: Moved, Dir: true, Path: to, From: from, Since: now})
}

// followMoves renames a path under a directory moved away to where it is
// now: the kernel named the event before the watch followed the move. An
// event on the moved directory itself (fsnotify's own report that the
// watched directory moved) is stale: it was reported already.
func (w *Watcher) followMoves(rel string) (string, bool) {
	for _, m := range w.moves {
		if !under(rel, m.from) {
			continue
		}
		if _, err := os.Lstat(w.abs(m.from)); err == nil {
			continue // the old name exists again: the event is about it
		}
		if rel == m.from {
			return rel, true
		}
		rel = m.to + rel[len(m.from):]
	}
	return rel, false
}
