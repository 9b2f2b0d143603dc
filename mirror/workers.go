package mirror

import (
	"context"
	"sync"
	"time"

	"ferry/queue"
	"ferry/registry"
	"ferry/remote"
	"ferry/transfer"
)

// newPool returns a worker pool for one phase; it takes logged-in
// connections from the stash before dialing, and gives them back after.
// It gives up on a server silent for the job's patience.
func (r *stages) newPool(q *queue.Queue, workers int, backlog func() int) *transfer.Pool {
	return r.pool(q, workers, backlog, r.o.patience())
}

// pool is newPool with the patience given: 0 waits for a silent server for
// as long as it takes (the daemon's live pool).
func (r *stages) pool(q *queue.Queue, workers int, backlog func() int, patience time.Duration) *transfer.Pool {
	return transfer.NewPool(q, transfer.Options{
		Workers: workers,
		Open:    func(ctx context.Context) (remote.Conn, error) { return r.o.Open(ctx, r.o.Target, r.o.RemoteOpts) },
		Handle:  r.handle,
		Result:  r.result,
		Backlog: backlog,
		Logf:    r.o.Logf,
		Take:    r.conns.take,
		Give:    r.conns.give,

		Patience: patience,
		Lost:     func(error) { r.sessionsLost.Add(1) },
	})
}

// stash holds logged-in connections between the phases of a pass (scan,
// uploads, late cleanups, deletions) so each phase does not log in again.
type stash struct {
	mu    sync.Mutex
	conns []remote.Conn
}

func (s *stash) take() remote.Conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.conns) == 0 {
		return nil
	}
	c := s.conns[len(s.conns)-1]
	s.conns = s.conns[:len(s.conns)-1]
	return c
}

func (s *stash) give(c remote.Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.conns = append(s.conns, c)
}

func (s *stash) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.conns {
		c.Close()
	}
	s.conns = nil
}

// claimer adapts the registry to the queue's Source.
type claimer struct {
	job *registry.Job
	w   *registry.Writer
}

func (c claimer) Claim(ctx context.Context, lane, n int) ([]queue.Item, error) {
	// A worker records its result, then lets the path go; the record may
	// still sit in the writer's batch. Claimed from before the commit, a
	// row done a moment ago would look pending and ship a second time.
	if err := c.w.Flush(ctx); err != nil {
		return nil, err
	}
	es, err := c.job.Claim(ctx, lane, n)
	if err != nil {
		return nil, err
	}
	out := make([]queue.Item, len(es))
	for i, e := range es {
		out[i] = queue.Item{Path: e.Path, Size: max(e.LocalSize, 0), DirtySince: e.DirtySince, Entry: e}
	}
	return out, nil
}
