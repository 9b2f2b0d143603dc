package queue

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeSource holds pending items per lane in first-out-of-sync order.
type fakeSource struct {
	mu        sync.Mutex
	lanes     [Lanes][]Item
	maxClaim  int
	claimedAt [Lanes]int
}

func (s *fakeSource) add(items ...Item) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, it := range items {
		l := LaneOf(it.Size)
		s.lanes[l] = append(s.lanes[l], it)
		sort.SliceStable(s.lanes[l], func(i, j int) bool { return s.lanes[l][i].DirtySince < s.lanes[l][j].DirtySince })
	}
}

func (s *fakeSource) Claim(_ context.Context, lane, n int) ([]Item, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n > s.maxClaim {
		s.maxClaim = n
	}
	k := min(n, len(s.lanes[lane]))
	out := append([]Item(nil), s.lanes[lane][:k]...)
	s.lanes[lane] = s.lanes[lane][k:]
	s.claimedAt[lane] += k
	return out, nil
}

func TestLaneOf(t *testing.T) {
	for _, tc := range []struct {
		size int64
		lane int
	}{{0, 0}, {64<<10 - 1, 0}, {64 << 10, 1}, {1 << 20, 2}, {32<<20 - 1, 2}, {32 << 20, 3}, {1 << 40, 3}} {
		if got := LaneOf(tc.size); got != tc.lane {
			t.Errorf("LaneOf(%d) = %d, want %d", tc.size, got, tc.lane)
		}
	}
}

// TestFairShare runs a simulated pool over a mix of many small and a few big
// files: while both lanes have work, each gets about half the worker time.
func TestFairShare(t *testing.T) {
	src := &fakeSource{}
	for i := 0; i < 2000; i++ {
		src.add(Item{Path: fmt.Sprintf("small/%d", i), Size: 4 << 10, DirtySince: int64(i)})
	}
	for i := 0; i < 40; i++ {
		src.add(Item{Path: fmt.Sprintf("big/%d", i), Size: 1 << 30, DirtySince: int64(i)})
	}
	q := New(src, 32)
	q.Close()
	ctx := context.Background()
	// One simulated worker: small files take 1 ms, big ones 500 ms.
	var served [Lanes]time.Duration
	var clock time.Duration
	var smallDoneAt, bigDoneAt time.Duration
	for {
		it, err := q.Next(ctx)
		if errors.Is(err, ErrClosed) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		took := time.Millisecond
		if it.Size > 1<<20 {
			took = 500 * time.Millisecond
		}
		clock += took
		served[LaneOf(it.Size)] += took
		q.Done(it, took)
		if src.claimedAt[0] == 2000 && smallDoneAt == 0 && len(q.low[0]) == 0 {
			smallDoneAt = clock
		}
		if clock == 2*time.Second {
			t.Logf("at 2s: small %v big %v", served[0], served[3])
		}
	}
	bigDoneAt = clock
	// 2000 small files = 2 s of work, 40 big ones = 20 s. Fair share means
	// the small ones finish after about 4 s (half the time each), not after
	// 22 s (big first) and the big ones are not held back until 2 s.
	if smallDoneAt > 5*time.Second || smallDoneAt < 3*time.Second {
		t.Fatalf("small files done at %v of simulated time, want about 4s (fair share)", smallDoneAt)
	}
	if bigDoneAt != 22*time.Second {
		t.Fatalf("all done at %v, want 22s", bigDoneAt)
	}
	if src.maxClaim > 32 {
		t.Fatalf("claimed %d at once, window is 32", src.maxClaim)
	}
}

func TestOrderWithinLaneAndHighFirst(t *testing.T) {
	src := &fakeSource{}
	src.add(Item{Path: "c", DirtySince: 3}, Item{Path: "a", DirtySince: 1}, Item{Path: "b", DirtySince: 2})
	q := New(src, 8)
	ctx := context.Background()
	first, _ := q.Next(ctx)
	if first.Path != "a" {
		t.Fatalf("first = %q, want the oldest, a", first.Path)
	}
	q.Push(Item{Path: "live", DirtySince: 99})
	next, _ := q.Next(ctx)
	if next.Path != "live" || !next.High {
		t.Fatalf("after a live push, next = %+v, want the live item", next)
	}
	q.Done(first, time.Millisecond)
	q.Done(next, time.Millisecond)
	n2, _ := q.Next(ctx)
	n3, _ := q.Next(ctx)
	if n2.Path != "b" || n3.Path != "c" {
		t.Fatalf("order %q %q, want b c", n2.Path, n3.Path)
	}
}

