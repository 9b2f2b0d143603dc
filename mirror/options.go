// Package mirror owns a job's session: it wires the stages of the data
// flow — scanner → planner → registry → queue → transfer pool → remote —
// for one `ferry --once` pass, or keeps them open for the daemon (live
// changes, scans, moves), and turns what they did into a Summary and an
// Outcome (the CLI maps outcomes to exit codes). It never learns which
// protocol is in use: it receives an Opener.
//
// outcome.go says how a pass ended; session.go holds the session (its lock, registry and connections);
// mirror.go one pass; workers.go the pool, the connections kept for it and
// the claims from the registry; handle.go what a worker does with an item;
// live.go the daemon's side; marker.go the target's marker; deletes.go,
// typechange.go and dirmove.go the deletions, type changes and directory
// moves.
package mirror

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/time/rate"

	"ferry/remote"
	"ferry/scanner"
)

// Conflict is the policy for a remote file that differs from what ferry
// last put there (someone else changed it).
type Conflict int

// The conflict policies.
const (
	KeepBoth  Conflict = iota // move the remote copy aside with a dated name, then write
	Overwrite                 // write over it
	Skip                      // leave it, report the path
)

// ParseConflict reads a --conflict value.
func ParseConflict(s string) (Conflict, error) {
	switch s {
	case "keep-both", "":
		return KeepBoth, nil
	case "overwrite":
		return Overwrite, nil
	case "skip":
		return Skip, nil
	}
	return 0, fmt.Errorf("conflict policy %q: want keep-both, overwrite or skip", s)
}

func (c Conflict) String() string {
	return [...]string{"keep-both", "overwrite", "skip"}[c]
}

// MaxDelete limits how much one run may delete: a count, or a percentage of
// the files ferry has on the remote.
type MaxDelete struct {
	N         int64
	Percent   float64
	IsPercent bool
	Set       bool
}

// ParseMaxDelete reads "N" or "P%".
func ParseMaxDelete(s string) (MaxDelete, error) {
	if s == "" {
		return MaxDelete{}, nil
	}
	if p, ok := strings.CutSuffix(s, "%"); ok {
		v, err := strconv.ParseFloat(p, 64)
		if err != nil || v < 0 || v > 100 {
			return MaxDelete{}, fmt.Errorf("max-delete %q: want a count or a percentage between 0%% and 100%%", s)
		}
		return MaxDelete{Percent: v, IsPercent: true, Set: true}, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return MaxDelete{}, fmt.Errorf("max-delete %q: want a count (e.g. 100) or a percentage (e.g. 5%%)", s)
	}
	return MaxDelete{N: n, Set: true}, nil
}

// Limit returns the most deletions allowed when total files are recorded.
func (m MaxDelete) Limit(total int64) int64 {
	if !m.Set {
		return -1
	}
	if m.IsPercent {
		return int64(m.Percent / 100 * float64(total))
	}
	return m.N
}

// Options configure one pass.
type Options struct {
	Source     string // local directory
	Target     *remote.Target
	RemoteOpts remote.Options
	Open       remote.Opener

	StateDir string
	Job      string // job name in the registry; "" derives one from source and target

	Workers int
	Delete  bool
	// DeleteExcluded (with Delete) also deletes remote paths the excludes
	// match; without it they are not ferry's and are left alone.
	DeleteExcluded bool
	MaxDelete      MaxDelete
	DryRun         bool
	Excludes       []string
	Links          scanner.Links
	Checksum       bool
	CheckRemote    bool
	Move           bool
	Conflict       Conflict
	BwLimit        float64 // bytes per second; 0 = unlimited
	// Marker is the name of the marker at the target's root ("" =
	// DefaultMarker); Takeover lets this job take over a target whose
	// marker another registry wrote.
	Marker   string
	Takeover bool
	// Patience is how long a --once pass waits while no connection makes
	// progress before it gives up on the server (exit 2); 0 derives it
	// from the timeout (DefaultPatience). The daemon waits instead.
	Patience time.Duration

	// DryRunOut receives the plan of a dry run.
	DryRunOut io.Writer
	// Logf reports warnings and retries; it is called from many goroutines.
	Logf func(format string, args ...any)
	// Progress, when set, is told about the run as it goes.
	Progress Progress
	// Now is the clock (tests).
	Now func() time.Time
	// ExitCode maps a pass's outcome to the exit code the caller gives
	// for it, which the Summary shows and the registry's run history
	// keeps; nil keeps the outcome's ordinal.
	ExitCode func(Outcome) int
}

// Progress receives live counts; calls come from many goroutines.
type Progress interface {
	Planned(files, bytes int64)    // more work was found
	Done(path string, bytes int64) // one item finished (bytes sent, 0 for non-uploads)
	Failed(path string, err error) // one item gave up
	Phase(name string)             // "scanning", "syncing", "deleting"
}

func (o *Options) defaults() {
	if o.Workers < 1 {
		o.Workers = 4
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	if o.Job == "" {
		o.Job = JobName(o.Source, o.Target)
	}
	if o.Marker == "" {
		o.Marker = DefaultMarker
	}
	if o.ExitCode == nil {
		o.ExitCode = func(oc Outcome) int { return int(oc) }
	}
}

// JobName derives a stable job name from a source and a target, so repeated
// `ferry --once SOURCE TARGET` runs share their records.
func JobName(source string, t *remote.Target) string {
	abs, err := filepath.Abs(source)
	if err != nil {
		abs = source
	}
	sum := sha256.Sum256([]byte(abs + "\x00" + t.String()))
	return filepath.Base(abs) + "-" + hex.EncodeToString(sum[:6])
}

func (o *Options) limiter() *rate.Limiter {
	if o.BwLimit <= 0 {
		return nil
	}
	burst := int(min(o.BwLimit, 256<<10))
	return rate.NewLimiter(rate.Limit(o.BwLimit), max(burst, 4096))
}

// DefaultPatience is the server patience when none is set: four timeouts
// (a failed call, then redials that time out too) and at least a minute,
// so a --once run gives up on a silent server in bounded time (2m with the
// default 30s timeout) without mistaking one slow reply for a dead server.
func DefaultPatience(timeout time.Duration) time.Duration {
	return max(4*timeout, time.Minute)
}

func (o *Options) patience() time.Duration {
	if o.Patience > 0 {
		return o.Patience
	}
	return DefaultPatience(o.RemoteOpts.IOTimeout())
}
