// Package cli owns ferry's command line: it parses the commands and flags of
// the user-facing contract, builds each stage's options from them, runs the
// work, and maps the outcome to the exit codes scripts rely on.
package cli

import (
	"context"
	"encoding/json"
	"ferry/planner"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"

	"ferry/config"
	"ferry/daemon"
	"ferry/mirror"
	"ferry/remote"
)

// App is the command line with its dependencies.
type App struct {
	Version string
	Openers map[string]remote.Opener
	Stdout  io.Writer
	Stderr  io.Writer
	Getenv  func(string) string

	// daemonLog is the daemon's logger, made as soon as its config is
	// read: warnings (a password_file others can read, a password in a
	// URL, the remote's own) go through it too, so that every line the
	// daemon writes has the log_format asked for.
	daemonLog atomic.Pointer[slog.Logger]
}

// warnf reports something the user should fix that does not stop the
// work: in the daemon's log once there is one, else on stderr.
func (a *App) warnf(format string, args ...any) {
	if l := a.daemonLog.Load(); l != nil {
		l.Warn(fmt.Sprintf(format, args...))
		return
	}
	fmt.Fprintf(a.Stderr, "ferry: warning: "+format+"\n", args...)
}

const usage = `usage:
  ferry --once [flags] SOURCE TARGET    mirror once, exit when in sync
  ferry --once --config FILE [--job NAME] [flags]
                                        one pass of each job in FILE (flags override its keys)
  ferry --config FILE                   run every job in FILE as a daemon until SIGTERM
  ferry status|pause|resume|sync [--config FILE] [--job NAME]
                                        see and steer a running daemon
  ferry sync --git [--job NAME]         commit and push what the Git stage holds now
  ferry demo                            mirror a generated tree to a loopback SFTP server
  ferry version

TARGET is ftp://user@host[:port]/path, ftps://..., sftp://user@host[:port]/path or file:///path.
Exit codes: 0 in sync, 1 some files failed, 2 usage/connection/auth error, 3 refused for safety
(among them: another registry wrote the target last; --takeover), 130 interrupted.

flags:
`

// Run executes one command line and returns the exit code.
func (a *App) Run(ctx context.Context, args []string) int {
	if len(args) > 0 {
		switch args[0] {
		case "version", "--version":
			fmt.Fprintf(a.Stdout, "ferry %s (protocols: %s)\n", a.Version, strings.Join(a.schemes(), ", "))
			return exitOK
		case "demo":
			return a.demo(ctx, args[1:])
		case "bench":
			return a.bench(ctx, args[1:])
		case "status", "pause", "resume", "sync":
			return a.steer(ctx, args[0], args[1:])
		case "help", "-h", "--help":
			fs, _ := newOnceFlags(a.Stdout)
			fmt.Fprint(a.Stdout, usage)
			fs.PrintDefaults()
			return exitOK
		}
	}
	fs, f := newOnceFlags(a.Stderr)
	fs.Usage = func() {
		fmt.Fprint(a.Stderr, usage)
		fs.PrintDefaults()
	}
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return exitUsage
	}
	f.set = map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { f.set[fl.Name] = true })
	if f.config != "" {
		return a.runConfig(ctx, f, pos)
	}
	if !f.once {
		fmt.Fprintln(a.Stderr, "ferry: say --once to mirror once, or give --config FILE")
		fs.Usage()
		return exitUsage
	}
	if len(pos) != 2 {
		fmt.Fprintf(a.Stderr, "ferry: --once needs SOURCE and TARGET, got %d arguments\n", len(pos))
		return exitUsage
	}
	if err := checkFlags(&f.j); err != nil {
		fmt.Fprintf(a.Stderr, "ferry: %v\n", err)
		return exitUsage
	}
	f.j.Source, f.j.Target = pos[0], pos[1]
	o, err := a.options(f.j, f.state, f.job, f.dryRun)
	if err != nil {
		fmt.Fprintf(a.Stderr, "ferry: %v\n", err)
		return exitUsage
	}
	o.Takeover = f.takeover
	return a.once(ctx, o, f)
}

// runConfig runs the jobs of a config file: one pass each with --once.
func (a *App) runConfig(ctx context.Context, f *onceFlags, pos []string) int {
	if len(pos) > 0 {
		fmt.Fprintf(a.Stderr, "ferry: with --config, sources and targets come from the file; unexpected %q\n", pos)
		return exitUsage
	}
	cfg, daemonJobs, err := a.loadJobs(f)
	if err != nil {
		for line := range strings.SplitSeq(err.Error(), "\n") {
			fmt.Fprintf(a.Stderr, "ferry: %s\n", line)
		}
		return exitUsage
	}
	var opts []mirror.Options
	for _, j := range daemonJobs {
		opts = append(opts, j.Options)
	}
	if !f.once {
		if f.dryRun {
			fmt.Fprintln(a.Stderr, "ferry: --dry-run plans one pass: add --once")
			return exitUsage
		}
		return a.runDaemon(ctx, cfg, daemonJobs, func() (*config.Config, []daemon.Job, error) { return a.loadJobs(f) })
	}
	worst := exitOK
	for _, o := range opts {
		code := a.once(ctx, o, f)
		worst = worseExit(worst, code)
		if code == exitInterrupted {
			break
		}
	}
	return worst
}

