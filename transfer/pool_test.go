package transfer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"ferry/queue"
	"ferry/remote"
)

// nopConn is a connection that does nothing; the handlers under test decide
// what an attempt does.
type nopConn struct {
	remote.Conn
	closed  *atomic.Int32
	streams int
}

func (c nopConn) Close() error { c.closed.Add(1); return nil }

func (c nopConn) Caps() remote.Caps { return remote.Caps{Streams: c.streams} }

type listSource struct {
	mu    sync.Mutex
	items []queue.Item
}

func (s *listSource) Claim(_ context.Context, lane, n int) ([]queue.Item, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out, rest []queue.Item
	for _, it := range s.items {
		if queue.LaneOf(it.Size) == lane && len(out) < n {
			out = append(out, it)
		} else {
			rest = append(rest, it)
		}
	}
	s.items = rest
	return out, nil
}

func items(n int) *queue.Queue {
	src := &listSource{}
	for i := 0; i < n; i++ {
		src.items = append(src.items, queue.Item{Path: fmt.Sprintf("f%04d", i), DirtySince: int64(i)})
	}
	q := queue.New(src, 16)
	q.Close()
	return q
}

type harness struct {
	open, closed atomic.Int32
	conns        atomic.Int32 // open right now
	maxConns     atomic.Int32
	mu           sync.Mutex
	results      map[string]error
	attempts     map[string]int
}

func newHarness() *harness {
	return &harness{results: map[string]error{}, attempts: map[string]int{}}
}

func (h *harness) opts(workers int) Options {
	return Options{
		Workers: workers,
		Open: func(ctx context.Context) (remote.Conn, error) {
			h.open.Add(1)
			n := h.conns.Add(1)
			for {
				m := h.maxConns.Load()
				if n <= m || h.maxConns.CompareAndSwap(m, n) {
					break
				}
			}
			return nopConn{closed: &h.closed}, nil
		},
		Handle:    func(ctx context.Context, c remote.Conn, it queue.Item) error { return nil },
		Result:    h.result,
		BaseDelay: time.Millisecond,
		MaxDelay:  5 * time.Millisecond,
		Cooldown:  time.Hour,
	}
}

func (h *harness) result(it queue.Item, err error, attempts int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, dup := h.results[it.Path]; dup {
		panic("result reported twice for " + it.Path)
	}
	h.results[it.Path] = err
	h.attempts[it.Path] = attempts
}

func TestPoolDrainsEveryItemOnce(t *testing.T) {
	h := newHarness()
	o := h.opts(4)
	var handled sync.Map
	o.Handle = func(ctx context.Context, c remote.Conn, it queue.Item) error {
		if _, dup := handled.LoadOrStore(it.Path, true); dup {
			return fmt.Errorf("%s handled twice", it.Path)
		}
		time.Sleep(100 * time.Microsecond)
		return nil
	}
	p := NewPool(items(500), o)
	if err := p.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(h.results) != 500 {
		t.Fatalf("%d results, want 500", len(h.results))
	}
	for path, err := range h.results {
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
	}
	if h.open.Load() != h.closed.Load() {
		t.Fatalf("%d connections opened, %d closed", h.open.Load(), h.closed.Load())
	}
	if h.maxConns.Load() > 4 {
		t.Fatalf("%d connections at once, limit 4", h.maxConns.Load())
	}
}

// TestPoolShrinksOnTooMany: a server capped at 2 connections while the pool
// wants 6 — every item succeeds, and never more than 2 connections exist.
func TestPoolShrinksOnTooMany(t *testing.T) {
	h := newHarness()
	o := h.opts(6)
	var live atomic.Int32
	o.Open = func(ctx context.Context) (remote.Conn, error) {
		if live.Add(1) > 2 {
			live.Add(-1)
			return nil, remote.Errorf(remote.KindTooMany, "dial", "ftp://h", errors.New("421 too many"))
		}
		h.open.Add(1)
		return closeHook{nopConn{closed: &h.closed}, func() { live.Add(-1) }}, nil
	}
	var maxSeen atomic.Int32
	o.Handle = func(ctx context.Context, c remote.Conn, it queue.Item) error {
		if n := live.Load(); n > maxSeen.Load() {
			maxSeen.Store(n)
		}
		time.Sleep(200 * time.Microsecond)
		return nil
	}
	p := NewPool(items(300), o)
	if err := p.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	for path, err := range h.results {
		if err != nil {
			t.Fatalf("%s failed: %v", path, err)
		}
	}
	if len(h.results) != 300 || maxSeen.Load() > 2 {
		t.Fatalf("%d results, %d connections at most; want 300 and 2", len(h.results), maxSeen.Load())
	}
	if target, _ := p.Size(); target > 2 {
		t.Fatalf("pool target %d after too-many replies, want ≤ 2", target)
	}
}

