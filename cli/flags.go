package cli

import (
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"ferry/config"
)

// onceFlags are the flags of `ferry --once`. The job settings are bound
// straight into a config.Job, so each flag has the name, the default and
// the checks of its config key.
type onceFlags struct {
	once, dryRun, progress, jsonOut bool
	// takeover is a flag, not a key: a key would have every run (and
	// every daemon scan) take the target back, so two registries
	// configured so would take it from each other forever, each listing
	// and rewriting the remote. Taking over is one decision, made once.
	takeover           bool
	job, state, config string
	j                  config.Job
	set                map[string]bool // flags given on the command line
}

// stringList is a repeatable flag.
type stringList struct{ v *[]string }

func (m stringList) String() string {
	if m.v == nil {
		return ""
	}
	return strings.Join(*m.v, ",")
}
func (m stringList) Set(v string) error { *m.v = append(*m.v, v); return nil }

// seconds is --timeout: a duration ("30s", "1m") or a number of seconds.
type seconds struct{ d *config.Duration }

func (s seconds) String() string {
	if s.d == nil {
		return ""
	}
	return s.d.String()
}

func (s seconds) Set(v string) error {
	if f, err := strconv.ParseFloat(v, 64); err == nil {
		s.d.Duration = time.Duration(f * float64(time.Second))
		return nil
	}
	return s.d.UnmarshalText([]byte(v))
}

