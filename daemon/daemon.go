// Package daemon owns ferry's long-running mode (`ferry --config FILE`):
// for every job of the config, a session kept open with a watcher feeding
// live changes ahead of bulk work, scans at start and on a schedule, and
// protected hours; and around the jobs, the drain on SIGTERM. It wires the
// stages; what a change or a scan does is package mirror's.
//
// daemon.go runs the set of jobs (start, reload, heartbeat) and control.go
// answers the control socket, metrics.go the Prometheus scrape. One job's
// life and state are in job.go; its watcher feeding the live side in
// live.go; the scans asked for and the periodic one in scans.go; the
// user's pause, protected hours and admission in hours.go; what a reload
// changes without a restart in retune.go.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"ferry/control"
	"ferry/mirror"
	"ferry/remote"
	"ferry/schedule"
	"ferry/transfer"
)

// Job is one job to run, typed: the options of its mirror session and the
// daemon's own settings for it. cli builds it from the config file; the
// daemon never reads the file's values itself.
type Job struct {
	Name    string
	Options mirror.Options
	// Watch follows local changes live; without it only scans ship.
	Watch  bool
	Tuning Tuning
}

// Tuning is what a reload changes in place, without restarting the job
// (with Options.Workers, which resizes the pool).
type Tuning struct {
	SettleDelay  time.Duration // a changed file waits this long to settle
	MaxDelay     time.Duration // ...but never longer than this
	ScanInterval time.Duration // between full scans; 0 = at start only
	Protected    schedule.Windows
	// ProtectedLive lets live changes ship inside protected hours (bulk
	// work waits either way).
	ProtectedLive bool
}

// Options configure the daemon.
type Options struct {
	Jobs []Job
	Log  *slog.Logger
	// Drain is how long in-flight transfers get to finish after the stop
	// signal before they are abandoned (cleanly: temporary files removed).
	Drain time.Duration
	// GitDrain is how long a job's Git stage gets, once its transfers
	// stopped, to commit and push what they shipped (0 = 30 s); what it
	// does not finish waits in the registry for the next start.
	GitDrain time.Duration
	// GitRetry is the first wait before a job tries again to open a Git
	// stage its repository kept from opening; it doubles, jittered, up to
	// 5 min (0 = 15 s).
	GitRetry time.Duration
	// Ready is called once every job has opened its session (logged in,
	// registry recovered) and started watching: systemd's READY=1.
	Ready func()
	// Heartbeat, when set, is called every HeartbeatEvery with a one-line
	// summary, once a status round trip through every job succeeded: the
	// systemd watchdog's proof of life and its STATUS line.
	Heartbeat      func(summary string)
	HeartbeatEvery time.Duration
	// Stopping is called when the drain begins.
	Stopping func()
	// Metrics is the address of the Prometheus endpoint ("" = none).
	Metrics string
	// StateDir is where the control socket goes ("" = no socket).
	StateDir string
	// Version is reported by status.
	Version string
}

// Daemon is the running set of jobs.
type Daemon struct {
	o       Options
	started time.Time

	mu      sync.Mutex
	jobs    []*job // in config order
	running map[string]*running
	runCtx  context.Context // parent of every job's context: its end drains them all
	hard    context.Context
	fail    context.CancelCauseFunc // a job that failed on its own stops the daemon
	wg      sync.WaitGroup
	ready   func()
}

// running is one job's goroutine.
type running struct {
	j    *job
	stop context.CancelFunc // starts its drain
	done chan struct{}
}

// New prepares the jobs; nothing is opened until Run.
func New(o Options) (*Daemon, error) {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.Drain <= 0 {
		o.Drain = 30 * time.Second
	}
	if o.GitDrain <= 0 {
		o.GitDrain = 30 * time.Second
	}
	d := &Daemon{o: o, running: map[string]*running{}}
	for _, jc := range o.Jobs {
		d.jobs = append(d.jobs, newJob(jc, o.Log))
	}
	return d, nil
}

// SetReady replaces the Ready callback (before Run).
func (d *Daemon) SetReady(f func()) { d.o.Ready = f }

