package transfer

import (
	"context"
	"errors"
	"sync"
	"time"

	"ferry/queue"
	"ferry/remote"
)

// worker owns one connection for its whole life.
type worker struct {
	id   int
	p    *Pool
	goCh chan bool // the pool's answer to "ready": true = go, false = stop

	// guarded by p.mu
	live   bool
	retire bool
	info   WorkerInfo
}

func (w *worker) set(state, path string) {
	w.p.mu.Lock()
	w.p.track(w.info.State, state)
	w.info.State, w.info.Path, w.info.Since = state, path, time.Now()
	w.p.mu.Unlock()
}

// send reports to the pool; after cancellation nobody listens.
func (w *worker) send(ctx context.Context, ev event) {
	ev.w = w
	select {
	case w.p.events <- ev:
	case <-ctx.Done():
	}
}

func (w *worker) run(ctx context.Context) {
	c, err := w.dial(ctx)
	if err != nil {
		w.send(ctx, event{kind: evExit, err: err})
		return
	}
	var err2 error
	defer func() {
		// A connection that served until the queue drained is still
		// good: hand it on (to the next phase) instead of logging out.
		if errors.Is(err2, queue.ErrClosed) && w.p.o.Give != nil && ctx.Err() == nil {
			w.p.o.Give(c)
			return
		}
		c.Close()
	}()
	w.set("ready", "")
	select {
	case ok := <-w.goCh:
		if !ok {
			w.send(ctx, event{kind: evExit, err: errStopped})
			return
		}
	case <-ctx.Done():
		return
	}
	err2 = w.streams(ctx, c)
	w.send(ctx, event{kind: evExit, err: err2})
}

// streams runs as many item loops on the connection as it can carry at
// once (remote.Caps.Streams): one for FTP, several for SFTP, whose requests
// share the channel. The worker ends when all of them have.
func (w *worker) streams(ctx context.Context, c remote.Conn) error {
	n := max(c.Caps().Streams, 1)
	if n == 1 {
		return w.loop(ctx, c)
	}
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = w.loop(ctx, c)
		}()
	}
	wg.Wait()
	// The reason that matters most to the pool wins.
	for _, want := range []error{errTooManyLive, queue.ErrClosed} {
		for _, err := range errs {
			if errors.Is(err, want) {
				return err
			}
		}
	}
	for _, err := range errs {
		if err != nil && !errors.Is(err, errIdle) && !errors.Is(err, errStopped) {
			return err
		}
	}
	return errs[0]
}

// dial connects, retrying transient failures with back-off for up to
// DialPatience; it says "ready" to the pool once connected (the handshake).
func (w *worker) dial(ctx context.Context) (remote.Conn, error) {
	o := &w.p.o
	if o.Take != nil {
		if c := o.Take(); c != nil {
			w.send(ctx, event{kind: evReady}) // already logged in: no dial to time
			return c, nil
		}
	}
	start := time.Now()
	for attempt := 1; ; attempt++ {
		t0 := time.Now()
		c, err := o.Open(ctx)
		if err == nil {
			w.p.quiet.progressed()
			w.send(ctx, event{kind: evReady, took: time.Since(t0)})
			return c, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if errors.Is(err, remote.ErrTooMany) {
			if _, live := w.p.Size(); live > 0 {
				// The server's cap is below ours: live with the
				// connections we have rather than fail anything.
				w.send(ctx, event{kind: evTooMany})
				return nil, errStopped
			}
			// Nobody is connected (other clients fill the server):
			// keep trying, like any transient refusal.
		}
		// The daemon (no Patience) waits for a server that does not
		// answer for as long as it takes; a --once pass is bounded by
		// the pool's silence watch and by DialPatience.
		waitForever := o.Patience == 0 && remote.Unreachable(err)
		if !remote.IsTemporary(err) || (time.Since(start) > o.DialPatience && !waitForever) {
			return nil, err
		}
		w.set("backoff", "")
		d := Backoff(attempt, o.BaseDelay, o.MaxDelay)
		o.Logf("connect failed (%v); retrying in %v", err, d.Round(time.Millisecond))
		if err := sleep(ctx, d); err != nil {
			return nil, err
		}
	}
}

// loop takes items until the queue is drained, the pool retires the
// worker, or its connection is refused service.
func (w *worker) loop(ctx context.Context, c remote.Conn) error {
	o := &w.p.o
	for {
		w.p.mu.Lock()
		retire := w.retire
		w.p.mu.Unlock()
		if retire {
			return errStopped
		}
		w.set("idle", "")
		nctx, cancel := ctx, context.CancelFunc(func() {})
		if o.IdleTimeout > 0 {
			nctx, cancel = context.WithTimeout(ctx, o.IdleTimeout)
		}
		it, err := w.p.q.Next(nctx)
		cancel()
		if err != nil {
			if ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
				if _, live := w.p.Size(); live > 1 {
					return errIdle
				}
				continue
			}
			return err
		}
		start := time.Now()
		err = w.item(ctx, c, it)
		took := time.Since(start)
		if errors.Is(err, errTooManyLive) {
			w.p.q.Requeue(it)
			return err
		}
		if ctx.Err() != nil {
			// Not finished: the registry still says "transferring", and
			// the next run checks the remote before sending it again.
			w.p.q.Requeue(it)
			return ctx.Err()
		}
		w.p.q.Done(it, took)
		w.p.mu.Lock()
		w.p.serviceAvg = avg(w.p.serviceAvg, took)
		w.info.Done++
		w.p.mu.Unlock()
	}
}