func newOnceFlags(stderr io.Writer) (*flag.FlagSet, *onceFlags) {
	f := &onceFlags{j: config.Defaults()}
	d := config.Defaults()
	j := &f.j
	fs := flag.NewFlagSet("ferry", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.BoolVar(&f.once, "once", false, "mirror once and exit when in sync")
	fs.StringVar(&f.config, "config", "", "TOML config file: run its jobs (as a daemon, or one pass each with --once)")
	fs.StringVar(&f.job, "job", "", "with --config: the job to run; without: the job's name in the registry (default: derived from SOURCE and TARGET)")
	fs.StringVar(&f.state, "state", "", "state directory holding the registry (default ~/.local/state/ferry)")
	fs.BoolVar(&f.dryRun, "dry-run", false, "print the plan and change nothing")
	fs.BoolVar(&f.progress, "progress", false, "show progress bars")
	fs.BoolVar(&f.jsonOut, "json", false, "print the summary as JSON")
	fs.BoolVar(&f.takeover, "takeover", false, "write to a target whose marker another registry (state directory, host or job) wrote: list it, repair it and make it this job's")

	fs.IntVar(&j.Workers, "workers", d.Workers, "connections to the server")
	fs.BoolVar(&j.Delete, "delete", d.Delete, "delete remote files that are not in SOURCE (after the uploads)")
	fs.BoolVar(&j.DeleteExcluded, "delete-excluded", d.DeleteExcluded, "with --delete, delete remote paths the excludes match too (left alone otherwise)")
	fs.Var(stringList{&j.Exclude}, "exclude", "gitignore-style pattern to leave out (repeatable)")
	fs.BoolVar(&j.Checksum, "checksum", d.Checksum, "compare content hashes even when size and mtime match")
	fs.StringVar(&j.MaxDelete, "max-delete", d.MaxDelete, "refuse a run that would delete more than N files or P% of them")
	fs.StringVar(&j.BwLimit, "bwlimit", d.BwLimit, "bandwidth limit for the job, e.g. 10M, 512K (bytes per second)")
	fs.StringVar(&j.Conflict, "conflict", d.Conflict, "when the remote copy was changed by someone else: keep-both, overwrite or skip")
	fs.BoolVar(&j.CheckRemote, "check-remote", d.CheckRemote, "list the remote to catch changes made behind ferry's back")
	fs.StringVar(&j.Marker, "marker", d.Marker, "name of the marker file at the target's root that tells ferry the remote is as its registry says")
	fs.BoolVar(&j.Move, "move", d.Move, "remove each local file once it is verified on the remote")
	fs.StringVar(&j.Links, "links", d.Links, "symbolic links: skip or follow")
	fs.StringVar(&j.IdentityFile, "identity-file", d.IdentityFile, "SSH private key (default: the SSH agent)")
	fs.StringVar(&j.KnownHosts, "known-hosts", d.KnownHosts, "SSH known_hosts file (default ~/.ssh/known_hosts)")
	fs.StringVar(&j.PasswordFile, "password-file", d.PasswordFile, "file whose first line is the password (or set FERRY_PASSWORD)")
	fs.StringVar(&j.TLSCAFile, "tls-ca-file", d.TLSCAFile, "PEM CA certificate(s) to trust for ftps://")
	fs.Var(seconds{&j.Timeout}, "timeout", "how long to wait for the server before a call fails (30s, or a number of seconds)")
	fs.Var(seconds{&j.ServerPatience}, "server-patience", "give up on a server when no connection made progress this long (default 4 × timeout, at least 1m)")

	g, dg := &j.Git, d.Git
	fs.StringVar(&g.Repository, "git-repository", dg.Repository, "commit what was shipped to this Git repository: a local path, or a URL (ssh://, user@host:path, https://, git://, file://); the other --git flags need it")
	fs.StringVar(&g.Branch, "git-branch", dg.Branch, "the branch the Git stage commits to")
	fs.IntVar(&g.BatchFiles, "git-batch-files", dg.BatchFiles, "commit a batch once it holds this many files (or at --git-batch-delay)")
	fs.Var(seconds{&g.BatchDelay}, "git-batch-delay", "commit a batch this long after its oldest file shipped, if --git-batch-files did not come first (10m, or a number of seconds)")
	fs.StringVar(&g.Author, "git-author", dg.Author, `author and committer of the commits, "Name <email>" (default "ferry <ferry@HOSTNAME>")`)
	fs.StringVar(&g.Message, "git-message", dg.Message, "the commit message, a Go text/template over .Job .Files .Added .Changed .Deleted .List .More")
	fs.BoolVar(&g.Push, "git-push", dg.Push, "push each commit (--git-push=false keeps them in ferry's clone)")
	fs.StringVar(&g.PathPrefix, "git-path-prefix", dg.PathPrefix, "where the mirrored tree lives inside the repository (default: its root)")
	return fs, f
}

// jobFlags are the flags that set a job's key; given with --config they
// override that key in every job run.
var jobFlags = []string{"workers", "delete", "delete-excluded", "exclude", "checksum", "max-delete", "bwlimit", "conflict",
	"check-remote", "marker", "move", "links", "identity-file", "known-hosts", "password-file", "tls-ca-file", "timeout",
	"server-patience", "git-repository", "git-branch", "git-batch-files", "git-batch-delay", "git-author", "git-message",
	"git-push", "git-path-prefix"}

// override copies the job flags given on the command line onto j.
func (f *onceFlags) override(j *config.Job) {
	for _, name := range jobFlags {
		if !f.set[name] {
			continue
		}
		switch name {
		case "workers":
			j.Workers = f.j.Workers
		case "delete":
			j.Delete = f.j.Delete
		case "delete-excluded":
			j.DeleteExcluded = f.j.DeleteExcluded
		case "exclude":
			j.Exclude = append(j.Exclude, f.j.Exclude...)
		case "checksum":
			j.Checksum = f.j.Checksum
		case "max-delete":
			j.MaxDelete = f.j.MaxDelete
		case "bwlimit":
			j.BwLimit = f.j.BwLimit
		case "conflict":
			j.Conflict = f.j.Conflict
		case "check-remote":
			j.CheckRemote = f.j.CheckRemote
		case "marker":
			j.Marker = f.j.Marker
		case "move":
			j.Move = f.j.Move
		case "links":
			j.Links = f.j.Links
		case "identity-file":
			j.IdentityFile = f.j.IdentityFile
		case "known-hosts":
			j.KnownHosts = f.j.KnownHosts
		case "password-file":
			j.PasswordFile = f.j.PasswordFile
		case "tls-ca-file":
			j.TLSCAFile = f.j.TLSCAFile
		case "timeout":
			j.Timeout = f.j.Timeout
		case "server-patience":
			j.ServerPatience = f.j.ServerPatience
		case "git-repository":
			j.Git.Repository = f.j.Git.Repository
		case "git-branch":
			j.Git.Branch = f.j.Git.Branch
		case "git-batch-files":
			j.Git.BatchFiles = f.j.Git.BatchFiles
		case "git-batch-delay":
			j.Git.BatchDelay = f.j.Git.BatchDelay
		case "git-author":
			j.Git.Author = f.j.Git.Author
		case "git-message":
			j.Git.Message = f.j.Git.Message
		case "git-push":
			j.Git.Push = f.j.Git.Push
		case "git-path-prefix":
			j.Git.PathPrefix = f.j.Git.PathPrefix
		}
	}
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

// flagName turns a config key into its flag: max_delete -> --max-delete,
// git.batch_files -> --git-batch-files.
func flagName(key string) string {
	return "--" + strings.NewReplacer("_", "-", ".", "-").Replace(key)
}

// checkFlags judges the job flags as the config would judge its keys.
func checkFlags(j *config.Job) error {
	for _, fe := range append(j.Check(""), checkJob(j)...) {
		if fe.Key == "name" || fe.Key == "source" || fe.Key == "target" {
			continue // positional, checked by the caller
		}
		return fmt.Errorf("%s: %w", flagName(fe.Key), fe.Err)
	}
	return nil
}
