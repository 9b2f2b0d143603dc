package transfer

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"ferry/remote"
)

// The pool tells a server that stopped answering from a file that fails:
// it records when a connection last made progress — an operation the server
// answered, a connection logged in, bytes of an upload moving — and how
// long some worker has been waiting on the server since. A silent server
// is then seen as one silence, not as one timeout per queued file.

// SilentError ends a pool's Run when no connection made progress for the
// pool's Patience while work waited on the server.
type SilentError struct {
	Since time.Time     // the last progress (or when work began waiting)
	For   time.Duration // how long the server has been silent
}

func (e *SilentError) Error() string {
	return fmt.Sprintf("no connection made progress for %v (since %s): the server stopped answering",
		e.For.Round(time.Second), e.Since.Format("15:04:05"))
}

// Unwrap makes the error match remote.ErrNoAnswer.
func (e *SilentError) Unwrap() error { return remote.ErrNoAnswer }

// silence is the pool's progress clock.
type silence struct {
	last atomic.Int64  // unix ns of the last progress
	seq  atomic.Uint64 // bumped at each progress, so a worker can tell whether anyone progressed during its attempt

	// guarded by Pool.mu
	busy      int       // workers dialing, working or backing off
	busySince time.Time // when busy last went from 0 to 1
}

// progressed notes that the server answered.
func (s *silence) progressed() {
	s.last.Store(time.Now().UnixNano())
	s.seq.Add(1)
}

// busyState tells the worker states in which a worker waits on the server.
func busyState(state string) bool {
	return state == "dialing" || state == "working" || state == "backoff"
}

// Silence reports how long the server has been silent: since when no
// connection made progress while some worker waited on it. It is zero when
// nothing waits on the server or something moved within the last instant.
func (p *Pool) Silence() (since time.Time, silentFor time.Duration) {
	p.mu.Lock()
	busy, busySince := p.quiet.busy, p.quiet.busySince
	p.mu.Unlock()
	if busy == 0 {
		return time.Time{}, 0
	}
	since = busySince
	if last := time.Unix(0, p.quiet.last.Load()); last.After(since) {
		since = last
	}
	return since, time.Since(since)
}

// beatKey carries the pool into Handle's context, so the upload deep below
// can say that its bytes are moving.
type beatKey struct{}

// Beat returns the function an upload calls while its bytes move, so a
// long transfer that makes progress is never taken for a silent server. It
// is a no-op outside a pool's Handle.
func Beat(ctx context.Context) func() {
	if p, ok := ctx.Value(beatKey{}).(*Pool); ok {
		return p.quiet.progressed
	}
	return func() {}
}

// track counts the workers waiting on the server as one moves from state
// old to state now ("" for none); p.mu is held.
func (p *Pool) track(old, now string) {
	was, is := busyState(old), busyState(now)
	switch {
	case !was && is:
		if p.quiet.busy == 0 {
			p.quiet.busySince = time.Now()
		}
		p.quiet.busy++
	case was && !is:
		p.quiet.busy--
	}
}
