package transfer

import (
	"context"
	"errors"
	"math/rand/v2"
	"sort"
	"sync"
	"time"

	"ferry/queue"
	"ferry/remote"
)

// Options configure a Pool.
type Options struct {
	// Workers is the most connections the pool opens.
	Workers int
	// Open dials one connection.
	Open func(ctx context.Context) (remote.Conn, error)
	// Handle makes one attempt at an item on a worker's connection.
	Handle func(ctx context.Context, c remote.Conn, it queue.Item) error
	// Result receives each item's final outcome (err nil on success) and
	// the attempts it took. It is called from worker goroutines.
	Result func(it queue.Item, err error, attempts int)
	// Backlog returns how many items wait (for the growth rule); nil means
	// "plenty".
	Backlog func() int
	// MaxAttempts bounds the attempts at one item on transient errors.
	MaxAttempts int
	// BaseDelay and MaxDelay bound the exponential back-off between
	// attempts (and between dials of an unreachable server).
	BaseDelay, MaxDelay time.Duration
	// DialPatience is how long a worker keeps redialing an unreachable
	// server before the pool gives up.
	DialPatience time.Duration
	// Patience is how long the pool lets every connection go without
	// progress while work waits on the server before Run gives up with a
	// *SilentError; 0 waits for as long as it takes (the daemon).
	Patience time.Duration
	// Lost, when set, is told of each session an item's attempt lost (the
	// connection redials for the next attempt).
	Lost func(err error)
	// Cooldown is how long after a too-many-connections reply the pool
	// waits before growing back by one.
	Cooldown time.Duration
	// IdleTimeout retires a worker that found no work for that long (never
	// the last one); 0 keeps workers for the pool's life.
	IdleTimeout time.Duration
	// Logf reports pool events (shrinking, growing, retries).
	Logf func(format string, args ...any)
	// Take, when set, offers a connection that is already logged in (nil
	// when there is none); a worker uses it instead of dialing.
	Take func() remote.Conn
	// Give, when set, receives the connection of a worker that served
	// until the queue drained, instead of closing it, so the caller's next
	// phase need not log in again. The caller then owns and closes it.
	Give func(remote.Conn)
}

