package cli

import (
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// onceFlags are the flags of `ferry --once`; each mirrors a config key.
type onceFlags struct {
	once, dryRun, delete, checksum, checkRemote, move, progress, jsonOut bool
	job, state, maxDelete, bwlimit, conflict, links                      string
	identityFile, knownHosts, passwordFile, caFile, config               string
	workers                                                              int
	timeout                                                              float64
	excludes                                                             multi
}

type multi []string

func (m *multi) String() string     { return strings.Join(*m, ",") }
func (m *multi) Set(v string) error { *m = append(*m, v); return nil }

func newOnceFlags(stderr io.Writer) (*flag.FlagSet, *onceFlags) {
	f := &onceFlags{}
	fs := flag.NewFlagSet("ferry", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.BoolVar(&f.once, "once", false, "mirror once and exit when in sync")
	fs.StringVar(&f.config, "config", "", "TOML config file (jobs)")
	fs.StringVar(&f.job, "job", "", "job name in the registry (default: derived from SOURCE and TARGET)")
	fs.IntVar(&f.workers, "workers", 4, "connections to the server")
	fs.BoolVar(&f.delete, "delete", false, "delete remote files that are not in SOURCE (after the uploads)")
	fs.BoolVar(&f.dryRun, "dry-run", false, "print the plan and change nothing")
	fs.Var(&f.excludes, "exclude", "gitignore-style pattern to leave out (repeatable)")
	fs.BoolVar(&f.checksum, "checksum", false, "compare content hashes even when size and mtime match")
	fs.StringVar(&f.maxDelete, "max-delete", "", "refuse a run that would delete more than N files or P% of them")
	fs.StringVar(&f.bwlimit, "bwlimit", "", "bandwidth limit for the job, e.g. 10M, 512K (bytes per second)")
	fs.StringVar(&f.state, "state", "", "state directory holding the registry (default ~/.local/state/ferry)")
	fs.StringVar(&f.conflict, "conflict", "keep-both", "when the remote copy was changed by someone else: keep-both, overwrite or skip")
	fs.BoolVar(&f.checkRemote, "check-remote", false, "list the remote to catch changes made behind ferry's back")
	fs.BoolVar(&f.move, "move", false, "remove each local file once it is verified on the remote")
	fs.BoolVar(&f.progress, "progress", false, "show progress bars")
	fs.BoolVar(&f.jsonOut, "json", false, "print the summary as JSON")
	fs.StringVar(&f.links, "links", "skip", "symbolic links: skip or follow")
	fs.StringVar(&f.identityFile, "identity-file", "", "SSH private key (default: the SSH agent)")
	fs.StringVar(&f.knownHosts, "known-hosts", "", "SSH known_hosts file (default ~/.ssh/known_hosts)")
	fs.StringVar(&f.passwordFile, "password-file", "", "file whose first line is the password (or set FERRY_PASSWORD)")
	fs.StringVar(&f.caFile, "tls-ca-file", "", "PEM CA certificate(s) to trust for ftps://")
	fs.Float64Var(&f.timeout, "timeout", 30, "seconds to wait for the server before a call fails")
	return fs, f
}

// parseInterspersed parses flags wherever they stand among the positional
// arguments, so `ferry --once SRC DST --delete` works as users type it.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if rest[0] == "--" {
			return append(pos, rest[1:]...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// parseRate reads a --bwlimit value: a number of bytes per second with an
// optional K, M or G suffix (powers of 1024) and optional "B", "iB", "/s".
func parseRate(s string) (float64, error) {
	if s == "" || s == "0" {
		return 0, nil
	}
	v := strings.TrimSuffix(strings.TrimSpace(s), "/s")
	v = strings.TrimSuffix(strings.TrimSuffix(v, "iB"), "B")
	mult := 1.0
	if n := len(v); n > 0 {
		switch v[n-1] {
		case 'k', 'K':
			mult, v = 1<<10, v[:n-1]
		case 'm', 'M':
			mult, v = 1<<20, v[:n-1]
		case 'g', 'G':
			mult, v = 1<<30, v[:n-1]
		}
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || f <= 0 {
		return 0, fmt.Errorf("bwlimit %q: want bytes per second, e.g. 512K or 10M", s)
	}
	return f * mult, nil
}