type closeHook struct {
	nopConn
	fn func()
}

func (c closeHook) Close() error { c.fn(); return c.nopConn.Close() }

func TestPoolRetriesTransientErrors(t *testing.T) {
	h := newHarness()
	o := h.opts(2)
	var calls sync.Map
	o.Handle = func(ctx context.Context, c remote.Conn, it queue.Item) error {
		n, _ := calls.LoadOrStore(it.Path, new(atomic.Int32))
		k := n.(*atomic.Int32).Add(1)
		switch {
		case it.Path == "f0001":
			return remote.Errorf(remote.KindPermission, "put", it.Path, errors.New("550 denied"))
		case it.Path == "f0002":
			return remote.Errorf(remote.KindTransport, "put", it.Path, io.ErrUnexpectedEOF)
		case k < 3:
			return remote.Errorf(remote.KindTransport, "put", it.Path, io.EOF)
		}
		return nil
	}
	if err := NewPool(items(20), o).Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := h.results["f0000"]; err != nil || h.attempts["f0000"] != 3 {
		t.Fatalf("f0000: err %v after %d attempts; want success on the 3rd", err, h.attempts["f0000"])
	}
	if err := h.results["f0001"]; !errors.Is(err, remote.ErrPermission) || h.attempts["f0001"] != 1 {
		t.Fatalf("f0001: %v after %d attempts; want a permanent failure at once", err, h.attempts["f0001"])
	}
	// A lost session is the session's failure: a file that kills every
	// session fails only after twice MaxAttempts.
	if err := h.results["f0002"]; !errors.Is(err, remote.ErrTransport) || h.attempts["f0002"] != 10 {
		t.Fatalf("f0002: %v after %d attempts; want failure after 10", err, h.attempts["f0002"])
	}
}

func TestPoolStopsAtOnceEvenInBackoff(t *testing.T) {
	h := newHarness()
	o := h.opts(3)
	o.BaseDelay, o.MaxDelay = time.Hour, time.Hour
	entered := make(chan struct{}, 10)
	o.Handle = func(ctx context.Context, c remote.Conn, it queue.Item) error {
		entered <- struct{}{}
		return remote.Errorf(remote.KindTransport, "put", it.Path, io.EOF)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	p := NewPool(items(10), o)
	go func() { done <- p.Run(ctx) }()
	<-entered
	// Every worker is asleep in its hour-long back-off.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		n := 0
		for _, w := range p.Workers() {
			if w.State == "backoff" {
				n++
			}
		}
		if n == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("workers never all in back-off: %+v", p.Workers())
		}
	}
	start := time.Now()
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Run after cancel: %v", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatalf("Run still going 2s after cancel")
	}
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Fatalf("stopping took %v", d)
	}
	if h.open.Load() != h.closed.Load() {
		t.Fatalf("%d connections opened, %d closed", h.open.Load(), h.closed.Load())
	}
}

