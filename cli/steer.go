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
	gitNow := fs.Bool("git", false, "sync: commit and push what the Git stage holds now (instead of a full scan); a stopped stage tries again")
	if _, err := parseInterspersed(fs, args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if *gitNow && cmd != "sync" {
		fmt.Fprintf(a.Stderr, "ferry %s: --git is for ferry sync\n", cmd)
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
	who := "every job"
	if *job != "" {
		who = "job " + *job
	}
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
		switch {
		case err != nil:
		case *gitNow:
			// The stage commits in its own time: status shows the commit.
			var asked []string
			if asked, err = c.GitSync(ctx, *job); err == nil {
				cmd, who = "sync --git", "job "+strings.Join(asked, ", job ")
			}
		default:
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
		if j.Git != nil {
			writeGitStatus(a, *j.Git)
		}
		for _, e := range j.LastErrors {
			fmt.Fprintf(a.Stdout, "  error: %s\n", e)
		}
	}
}

// writeGitStatus prints a job's Git stage in one line, and its error (or
// why it stopped) in a second.
func writeGitStatus(a *App, g control.GitStatus) {
	ago := func(t time.Time) string { return time.Since(t).Round(time.Second).String() + " ago" }
	line := fmt.Sprintf("  git: %d waiting", g.Waiting)
	if g.LastCommit != "" {
		line += fmt.Sprintf(", last commit %s (%s)", shortCommit(g.LastCommit), ago(g.LastCommitAt))
	} else {
		line += ", no commit since start"
	}
	switch {
	case !g.Push:
		line += ", push off"
	case !g.LastPushAt.IsZero():
		line += ", pushed " + ago(g.LastPushAt)
	default:
		line += ", no push since start"
	}
	if g.Push {
		line += fmt.Sprintf(", %d unpushed", g.Unpushed)
	}
	fmt.Fprintln(a.Stdout, line)
	switch {
	case g.Stopped:
		fmt.Fprintf(a.Stdout, "  git stopped: %s (the mirror goes on; ferry sync --git tries again)\n", g.Error)
	case g.Error != "":
		fmt.Fprintf(a.Stdout, "  git error: %s\n", g.Error)
	}
}

// shortCommit abbreviates a commit id the way the stage's log lines do.
func shortCommit(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
