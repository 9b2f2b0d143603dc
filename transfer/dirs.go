package transfer

import (
	"context"
	"path"
	"strings"
	"sync"

	"ferry/remote"
)

// Dirs remembers which remote directories exist, so each is made once
// per run however many files land in it, and concurrent uploads into a new
// directory wait for one Mkdir instead of racing.
type Dirs struct {
	mu    sync.Mutex
	known map[string]bool
	busy  map[string]*dirCall
}

type dirCall struct {
	done chan struct{}
	err  error
}

// NewDirs returns a cache that knows only the root.
func NewDirs() *Dirs {
	return &Dirs{known: map[string]bool{"": true, ".": true}, busy: map[string]*dirCall{}}
}

// MarkKnown records that dir and its ancestors exist.
func (d *Dirs) MarkKnown(dir string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for dir != "" && dir != "." && !d.known[dir] {
		d.known[dir] = true
		dir = path.Dir(dir)
	}
}

func (d *Dirs) Forget(dir string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.known, dir)
}

// Ensure makes dir (and its parents) unless it is known to exist.
func (d *Dirs) Ensure(ctx context.Context, c remote.Conn, dir string) error {
	if dir == "." {
		dir = ""
	}
	d.mu.Lock()
	if d.known[dir] {
		d.mu.Unlock()
		return nil
	}
	if call, ok := d.busy[dir]; ok {
		d.mu.Unlock()
		select {
		case <-call.done:
			if call.err != nil {
				return d.Ensure(ctx, c, dir) // its owner failed: try ourselves
			}
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	call := &dirCall{done: make(chan struct{})}
	d.busy[dir] = call
	d.mu.Unlock()
	call.err = c.Mkdir(ctx, dir)
	d.mu.Lock()
	delete(d.busy, dir)
	d.mu.Unlock()
	close(call.done)
	if call.err == nil {
		d.MarkKnown(dir)
	}
	return call.err
}

// Move renames the known directories at and under from.
func (d *Dirs) Move(from, to string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for k := range d.known {
		if k == from || strings.HasPrefix(k, from+"/") {
			delete(d.known, k)
			d.known[to+k[len(from):]] = true
		}
	}
	for dir := path.Dir(to); dir != "." && dir != "" && !d.known[dir]; dir = path.Dir(dir) {
		d.known[dir] = true
	}
	d.known[to] = true
}
