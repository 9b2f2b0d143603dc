// Package bench owns ferry's benchmark harness, `ferry bench`: it starts the
// loopback servers (vsftpd and OpenSSH's sftp) through the test rig,
// generates datasets deterministically from a seed, runs every case for
// ferry and, where installed, for rclone sync and lftp mirror -R at the same
// connection count, checks that each run left an exact copy on the server's
// disk, and writes the medians, spreads, peak RSS and pairwise ratios as a
// Markdown table and as JSON.
//
// Every tool runs as a child process; its wall time is measured around the
// process and its peak RSS is the kernel's ru_maxrss for it. Tools are
// interleaved within each repetition (ferry, rclone, lftp, ferry, ...) and
// the ratios are taken repetition by repetition, so that drifts in machine
// load hit both sides of a ratio alike.
package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Options configures one benchmark run. The zero value of every field means
// its default.
type Options struct {
	Quick     bool          // tiny datasets and, unless Runs is set, one repetition: a smoke run
	Runs      int           // repetitions of each case; 0 = 3 (1 with Quick)
	Workers   int           // connections for every tool; 0 = 4
	Datasets  []string      // nil = DefaultDatasets
	Servers   []string      // nil = AllServers
	Tools     []string      // nil = AllTools; OptionalTools only when named
	OutDir    string        // results directory; "" = bench/results (WorkDir/results with Quick)
	WorkDir   string        // datasets cache and scratch; "" = $TMPDIR/ferry-bench
	Seed      uint64        // seeds the datasets and the 1% choices
	NoInstall bool          // never run apt-get for missing tools
	FerryBin  string        // the ferry executable to measure; "" = this executable
	Timeout   time.Duration // per tool run; 0 = 20 minutes
	Log       io.Writer     // progress lines; nil = discarded
}

// Result files written into OutDir (besides the dated copy).
const (
	LatestMarkdown = "latest.md"
	LatestJSON     = "latest.json"
)

// normalize fills the defaults and checks the names.
func (o *Options) normalize() error {
	if o.Runs == 0 {
		o.Runs = 3
		if o.Quick {
			o.Runs = 1
		}
	}
	if o.Runs < 1 {
		return fmt.Errorf("--runs %d: want at least 1", o.Runs)
	}
	if o.Workers == 0 {
		o.Workers = 4
	}
	if o.Workers < 1 || o.Workers > 64 {
		return fmt.Errorf("--workers %d: want 1 to 64", o.Workers)
	}
	if o.Datasets == nil {
		o.Datasets = DefaultDatasets
	}
	if o.Servers == nil {
		o.Servers = AllServers
	}
	if o.Tools == nil {
		o.Tools = AllTools
	}
	for _, c := range []struct {
		what       string
		got, known []string
	}{{"dataset", o.Datasets, AllDatasets}, {"server", o.Servers, AllServers}, {"tool", o.Tools, append(slices.Clone(AllTools), OptionalTools...)}} {
		for _, g := range c.got {
			if !slices.Contains(c.known, g) {
				return fmt.Errorf("unknown %s %q (have %s)", c.what, g, strings.Join(c.known, ","))
			}
		}
	}
	if !slices.Contains(o.Tools, ToolFerry) {
		return errors.New("--tools must include ferry: every ratio is ferry against a peer")
	}
	if o.WorkDir == "" {
		o.WorkDir = filepath.Join(os.TempDir(), "ferry-bench")
	}
	if o.OutDir == "" {
		o.OutDir = filepath.Join("bench", "results")
		if o.Quick {
			o.OutDir = filepath.Join(o.WorkDir, "results")
		}
	}
	if o.FerryBin == "" {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("find the ferry executable: %w", err)
		}
		o.FerryBin = exe
	}
	if o.Timeout == 0 {
		o.Timeout = 20 * time.Minute
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	return nil
}

