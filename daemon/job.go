package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"ferry/config"
	"ferry/mirror"
	"ferry/queue"
	"ferry/scanner"
	"ferry/schedule"
	"ferry/watcher"
)

// The states a job shows in `ferry status`.
const (
	StateStarting = "starting"
	StateIdle     = "idle"
	StateScanning = "scanning"
	StateSyncing  = "syncing"
	StatePaused   = "paused"
	StateDraining = "draining"
	StateFailed   = "failed"
	// StateWaiting: the server stopped answering; the job waits for it.
	StateWaiting = "waiting"
)

// job runs one [[job]] of the config for the daemon's life.
type job struct {
	name string
	cfg  config.Job
	mo   mirror.Options
	log  *slog.Logger
	prot schedule.Windows
	now  func() time.Time

	live    *mirror.Live
	watcher *watcher.Watcher
	// restart is the old incarnation a reload replaces (Reload only).
	restart *running
	retuned chan struct{} // the scan interval changed

	mu        sync.Mutex
	state     string
	paused    bool // by the user
	refused   bool // another registry wrote the target: nothing is shipped until a restart with --takeover
	protected bool // inside protected hours now
	lastScan  *mirror.ScanResult
	lastErr   []string
	scanning  bool

	scanSince, lastScanAt time.Time
	lastScanTook          time.Duration

	// wants are subtrees to scan ("" = all, with a remote listing).
	wantMu sync.Mutex
	wants  map[string]bool
	wake   chan struct{}

	readyOnce sync.Once // the daemon counts each job once towards READY
	progress  passProgress

	liveQueued atomic.Int64
	lastLive   atomic.Int64 // unix ns of the last live change queued
}

func newJob(cfg config.Job, mo mirror.Options, log *slog.Logger) (*job, error) {
	prot, err := schedule.ParseWindows(cfg.ProtectedHours)
	if err != nil {
		return nil, err
	}
	now := mo.Now
	if now == nil {
		now = time.Now
	}
	return &job{name: cfg.Name, cfg: cfg, mo: mo, log: log.With("job", cfg.Name), prot: prot, now: now,
		state: StateStarting, wants: map[string]bool{}, wake: make(chan struct{}, 1), retuned: make(chan struct{}, 1)}, nil
}

// run opens the job's session and keeps it in sync until ctx ends. hard is
// cancelled after a drain that took too long; ctx ending starts the drain.
func (j *job) run(ctx, hard context.Context, drain time.Duration, ready func()) error {
	warnf := func(format string, args ...any) { j.log.Warn(fmt.Sprintf(format, args...)) }
	j.mo.Logf = warnf
	j.mo.Progress = &j.progress
	j.setState(StateStarting)
	sess, _, err := mirror.Open(hard, j.mo)
	if err != nil {
		j.setState(StateFailed)
		j.noteErr(err)
		return err
	}
	defer sess.Close()
	live := sess.Live()
	j.mu.Lock()
	j.live = live
	j.mu.Unlock()
	var w *watcher.Watcher
	if j.cfg.Watch {
		w, err = watcher.New(j.mo.Source, watcher.Options{Excluded: j.excluded(), Settle: j.cfg.SettleDelay.Duration,
			MaxDelay: j.cfg.MaxDelay.Duration, Logf: warnf})
		if err != nil {
			j.setState(StateFailed)
			j.noteErr(err)
			return err
		}
		defer w.Close()
		j.mu.Lock()
		j.watcher = w
		j.mu.Unlock()
	}
	live.Queue().SetAdmit(j.admit)
	j.applyPause()

	// The pool and the watcher stop only when the drain is over (hard);
	// the loop and the scans stop at ctx.
	g, gctx := errgroup.WithContext(hard)
	g.Go(func() error { return ignoreCancel(j.live.Serve(gctx)) })
	changes := make(chan watcher.Change, 256)
	if w != nil {
		g.Go(func() error { return ignoreCancel(w.Run(gctx, changes)) })
	}
	loopCtx, stopLoop := context.WithCancel(ctx)
	defer stopLoop()
	g.Go(func() error {
		defer stopLoop()
		<-gctx.Done() // a failed pool or watcher ends the loop too
		return nil
	})
	g.Go(func() error { return j.scanner(loopCtx) })
	g.Go(func() error { return j.loop(loopCtx, changes) })
	j.want("")
	j.readyOnce.Do(ready)
	j.log.Info("started", "source", j.mo.Source, "target", j.mo.Target.String(), "workers", j.mo.Workers, "watch", j.cfg.Watch)

	// Drain: once ctx ends, nothing new is handed out; what is in flight
	// gets until the drain timeout to finish, then hard cancels it.
	g.Go(func() error {
		select {
		case <-ctx.Done():
		case <-gctx.Done():
			return nil
		}
		j.setState(StateDraining)
		j.live.Queue().Pause(true, true)
		began := time.Now()
		if j.waitInFlight(gctx, drain) {
			j.log.Info("drained", "took", time.Since(began).Round(time.Millisecond))
		} else if gctx.Err() == nil {
			_, _, n := j.live.Queue().Depth()
			j.log.Warn("drain timeout: abandoning the transfers in flight (their temporary files are removed; the next start sends them)", "in_flight", n)
		}
		return errDrained // stops the pool and the watcher
	})
	g.Go(func() error { // protected hours start and end on the clock
		t := time.NewTicker(15 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-loopCtx.Done():
				return nil
			case <-t.C:
				j.applyPause()
			}
		}
	})
	err = g.Wait()
	if errors.Is(err, errDrained) {
		err = nil
	}
	return err
}