func TestOneEntryPerPath(t *testing.T) {
	q := New(nil, 8)
	ctx := context.Background()
	for i := 5; i > 0; i-- {
		q.Push(Item{Path: "edited", DirtySince: int64(i)})
	}
	q.Push(Item{Path: "other", DirtySince: 3})
	it, _ := q.Next(ctx)
	if it.Path != "edited" || it.DirtySince != 1 || it.Waited {
		t.Fatalf("five pushes gave %+v, want one item keeping the earliest time", it)
	}
	// Pushed again while in flight: not handed out twice at once...
	q.Push(Item{Path: "edited", DirtySince: 10})
	o, _ := q.Next(ctx)
	if o.Path != "other" {
		t.Fatalf("got %q while edited is in flight", o.Path)
	}
	ctxShort, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if it, err := q.Next(ctxShort); err == nil {
		t.Fatalf("got %+v although the only item is in flight", it)
	}
	// ...but served again once the first upload is done.
	q.Done(it, time.Millisecond)
	again, err := q.Next(ctx)
	if err != nil || again.Path != "edited" || !again.Waited {
		t.Fatalf("after Done: %+v %v (want it marked as having waited for the first)", again, err)
	}
	q.Done(again, 0)
	q.Done(o, 0)
	q.Close()
	if _, err := q.Next(ctx); !errors.Is(err, ErrClosed) {
		t.Fatalf("drained queue: %v", err)
	}
}

// TestBulkItemBehindALiveOne: a bulk item of a path a live item holds
// waits for it, and is then marked as having waited, so its handler
// compares with the remote instead of sending the file a second time.
func TestBulkItemBehindALiveOne(t *testing.T) {
	ctx := context.Background()
	src := &fakeSource{}
	// new/f comes after new/g in its lane: taking new/g never looks at it.
	src.add(Item{Path: "new/g", Size: 10, DirtySince: 1}, Item{Path: "new/f", Size: 10, DirtySince: 2})
	q := New(src, 8)
	q.Push(Item{Path: "new/f", DirtySince: 5})
	live, _ := q.Next(ctx)
	if !live.High || live.Waited {
		t.Fatalf("first: %+v, want the live item, not marked", live)
	}
	g, _ := q.Next(ctx)
	if g.Path != "new/g" || g.Waited {
		t.Fatalf("second: %+v, want new/g, not marked", g)
	}
	q.Done(live, 0)
	f, _ := q.Next(ctx)
	if f.Path != "new/f" || f.High || !f.Waited {
		t.Fatalf("third: %+v, want the bulk new/f marked as having waited", f)
	}
	q.Done(f, 0)
	q.Done(g, 0)
}

func TestCloseWaitsForInflightAndRequeue(t *testing.T) {
	src := &fakeSource{}
	src.add(Item{Path: "x", Size: 1})
	q := New(src, 4)
	ctx := context.Background()
	it, _ := q.Next(ctx)
	q.Close()
	got := make(chan error, 1)
	go func() {
		_, err := q.Next(ctx)
		got <- err
	}()
	select {
	case err := <-got:
		t.Fatalf("Next returned %v while an item is in flight", err)
	case <-time.After(30 * time.Millisecond):
	}
	q.Requeue(it) // its worker went away: the item comes back
	if err := <-got; err != nil {
		t.Fatalf("Next after Requeue: %v", err)
	}
}

func TestMoreWakesWaiters(t *testing.T) {
	src := &fakeSource{}
	q := New(src, 4)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	got := make(chan Item, 1)
	go func() {
		it, _ := q.Next(ctx)
		got <- it
	}()
	time.Sleep(20 * time.Millisecond)
	src.add(Item{Path: "late"})
	q.More()
	if it := <-got; it.Path != "late" {
		t.Fatalf("got %+v", it)
	}
}

func TestNextHonoursCancel(t *testing.T) {
	q := New(nil, 4)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := q.Next(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Next on cancelled ctx: %v", err)
	}
}

// failingSource fails every claim once ctx is cancelled, like the registry.
type cancelSource struct{ calls int }

func (c *cancelSource) Claim(ctx context.Context, lane, n int) ([]Item, error) {
	c.calls++
	return nil, ctx.Err()
}

