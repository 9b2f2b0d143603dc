package daemon

import (
	"context"
	"path"
	"time"

	"ferry/scanner"
	"ferry/watcher"
)

// newWatcher watches the job's source with the job's excludes and delays.
func (j *job) newWatcher(logf func(string, ...any)) (*watcher.Watcher, error) {
	j.mu.Lock()
	settle, most := j.tune.SettleDelay, j.tune.MaxDelay
	j.mu.Unlock()
	return watcher.New(j.mo.Source, watcher.Options{Excluded: j.excluded(), Settle: settle, MaxDelay: most, Logf: logf})
}

// excluded applies the job's exclude patterns the way the scans do.
func (j *job) excluded() func(string, bool) bool {
	return scanner.NewWalker(j.mo.Source, scanner.Options{Excludes: j.mo.Excludes, Links: j.mo.Links}).Excluded
}

// loop turns watcher changes into live work and scan requests.
func (j *job) loop(ctx context.Context, changes <-chan watcher.Change) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case c := <-changes:
			// A burst is settled as a batch: one registry flush for all.
			batch := []watcher.Change{c}
		more:
			for len(batch) < 1024 {
				select {
				case c := <-changes:
					batch = append(batch, c)
				default:
					break more
				}
			}
			if err := j.live.Sync(ctx); err != nil {
				j.noteErr(err)
				continue
			}
			for _, c := range batch {
				j.change(ctx, c)
			}
		}
	}
}

func (j *job) change(ctx context.Context, c watcher.Change) {
	switch c.Kind {
	case watcher.Changed:
		queued, err := j.live.Changed(ctx, c.Path, c.Since)
		if err != nil {
			j.noteErr(err)
			return
		}
		if queued {
			j.liveQueued.Add(1)
			j.lastLive.Store(j.now().UnixNano())
		}
	case watcher.Moved:
		if c.Dir {
			j.movedDir(ctx, c)
			return
		}
		if _, err := j.live.Moved(ctx, c.From, c.Path, c.Since); err != nil {
			j.noteErr(err)
		}
		if j.mo.Delete {
			// If the rename cannot be made (or was not queued), the old
			// name is deleted by a scan of its directory; if it was, the
			// scan finds nothing to do.
			j.want(parent(c.From))
		}
	case watcher.Removed:
		if j.mo.Delete {
			j.want(parent(c.Path))
		}
	case watcher.Rescan:
		j.want(c.Path)
	}
}

// movedDir handles a directory moved inside the tree. It runs in the
// loop, before the changes that follow: a file edited in the directory
// just after the move must be settled against the rows the move re-keyed,
// or it would be planned as new and the rename given up for it.
func (j *job) movedDir(ctx context.Context, c watcher.Change) {
	began := time.Now()
	renamed, files, err := j.live.MovedDir(ctx, c.From, c.Path)
	if err != nil {
		j.noteErr(err)
	}
	if renamed {
		j.log.Info("dir moved", "from", c.From, "to", c.Path, "files", files, "took", time.Since(began).Round(time.Millisecond))
	} else if j.mo.Delete {
		j.want(parent(c.From)) // the old name goes as any removed directory
	}
	// What differs from what was shipped (or everything, when the remote
	// was not renamed) is sent by a scan of the new name.
	j.want(c.Path)
}

func parent(p string) string {
	d := path.Dir(p)
	if d == "." {
		return ""
	}
	return d
}
