package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"ferry/config"
	"ferry/daemon"
	"ferry/mirror"
)

// runDaemon runs the jobs of cfg until the first SIGINT or SIGTERM, which
// drains them (a second one aborts: see main). Exit codes: 0 after a clean
// stop, 2 when a job could not start (login, host key, source, lock).
func (a *App) runDaemon(ctx context.Context, cfg *config.Config, jobs []daemon.Job) int {
	var h slog.Handler = slog.NewTextHandler(a.Stderr, nil)
	if cfg.LogFormat == "json" {
		h = slog.NewJSONHandler(a.Stderr, nil)
	}
	log := slog.New(h)
	d, err := daemon.New(daemon.Options{Jobs: jobs, Log: log, Drain: cfg.DrainTimeout.Duration,
		StateDir: jobs[0].Options.StateDir, Version: a.Version})
	if err != nil {
		fmt.Fprintf(a.Stderr, "ferry: %s: %v\n", cfg.File, err)
		return mirror.ExitUsage
	}
	if err := d.Run(ctx, context.WithoutCancel(ctx)); err != nil {
		log.Error("stopped", "error", err)
		var me *mirror.Error
		if errors.As(err, &me) && me.Code != mirror.ExitOK {
			return me.Code
		}
		return mirror.ExitUsage
	}
	log.Info("stopped")
	return mirror.ExitOK
}