// TestNextStopsWhenClaimsFailOnCancel: a claim that fails because ctx was
// cancelled must end Next, not make it claim again forever.
func TestNextStopsWhenClaimsFailOnCancel(t *testing.T) {
	src := &cancelSource{}
	q := New(src, 4)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	done := make(chan error, 1)
	go func() {
		_, err := q.Next(ctx)
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Next: %v", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatalf("Next spins on failing claims after cancel (%d claims)", src.calls)
	}
}

// TestPauseAndWaitIdle: a paused class is not handed out while the other
// is; WaitIdle returns only once everything handed out is done and the
// source is drained.
func TestPauseAndWaitIdle(t *testing.T) {
	src := &fakeSource{}
	for i := range 5 {
		src.add(Item{Path: fmt.Sprintf("bulk/%d", i), Size: 10, DirtySince: int64(i)})
	}
	q := New(src, 8)
	q.Pause(false, true) // protected hours: bulk waits, live goes
	q.Push(Item{Path: "live", Size: 10, DirtySince: 1})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	it, err := q.Next(ctx)
	if err != nil || it.Path != "live" {
		t.Fatalf("Next = %v, %v; want the live item while bulk is paused", it.Path, err)
	}
	q.Done(it, time.Millisecond)
	short, cancelShort := context.WithTimeout(ctx, 100*time.Millisecond)
	if it, err := q.Next(short); err == nil {
		t.Fatalf("got %s from a paused class", it.Path)
	}
	cancelShort()
	if h, l := q.Paused(); h || !l {
		t.Fatalf("Paused() = %v, %v", h, l)
	}
	idle := make(chan error, 1)
	go func() { idle <- q.WaitIdle(ctx) }()
	select {
	case err := <-idle:
		t.Fatalf("WaitIdle returned (%v) with bulk work waiting", err)
	case <-time.After(50 * time.Millisecond):
	}
	q.Pause(false, false)
	for range 5 {
		it, err := q.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-idle:
			t.Fatalf("WaitIdle returned (%v) with %s in flight", err, it.Path)
		default:
		}
		q.Done(it, time.Millisecond)
	}
	// The source is empty now, but only a claim can tell: a worker asks.
	go func() { _, _ = q.Next(ctx) }()
	if err := <-idle; err != nil {
		t.Fatalf("WaitIdle: %v", err)
	}
}

// TestAdmit: a bulk item the admission check refuses waits, while items it
// admits (in the same lane or another) go; changing the check lets it go.
func TestAdmit(t *testing.T) {
	src := &fakeSource{}
	src.add(Item{Path: "huge", Size: 1 << 30, DirtySince: 1}, Item{Path: "small", Size: 10, DirtySince: 2},
		Item{Path: "big2", Size: 2 << 30, DirtySince: 3}, Item{Path: "medium", Size: 40 << 20, DirtySince: 4})
	q := New(src, 8)
	q.SetAdmit(func(it Item) bool { return it.Size < 1<<30 })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var got []string
	for range 2 {
		it, err := q.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, it.Path)
		q.Done(it, time.Millisecond)
	}
	sort.Strings(got)
	if fmt.Sprint(got) != "[medium small]" {
		t.Fatalf("admitted %v, want medium and small", got)
	}
	short, cancelShort := context.WithTimeout(ctx, 100*time.Millisecond)
	if it, err := q.Next(short); err == nil {
		t.Fatalf("%s started though refused", it.Path)
	}
	cancelShort()
	q.SetAdmit(nil)
	for range 2 {
		it, err := q.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		q.Done(it, time.Millisecond)
	}
}

// slowSource answers its first claim only after the test says so, to let
// More arrive while that claim runs.
type slowSource struct {
	fakeSource
	gate    chan struct{}
	entered chan struct{}
	once    sync.Once
}

func (s *slowSource) Claim(ctx context.Context, lane, n int) ([]Item, error) {
	out, err := s.fakeSource.Claim(ctx, lane, n)
	if lane == 0 {
		s.once.Do(func() {
			close(s.entered)
			<-s.gate
		})
	}
	return out, err
}

