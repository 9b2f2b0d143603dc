package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"ferry/mirror"
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
	// given are the options the job was started with, never written
	// after: a reload compares them; mo is the session's own copy.
	given mirror.Options
	mo    mirror.Options
	watch bool
	log   *slog.Logger
	now   func() time.Time

	live    *mirror.Live
	watcher *watcher.Watcher
	// restart is the old incarnation a reload replaces (Reload only).
	restart *running
	retuned chan struct{} // the scan interval changed

	mu        sync.Mutex
	tune      Tuning // what a reload retunes, with the worker count
	workers   int
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

func newJob(jc Job, log *slog.Logger) *job {
	now := jc.Options.Now
	if now == nil {
		now = time.Now
	}
	return &job{name: jc.Name, given: jc.Options, mo: jc.Options, watch: jc.Watch, tune: jc.Tuning, workers: jc.Options.Workers,
		log: log.With("job", jc.Name), now: now,
		state: StateStarting, wants: map[string]bool{}, wake: make(chan struct{}, 1), retuned: make(chan struct{}, 1)}
}

// run opens the job's session and keeps it in sync until ctx ends. hard is
// cancelled after a drain that took too long; ctx ending starts the drain
// (o.Drain for the transfers, then o.GitDrain for the Git stage).
func (j *job) run(ctx, hard context.Context, o Options, ready func()) error {
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
	live := sess.Live(mirror.LiveOptions{GitRetry: o.GitRetry, GitOpened: func() {
		// What shipped while the stage was missing is in sync with no
		// kept bytes: a full scan sends it to the workers, which keep it.
		j.log.Info("git: stage opened; scanning for what shipped without it")
		j.want("")
	}})
	j.mu.Lock()
	j.live = live
	j.mu.Unlock()
	var w *watcher.Watcher
	if j.watch {
		w, err = j.newWatcher(warnf)
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
	j.log.Info("started", "source", j.mo.Source, "target", j.mo.Target.String(), "workers", j.mo.Workers, "watch", j.watch)

	// Drain: once ctx ends, nothing new is handed out; what is in flight
	// gets until the drain timeout to finish, then hard cancels it.
	g.Go(func() error { return j.drainOnStop(ctx, gctx, o.Drain) })
	g.Go(func() error { return j.protectedClock(loopCtx) })
	err = g.Wait()
	if errors.Is(err, errDrained) {
		err = nil
	}
	j.drainGit(hard, o.GitDrain)
	return err
}

// drainGit commits and pushes what the Git stage holds once the pool has
// stopped, so that a stop (SIGTERM, a job removed by a reload) leaves
// nothing shipped and uncommitted that it had time to commit. It gets its
// own time, limit at most, as the job's context has ended; what it does
// not finish waits in the registry, and the next start commits it.
func (j *job) drainGit(hard context.Context, limit time.Duration) {
	g := j.live.Git()
	if g == nil {
		return
	}
	ctx, cancel := context.WithTimeout(hard, limit)
	defer cancel()
	began := time.Now()
	made, err := j.live.DrainGit(ctx)
	took := time.Since(began).Round(time.Millisecond)
	last := ""
	if len(made) > 0 {
		last = made[len(made)-1]
	}
	st := g.Status()
	switch {
	case err != nil:
		j.noteErr(err)
		j.log.Warn("git: the last commit and push before stopping did not finish; the next start does them",
			"commits", len(made), "waiting", st.Waiting, "unpushed", st.Unpushed, "took", took, "error", err)
	case len(made) > 0:
		j.log.Info("git: committed what waited before stopping", "commits", len(made), "last", last, "unpushed", st.Unpushed, "took", took)
	default:
		j.log.Info("git: nothing waited to be committed before stopping", "unpushed", st.Unpushed, "took", took)
	}
}

// drainOnStop is run's drain. Its errDrained ends the group, which stops
// the pool and the watcher; gctx ending first (a failed pool or watcher)
// leaves nothing to drain.
func (j *job) drainOnStop(ctx, gctx context.Context, drain time.Duration) error {
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
