// Package config owns ferry's configuration file: the TOML of `ferry
// --config` (global keys, then one [[job]] table per mirrored tree), the
// defaults every job starts from — the command-line flags of `ferry --once`
// start from the same ones — and the mapping of every mistake to an error
// naming the file, the line and the key. It only decodes: a value only a
// stage can judge (a target URL, a conflict policy, a timetable) is judged
// by the Checker its caller passes, which knows the stages; config knows
// none of them.
package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// Config is a whole config file.
type Config struct {
	Globals
	Jobs []Job `toml:"job"`

	File string `toml:"-"` // the file it was read from
}

// Globals are the keys above the jobs.
type Globals struct {
	StateDir      string   `toml:"state_dir"`      // "" = $XDG_STATE_HOME/ferry or ~/.local/state/ferry
	LogFormat     string   `toml:"log_format"`     // text or json
	MetricsListen string   `toml:"metrics_listen"` // host:port for Prometheus metrics; "" = off
	DrainTimeout  Duration `toml:"drain_timeout"`  // how long transfers in flight get to finish on SIGTERM
}

// Job is one mirrored tree: where from, where to, and how.
type Job struct {
	Name   string `toml:"name"`
	Source string `toml:"source"`
	Target string `toml:"target"`

	PasswordFile string   `toml:"password_file"`
	IdentityFile string   `toml:"identity_file"`
	KnownHosts   string   `toml:"known_hosts"`
	TLSCAFile    string   `toml:"tls_ca_file"`
	Timeout      Duration `toml:"timeout"`
	// ServerPatience: how long a --once pass waits while no connection
	// makes progress; 0 = derived from Timeout (four timeouts, at least 1m).
	ServerPatience Duration `toml:"server_patience"`

	Workers  int      `toml:"workers"`
	BwLimit  string   `toml:"bwlimit"`
	Exclude  []string `toml:"exclude"`
	Links    string   `toml:"links"`
	Checksum bool     `toml:"checksum"`

	Conflict       string `toml:"conflict"`
	Delete         bool   `toml:"delete"`
	DeleteExcluded bool   `toml:"delete_excluded"`
	MaxDelete      string `toml:"max_delete"`
	Move           bool   `toml:"move"`
	CheckRemote    bool   `toml:"check_remote"`
	Marker         string `toml:"marker"`

	Watch        bool     `toml:"watch"`
	SettleDelay  Duration `toml:"settle_delay"`
	MaxDelay     Duration `toml:"max_delay"`
	ScanInterval Duration `toml:"scan_interval"`

	ProtectedHours []string `toml:"protected_hours"`
	ProtectedLive  bool     `toml:"protected_live"`

	Git Git `toml:"git"`
}

// Git is a job's [job.git] table: the optional stage that commits what was
// shipped to a Git repository. It is off while Repository is empty, and a
// key set without a repository is an error, not silently ignored.
type Git struct {
	// Repository: a local path (relative to the config file) or a URL;
	// the stage's checker judges which.
	Repository string   `toml:"repository"`
	Branch     string   `toml:"branch"`
	BatchFiles int      `toml:"batch_files"`
	BatchDelay Duration `toml:"batch_delay"`
	Author     string   `toml:"author"` // "Name <email>"; "" = ferry <ferry@HOSTNAME>
	Message    string   `toml:"message"`
	Push       bool     `toml:"push"`
	PathPrefix string   `toml:"path_prefix"`
}

// Duration is a time.Duration written as "50ms", "5s", "1h30m".
type Duration struct{ time.Duration }

// UnmarshalText reads a Go duration string.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("want a duration such as 50ms, 5s or 1h30m, got %q", b)
	}
	d.Duration = v
	return nil
}

// MarshalText writes the duration back (for the example-file test).
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// Defaults is what every job starts from; the flags of `ferry --once` have
// the same defaults, and config.example.toml documents them (a test checks).
func Defaults() Job {
	return Job{
		Timeout:      Duration{30 * time.Second},
		Workers:      4,
		Links:        "skip",
		Conflict:     "keep-both",
		Marker:       DefaultMarker,
		Watch:        true,
		SettleDelay:  Duration{50 * time.Millisecond},
		MaxDelay:     Duration{5 * time.Second},
		ScanInterval: Duration{time.Hour},
		Exclude:      []string{},

		ProtectedHours: []string{},
		ProtectedLive:  true,

		Git: Git{
			Branch:     "main",
			BatchFiles: 100,
			BatchDelay: Duration{10 * time.Minute},
			Message:    DefaultGitMessage,
			Push:       true,
		},
	}
}

