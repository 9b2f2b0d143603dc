package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"ferry/config"
	"ferry/control"
	"ferry/remote"
)

// steer runs `ferry status|pause|resume|sync`: it finds the daemon's
// control socket in the state directory (--state, the config's state_dir,
// or the default) and asks.
func (a *App) steer(ctx context.Context, cmd string, args []string) int {
	fs := flag.NewFlagSet("ferry "+cmd, flag.ContinueOnError)
	fs.SetOutput(a.Stderr)
	cfgPath := fs.String("config", "", "the daemon's config file (for its state_dir)")
	state := fs.String("state", "", "the daemon's state directory (default: the config's state_dir, or ~/.local/state/ferry)")
	job := fs.String("job", "", "only this job (default: every job)")
	jsonOut := fs.Bool("json", false, "status: print JSON")
	retry := fs.Bool("retry-failed", false, "sync: make the failed files pending again first")
	if _, err := parseInterspersed(fs, args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	dir := *state
	if dir == "" && *cfgPath != "" {
		cfg, err := config.Load(*cfgPath, checkJob)
		if err != nil {
			for line := range strings.SplitSeq(err.Error(), "\n") {
				fmt.Fprintf(a.Stderr, "ferry: %s\n", line)
			}
			return exitUsage
		}
		dir = cfg.StateDir
	}
	if dir == "" {
		dir = defaultStateDir(a.Getenv)
	}
	c := control.NewClient(filepath.Join(dir, control.SocketName))
	var err error
	switch cmd {
	case "status":
		var st control.Status
		if st, err = c.Status(ctx, *job); err == nil {
			if *jsonOut {
				enc := json.NewEncoder(a.Stdout)
				enc.SetIndent("", "  ")
				err = enc.Encode(st)
			} else {
				writeStatus(a, st)
			}
		}
	case "pause":
		err = c.Pause(ctx, *job)
	case "resume":
		err = c.Resume(ctx, *job)
	case "sync":
		if *retry {
			var n int
			if n, err = c.Retry(ctx, *job); err == nil {
				fmt.Fprintf(a.Stdout, "%d failed files are pending again\n", n)
			}
		}
		if err == nil {
			err = c.Sync(ctx, *job)
		}
	}
	if err != nil {
		fmt.Fprintf(a.Stderr, "ferry %s: %v\n", cmd, err)
		if errors.Is(err, control.ErrNotRunning) {
			fmt.Fprintln(a.Stderr, "ferry: start it with `ferry --config FILE` (or systemctl start ferry), or give the --state or --config it runs with")
		}
		return exitUsage
	}
	if cmd != "status" {
		who := "every job"
		if *job != "" {
			who = "job " + *job
		}
		fmt.Fprintf(a.Stdout, "%s: %s\n", cmd, who)
	}
	return exitOK
}

// writeStatus prints the readable table of `ferry status`.
func writeStatus(a *App, st control.Status) {
	fmt.Fprintf(a.Stdout, "ferry %s, pid %d, up %s\n\n", st.Version, st.PID, time.Since(st.Started).Round(time.Second))
	tw := tabwriter.NewWriter(a.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "JOB\tSTATE\tLIVE\tBULK\tPENDING\tIN FLIGHT\tSENT\tBYTES\tFAILED\tLAST SCAN")
	for _, j := range st.Jobs {
		state := j.State
		if j.Protected {
			state += " (protected hours)"
		}
		if !j.ServerSilentSince.IsZero() {
			state += fmt.Sprintf(" (server silent since %s)", j.ServerSilentSince.Local().Format("15:04:05"))
		}
		scan := "—"
		switch {
		case j.Scan.Running:
			scan = fmt.Sprintf("running for %s: %d of %d files done (%s of %s)", time.Since(j.Scan.Since).Round(time.Second),
				j.Scan.DoneFiles, j.Scan.PlannedFiles, remote.Bytes(j.Scan.DoneBytes), remote.Bytes(j.Scan.PlannedBytes))
		case !j.Scan.Last.IsZero():
			scan = fmt.Sprintf("%s, %.1f s, %d files, %d to send", j.Scan.Last.Local().Format("15:04:05"), j.Scan.LastTook, j.Scan.Files, j.Scan.Uploads)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%d\t%s\t%d\t%s\n", j.Name, state, j.Queue.Live, j.Queue.Bulk, j.Queue.Pending,
			j.Queue.InFlight, j.Totals.Transferred, remote.Bytes(j.Totals.Bytes), j.FailedFiles, scan)
	}
	tw.Flush()
	for _, j := range st.Jobs {
		fmt.Fprintf(a.Stdout, "\n%s: %s -> %s\n", j.Name, j.Source, j.Target)
		for _, w := range j.Workers {
			what := w.State
			if w.Path != "" {
				what += " " + w.Path
			}
			fmt.Fprintf(a.Stdout, "  worker %d: %s (%s, %d done)\n", w.ID, what, time.Since(w.Since).Round(time.Millisecond), w.Done)
		}
		for _, e := range j.LastErrors {
			fmt.Fprintf(a.Stdout, "  error: %s\n", e)
		}
	}
}