func (o *Options) defaults() {
	if o.Workers < 1 {
		o.Workers = 1
	}
	if o.MaxAttempts < 1 {
		o.MaxAttempts = 5
	}
	if o.BaseDelay <= 0 {
		o.BaseDelay = 200 * time.Millisecond
	}
	if o.MaxDelay <= 0 {
		o.MaxDelay = 20 * time.Second
	}
	if o.DialPatience <= 0 {
		o.DialPatience = 2 * time.Minute
		if o.Patience > 0 {
			o.DialPatience = o.Patience
		}
	}
	if o.Cooldown <= 0 {
		o.Cooldown = 30 * time.Second
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
}

// Pool is a set of workers, each owning one connection, draining a queue.
type Pool struct {
	o Options
	q *queue.Queue

	events     chan event
	resized    chan struct{} // a Resize waits in want; one slot, never blocks
	mu         sync.Mutex
	want       int // the size Resize asked for, 0 when none is waiting
	ws         map[int]*worker
	target     int
	serviceAvg time.Duration // mean time an item takes a worker
	quiet      silence
}

// WorkerInfo is one worker's state, for status displays.
type WorkerInfo struct {
	ID    int
	State string // dialing, ready, working, backoff
	Path  string // the item being worked on
	Since time.Time
	Done  int // items finished
}

// NewPool returns a pool draining q.
func NewPool(q *queue.Queue, o Options) *Pool {
	o.defaults()
	return &Pool{o: o, q: q, events: make(chan event, 16), resized: make(chan struct{}, 1), ws: map[int]*worker{}, target: o.Workers}
}

type eventKind int

const (
	evReady   eventKind = iota // dialed and logged in; waits for go
	evExit                     // worker ended (err says why)
	evTooMany                  // the server refused one more connection
)

type event struct {
	kind eventKind
	w    *worker
	took time.Duration
	err  error
}

// Resize changes the number of connections the pool aims for. It never
// blocks: the size waits until Run's loop takes it (the last one asked
// wins), so it may be called before Run, while Run is busy, or after Run
// has returned (then it changes nothing).
func (p *Pool) Resize(n int) {
	if n < 1 {
		n = 1
	}
	p.mu.Lock()
	p.want = n
	p.mu.Unlock()
	select {
	case p.resized <- struct{}{}:
	default: // a wake-up is already waiting; it reads the new size
	}
}

// Size returns the target and the number of live (connected) workers.
func (p *Pool) Size() (target, live int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, w := range p.ws {
		if w.live {
			live++
		}
	}
	return p.target, live
}

// Workers returns a snapshot of every worker.
func (p *Pool) Workers() []WorkerInfo {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]WorkerInfo, 0, len(p.ws))
	for _, w := range p.ws {
		out = append(out, w.info)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// ErrNoConnection is returned by Run when no worker can connect.
var ErrNoConnection = errors.New("no connection to the server")

// Run drains the queue until it is closed and empty, ctx is cancelled, or
// the server cannot be reached at all. It returns only once every worker
// has stopped and closed its connection.
func (p *Pool) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancelCause(ctx)
	var wg sync.WaitGroup
	defer func() {
		cancel(nil) // workers block only on ctx-aware calls: they leave at once
		wg.Wait()
	}()
	nextID := 0
	var fatal error
	drained := false
	// The sizing policy starts from the published sizes; Run writes back.
	g := growth{workers: p.o.Workers, target: p.target, cooldown: p.o.Cooldown}
	spawn := func() {
		nextID++
		w := &worker{id: nextID, p: p, goCh: make(chan bool, 1)}
		w.info = WorkerInfo{ID: w.id, State: "dialing", Since: time.Now()}
		p.mu.Lock()
		p.track("", w.info.State)
		p.ws[w.id] = w
		p.mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.run(ctx)
		}()
	}
	liveCount := func() int {
		_, live := p.Size()
		return live
	}
	startingCount := func() int {
		p.mu.Lock()
		defer p.mu.Unlock()
		n := 0
		for _, w := range p.ws {
			if !w.live {
				n++
			}
		}
		return n
	}
	// wantMore asks the sizing policy whether to dial another connection;
	// the backlog is looked at only when the target leaves room.
	wantMore := func() bool {
		live := liveCount()
		if drained || fatal != nil || !g.room(live+startingCount(), time.Now()) {
			return false
		}
		if p.o.Backlog == nil {
			return true
		}
		backlog := p.o.Backlog()
		p.mu.Lock()
		serviceAvg := p.serviceAvg
		p.mu.Unlock()
		return g.worth(live, backlog, serviceAvg)
	}
	spawn()
	// The growth rule is looked at on every handshake and on this tick,
	// which catches a backlog that appears while nobody is connecting.
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		p.mu.Lock()
		n := len(p.ws)
		p.mu.Unlock()
		if n == 0 {
			if fatal != nil {
				return fatal
			}
			if drained || ctx.Err() != nil {
				return ctx.Err()
			}
			spawn() // everyone left (idle or too many): keep one going
		}
		select {
		case <-ctx.Done():
			if fatal != nil {
				return fatal
			}
			return ctx.Err()
		case <-tick.C:
			if p.o.Patience > 0 && fatal == nil {
				if since, d := p.Silence(); d > p.o.Patience {
					// A dead server, not a bad file: stop handing out
					// work and abandon what is in flight (its temporary
					// files are removed by the next pass).
					fatal = &SilentError{Since: since, For: d}
					cancel(fatal)
					continue
				}
			}
			if wantMore() {
				spawn()
			}
		case ev := <-p.events:
			switch ev.kind {
			case evReady:
				g.dialed(ev.took)
				if !g.admit(liveCount()) {
					ev.w.goCh <- false
					continue
				}
				p.mu.Lock()
				ev.w.live = true
				p.mu.Unlock()
				ev.w.goCh <- true
				if wantMore() {
					spawn()
				}
			case evTooMany:
				live := liveCount()
				p.setTarget(g.refused(live, time.Now()))
				p.o.Logf("server refused connection %d: pool shrinks to %d for %v", live+1, p.target, p.o.Cooldown)
			case evExit:
				p.mu.Lock()
				p.track(ev.w.info.State, "")
				delete(p.ws, ev.w.id)
				p.mu.Unlock()
				switch {
				case errors.Is(ev.err, queue.ErrClosed):
					drained = true
				case errors.Is(ev.err, errTooManyLive):
					p.setTarget(g.refused(liveCount(), time.Now()))
					p.o.Logf("server refused work on a connection: pool shrinks to %d for %v", p.target, p.o.Cooldown)
				case ev.err != nil && !errors.Is(ev.err, errStopped) && !errors.Is(ev.err, errIdle) && ctx.Err() == nil:
					if fatal == nil {
						fatal = ev.err
					}
					cancel(fatal)
				}
			}
			if g.regrow(time.Now()) {
				p.setTarget(g.target)
			}
		case <-p.resized:
			p.mu.Lock()
			n := p.want
			p.want = 0
			p.mu.Unlock()
			if n > 0 {
				p.setTarget(g.resize(n))
				p.o.Workers = n
				p.retireExcess()
				for wantMore() {
					spawn()
				}
			}
		}
	}
}

// setTarget publishes the size the sizing policy aims for. Only Run's loop
// writes it; the lock is for the readers (Size, retireExcess).
func (p *Pool) setTarget(n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.target = n
}

// retireExcess asks workers beyond the target to stop after their item.
func (p *Pool) retireExcess() {
	p.mu.Lock()
	defer p.mu.Unlock()
	live := 0
	ids := make([]int, 0, len(p.ws))
	for id, w := range p.ws {
		if w.live {
			live++
			ids = append(ids, id)
		}
	}
	sort.Sort(sort.Reverse(sort.IntSlice(ids)))
	for _, id := range ids {
		if live <= p.target {
			break
		}
		w := p.ws[id]
		if !w.retire {
			w.retire = true
			live--
		}
	}
}

func avg(cur, sample time.Duration) time.Duration {
	if cur == 0 {
		return sample
	}
	return (cur*3 + sample) / 4
}

// Backoff returns the wait before attempt n+1: exponential from base,
// capped, with jitter so that workers retrying together do not hit a
// recovering server in lockstep.
func Backoff(n int, base, maxDelay time.Duration) time.Duration {
	d := base
	for i := 1; i < n && d < maxDelay; i++ {
		d *= 2
	}
	d = min(d, maxDelay)
	return d/2 + rand.N(d/2+1)
}

// sleep waits d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

var (
	errStopped     = errors.New("worker stopped by the pool")
	errIdle        = errors.New("worker idle")
	errTooManyLive = errors.New("too many connections")
)
