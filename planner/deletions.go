// What is gone locally and what is only on the remote: the deletions the
// planner decides, and the paths it must leave alone.

package planner

import (
	"context"
	"fmt"
	"path"
	"sync"

	"ferry/entry"
	"ferry/scanner"
)

// gone handles a recorded path that is no longer on disk; for a directory,
// everything recorded under it goes first. It reports whether the path is
// kept on the remote although --delete is on (excluded, or a directory
// holding something kept), so its parent is kept too.
func (p *Planner) gone(ctx context.Context, e entry.Entry, now int64) (kept bool, err error) {
	if e.Action == entry.Cleanup {
		// A temporary file a failed upload left on the server (it is
		// never on disk): its removal is still due, so the record stays.
		p.Stats.Cleanups++
		return false, nil
	}
	if p.notOurs(e.Path, e.IsDir) {
		return true, p.leave(e)
	}
	if e.IsDir && p.o.Delete {
		var kids []entry.Entry
		if err := p.rec.Dir(ctx, e.Path, func(k entry.Entry) error {
			kids = append(kids, k)
			return nil
		}); err != nil {
			return false, err
		}
		for _, k := range kids {
			k, err := p.gone(ctx, k, now)
			if err != nil {
				return false, err
			}
			kept = kept || k
		}
	}
	if kept {
		return true, p.leave(e) // it cannot be removed while it holds what stays
	}
	if e.State == entry.Pending && e.Action == entry.Delete {
		// Planned by an earlier run (refused by --max-delete, say). A
		// directory's row is no longer "done" then, so this comes before
		// the test of what was shipped.
		if p.o.Delete {
			p.Stats.Deletes++
		}
		return false, nil
	}
	if !e.Shipped() {
		return false, p.sink.Forget(e.Path) // never reached the remote: nothing to undo
	}
	if !p.o.Delete {
		if e.State == entry.Stale {
			// No upload is coming: the record says what is on the remote.
			e.State, e.Action, e.Recheck = entry.Done, entry.Upload, false
			return false, p.sink.Put(e)
		}
		return false, nil // the remote copy stays, and so does its record
	}
	p.Stats.Deletes++
	e.State, e.Action, e.Lane, e.DirtySince, e.Recheck = entry.Pending, entry.Delete, deferredLane(e.IsDir), now, true
	return false, p.sink.Put(e)
}

// notOurs reports whether a remote path is excluded and so left alone.
func (p *Planner) notOurs(rel string, isDir bool) bool {
	return p.o.Excluded != nil && !p.o.DeleteExcluded && p.o.Excluded(rel, isDir)
}

// leave settles the record of a path ferry must leave alone on the remote:
// nothing may stay planned for it (a deletion planned before the pattern
// came, an upload an interrupted run left), and what it says of the
// remote copy stays true.
func (p *Planner) leave(e entry.Entry) error {
	switch {
	case e.State == entry.Done:
		return nil
	case e.Action == entry.Delete && e.LocalSize < 0 && e.RemoteSize >= 0:
		return p.sink.Forget(e.Path) // known from a listing only: not ferry's record
	case e.Action == entry.Delete:
		// It was done before the deletion was planned.
	case e.IsDir && e.RemoteSize >= 0:
		// A directory planned over a file ferry shipped, never made: the
		// file is still on the remote, and the record stays the file's
		// (forgetting it would lose it, and tell the Git stage it was
		// deleted). A later run without the pattern plans the directory
		// again.
		e.IsDir, e.LocalSize, e.LocalMtime = false, e.RemoteSize, 0
	case e.IsDir || e.RemoteSize < 0:
		return p.sink.Forget(e.Path) // never made or never shipped
	default:
		// The remote holds what was shipped before; the newer local copy
		// was never sent, so a later run (without the pattern) sends it.
		e.LocalMtime = 0
	}
	e.State, e.Lane, e.DirtySince, e.Recheck, e.Attempts, e.LastError = entry.Done, 0, 0, false, 0, ""
	e.Action = entry.Upload
	if e.IsDir {
		e.Action = entry.Mkdir
	}
	return p.sink.Put(e)
}

// RemoteOnly walks the directories found only on the remote (with
// --delete) and plans their deletion, contents first. What is kept there —
// a conflict copy, an excluded name — keeps its directory and the ones
// above it, up to the remote-only one.
func (p *Planner) RemoteOnly(ctx context.Context, list scanner.ListFunc, parallel int) error {
	now := p.o.Now().UnixNano()
	for _, top := range p.RemoteOnlyDirs {
		var mu sync.Mutex
		keep := map[string]bool{}
		// The listing itself drops what is kept, so the walk never
		// descends into an excluded directory.
		filtered := func(ctx context.Context, dir string) ([]entry.FileInfo, error) {
			ents, err := list(ctx, dir)
			out := ents[:0]
			for _, fi := range ents {
				if entry.IsConflictCopy(fi.Name) || p.notOurs(dir+"/"+fi.Name, fi.IsDir) {
					mu.Lock()
					for d := dir; !keep[d]; d = path.Dir(d) {
						keep[d] = true
						if d == top || d == "." {
							break
						}
					}
					mu.Unlock()
					continue
				}
				out = append(out, fi)
			}
			return out, err
		}
		var dirs []string
		err := scanner.RemoteWalk(ctx, filtered, top, parallel, func(d string, ents []entry.FileInfo) error {
			for _, fi := range ents {
				rel := d + "/" + fi.Name
				if fi.IsDir {
					dirs = append(dirs, rel)
					continue
				}
				if err := p.PlanRemoteDelete(rel, fi, now); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("list remote %q: %w", top, err)
		}
		for _, d := range append(dirs, top) {
			if keep[d] {
				continue
			}
			if err := p.PlanRemoteDelete(d, entry.FileInfo{IsDir: true}, now); err != nil {
				return err
			}
		}
	}
	return nil
}

// PlanRemoteDelete plans the deletion of a remote file or directory that
// ferry never recorded and that is not on disk. The size listed is
// recorded so the worker can check it has not changed before deleting.
func (p *Planner) PlanRemoteDelete(rel string, fi entry.FileInfo, now int64) error {
	p.Stats.Deletes++
	return p.sink.Put(entry.Entry{Path: rel, IsDir: fi.IsDir, LocalSize: -1, RemoteSize: fi.Size, RemoteMtime: fi.ModTime.UnixNano(),
		State: entry.Pending, Action: entry.Delete, Lane: deferredLane(fi.IsDir), DirtySince: now, Recheck: true})
}

func deferredLane(isDir bool) int {
	if isDir {
		return entry.LaneDirDeletes
	}
	return entry.LaneDeletes
}