var errDrained = errors.New("drained")

// waitInFlight waits until no transfer is in flight, for at most limit.
func (j *job) waitInFlight(ctx context.Context, limit time.Duration) bool {
	deadline := time.Now().Add(limit)
	for {
		if _, _, n := j.live.Queue().Depth(); n == 0 {
			return true
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func ignoreCancel(err error) error {
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// excluded applies the job's exclude patterns the way the scans do.
func (j *job) excluded() func(string, bool) bool {
	return scanner.NewWalker(j.mo.Source, scanner.Options{Excludes: j.mo.Excludes, Links: j.mo.Links}).Excluded
}

// loop turns watcher changes into live work and scan requests.
func (j *job) loop(ctx context.Context, changes <-chan watcher.Change) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case c := <-changes:
			// A burst is settled as a batch: one registry flush for all.
			batch := []watcher.Change{c}
		more:
			for len(batch) < 1024 {
				select {
				case c := <-changes:
					batch = append(batch, c)
				default:
					break more
				}
			}
			if err := j.live.Sync(ctx); err != nil {
				j.noteErr(err)
				continue
			}
			for _, c := range batch {
				j.change(ctx, c)
			}
		}
	}
}

func (j *job) change(ctx context.Context, c watcher.Change) {
	switch c.Kind {
	case watcher.Changed:
		queued, err := j.live.Changed(ctx, c.Path, c.Since)
		if err != nil {
			j.noteErr(err)
			return
		}
		if queued {
			j.liveQueued.Add(1)
			j.lastLive.Store(j.now().UnixNano())
		}
	case watcher.Moved:
		if c.Dir {
			j.movedDir(ctx, c)
			return
		}
		if _, err := j.live.Moved(ctx, c.From, c.Path, c.Since); err != nil {
			j.noteErr(err)
		}
		if j.cfg.Delete {
			// If the rename cannot be made (or was not queued), the old
			// name is deleted by a scan of its directory; if it was, the
			// scan finds nothing to do.
			j.want(parent(c.From))
		}
	case watcher.Removed:
		if j.cfg.Delete {
			j.want(parent(c.Path))
		}
	case watcher.Rescan:
		j.want(c.Path)
	}
}

// movedDir handles a directory moved inside the tree. It runs in the
// loop, before the changes that follow: a file edited in the directory
// just after the move must be settled against the rows the move re-keyed,
// or it would be planned as new and the rename given up for it.
func (j *job) movedDir(ctx context.Context, c watcher.Change) {
	began := time.Now()
	renamed, files, err := j.live.MovedDir(ctx, c.From, c.Path)
	if err != nil {
		j.noteErr(err)
	}
	if renamed {
		j.log.Info("dir moved", "from", c.From, "to", c.Path, "files", files, "took", time.Since(began).Round(time.Millisecond))
	} else if j.cfg.Delete {
		j.want(parent(c.From)) // the old name goes as any removed directory
	}
	// What differs from what was shipped (or everything, when the remote
	// was not renamed) is sent by a scan of the new name.
	j.want(c.Path)
}

func parent(p string) string {
	d := path.Dir(p)
	if d == "." {
		return ""
	}
	return d
}

// want asks for a scan of dir ("" = everything, with a remote listing).
func (j *job) want(dir string) {
	j.wantMu.Lock()
	j.wants[dir] = true
	j.wantMu.Unlock()
	select {
	case j.wake <- struct{}{}:
	default:
	}
}

// scanner runs the scans asked for, one at a time, and the periodic full
// scan; wanted subtrees are merged (a full scan covers them all).
func (j *job) scanner(ctx context.Context) error {
	var t *time.Ticker
	var tick <-chan time.Time
	arm := func() {
		if t != nil {
			t.Stop()
			t, tick = nil, nil
		}
		j.mu.Lock()
		iv := j.cfg.ScanInterval.Duration
		j.mu.Unlock()
		if iv > 0 {
			t = time.NewTicker(iv)
			tick = t.C
		}
	}
	arm()
	defer func() {
		if t != nil {
			t.Stop()
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-j.retuned:
			arm()
			continue
		case <-tick:
			j.want("")
			continue
		case <-j.wake:
		}
		// Let a burst of removals arrive before scanning their directories.
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(100 * time.Millisecond):
		}
		j.wantMu.Lock()
		dirs := j.wants
		j.wants = map[string]bool{}
		j.wantMu.Unlock()
		if dirs[""] {
			dirs = map[string]bool{"": true}
		}
		for dir := range dirs {
			if covered(dir, dirs) {
				continue
			}
			j.scan(ctx, dir)
			if ctx.Err() != nil {
				return nil
			}
		}
	}
}

