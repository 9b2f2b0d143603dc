// Package mirror owns a job's session: it wires the stages of the data
// flow — scanner → planner → registry → queue → transfer pool → remote —
// for one `ferry --once` pass, or keeps them open for the daemon (live
// changes, scans, moves), and turns what they did into a Summary and an
// Outcome (the CLI maps outcomes to exit codes). It never learns which
// protocol is in use: it receives an Opener.
//
// What to do about each path is the planner's (including the conflict
// policy and the deletion rules, planner.Safety); shipping an item and
// recording it is transfer's (transfer.Shipper). This package holds what
// ties them to one job: outcome.go says how a pass ended; session.go holds
// the session (its lock, registry and connections); mirror.go one pass;
// workers.go the pool, the connections kept for it and the claims from
// the registry; handle.go hands items to the shipper; live.go the
// daemon's side; git.go the Git stage's wiring, and gitlive.go its
// opening late in the daemon; marker.go the target's marker; deletes.go the delete
// phase; dirmove.go directory renames, which re-key the registry.
package mirror

import (
	"crypto/sha256"
	"encoding/hex"
	"ferry/planner"
	"io"
	"path/filepath"
	"time"

	"golang.org/x/time/rate"

	"ferry/gitstage"
	"ferry/remote"
	"ferry/scanner"
)

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
	MaxDelete      planner.MaxDelete
	DryRun         bool
	Excludes       []string
	Links          scanner.Links
	Checksum       bool
	CheckRemote    bool
	Move           bool
	Conflict       planner.Conflict
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
	// Git is the job's Git stage, which commits what the workers shipped
	// (the zero value is off). It is part of the options, not a setting
	// of its own, so that a reload changing it restarts the job.
	Git gitstage.Options

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
