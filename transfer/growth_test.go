package transfer

import (
	"testing"
	"time"
)

var t0 = time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)

// TestGrowthDial checks when the pool dials one more connection: the room
// the target leaves, then whether the backlog pays for the dial.
func TestGrowthDial(t *testing.T) {
	ms := time.Millisecond
	for _, c := range []struct {
		name           string
		g              growth
		live, starting int
		backlog        int
		serviceAvg     time.Duration
		now            time.Time
		want           bool
	}{
		{name: "first connection, however slow dialing is",
			g: growth{target: 4, dialAvg: time.Hour}, backlog: 1, serviceAvg: ms, now: t0, want: true},
		{name: "first items, no service time yet",
			g: growth{target: 4, dialAvg: time.Hour}, live: 2, backlog: 3, now: t0, want: true},
		{name: "no work for another connection",
			g: growth{target: 4}, live: 2, backlog: 2, now: t0},
		{name: "no-op run dials no second connection",
			g: growth{target: 4}, live: 1, backlog: 0, now: t0},
		{name: "empty backlog, nobody connected",
			g: growth{target: 4}, backlog: 0, now: t0},
		{name: "backlog drains slower than a dial",
			g: growth{target: 4, dialAvg: 100 * ms}, live: 2, backlog: 10, serviceAvg: 50 * ms, now: t0, want: true},
		{name: "backlog drains as fast as a dial",
			g: growth{target: 4, dialAvg: 250 * ms}, live: 2, backlog: 10, serviceAvg: 50 * ms, now: t0},
		{name: "backlog drains faster than a dial",
			g: growth{target: 4, dialAvg: time.Second}, live: 2, backlog: 10, serviceAvg: 50 * ms, now: t0},
		{name: "target reached by live workers",
			g: growth{target: 2}, live: 2, backlog: 100, now: t0},
		{name: "target reached counting those dialing",
			g: growth{target: 3}, live: 1, starting: 2, backlog: 100, now: t0},
		{name: "room left counting those dialing",
			g: growth{target: 4}, live: 1, starting: 2, backlog: 100, now: t0, want: true},
		{name: "cooldown holds every dial back",
			g: growth{target: 4, growAt: t0.Add(time.Second)}, live: 1, backlog: 100, now: t0},
		{name: "cooldown over",
			g: growth{target: 4, growAt: t0}, live: 1, backlog: 100, now: t0, want: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := c.g.room(c.live+c.starting, c.now) && c.g.worth(c.live, c.backlog, c.serviceAvg)
			if got != c.want {
				t.Fatalf("dial = %v, want %v (%+v)", got, c.want, c.g)
			}
		})
	}
}

func TestGrowthDialAverage(t *testing.T) {
	var g growth
	for _, c := range []struct {
		took, want time.Duration
	}{
		{0, 0}, // a handed-over connection says nothing
		{400 * time.Millisecond, 400 * time.Millisecond}, // the first sample is the mean
		{0, 400 * time.Millisecond},
		{800 * time.Millisecond, 500 * time.Millisecond}, // (3·400+800)/4
	} {
		g.dialed(c.took)
		if g.dialAvg != c.want {
			t.Fatalf("after a dial of %v the mean is %v, want %v", c.took, g.dialAvg, c.want)
		}
	}
}

func TestGrowthAdmit(t *testing.T) {
	g := growth{target: 2}
	for live, want := range []bool{true, true, false, false} {
		if got := g.admit(live); got != want {
			t.Fatalf("admit with %d live = %v, want %v", live, got, want)
		}
	}
}

func TestGrowthRefused(t *testing.T) {
	for _, c := range []struct {
		live, want int
	}{{0, 1}, {1, 1}, {3, 3}} {
		g := growth{workers: 6, target: 6, cooldown: time.Minute}
		if got := g.refused(c.live, t0); got != c.want || g.target != c.want {
			t.Fatalf("refused with %d live: returned %d, target %d; want %d", c.live, got, g.target, c.want)
		}
		if !g.growAt.Equal(t0.Add(time.Minute)) {
			t.Fatalf("refused at %v: growth held until %v, want a minute later", t0, g.growAt)
		}
		if g.workers != 6 {
			t.Fatalf("refused changed workers to %d", g.workers)
		}
	}
}

// TestGrowthRegrow walks a pool of 4 through a refusal at 2 live and the
// cooldowns after it: one more connection after each, never beyond 4.
func TestGrowthRegrow(t *testing.T) {
	cd := 30 * time.Second
	g := growth{workers: 4, target: 2, cooldown: cd}
	if g.regrow(t0.Add(time.Hour)) {
		t.Fatal("grew without ever being refused")
	}
	g.target = 4
	g.refused(2, t0)
	for _, c := range []struct {
		at     time.Duration // since the refusal
		grew   bool
		target int
		growAt time.Duration
	}{
		{0, false, 2, cd},
		{cd - 1, false, 2, cd},
		{cd, true, 3, 2 * cd},
		{cd + 1, false, 3, 2 * cd},
		{3 * cd, true, 4, 4 * cd}, // late: the next cooldown starts now
		{5 * cd, false, 4, 4 * cd},
		{time.Hour, false, 4, 4 * cd},
	} {
		grew := g.regrow(t0.Add(c.at))
		if grew != c.grew || g.target != c.target || !g.growAt.Equal(t0.Add(c.growAt)) {
			t.Fatalf("at +%v: grew %v, target %d, next at +%v; want %v, %d, +%v",
				c.at, grew, g.target, g.growAt.Sub(t0), c.grew, c.target, c.growAt)
		}
	}
}

func TestGrowthResize(t *testing.T) {
	for _, c := range []struct {
		name string
		g    growth
		n    int
	}{
		{"up", growth{workers: 2, target: 2}, 5},
		{"down", growth{workers: 6, target: 6}, 1},
		{"up while shrunk by a refusal", growth{workers: 6, target: 2, growAt: t0}, 8},
	} {
		t.Run(c.name, func(t *testing.T) {
			growAt := c.g.growAt
			if got := c.g.resize(c.n); got != c.n || c.g.target != c.n || c.g.workers != c.n {
				t.Fatalf("resize(%d): returned %d, target %d, workers %d", c.n, got, c.g.target, c.g.workers)
			}
			if !c.g.growAt.Equal(growAt) {
				t.Fatalf("resize moved the cooldown to %v", c.g.growAt)
			}
		})
	}
}