// covered reports whether an ancestor of dir is also to be scanned.
func covered(dir string, dirs map[string]bool) bool {
	for d := dir; d != ""; {
		d = parent(d)
		if dirs[d] {
			return true
		}
	}
	return false
}

func (j *job) scan(ctx context.Context, dir string) {
	full := dir == ""
	began := time.Now()
	if full {
		j.progress.reset()
	}
	j.mu.Lock()
	j.scanning, j.scanSince = true, began
	j.mu.Unlock()
	j.refreshState()
	res := j.live.Scan(ctx, dir, full)
	j.mu.Lock()
	j.scanning, j.scanSince = false, time.Time{}
	if full {
		j.lastScan, j.lastScanAt, j.lastScanTook = &res, began, time.Since(began)
	}
	j.mu.Unlock()
	j.refreshState()
	if ctx.Err() != nil {
		return
	}
	attrs := []any{"dir", dir, "took", time.Since(began).Round(time.Millisecond), "uploads", res.Plan.Uploads,
		"touches", res.Plan.Touches, "deletes", res.Plan.Deletes, "unchanged", res.Plan.Unchanged}
	if res.Err != nil {
		j.noteErr(res.Err)
		j.log.Error("scan failed", append(attrs, "error", res.Err)...)
		if errors.Is(res.Err, mirror.ErrNotOurs) {
			// Shipping on would make two registries write one target.
			j.mu.Lock()
			j.refused, j.state = true, StateFailed
			j.mu.Unlock()
			j.applyPause()
		}
		return
	}
	if res.MarkerWritten {
		attrs = append(attrs, "marker", "written")
	}
	if full || res.Plan.Uploads+res.Plan.Deletes > 0 {
		j.log.Info("scan done", attrs...)
	}
}