// DefaultGitMessage is the commit message template of the Git stage (the
// stage's own default; a test in cli keeps the two equal, as it keeps the
// other Git defaults).
const DefaultGitMessage = "ferry {{.Job}}: {{.Files}} file{{if ne .Files 1}}s{{end}} ({{.Added}} added, {{.Changed}} changed, {{.Deleted}} deleted)\n\n{{range .List}}{{.}}\n{{end}}{{if .More}}… and {{.More}} more\n{{end}}"

// DefaultMarker is the marker file's default name (the mirror's own
// default; a test in cli keeps the two equal).
const DefaultMarker = ".ferry-marker"

// GlobalDefaults are the defaults of the keys above the jobs.
func GlobalDefaults() Globals {
	return Globals{LogFormat: "text", DrainTimeout: Duration{30 * time.Second}}
}

// Error is one mistake in a config file.
type Error struct {
	File string
	Line int    // 0 when the line could not be found
	Key  string // as the user wrote it: "workers", or "job[1].workers" when the job has no name yet
	Err  error
}

func (e *Error) Error() string {
	where := e.File
	if e.Line > 0 {
		where += ":" + strconv.Itoa(e.Line)
	}
	if e.Key == "" {
		return fmt.Sprintf("%s: %v", where, e.Err)
	}
	return fmt.Sprintf("%s: %s: %v", where, e.Key, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

var jobName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// Checker judges the values of a job that only the stages can judge; each
// mistake names its key, and config places it at its file and line.
type Checker func(j *Job) []FieldError

// Load reads and checks a config file. Every mistake found is reported,
// each as an *Error, joined; check (nil for none) judges what config
// cannot.
func Load(path string, check Checker) (*Config, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return Parse(path, src, check)
}

// Parse reads and checks a config file's contents; file names it in errors
// and relative paths in it are relative to file's directory.
func Parse(file string, src []byte, check Checker) (*Config, error) {
	lines := keyLines(src)
	raw := struct {
		Globals
		Jobs []toml.Primitive `toml:"job"`
	}{Globals: GlobalDefaults()}
	md, err := toml.Decode(string(src), &raw)
	if err != nil {
		return nil, decodeError(file, err, lines, -1, nil)
	}
	cfg := Config{Globals: raw.Globals, File: file}
	if cfg.StateDir != "" {
		cfg.StateDir = absUnder(filepath.Dir(file), cfg.StateDir)
	}
	var errs []error
	at := func(key string, err error) {
		errs = append(errs, &Error{File: file, Line: lineFor(key, lines), Key: displayKey(key, cfg.Jobs), Err: err})
	}
	var checks [][]FieldError
	type decodeFailure struct {
		job int
		err error
	}
	var failures []decodeFailure
	for i, p := range raw.Jobs {
		j := Defaults()
		// The name alone first: a job whose decoding fails half-way may
		// not have reached it, and every message names its job.
		var named struct {
			Name string `toml:"name"`
		}
		_ = md.PrimitiveDecode(p, &named)
		j.Name = named.Name
		if err := md.PrimitiveDecode(p, &j); err != nil {
			failures = append(failures, decodeFailure{i, err})
			checks = append(checks, nil) // its values are not all there to judge
		} else {
			fes := j.Check(filepath.Dir(file))
			if check != nil {
				fes = append(fes, check(&j)...)
			}
			checks = append(checks, fes)
		}
		cfg.Jobs = append(cfg.Jobs, j)
	}
	for _, f := range failures {
		errs = append(errs, decodeError(file, f.err, lines, f.job, cfg.Jobs))
	}
	// Names first, so that every message can name its job.
	for i, fes := range checks {
		for _, fe := range fes {
			at(fmt.Sprintf("job.%d.%s", i, fe.Key), fe.Err)
		}
	}
	// The decoder names a key of the Nth [[job]] without N, but lists its
	// keys in the order they were written, with a "job" key for each
	// [[job]] opened: that order tells whose each key is, inline tables
	// (git = {...}) included, which the lines cannot.
	owners := map[string][]int{}
	n := -1
	for _, k := range md.Keys() {
		switch key := k.String(); {
		case key == "job":
			n++
		case strings.HasPrefix(key, "job.") && n >= 0:
			owners[key] = append(owners[key], n)
		}
	}
	reported := map[string]bool{}
	for _, k := range md.Undecoded() {
		key := k.String()
		if reported[key] {
			continue
		}
		reported[key] = true
		unknown := errors.New("unknown key (config.example.toml lists the keys ferry knows)")
		rest, inJob := strings.CutPrefix(key, "job.")
		if !inJob || len(owners[key]) == 0 {
			at(key, unknown)
			continue
		}
		for _, i := range owners[key] {
			// A job that failed to decode leaves keys undecoded that
			// are fine; its failure is reported instead.
			if !slices.ContainsFunc(failures, func(f decodeFailure) bool { return f.job == i }) {
				at(fmt.Sprintf("job.%d.%s", i, rest), unknown)
			}
		}
	}
	if cfg.DrainTimeout.Duration <= 0 {
		at("drain_timeout", fmt.Errorf("%v: want a positive duration such as 30s", cfg.DrainTimeout.Duration))
	}
	switch cfg.LogFormat {
	case "text", "json":
	default:
		at("log_format", fmt.Errorf("%q: want text or json", cfg.LogFormat))
	}
	if len(cfg.Jobs) == 0 && len(errs) == 0 {
		errs = append(errs, &Error{File: file, Err: errors.New("no [[job]] table: add one with name, source and target")})
	}
	seen := map[string]int{}
	for i, j := range cfg.Jobs {
		if prev, dup := seen[j.Name]; dup && j.Name != "" {
			at(fmt.Sprintf("job.%d.name", i), fmt.Errorf("%q is already the name of job %d (line %d)", j.Name, prev+1, lines[fmt.Sprintf("job.%d.name", prev)]))
		}
		seen[j.Name] = i
	}
	sort.SliceStable(errs, func(a, b int) bool { return lineOf(errs[a]) < lineOf(errs[b]) })
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return &cfg, nil
}

func lineOf(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.Line
	}
	return 0
}

// displayKey turns "job.1.workers" into `job "site" workers` (or
// "job[2].workers" for a job without a name yet).
func displayKey(key string, jobs []Job) string {
	parts := strings.SplitN(key, ".", 3)
	if len(parts) < 3 || parts[0] != "job" {
		return key
	}
	i, err := strconv.Atoi(parts[1])
	if err != nil {
		return key
	}
	if i < len(jobs) && jobs[i].Name != "" {
		return fmt.Sprintf("job %q: %s", jobs[i].Name, parts[2])
	}
	return fmt.Sprintf("job[%d].%s", i+1, parts[2])
}

var decodeMsg = regexp.MustCompile(`^toml: (?:line \d+ )?\(last key "([^"]*)"\): (.*)$`)

// decodeError turns the TOML decoder's error into an *Error with a line and
// a key. job is the [[job]] being decoded, or -1 for the whole file: the
// decoder names a job's keys without the job's index, and its line for them
// may be another job's.
func decodeError(file string, err error, lines map[string]int, job int, jobs []Job) error {
	var pe toml.ParseError
	if errors.As(err, &pe) { // a syntax error: the decoder knows the line
		msg := pe.Message
		if msg == "" {
			msg = err.Error()
		}
		key := pe.LastKey
		if rest, ok := strings.CutPrefix(key, "job."); ok && job >= 0 {
			key = displayKey(fmt.Sprintf("job.%d.%s", job, rest), jobs)
		}
		return &Error{File: file, Line: pe.Position.Line, Key: key, Err: errors.New(msg)}
	}
	m := decodeMsg.FindStringSubmatch(err.Error())
	if m == nil {
		return &Error{File: file, Err: err}
	}
	key, msg := m[1], m[2]
	if rest, ok := strings.CutPrefix(key, "job."); ok && job >= 0 {
		key = fmt.Sprintf("job.%d.%s", job, rest)
	}
	return &Error{File: file, Line: lineFor(key, lines), Key: displayKey(key, jobs), Err: errors.New(msg)}
}

// lineFor is the line of key or, when the key is not written on a line of
// its own (a missing name, a key of an inline table), of the closest table
// or key that holds it: job.0.git.branch, job.0.git, job.0.
func lineFor(key string, lines map[string]int) int {
	for {
		if n := lines[key]; n > 0 {
			return n
		}
		i := strings.LastIndexByte(key, '.')
		if i < 0 {
			return 0
		}
		key = key[:i]
	}
}
