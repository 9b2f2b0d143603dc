package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"

	"ferry/bench"
	"ferry/bench/floor"
)

// bench runs the benchmark harness: it parses the flags of `ferry bench`
// and hands over to package bench. Exit codes: 0 every run succeeded, 1 some
// runs failed (they are marked in the report), 2 the bench could not run.
func (a *App) bench(ctx context.Context, args []string) int {
	if len(args) > 0 && args[0] == "floor" {
		return a.benchFloor(ctx, args[1:])
	}
	fs := flag.NewFlagSet("ferry bench", flag.ContinueOnError)
	fs.SetOutput(a.Stderr)
	var o bench.Options
	var datasets, servers, tools string
	fs.BoolVar(&o.Quick, "quick", false, "tiny datasets and 1 repetition: a smoke run (results go to the work directory unless --out is given)")
	fs.IntVar(&o.Runs, "runs", 0, "repetitions of each case (default 3, 1 with --quick)")
	fs.IntVar(&o.Workers, "workers", 4, "connections for every tool (ferry --workers, rclone --transfers, lftp --parallel)")
	fs.StringVar(&datasets, "datasets", strings.Join(bench.DefaultDatasets, ","),
		"datasets to run, from "+strings.Join(bench.AllDatasets, ",")+" (million is opt-in: it takes minutes)")
	fs.StringVar(&servers, "servers", strings.Join(bench.AllServers, ","), "loopback servers to start")
	fs.StringVar(&tools, "tools", strings.Join(bench.AllTools, ","), "tools to compare (ferry is required); also "+strings.Join(bench.OptionalTools, ",")+
		", only when named: ferry with its Git stage pushing to a local bare repository, its ratio its time over plain ferry's")
	fs.StringVar(&o.OutDir, "out", "", "results directory (default bench/results)")
	fs.StringVar(&o.WorkDir, "work", "", "work directory: cached datasets, scratch copies, run logs (default $TMPDIR/ferry-bench)")
	fs.Uint64Var(&o.Seed, "seed", 1, "seed for the datasets and for the files each 1% case picks")
	fs.BoolVar(&o.NoInstall, "no-install", false, "never install missing tools with apt-get")
	fs.DurationVar(&o.Timeout, "timeout", 0, "limit for one tool run; a run over it counts as failed (default 20m)")
	fs.Usage = func() {
		fmt.Fprintln(a.Stderr, "usage: ferry bench [flags]   (as root: it starts vsftpd and sshd on 127.0.0.1)")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(a.Stderr, "ferry bench: unexpected arguments %q\n", fs.Args())
		return exitUsage
	}
	o.Datasets, o.Servers, o.Tools = splitList(datasets), splitList(servers), splitList(tools)
	o.Log = a.Stderr
	rep, err := bench.Run(ctx, o)
	if err != nil {
		fmt.Fprintf(a.Stderr, "ferry bench: %v\n", err)
		if ctx.Err() != nil {
			return exitInterrupted
		}
		return exitUsage
	}
	if n := rep.Failures(); n > 0 {
		fmt.Fprintf(a.Stderr, "ferry bench: %d runs failed; they are marked in the report\n", n)
		return exitFailed
	}
	return exitOK
}

// splitList reads a comma-separated flag value.
func splitList(s string) []string {
	out := []string{}
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// benchFloor is `ferry bench floor`, the raw protocol floor the bench times
// beside ferry (see package floor); it is not meant for users' trees.
func (a *App) benchFloor(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet("ferry bench floor", flag.ContinueOnError)
	fs.SetOutput(a.Stderr)
	o := floor.Options{Password: os.Getenv("FERRY_PASSWORD")}
	fs.IntVar(&o.Conns, "workers", 4, "connections")
	fs.IntVar(&o.Streams, "streams", 8, "SFTP: files in flight per connection")
	fs.StringVar(&o.Identity, "identity-file", "", "SFTP private key")
	fs.StringVar(&o.KnownHosts, "known-hosts", "", "SFTP known_hosts file")
	fs.Usage = func() {
		fmt.Fprintln(a.Stderr, "usage: ferry bench floor [flags] SRC URL   (password in FERRY_PASSWORD)")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if fs.NArg() != 2 {
		fs.Usage()
		return exitUsage
	}
	o.Src, o.URL = fs.Arg(0), fs.Arg(1)
	n, err := floor.Run(ctx, o)
	if err != nil {
		fmt.Fprintf(a.Stderr, "ferry bench floor: %v\n", err)
		return exitFailed
	}
	fmt.Fprintf(a.Stdout, "%d files sent\n", n)
	return exitOK
}