// TestMoreDuringClaim: work announced (More) while a claim is running is
// not lost when that claim comes back short — WaitIdle must not report
// idle with the work still in the source.
func TestMoreDuringClaim(t *testing.T) {
	src := &slowSource{gate: make(chan struct{}), entered: make(chan struct{})}
	q := New(src, 8)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	got := make(chan Item, 1)
	go func() {
		it, err := q.Next(ctx)
		if err == nil {
			got <- it
		}
	}()
	<-src.entered // the claim found nothing and waits at the gate
	src.add(Item{Path: "late", Size: 10, DirtySince: 1})
	q.More()
	close(src.gate)
	select {
	case it := <-got:
		q.Done(it, time.Millisecond)
	case <-ctx.Done():
		t.Fatal("the item announced during a claim was never handed out")
	}
	if err := q.WaitIdle(ctx); err != nil {
		t.Fatal(err)
	}
}

// gatedSource blocks its claims of lane 0 while armed, to let a Done
// arrive while a claim runs.
type gatedSource struct {
	fakeSource
	armed   atomic.Bool
	gate    chan struct{}
	entered chan struct{}
}

func (s *gatedSource) Claim(ctx context.Context, lane, n int) ([]Item, error) {
	out, err := s.fakeSource.Claim(ctx, lane, n)
	if lane == 0 && s.armed.CompareAndSwap(true, false) {
		close(s.entered)
		<-s.gate
	}
	return out, err
}

// TestDoneDuringClaim: a path finished while a claim is running, and found
// by that claim, comes back marked as having waited: the row was read
// before the finished item's record was, and may stand for what it
// shipped.
func TestDoneDuringClaim(t *testing.T) {
	src := &gatedSource{gate: make(chan struct{}), entered: make(chan struct{})}
	q := New(src, 8)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	q.Push(Item{Path: "p", DirtySince: 0})
	live, err := q.Next(ctx) // the live item; the source is empty yet
	if err != nil || !live.High {
		t.Fatalf("first: %+v %v", live, err)
	}
	src.add(Item{Path: "p", Size: 10, DirtySince: 1}, Item{Path: "q", Size: 10, DirtySince: 2})
	src.armed.Store(true)
	q.More()
	got := make(chan Item, 2)
	go func() {
		for range 2 {
			it, err := q.Next(ctx)
			if err != nil {
				return
			}
			got <- it
		}
	}()
	select {
	case <-src.entered: // the claim has read p and q and waits at the gate
	case <-ctx.Done():
		t.Fatal("no claim after More")
	}
	q.Done(live, 0) // p finishes meanwhile
	close(src.gate)
	for range 2 {
		select {
		case it := <-got:
			if want := it.Path == "p"; it.Waited != want {
				t.Errorf("%s: Waited = %v, want %v", it.Path, it.Waited, want)
			}
			q.Done(it, 0)
		case <-ctx.Done():
			t.Fatal("claimed items never handed out")
		}
	}
}

// phaseSource holds items in named lanes, as the registry does (weight
// lanes, and negative ones for the deferred phases), and records which
// lanes were asked for.
type phaseSource struct {
	mu    sync.Mutex
	lanes map[int][]Item
	asked map[int]int
}

func (s *phaseSource) Claim(_ context.Context, lane, n int) ([]Item, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.asked[lane]++
	k := min(n, len(s.lanes[lane]))
	out := s.lanes[lane][:k]
	s.lanes[lane] = s.lanes[lane][k:]
	return out, nil
}

// TestNewPhase: a phase's queue serves exactly the rows of its lane and
// never claims a weight lane, whose rows belong to the upload phase.
func TestNewPhase(t *testing.T) {
	const deletes = -1
	src := &phaseSource{lanes: map[int][]Item{}, asked: map[int]int{}}
	for i := range 300 {
		src.lanes[deletes] = append(src.lanes[deletes], Item{Path: fmt.Sprintf("gone/%03d", i)})
		src.lanes[i%Lanes] = append(src.lanes[i%Lanes], Item{Path: fmt.Sprintf("up/%03d", i)})
	}
	q := NewPhase(src, 64, deletes)
	q.Close()
	ctx := context.Background()
	seen := map[string]bool{}
	for {
		it, err := q.Next(ctx)
		if errors.Is(err, ErrClosed) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(it.Path, "gone/") || seen[it.Path] {
			t.Fatalf("the delete phase served %q (seen before: %v)", it.Path, seen[it.Path])
		}
		seen[it.Path] = true
		q.Done(it, time.Millisecond)
	}
	if len(seen) != 300 {
		t.Fatalf("served %d of the phase's 300 rows", len(seen))
	}
	for lane, n := range src.asked {
		if lane != deletes {
			t.Errorf("the phase's queue claimed weight lane %d (%d times)", lane, n)
		}
	}
}
