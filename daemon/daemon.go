// Package daemon owns ferry's long-running mode (`ferry --config FILE`):
// for every job of the config, a session kept open with a watcher feeding
// live changes ahead of bulk work, scans at start and on a schedule, and
// protected hours; and around the jobs, the drain on SIGTERM. It wires the
// stages; what a change or a scan does is package mirror's.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"ferry/config"
	"ferry/control"
	"ferry/mirror"
)

// Job is one job to run: its config and the mirror options built from it.
type Job struct {
	Config  config.Job
	Options mirror.Options
}

// Options configure the daemon.
type Options struct {
	Jobs []Job
	Log  *slog.Logger
	// Drain is how long in-flight transfers get to finish after the stop
	// signal before they are abandoned (cleanly: temporary files removed).
	Drain time.Duration
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
	// StateDir is where the control socket goes ("" = no socket).
	StateDir string
	// Version is reported by status.
	Version string
}

// Daemon is the running set of jobs.
type Daemon struct {
	o       Options
	jobs    []*job
	started time.Time
}

// New prepares the jobs; nothing is opened until Run.
func New(o Options) (*Daemon, error) {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.Drain <= 0 {
		o.Drain = 30 * time.Second
	}
	d := &Daemon{o: o}
	for _, jc := range o.Jobs {
		j, err := newJob(jc.Config, jc.Options, o.Log)
		if err != nil {
			return nil, fmt.Errorf("job %q: %w", jc.Config.Name, err)
		}
		d.jobs = append(d.jobs, j)
	}
	return d, nil
}

// Run runs every job until ctx ends, then drains: nothing new starts,
// transfers in flight get o.Drain to finish, the registries are saved.
// hard ending cuts the drain short. A job that cannot start (wrong
// password, unknown host key, missing source) stops the daemon with its
// error, as a config mistake would.
func (d *Daemon) Run(ctx, hard context.Context) error {
	d.started = time.Now()
	g, gctx := errgroup.WithContext(hard)
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
		srvCtx, stopSrv := context.WithCancel(context.WithoutCancel(gctx))
		served := make(chan error, 1)
		go func() { served <- control.Serve(srvCtx, l, d) }()
		defer func() {
			stopSrv()
			if err := <-served; err != nil {
				d.o.Log.Warn("control socket", "error", err)
			}
		}()
	}
	// A job failing stops the others (drained like a signal would).
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	defer context.AfterFunc(gctx, stop)()
	if d.o.Stopping != nil {
		defer context.AfterFunc(runCtx, d.o.Stopping)()
	}
	if d.o.Heartbeat != nil && d.o.HeartbeatEvery > 0 {
		hbCtx, stopHB := context.WithCancel(context.WithoutCancel(gctx))
		var hb sync.WaitGroup
		hb.Go(func() { d.heartbeat(hbCtx) })
		defer func() {
			stopHB()
			hb.Wait()
		}()
	}
	var started atomic.Int64
	ready := func() {
		if started.Add(1) == int64(len(d.jobs)) {
			d.o.Log.Info("ready", "jobs", len(d.jobs))
			if d.o.Ready != nil {
				d.o.Ready()
			}
		}
	}
	for _, j := range d.jobs {
		g.Go(func() error {
			if err := j.run(runCtx, gctx, d.o.Drain, ready); err != nil {
				return fmt.Errorf("job %q: %w", j.name, err)
			}
			return nil
		})
	}
	err := g.Wait()
	if err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
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
