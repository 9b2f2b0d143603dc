// Package cli owns ferry's command line: it parses the commands and flags of
// the user-facing contract, builds each stage's options from them, runs the
// work, and maps the outcome to the exit codes scripts rely on.
package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"ferry/mirror"
	"ferry/remote"
	"ferry/scanner"
)

// App is the command line with its dependencies.
type App struct {
	Version string
	Openers map[string]remote.Opener
	Stdout  io.Writer
	Stderr  io.Writer
	Getenv  func(string) string
}

const usage = `usage:
  ferry --once [flags] SOURCE TARGET    mirror once, exit when in sync
  ferry demo                            mirror a generated tree to a loopback SFTP server
  ferry version

TARGET is ftp://user@host[:port]/path, ftps://..., sftp://user@host[:port]/path or file:///path.
Exit codes: 0 in sync, 1 some files failed, 2 usage/connection/auth error, 3 refused for safety, 130 interrupted.

flags:
`

// Run executes one command line and returns the exit code.
func (a *App) Run(ctx context.Context, args []string) int {
	if len(args) > 0 {
		switch args[0] {
		case "version", "--version":
			fmt.Fprintf(a.Stdout, "ferry %s (protocols: %s)\n", a.Version, strings.Join(a.schemes(), ", "))
			return mirror.ExitOK
		case "demo":
			return a.demo(ctx, args[1:])
		case "bench":
			return a.bench(ctx, args[1:])
		case "status", "pause", "resume", "sync":
			fmt.Fprintf(a.Stderr, "ferry %s: not in this build yet (the daemon and the benchmark come next)\n", args[0])
			return mirror.ExitUsage
		case "help", "-h", "--help":
			fs, _ := newOnceFlags(a.Stdout)
			fmt.Fprint(a.Stdout, usage)
			fs.PrintDefaults()
			return mirror.ExitOK
		}
	}
	fs, f := newOnceFlags(a.Stderr)
	fs.Usage = func() {
		fmt.Fprint(a.Stderr, usage)
		fs.PrintDefaults()
	}
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return mirror.ExitUsage
	}
	if f.config != "" {
		fmt.Fprintln(a.Stderr, "ferry: --config is not in this build yet; give SOURCE and TARGET")
		return mirror.ExitUsage
	}
	if !f.once {
		fmt.Fprintln(a.Stderr, "ferry: say --once to mirror once (the daemon mode comes with --config)")
		fs.Usage()
		return mirror.ExitUsage
	}
	if len(pos) != 2 {
		fmt.Fprintf(a.Stderr, "ferry: --once needs SOURCE and TARGET, got %d arguments\n", len(pos))
		return mirror.ExitUsage
	}
	o, err := a.options(f, pos[0], pos[1])
	if err != nil {
		fmt.Fprintf(a.Stderr, "ferry: %v\n", err)
		return mirror.ExitUsage
	}
	return a.once(ctx, o, f)
}

func (a *App) schemes() []string {
	out := make([]string, 0, len(a.Openers))
	for s := range a.Openers {
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

// options turns flags into the mirror's options, checking each.
func (a *App) options(f *onceFlags, source, target string) (mirror.Options, error) {
	var o mirror.Options
	t, err := remote.ParseURL(target)
	if err != nil {
		return o, err
	}
	open, ok := a.Openers[t.Scheme]
	if !ok {
		return o, fmt.Errorf("target %s: no backend for %q", target, t.Scheme)
	}
	if f.workers < 1 || f.workers > 256 {
		return o, fmt.Errorf("--workers %d: want 1 to 256", f.workers)
	}
	conflict, err := mirror.ParseConflict(f.conflict)
	if err != nil {
		return o, err
	}
	md, err := mirror.ParseMaxDelete(f.maxDelete)
	if err != nil {
		return o, err
	}
	rate, err := parseRate(f.bwlimit)
	if err != nil {
		return o, err
	}
	var links scanner.Links
	switch f.links {
	case "skip", "":
	case "follow":
		links = scanner.FollowLinks
	default:
		return o, fmt.Errorf("--links %q: want skip or follow", f.links)
	}
	warn := func(format string, args ...any) { fmt.Fprintf(a.Stderr, "ferry: warning: "+format+"\n", args...) }
	pw, err := remote.ResolvePassword(t, f.passwordFile, a.Getenv, warn)
	if err != nil {
		return o, err
	}
	state := f.state
	if state == "" {
		state = defaultStateDir(a.Getenv)
	}
	if state, err = filepath.Abs(state); err != nil {
		return o, err
	}
	src, err := filepath.Abs(source)
	if err != nil {
		return o, err
	}
	return mirror.Options{
		Source: src, Target: t, Open: open,
		RemoteOpts: remote.Options{Password: pw, IdentityFile: f.identityFile, KnownHostsFile: f.knownHosts, CAFile: f.caFile,
			Timeout: time.Duration(f.timeout * float64(time.Second)), Warnf: warn},
		StateDir: state, Job: f.job, Workers: f.workers, Delete: f.delete, MaxDelete: md, DryRun: f.dryRun,
		Excludes: f.excludes, Links: links, Checksum: f.checksum, CheckRemote: f.checkRemote, Move: f.move,
		Conflict: conflict, BwLimit: rate, DryRunOut: a.Stdout,
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
	code := mirror.ExitOK
	var me *mirror.Error
	if errors.As(err, &me) {
		code = me.Code
	} else if err != nil {
		code = mirror.ExitUsage
	}
	if ctx.Err() != nil {
		code = mirror.ExitInterrupted
	}
	sum.ExitCode = code
	if f.jsonOut {
		enc := json.NewEncoder(a.Stdout)
		enc.SetIndent("", "  ")
		out := struct {
			*mirror.Summary
			Error string `json:"error,omitempty"`
		}{Summary: sum}
		if err != nil && code != mirror.ExitFailed {
			out.Error = err.Error()
		}
		_ = enc.Encode(out)
	} else if !sum.Ended.IsZero() { // a run refused before it started has nothing to sum up
		sum.WriteText(a.Stdout)
	}
	if err != nil && code != mirror.ExitFailed {
		if code == mirror.ExitInterrupted {
			fmt.Fprintln(a.Stderr, "ferry: interrupted; the registry is saved and the next run resumes")
		} else {
			fmt.Fprintf(a.Stderr, "ferry: %v\n", err)
		}
	}
	return code
}