// loadJobs reads the config file and builds the options of its jobs (or of
// --job), with the flags given overriding their keys. A reload calls it
// again.
func (a *App) loadJobs(f *onceFlags) (*config.Config, []daemon.Job, error) {
	cfg, err := config.Load(f.config, checkJob)
	if err != nil {
		return nil, nil, err
	}
	if !f.once {
		// The first load makes the logger; a reload keeps it (the running
		// daemon logs on with the format it started with).
		a.daemonLog.CompareAndSwap(nil, newDaemonLog(a.Stderr, cfg.LogFormat))
	}
	jobs := cfg.Jobs
	if f.job != "" {
		jobs = nil
		var names []string
		for _, j := range cfg.Jobs {
			names = append(names, j.Name)
			if j.Name == f.job {
				jobs = append(jobs, j)
			}
		}
		if len(jobs) == 0 {
			return nil, nil, fmt.Errorf("%s has no job %q (it has: %s)", f.config, f.job, strings.Join(names, ", "))
		}
	}
	state := f.state
	if state == "" {
		state = cfg.StateDir
	}
	var out []daemon.Job
	for _, j := range jobs {
		f.override(&j)
		if err := checkFlags(&j); err != nil {
			return nil, nil, fmt.Errorf("job %q: %w", j.Name, err)
		}
		o, err := a.options(j, state, j.Name, f.dryRun)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: job %q: %w", f.config, j.Name, err)
		}
		o.Takeover = f.takeover
		dj, err := daemonJob(j, o)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: job %q: %w", f.config, j.Name, err)
		}
		out = append(out, dj)
	}
	return cfg, out, nil
}

func (a *App) schemes() []string {
	out := make([]string, 0, len(a.Openers))
	for s := range a.Openers {
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

// options turns a checked job into the mirror's options. regName is the
// job's name in the registry ("" derives one from source and target).
func (a *App) options(j config.Job, state, regName string, dryRun bool) (mirror.Options, error) {
	var o mirror.Options
	t, err := remote.ParseURL(j.Target)
	if err != nil {
		return o, err
	}
	open, ok := a.Openers[t.Scheme]
	if !ok {
		return o, fmt.Errorf("target %s: no backend for %q", j.Target, t.Scheme)
	}
	conflict, err := planner.ParseConflict(j.Conflict)
	if err != nil {
		return o, err
	}
	md, err := planner.ParseMaxDelete(j.MaxDelete)
	if err != nil {
		return o, err
	}
	rate, err := config.ParseRate(j.BwLimit)
	if err != nil {
		return o, err
	}
	links, err := linkMode(j)
	if err != nil {
		return o, err
	}
	pw, err := remote.ResolvePassword(t, j.PasswordFile, a.Getenv, a.warnf)
	if err != nil {
		return o, err
	}
	if state == "" {
		state = defaultStateDir(a.Getenv)
	}
	if state, err = filepath.Abs(state); err != nil {
		return o, err
	}
	src, err := filepath.Abs(j.Source)
	if err != nil {
		return o, err
	}
	git, err := gitOptions(j.Git, a.warnf)
	if err != nil {
		return o, err
	}
	return mirror.Options{
		Source: src, Target: t, Open: open,
		RemoteOpts: remote.Options{Password: pw, IdentityFile: j.IdentityFile, KnownHostsFile: j.KnownHosts, CAFile: j.TLSCAFile,
			Timeout: j.Timeout.Duration, Warnf: a.warnf},
		StateDir: state, Job: regName, Workers: j.Workers, Delete: j.Delete, DeleteExcluded: j.DeleteExcluded, MaxDelete: md, DryRun: dryRun,
		Excludes: j.Exclude, Links: links, Checksum: j.Checksum, CheckRemote: j.CheckRemote, Move: j.Move,
		Conflict: conflict, BwLimit: rate, DryRunOut: a.Stdout, Marker: j.Marker, Patience: j.ServerPatience.Duration, ExitCode: exitCode,
		Git: git,
	}, nil
}

func defaultStateDir(getenv func(string) string) string {
	if d := getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "ferry")
	}
	if h, err := os.UserHomeDir(); err == nil {
		return filepath.Join(h, ".local", "state", "ferry")
	}
	return filepath.Join(os.TempDir(), "ferry-state")
}

// once runs one mirror pass with the requested reporting.
func (a *App) once(ctx context.Context, o mirror.Options, f *onceFlags) int {
	logw := a.Stderr
	var bars *bars
	if f.progress && !f.jsonOut {
		bars = newBars(a.Stderr)
		o.Progress = bars
		logw = bars
	}
	o.Logf = func(format string, args ...any) { fmt.Fprintf(logw, "ferry: "+format+"\n", args...) }
	sum, err := mirror.Run(ctx, o)
	if bars != nil {
		bars.Close()
	}
	code := exitOf(ctx, err)
	sum.ExitCode = code
	if f.jsonOut {
		enc := json.NewEncoder(a.Stdout)
		enc.SetIndent("", "  ")
		out := struct {
			*mirror.Summary
			Error string `json:"error,omitempty"`
		}{Summary: sum}
		if err != nil && code != exitFailed {
			out.Error = err.Error()
		}
		_ = enc.Encode(out)
	} else if !sum.Ended.IsZero() { // a run refused before it started has nothing to sum up
		sum.WriteText(a.Stdout)
	}
	if err != nil && code != exitFailed {
		if code == exitInterrupted {
			fmt.Fprintln(a.Stderr, "ferry: interrupted; the registry is saved and the next run resumes")
		} else {
			fmt.Fprintf(a.Stderr, "ferry: %v\n", err)
		}
	}
	return code
}