// applyPause sets the queue's classes from the user's pause and the
// protected hours.
func (j *job) applyPause() {
	j.mu.Lock()
	inProt, _ := j.prot.Active(j.now())
	changed := inProt != j.protected
	j.protected = inProt
	user, liveOK, live := j.paused || j.refused, j.cfg.ProtectedLive, j.live
	j.mu.Unlock()
	if live != nil {
		live.Queue().Pause(user || (inProt && !liveOK), user || inProt)
	}
	if changed {
		if inProt {
			j.log.Info("protected hours: bulk work paused", "live_allowed", liveOK)
		} else {
			j.log.Info("protected hours over: bulk work resumes")
		}
	}
	j.refreshState()
}

// assumedRate is the upload rate per connection taken for the admission
// check until one is measured: low, so a big file is not started into a
// window on optimism.
const assumedRate = 1 << 20

// admit lets a bulk item start unless, at the rate measured so far, it
// would still be running when the next protected window opens.
func (j *job) admit(it queue.Item) bool {
	j.mu.Lock()
	prot, live := j.prot, j.live
	j.mu.Unlock()
	rate := 0.0
	if live != nil {
		rate = live.Rate()
	}
	return admits(prot, j.now(), it.Size, rate)
}

// admits is admit's arithmetic.
func admits(prot schedule.Windows, now time.Time, size int64, rate float64) bool {
	if len(prot) == 0 {
		return true
	}
	if rate <= 0 {
		rate = assumedRate
	}
	est := time.Duration(float64(size) / rate * float64(time.Second))
	return prot.Fits(now, est)
}

// refreshState derives the state shown from what the job is doing.
func (j *job) refreshState() {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.state == StateDraining || j.state == StateFailed {
		return
	}
	switch {
	case j.paused:
		j.state = StatePaused
	case j.scanning:
		j.state = StateScanning
	default:
		j.state = StateIdle
		if j.live != nil {
			if h, l, f := j.live.Queue().Depth(); h+l+f > 0 {
				j.state = StateSyncing
			}
		}
	}
	if !j.paused && !j.silence(j.live).IsZero() {
		j.state = StateWaiting
	}
}

// retune applies the keys a reload can change without restarting the job:
// workers (the pool is resized), the settle and maximum delays, the scan
// interval and the protected hours.
func (j *job) retune(c config.Job) error {
	prot, err := schedule.ParseWindows(c.ProtectedHours)
	if err != nil {
		return err
	}
	j.mu.Lock()
	old := j.cfg
	j.cfg.Workers, j.cfg.SettleDelay, j.cfg.MaxDelay = c.Workers, c.SettleDelay, c.MaxDelay
	j.cfg.ScanInterval, j.cfg.ProtectedHours, j.cfg.ProtectedLive = c.ScanInterval, c.ProtectedHours, c.ProtectedLive
	j.prot = prot
	live, w := j.live, j.watcher
	j.mu.Unlock()
	if live != nil && c.Workers != old.Workers {
		live.Pool().Resize(c.Workers)
		j.log.Info("workers resized", "from", old.Workers, "to", c.Workers)
	}
	if w != nil {
		w.SetDelays(c.SettleDelay.Duration, c.MaxDelay.Duration)
	}
	if c.ScanInterval != old.ScanInterval {
		select {
		case j.retuned <- struct{}{}:
		default:
		}
	}
	j.applyPause()
	return nil
}

// liveNow is the job's live side once its session is open, else nil.
func (j *job) liveNow() *mirror.Live {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.live
}

func (j *job) setState(s string) {
	j.mu.Lock()
	j.state = s
	j.mu.Unlock()
}

// noteErr keeps the last few errors for status.
func (j *job) noteErr(err error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.lastErr = append(j.lastErr, time.Now().UTC().Format(time.RFC3339)+" "+err.Error())
	if len(j.lastErr) > 10 {
		j.lastErr = j.lastErr[len(j.lastErr)-10:]
	}
}