// item makes attempts at it, backing off between them, and reports the
// outcome. Failures are charged to the file by what they say about it:
//   - an ordinary transient failure (a 4xx, a file that changed while
//     read, a copy that failed verification) counts against MaxAttempts;
//   - a lost session (a reset, EOF, 421, vsftpd's "500 OOPS") is the
//     session's failure: the connection redials and the item is tried
//     again, up to twice MaxAttempts times, so only a file that keeps
//     killing sessions fails;
//   - a server that does not answer anyone (every connection silent
//     during the attempt) is not charged at all: the pool's Patience, or
//     the daemon's waiting, decides what happens, not the file's attempts.
func (w *worker) item(ctx context.Context, c remote.Conn, it queue.Item) error {
	o := &w.p.o
	hctx := context.WithValue(ctx, beatKey{}, w.p)
	var tries, lost, waits int
	for {
		w.set("working", it.Path)
		seq := w.p.quiet.seq.Load()
		err := o.Handle(hctx, c, it)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if errors.Is(err, remote.ErrTooMany) {
			return errTooManyLive
		}
		charged, waited := tries+lost+1, false
		switch {
		case err == nil:
			w.p.quiet.progressed()
			o.Result(it, nil, charged)
			return nil
		case remote.SessionLost(err):
			if o.Lost != nil {
				o.Lost(err)
			}
			if remote.Unreachable(err) && w.p.quiet.seq.Load() == seq {
				waits, waited = waits+1, true
			} else {
				lost++
			}
		case retryable(err):
			tries++
		default:
			if answered(err) {
				w.p.quiet.progressed()
			}
			o.Result(it, err, charged)
			return nil
		}
		if tries >= o.MaxAttempts || lost >= 2*o.MaxAttempts {
			o.Result(it, err, tries+lost)
			return nil
		}
		d := Backoff(tries+lost+waits, o.BaseDelay, o.MaxDelay)
		switch {
		case waited:
			o.Logf("%s: %v; the server is not answering: waiting %v (not counted against the file)", it.Path, err, d.Round(time.Millisecond))
		case remote.SessionLost(err):
			o.Logf("%s: session lost (%v); redialing, retry in %v", it.Path, err, d.Round(time.Millisecond))
		default:
			o.Logf("%s: attempt %d failed (%v); retrying in %v", it.Path, tries, err, d.Round(time.Millisecond))
		}
		w.set("backoff", it.Path)
		if err := sleep(ctx, d); err != nil {
			return err
		}
	}
}

// answered reports whether the server answered the failed attempt with a
// verdict on the file (a refusal, a missing directory): proof it is alive.
func answered(err error) bool {
	var re *remote.Error
	return errors.As(err, &re) && !remote.SessionLost(err)
}

// retryable tells the failures worth another attempt: the server's
// transient ones, a file that changed while read (it may have settled), and
// a remote copy that failed verification.
func retryable(err error) bool {
	return remote.IsTemporary(err) || errors.Is(err, ErrChanged) || errors.Is(err, ErrVerify)
}
