package scanner

import (
	"context"
	"errors"
	"path"
	"sync"

	"golang.org/x/sync/errgroup"

	"ferry/entry"
	"ferry/remote"
)

// ListFunc lists one remote directory; the caller decides which connection
// serves it. A missing directory yields an error matching remote.ErrNotExist.
type ListFunc func(ctx context.Context, dir string) ([]entry.FileInfo, error)

// ListWith adapts a Conn to a ListFunc.
func ListWith(c remote.Conn) ListFunc {
	return func(ctx context.Context, dir string) ([]entry.FileInfo, error) {
		var out []entry.FileInfo
		err := c.List(ctx, dir, func(fi entry.FileInfo) error {
			out = append(out, fi)
			return nil
		})
		return out, err
	}
}

// Pair is one local directory and, when the remote is being listed, the
// same directory on the remote.
type Pair struct {
	Local *Dir
	// Listed is true when Remote holds the remote directory's listing (or
	// RemoteErr why it could not be had).
	Listed    bool
	Remote    []entry.FileInfo
	Missing   bool // the remote directory does not exist
	RemoteErr error
}

// WalkPairs walks the local tree and, when list is not nil, lists each
// directory on the remote too, up to parallel listings ahead of fn. fn sees
// the directories in the local walk's order; at most about 2×parallel
// directories are held in memory at once.
func WalkPairs(ctx context.Context, w *Walker, list ListFunc, parallel int, fn func(*Pair) error) error {
	if parallel < 1 {
		parallel = 1
	}
	if list == nil {
		// Even without listings, walking the next directories (lstat,
		// the kernel's time) overlaps with settling this one (the
		// registry's): a no-op run over a big tree is both.
		return pipeline(ctx, w, parallel, fn)
	}
	g, ctx := errgroup.WithContext(ctx)
	type future struct {
		p    *Pair
		done chan struct{}
	}
	order := make(chan *future, parallel)
	sem := make(chan struct{}, parallel)
	var listers sync.WaitGroup
	g.Go(func() error {
		defer close(order)
		defer listers.Wait()
		return w.Walk(ctx, func(d *Dir) error {
			f := &future{p: &Pair{Local: d, Listed: true}, done: make(chan struct{})}
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return ctx.Err()
			}
			listers.Add(1)
			go func() {
				defer listers.Done()
				defer func() { <-sem }()
				defer close(f.done)
				if d.Err != nil {
					return // nothing to compare against; the planner skips it
				}
				f.p.Remote, f.p.RemoteErr = list(ctx, d.Path)
				if errors.Is(f.p.RemoteErr, remote.ErrNotExist) {
					f.p.Missing, f.p.RemoteErr = true, nil
				}
			}()
			select {
			case order <- f:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
	})
	g.Go(func() error {
		for f := range order {
			select {
			case <-f.done:
			case <-ctx.Done():
				return ctx.Err()
			}
			if err := fn(f.p); err != nil {
				return err
			}
		}
		return nil
	})
	return g.Wait()
}

// pipeline walks in one goroutine and calls fn in another, up to ahead
// directories apart.
func pipeline(ctx context.Context, w *Walker, ahead int, fn func(*Pair) error) error {
	g, ctx := errgroup.WithContext(ctx)
	dirs := make(chan *Dir, ahead)
	g.Go(func() error {
		defer close(dirs)
		return w.Walk(ctx, func(d *Dir) error {
			select {
			case dirs <- d:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
	})
	g.Go(func() error {
		for d := range dirs {
			if err := fn(&Pair{Local: d}); err != nil {
				return err
			}
		}
		return nil
	})
	return g.Wait()
}

// RemoteWalk lists the remote tree under root, a parent before its
// children, with up to parallel listings at once, calling fn (never
// concurrently) for each directory. It serves subtrees that exist only on
// the remote. Only the paths of directories still to list are held.
func RemoteWalk(ctx context.Context, list ListFunc, root string, parallel int, fn func(dir string, entries []entry.FileInfo) error) error {
	if parallel < 1 {
		parallel = 1
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu      sync.Mutex
		cond    = sync.NewCond(&mu)
		todo    = []string{root} // used as a stack: depth first keeps it short
		active  = 1              // directories queued or being listed
		walkErr error
	)
	worker := func() {
		mu.Lock()
		defer mu.Unlock()
		for {
			for len(todo) == 0 && active > 0 && walkErr == nil {
				cond.Wait()
			}
			if active == 0 || walkErr != nil {
				return
			}
			dir := todo[len(todo)-1]
			todo = todo[:len(todo)-1]
			mu.Unlock()
			ents, err := list(ctx, dir)
			mu.Lock()
			if err == nil && walkErr == nil {
				err = fn(dir, ents)
			}
			if err != nil {
				if walkErr == nil {
					walkErr = err
				}
				cancel()
			} else {
				for _, e := range ents {
					if e.IsDir {
						todo = append(todo, path.Join(dir, e.Name))
						active++
					}
				}
			}
			active--
			cond.Broadcast()
		}
	}
	var wg sync.WaitGroup
	for i := 0; i < parallel; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			worker()
		}()
	}
	wg.Wait()
	return walkErr
}
