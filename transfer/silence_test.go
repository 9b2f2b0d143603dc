package transfer

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"ferry/queue"
	"ferry/remote"
)

// noAnswer is what a backend returns when the server let a call time out.
func noAnswer(ctx context.Context, it queue.Item, after time.Duration) error {
	select {
	case <-time.After(after):
	case <-ctx.Done():
		return ctx.Err()
	}
	return remote.Errorf(remote.KindTransport, "put", it.Path, &net.OpError{Op: "read", Net: "tcp", Err: os.ErrDeadlineExceeded})
}

// TestPoolGivesUpOnSilentServer: every call times out. The pool must end
// with a SilentError once nothing progressed for its patience, without
// failing the queued items one timeout at a time.
func TestPoolGivesUpOnSilentServer(t *testing.T) {
	h := newHarness()
	o := h.opts(4)
	o.MaxAttempts = 3
	o.Patience = 300 * time.Millisecond
	o.Handle = func(ctx context.Context, c remote.Conn, it queue.Item) error {
		return noAnswer(ctx, it, 10*time.Millisecond)
	}
	began := time.Now()
	err := NewPool(items(200), o).Run(context.Background())
	var se *SilentError
	if !errors.As(err, &se) || !errors.Is(err, remote.ErrNoAnswer) {
		t.Fatalf("Run = %v, want a SilentError", err)
	}
	if took := time.Since(began); se.For < o.Patience || took > 10*time.Second {
		t.Fatalf("gave up after %v (silent for %v), patience %v", took, se.For, o.Patience)
	}
	if len(h.results) != 0 {
		t.Fatalf("%d items were given a final outcome by a silent server: %v", len(h.results), h.results)
	}
}

// TestPoolPatienceCountsMovingBytes: one long upload whose bytes keep
// moving outlasts the patience many times over and is not taken for a
// silent server.
func TestPoolPatienceCountsMovingBytes(t *testing.T) {
	h := newHarness()
	o := h.opts(1)
	o.Patience = 500 * time.Millisecond
	o.Handle = func(ctx context.Context, c remote.Conn, it queue.Item) error {
		beat := Beat(ctx)
		for end := time.Now().Add(2 * time.Second); time.Now().Before(end); {
			beat()
			time.Sleep(10 * time.Millisecond)
		}
		return nil
	}
	if err := NewPool(items(1), o).Run(context.Background()); err != nil {
		t.Fatalf("a moving upload ended the pool: %v", err)
	}
	if err := h.results["f0000"]; err != nil {
		t.Fatal(err)
	}
}

// TestPoolSessionLostIsRetried: a reply that ends the session (EOF, vsftpd's
// 500 OOPS, a 421) is the session's failure: the item is tried again on a
// new session beyond MaxAttempts, and only a file that keeps killing
// sessions while the others go through fails, after twice MaxAttempts.
func TestPoolSessionLostIsRetried(t *testing.T) {
	h := newHarness()
	o := h.opts(4)
	o.MaxAttempts = 2
	var lost atomic.Int32
	o.Lost = func(error) { lost.Add(1) }
	var calls [50]atomic.Int32
	o.Handle = func(ctx context.Context, c remote.Conn, it queue.Item) error {
		var i int
		for j := range it.Path[1:] {
			i = i*10 + int(it.Path[1+j]-'0')
		}
		if n := calls[i].Add(1); n <= 3 || i == 0 {
			return remote.Errorf(remote.KindTransport, "put", it.Path, io.EOF)
		}
		return nil
	}
	if err := NewPool(items(50), o).Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	for p, err := range h.results {
		if p == "f0000" {
			if err == nil || h.attempts[p] != 2*o.MaxAttempts {
				t.Errorf("the file that kills every session: %v after %d attempts, want a failure after %d", err, h.attempts[p], 2*o.MaxAttempts)
			}
		} else if err != nil {
			t.Errorf("%s failed after lost sessions: %v", p, err)
		}
	}
	if len(h.results) != 50 {
		t.Fatalf("%d results, want 50", len(h.results))
	}
	if want := int32(49*3 + 2*o.MaxAttempts); lost.Load() != want {
		t.Errorf("%d sessions lost reported, want %d", lost.Load(), want)
	}
}

// TestPoolWaitsForSilentServer: without patience (the daemon), a silent
// server is waited for: Silence reports it, nothing fails, and the work
// goes on by itself once the server answers again.
func TestPoolWaitsForSilentServer(t *testing.T) {
	h := newHarness()
	o := h.opts(2)
	o.MaxAttempts = 2
	var answering atomic.Bool
	o.Handle = func(ctx context.Context, c remote.Conn, it queue.Item) error {
		if !answering.Load() {
			return noAnswer(ctx, it, 5*time.Millisecond)
		}
		return nil
	}
	p := NewPool(items(20), o)
	done := make(chan error, 1)
	go func() { done <- p.Run(context.Background()) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, d := p.Silence(); d > 200*time.Millisecond {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("Silence never reported the silent server")
		}
		time.Sleep(5 * time.Millisecond)
	}
	answering.Store(true)
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the pool did not go on once the server answered")
	}
	for path, err := range h.results {
		if err != nil {
			t.Errorf("%s failed while the server was silent: %v", path, err)
		}
	}
	if len(h.results) != 20 {
		t.Fatalf("%d results, want 20", len(h.results))
	}
	if _, d := p.Silence(); d != 0 {
		t.Errorf("Silence after the run = %v, want 0", d)
	}
}