func TestPoolStopsWhileDialing(t *testing.T) {
	h := newHarness()
	o := h.opts(2)
	o.Open = func(ctx context.Context) (remote.Conn, error) {
		<-ctx.Done() // a server that never answers
		return nil, ctx.Err()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := NewPool(items(5), o).Run(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Run: %v", err)
	}
}

func TestPoolFailsFastOnAuth(t *testing.T) {
	h := newHarness()
	o := h.opts(4)
	o.Open = func(ctx context.Context) (remote.Conn, error) {
		return nil, remote.Errorf(remote.KindAuth, "login", "ftp://u@h", errors.New("530 Login incorrect."))
	}
	err := NewPool(items(5), o).Run(context.Background())
	if !errors.Is(err, remote.ErrAuth) {
		t.Fatalf("Run with a refused login: %v", err)
	}
	if len(h.results) != 0 {
		t.Fatalf("items handled without a connection: %v", h.results)
	}
}

func TestPoolWaitsForServerToComeBack(t *testing.T) {
	h := newHarness()
	o := h.opts(2)
	up := time.Now().Add(150 * time.Millisecond)
	base := o.Open
	o.Open = func(ctx context.Context) (remote.Conn, error) {
		if time.Now().Before(up) {
			return nil, remote.Errorf(remote.KindTransport, "dial", "ftp://h", errors.New("connection refused"))
		}
		return base(ctx)
	}
	o.MaxDelay = 20 * time.Millisecond
	if err := NewPool(items(10), o).Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(h.results) != 10 {
		t.Fatalf("%d results", len(h.results))
	}
}

func TestPoolResize(t *testing.T) {
	h := newHarness()
	o := h.opts(1)
	release := make(chan struct{})
	var concurrent, peak atomic.Int32
	o.Handle = func(ctx context.Context, c remote.Conn, it queue.Item) error {
		n := concurrent.Add(1)
		defer concurrent.Add(-1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		select {
		case <-release:
		case <-time.After(2 * time.Millisecond):
		}
		return nil
	}
	p := NewPool(items(400), o)
	done := make(chan error, 1)
	go func() { done <- p.Run(context.Background()) }()
	time.Sleep(20 * time.Millisecond)
	p.Resize(4)
	deadline := time.Now().Add(5 * time.Second)
	for peak.Load() < 3 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if peak.Load() < 3 {
		t.Fatalf("after Resize(4) at most %d items ran at once", peak.Load())
	}
	p.Resize(1)
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if len(h.results) != 400 {
		t.Fatalf("%d results", len(h.results))
	}
}

func TestBackoffGrowsAndCaps(t *testing.T) {
	for n := 1; n < 20; n++ {
		d := Backoff(n, 100*time.Millisecond, 5*time.Second)
		want := 100 * time.Millisecond << (n - 1)
		if want > 5*time.Second || want <= 0 {
			want = 5 * time.Second
		}
		if d < want/2 || d > want {
			t.Fatalf("Backoff(%d) = %v, want within [%v, %v]", n, d, want/2, want)
		}
	}
}

// TestPoolStreamsShareAConnection: a connection that can carry several
// operations at once (SFTP) runs that many items concurrently.
func TestPoolStreamsShareAConnection(t *testing.T) {
	h := newHarness()
	o := h.opts(1)
	o.Open = func(ctx context.Context) (remote.Conn, error) {
		h.open.Add(1)
		return nopConn{closed: &h.closed, streams: 3}, nil
	}
	var now, peak atomic.Int32
	o.Handle = func(ctx context.Context, c remote.Conn, it queue.Item) error {
		n := now.Add(1)
		defer now.Add(-1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		time.Sleep(2 * time.Millisecond)
		return nil
	}
	if err := NewPool(items(60), o).Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if h.open.Load() != 1 || peak.Load() != 3 || len(h.results) != 60 {
		t.Fatalf("%d connections, %d items at once, %d results; want 1, 3, 60", h.open.Load(), peak.Load(), len(h.results))
	}
}

// TestPoolResizeNeverBlocks: a daemon resizes its pool on a reload or a
// control command, whether or not the pool is running; once Run has
// returned nobody reads the pool's events, and Resize must still return.
func TestPoolResizeNeverBlocks(t *testing.T) {
	h := newHarness()
	p := NewPool(items(3), h.opts(2))
	if err := p.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 100; i++ { // more than any buffer the pool keeps
			p.Resize(1 + i%4)
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Resize blocked after Run returned")
	}
}

// TestPoolResizeBeforeRun: a size asked for before Run starts is the one
// Run works with.
func TestPoolResizeBeforeRun(t *testing.T) {
	h := newHarness()
	o := h.opts(1)
	var concurrent, peak atomic.Int32
	o.Handle = func(ctx context.Context, c remote.Conn, it queue.Item) error {
		n := concurrent.Add(1)
		defer concurrent.Add(-1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		// Hold each item until a second one runs beside it, or a while:
		// with one worker, the while passes for each of the first items.
		deadline := time.After(200 * time.Millisecond)
		for peak.Load() < 2 {
			select {
			case <-deadline:
				return nil
			case <-time.After(time.Millisecond):
			}
		}
		return nil
	}
	p := NewPool(items(40), o)
	p.Resize(3)
	if err := p.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if peak.Load() < 2 {
		t.Fatalf("Resize(3) before Run: at most %d items ran at once", peak.Load())
	}
}
