package transfer

import "time"

// growth is the pool's sizing policy, kept apart from Run's event loop so
// that its rules can be checked against plain numbers: Run observes (live
// and starting workers, the backlog, the service average, the clock),
// asks, and carries out the answer. Only Run's goroutine uses it.
type growth struct {
	// workers is the most connections the pool may open (Options.Workers,
	// or the last Resize).
	workers int
	// target is the size the pool aims for: workers, or less after the
	// server refused a connection.
	target int
	// cooldown is how long a refusal holds the pool back before it grows
	// by one again.
	cooldown time.Duration
	// growAt is zero until the server first refuses a connection; then no
	// dial happens before it, and it is when the target may grow next.
	growAt time.Time
	// dialAvg is the mean time a connection takes to open and log in.
	dialAvg time.Duration
}

// dialed records how long a connection took to be ready; 0 means it was
// not dialed (a connection handed over), which says nothing of the server.
func (g *growth) dialed(took time.Duration) {
	if took > 0 {
		g.dialAvg = avg(g.dialAvg, took)
	}
}

// room reports whether the target leaves room for another dial, busy
// counting the live workers and those still dialing. A refusal's cooldown
// holds every dial back, so the server is not asked again too soon.
func (g *growth) room(busy int, now time.Time) bool {
	return busy < g.target && !now.Before(g.growAt)
}

// worth reports whether another connection pays for itself: only while the
// backlog would take longer to drain with the live workers than a new
// connection takes to open. Without a service or dial time yet (the first
// connection, the first items) it dials as long as there is work for one
// more; a no-op run so dials once. A pool that cannot see its backlog
// (Options.Backlog nil) does not ask: every dial the target allows is worth
// it.
func (g *growth) worth(live, backlog int, serviceAvg time.Duration) bool {
	if backlog <= live {
		return false
	}
	if serviceAvg == 0 || live == 0 {
		return true
	}
	drain := time.Duration(backlog) * serviceAvg / time.Duration(live)
	return drain > g.dialAvg
}

// admit reports whether a worker that is ready may start work with live
// workers already at it; one beyond the target is sent away.
func (g *growth) admit(live int) bool {
	return live < g.target
}

// refused shrinks the target to the live workers (never below one) after
// the server refused one more, and holds growth back for the cooldown. It
// returns the new target.
func (g *growth) refused(live int, now time.Time) int {
	g.target = max(1, live)
	g.growAt = now.Add(g.cooldown)
	return g.target
}

// regrow grows the target by one once a refusal's cooldown has passed, and
// starts the next cooldown, so the pool probes its way back to workers
// rather than hitting the server's limit with all of them at once. It
// reports whether the target changed.
func (g *growth) regrow(now time.Time) bool {
	if g.growAt.IsZero() || now.Before(g.growAt) || g.target >= g.workers {
		return false
	}
	g.target++
	g.growAt = now.Add(g.cooldown)
	return true
}

// resize makes n both the target and the most connections: the caller
// asked for that size, whatever refusals shrank the pool to. A running
// cooldown still holds new dials back until it ends. It returns the new
// target.
func (g *growth) resize(n int) int {
	g.target = n
	g.workers = n
	return g.target
}
