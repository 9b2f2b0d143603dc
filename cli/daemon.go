package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	sd "github.com/coreos/go-systemd/v22/daemon"

	"ferry/config"
	"ferry/daemon"
	"ferry/mirror"
)

// newDaemonLog is the daemon's logger in the format log_format names.
func newDaemonLog(w io.Writer, format string) *slog.Logger {
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, nil))
	}
	return slog.New(slog.NewTextHandler(w, nil))
}

// runDaemon runs the jobs of cfg until the first SIGINT or SIGTERM, which
// drains them (a second one aborts: see main). Under systemd (Type=notify)
// it says READY once every job watches, keeps STATUS current, pets the
// watchdog when WatchdogSec is set, and says STOPPING when the drain
// begins. Exit codes: 0 after a clean stop, 2 when a job could not start
// (login, host key, source, lock).
func (a *App) runDaemon(ctx context.Context, cfg *config.Config, jobs []daemon.Job, reload func() (*config.Config, []daemon.Job, error)) int {
	a.daemonLog.CompareAndSwap(nil, newDaemonLog(a.Stderr, cfg.LogFormat))
	log := a.daemonLog.Load()
	notify := func(state string) {
		if _, err := sd.SdNotify(false, state); err != nil {
			log.Warn("systemd notification failed", "error", err)
		}
	}
	every := 10 * time.Second
	watchdog, _ := sd.SdWatchdogEnabled(false)
	if watchdog > 0 {
		every = watchdog / 3
	}
	d, err := daemon.New(daemon.Options{Jobs: jobs, Log: log, Drain: cfg.DrainTimeout.Duration,
		StateDir: jobs[0].Options.StateDir, Version: a.Version, Metrics: cfg.MetricsListen,
		Ready:    func() { notify(fmt.Sprintf("READY=1\nSTATUS=watching %d jobs", len(jobs))) },
		Stopping: func() { notify("STOPPING=1\nSTATUS=draining") },
		Heartbeat: func(summary string) {
			msg := "STATUS=" + summary
			if watchdog > 0 {
				msg = "WATCHDOG=1\n" + msg
			}
			notify(msg)
		},
		HeartbeatEvery: every,
	})
	if err != nil {
		fmt.Fprintf(a.Stderr, "ferry: %s: %v\n", cfg.File, err)
		return exitUsage
	}
	// SIGHUP re-reads the config; a config with mistakes is refused and
	// the daemon goes on with the one it has.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	hupCtx, stopHUP := context.WithCancel(ctx)
	var hupWG sync.WaitGroup
	hupWG.Go(func() {
		for {
			select {
			case <-hupCtx.Done():
				return
			case <-hup:
			}
			notify("RELOADING=1")
			_, jobs, err := reload()
			if err == nil {
				err = d.Reload(jobs)
			}
			if err != nil {
				log.Error("reload refused: the daemon goes on with the config it has", "error", err)
			} else {
				log.Info("reloaded", "jobs", len(jobs))
			}
			notify("READY=1")
		}
	})
	defer func() {
		stopHUP()
		hupWG.Wait()
	}()
	if err := d.Run(ctx, context.WithoutCancel(ctx)); err != nil {
		log.Error("stopped", "error", err)
		var me *mirror.Error
		if errors.As(err, &me) && me.Outcome != mirror.Complete {
			return exitCode(me.Outcome)
		}
		return exitUsage
	}
	log.Info("stopped")
	return exitOK
}