// Run runs every job until ctx ends, then drains: nothing new starts,
// transfers in flight get o.Drain to finish, the registries are saved.
// hard ending cuts the drain short. A job that cannot start (wrong
// password, unknown host key, missing source) stops the daemon with its
// error, as a config mistake would.
func (d *Daemon) Run(ctx, hard context.Context) error {
	d.mu.Lock()
	d.started = time.Now() // Status may be asked for from now on
	d.mu.Unlock()
	if d.o.StateDir != "" {
		if err := os.MkdirAll(d.o.StateDir, 0o700); err != nil {
			return fmt.Errorf("state directory: %w", err)
		}
		l, path, err := control.Listen(d.o.StateDir)
		if err != nil {
			return err
		}
		defer os.Remove(path)
		d.o.Log.Info("control socket", "path", path)
		// It answers through the drain, so status shows "draining", and
		// stops once every job has.
		srvCtx, stopSrv := context.WithCancel(context.WithoutCancel(ctx))
		served := make(chan error, 1)
		go func() { served <- control.Serve(srvCtx, l, d) }()
		defer func() {
			stopSrv()
			if err := <-served; err != nil {
				d.o.Log.Warn("control socket", "error", err)
			}
		}()
	}
	if d.o.Metrics != "" {
		stopMetrics, err := d.serveMetrics(context.WithoutCancel(ctx), d.o.Metrics) // scraped through the drain too
		if err != nil {
			return err
		}
		defer func() {
			if err := stopMetrics(); err != nil {
				d.o.Log.Warn("metrics", "error", err)
			}
		}()
	}
	runCtx, fail := context.WithCancelCause(ctx)
	defer fail(nil)
	if d.o.Stopping != nil {
		defer context.AfterFunc(runCtx, d.o.Stopping)()
	}
	if d.o.Heartbeat != nil && d.o.HeartbeatEvery > 0 {
		hbCtx, stopHB := context.WithCancel(context.WithoutCancel(ctx))
		var hb sync.WaitGroup
		hb.Go(func() { d.heartbeat(hbCtx) })
		defer func() {
			stopHB()
			hb.Wait()
		}()
	}
	var started atomic.Int64
	n := int64(len(d.jobs))
	d.mu.Lock()
	d.runCtx, d.hard, d.fail = runCtx, hard, fail
	d.ready = func() {
		if started.Add(1) == n {
			d.o.Log.Info("ready", "jobs", n)
			if d.o.Ready != nil {
				d.o.Ready()
			}
		}
	}
	for _, j := range d.jobs {
		d.startLocked(j)
	}
	d.mu.Unlock()
	<-runCtx.Done()
	d.wg.Wait()
	if err := context.Cause(runCtx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// startLocked runs j in its own goroutine; d.mu is held.
func (d *Daemon) startLocked(j *job) {
	jctx, stop := context.WithCancel(d.runCtx)
	r := &running{j: j, stop: stop, done: make(chan struct{})}
	d.running[j.name] = r
	d.wg.Go(func() {
		defer close(r.done)
		defer stop()
		for attempt := 1; ; attempt++ {
			began := time.Now()
			err := j.run(jctx, d.hard, d.o, d.ready)
			if err == nil || jctx.Err() != nil {
				return
			}
			if permanent(err) {
				d.fail(fmt.Errorf("job %q: %w", j.name, err))
				return
			}
			// The server is down or unreachable, say: the job waits and
			// starts again, as many times as it takes; the others go on.
			if time.Since(began) > 10*time.Minute {
				attempt = 1 // it had been running: start the back-off over
			}
			wait := transfer.Backoff(attempt, 5*time.Second, 5*time.Minute)
			j.setState(StateFailed)
			j.noteErr(err)
			// Up and handling its jobs: one waiting for its server is a
			// state status shows, not a reason to hold READY back.
			j.readyOnce.Do(d.ready)
			j.log.Error("job stopped; starting it again", "error", err, "in", wait.Round(time.Second))
			select {
			case <-jctx.Done():
				return
			case <-time.After(wait):
			}
		}
	})
}

// permanent tells a job failure that waiting will not mend (credentials,
// host key, the job's lock held elsewhere, a refusal for safety) from one
// it may (the server down, the network gone).
func permanent(err error) bool {
	if errors.Is(err, remote.ErrAuth) || errors.Is(err, remote.ErrHostKey) {
		return true
	}
	if remote.IsTemporary(err) || errors.Is(err, transfer.ErrNoConnection) {
		return false
	}
	var me *mirror.Error
	if errors.As(err, &me) {
		// Open's failures: a transport failure to log in is worth
		// waiting for; a missing source, a held lock or a refusal is not.
		return !remote.IsTemporary(me.Err)
	}
	return false
}

// Reload applies a new set of jobs: removed jobs are drained and stopped,
// new ones started; a job whose source, target, credentials or policies
// changed is drained and started again (its first scan then compares with
// the registry, which remembers everything, so nothing is sent again that
// is in sync); a job where only the worker count, the delays, the scan
// interval or the protected hours changed is retuned in place — the pool
// resized, nothing interrupted.
func (d *Daemon) Reload(jobs []Job) error {
	next := make([]*job, 0, len(jobs))
	d.mu.Lock()
	if d.runCtx == nil || d.runCtx.Err() != nil {
		d.mu.Unlock()
		return errors.New("the daemon is not running")
	}
	var stopping []*running
	keep := map[string]bool{}
	for _, jc := range jobs {
		keep[jc.Name] = true
		r := d.running[jc.Name]
		if r != nil && !needsRestart(r.j, jc) {
			r.j.retune(jc)
			next = append(next, r.j)
			continue
		}
		j := newJob(jc, d.o.Log)
		if r != nil {
			j.restart = r // stopped below, before its successor starts
		}
		next = append(next, j)
	}
	for name, r := range d.running {
		if !keep[name] {
			stopping = append(stopping, r)
			delete(d.running, name)
			d.o.Log.Info("job removed from the config: stopping it", "job", name)
		}
	}
	d.jobs = next
	for _, j := range next {
		if j.restart != nil {
			d.o.Log.Info("job changed in the config: restarting it", "job", j.name)
			old := j.restart
			j.restart = nil
			old.stop()
			// The new session can only lock the job once the old one let go.
			d.startAfter(j, old.done)
		} else if d.running[j.name] == nil {
			d.o.Log.Info("job added to the config: starting it", "job", j.name)
			d.startLocked(j)
		}
	}
	d.mu.Unlock()
	for _, r := range stopping {
		r.stop()
	}
	return nil
}

// startAfter starts j once done is closed (unless the daemon stops first).
func (d *Daemon) startAfter(j *job, done <-chan struct{}) {
	d.running[j.name] = &running{j: j, stop: func() {}, done: make(chan struct{})}
	d.wg.Go(func() {
		select {
		case <-done:
		case <-d.runCtx.Done():
			return
		}
		d.mu.Lock()
		defer d.mu.Unlock()
		if d.runCtx.Err() == nil {
			d.startLocked(j)
		}
	})
}

// needsRestart tells whether a job's change goes beyond what retune does:
// its session's options are compared whole but for the worker count and the
// functions a reload builds anew, so an option added later restarts the job
// rather than being ignored.
func needsRestart(j *job, jc Job) bool {
	session := func(o mirror.Options) mirror.Options {
		o.Workers = 0
		o.Open, o.Logf, o.Progress, o.Now, o.DryRunOut, o.RemoteOpts.Warnf, o.ExitCode = nil, nil, nil, nil, nil, nil, nil
		return o
	}
	return j.watch != jc.Watch || !reflect.DeepEqual(session(j.given), session(jc.Options))
}

// heartbeat reports a summary every HeartbeatEvery while the jobs answer.
func (d *Daemon) heartbeat(ctx context.Context) {
	t := time.NewTicker(d.o.HeartbeatEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		sctx, cancel := context.WithTimeout(ctx, d.o.HeartbeatEvery)
		st := d.Status(sctx)
		cancel()
		if ctx.Err() != nil {
			return
		}
		var parts []string
		for _, j := range st.Jobs {
			p := j.Name + ": " + j.State
			if n := j.Queue.Live + j.Queue.Bulk + j.Queue.Pending + j.Queue.InFlight; n > 0 {
				p += fmt.Sprintf(", %d to do", n)
			}
			if j.FailedFiles > 0 {
				p += fmt.Sprintf(", %d failed", j.FailedFiles)
			}
			parts = append(parts, p)
		}
		d.o.Heartbeat(strings.Join(parts, "; "))
	}
}