// Run sets up (installs missing peers, starts the servers), runs every case
// and writes the report into OutDir. Failed tool runs are recorded in the
// report (see Report.Failures) rather than returned; the error is for a
// bench that could not run at all or could not write its results.
func Run(ctx context.Context, o Options) (*Report, error) {
	if err := o.normalize(); err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(o.FerryBin)
	if err != nil {
		return nil, fmt.Errorf("ferry executable: %w", err)
	}
	o.FerryBin = abs
	started := time.Now()
	r := &runner{o: o, stopSites: func() {}, logf: func(format string, args ...any) {
		fmt.Fprintf(o.Log, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
	}}
	r.work = filepath.Join(o.WorkDir, "run")
	if err := os.RemoveAll(r.work); err != nil {
		return nil, fmt.Errorf("clean the work directory: %w", err)
	}
	if err := os.MkdirAll(filepath.Join(r.work, "logs"), 0o755); err != nil {
		return nil, fmt.Errorf("work directory: %w", err)
	}
	if err := r.setup(ctx); err != nil {
		return nil, err
	}
	defer r.stopSites()
	var stateNote string
	r.stateRoot, stateNote = stateRoot(r.work)
	r.rep.Notes = append(r.rep.Notes, stateNote)
	defer os.RemoveAll(r.stateRoot)
	var runErr error
	for _, name := range o.Datasets {
		if runErr = r.runDataset(ctx, name); runErr != nil {
			r.rep.Notes = append(r.rep.Notes, fmt.Sprintf("the run stopped early: %v", runErr))
			break
		}
	}
	r.rep.ElapsedS = time.Since(started).Seconds()
	r.rep.computeGoals()
	// Even a run that stopped early leaves what it measured.
	if err := r.rep.write(o.OutDir); err != nil {
		return r.rep, err
	}
	if runErr != nil {
		return r.rep, runErr
	}
	r.logf("results: %s (runs logged in %s)", filepath.Join(o.OutDir, LatestMarkdown), filepath.Join(r.work, "logs"))
	return r.rep, nil
}

// setup installs what is missing, records the machine and the versions, and
// starts the servers unless only the file:// memory case runs.
func (r *runner) setup(ctx context.Context) error {
	o := r.o
	want := []string{"time", "curl", "sftp", "ssh", "vsftpd", "sshd"}
	want = append(want, o.Tools...)
	if slices.Contains(o.Tools, ToolFerryGit) {
		want = append(want, "git")
	}
	r.rep = &Report{Date: time.Now().UTC(), Machine: machineInfo(), Workers: o.Workers, Runs: o.Runs,
		Seed: o.Seed, Quick: o.Quick, Datasets: o.Datasets, Servers: o.Servers, LogDir: filepath.Join(r.work, "logs")}
	r.rep.Notes = append(r.rep.Notes, install(ctx, want, o.NoInstall, r.logf)...)
	r.rep.Versions = versions(ctx, o.FerryBin)
	r.rep.FlagNotes = flagNotes(o.Workers, o.Tools)
	r.bins = map[string]string{ToolFerry: o.FerryBin, toolFloor: o.FerryBin}
	for _, t := range []string{ToolRclone, ToolLftp, "curl", "sftp", "find", "time"} {
		if p := lookPath(t); p != "" && (!slices.Contains(AllTools, t) || slices.Contains(o.Tools, t)) {
			r.bins[t] = p
		}
	}
	if p := lookPath("git"); p != "" && slices.Contains(o.Tools, ToolFerryGit) {
		r.bins["git"] = p
	}
	for _, t := range o.Tools {
		bin := r.bins[t]
		if t == ToolFerryGit {
			bin = r.bins["git"] // ferry itself is always there
		}
		st := ToolStatus{Name: t, Path: bin, Installed: bin != ""}
		r.rep.Tools = append(r.rep.Tools, st)
		switch {
		case !st.Installed && t == ToolFerryGit:
			r.rep.Notes = append(r.rep.Notes, fmt.Sprintf("git is not installed: the %s rows say so and have no figures", ferryGitLabel))
		case !st.Installed:
			r.rep.Notes = append(r.rep.Notes, fmt.Sprintf("%s is not installed: its rows say so and have no figures", t))
		}
	}
	if t := r.bins["time"]; t != "" && exec.CommandContext(ctx, t, "-q", "-f", "%M", "-o", os.DevNull, "--", "true").Run() != nil {
		delete(r.bins, "time") // not GNU time (busybox's has no -q, -f or -o)
	}
	if r.bins["time"] == "" {
		r.rep.Notes = append(r.rep.Notes, "GNU time (/usr/bin/time) is missing, so peak RSS comes from the rusage of the "+
			"bench's own child, which Linux inflates to at least the bench's own RSS (Go starts children with vfork): "+
			"read the RSS column as an upper bound")
	}
	r.curlSFTP = curlHasSFTP(ctx, r.bins["curl"])
	if p := r.bins[ToolRclone]; p != "" {
		r.rcloneConf = filepath.Join(r.work, "rclone.conf")
		if err := os.WriteFile(r.rcloneConf, nil, 0o600); err != nil {
			return fmt.Errorf("empty rclone config: %w", err)
		}
	}
	needServers := slices.ContainsFunc(o.Datasets, func(d string) bool { return d != DatasetMillion })
	if !needServers {
		return nil
	}
	sites, stop, err := startSites(o.Servers, r.work)
	r.stopSites = stop
	if err != nil {
		stop()
		return err
	}
	r.sites = sites
	for _, s := range sites {
		if s.ftp != nil && r.bins[ToolRclone] != "" {
			if r.rcloneObscured, err = rcloneObscure(ctx, r.bins[ToolRclone], s.password); err != nil {
				stop()
				return err
			}
		}
		r.logf("setup: %s on %s:%d, files land in %s", s.name, s.host, s.port, s.root)
	}
	return nil
}
