package mirror

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"ferry/entry"
	"ferry/registry"
	"ferry/remote"
	"ferry/scanner"
)

// DefaultMarker is the name of the marker at the root of a target: a small
// file holding a token the registry holds too. It is a dotfile, so most
// servers leave it out of plain listings.
const DefaultMarker = ".ferry-marker"

// markerName is what a marker may be called: one plain name at the root,
// with no character a gitignore pattern or a server would read specially.
var markerName = regexp.MustCompile(`^[A-Za-z0-9._-]+$`)

// CheckMarkerName judges a marker name (the marker key and --marker).
func CheckMarkerName(s string) error {
	if !markerName.MatchString(s) || s == "." || s == ".." || entry.IsTemp(s) || entry.IsConflictCopy(s) {
		return fmt.Errorf("marker %q: want one file name at the target's root (letters, digits, '.', '_', '-'), such as %s", s, DefaultMarker)
	}
	return nil
}

// ErrNotOurs marks a refusal: the target's marker was written by another
// registry (or is not a marker at all), and --takeover was not given.
var ErrNotOurs = errors.New("the target is written by another registry")

// markerLimit bounds what is read of a marker: a real one is a few hundred
// bytes, so a large file of that name is not one.
const markerLimit = 4096

const markerHeader = "ferry-marker 1"

// markerFile is the marker's content.
type markerFile struct {
	Token    string
	Registry string // the registry's ID
	Job      string
	Host     string
	State    string // the state directory
	Written  time.Time
}

func (m markerFile) encode() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s\n# Written by ferry: the registry in the state directory below holds this token.\n# Do not copy this file to another target; see the README (marker).\n", markerHeader)
	fmt.Fprintf(&b, "token %s\nregistry %s\njob %s\nhost %s\nstate %s\nwritten %s\n",
		m.Token, m.Registry, m.Job, m.Host, m.State, m.Written.UTC().Format(time.RFC3339))
	return b.Bytes()
}

func parseMarker(b []byte) (markerFile, error) {
	var m markerFile
	sc := bufio.NewScanner(bytes.NewReader(b))
	if !sc.Scan() || sc.Text() != markerHeader {
		return m, errors.New("it does not start with the line " + markerHeader)
	}
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, _ := strings.Cut(line, " ")
		switch k {
		case "token":
			m.Token = v
		case "registry":
			m.Registry = v
		case "job":
			m.Job = v
		case "host":
			m.Host = v
		case "state":
			m.State = v
		case "written":
			m.Written, _ = time.Parse(time.RFC3339, v)
		}
	}
	if m.Token == "" || m.Registry == "" {
		return m, errors.New("it has no token or no registry line")
	}
	return m, nil
}

func (m markerFile) who() string {
	w := fmt.Sprintf("host %s, state directory %s, job %q", m.Host, m.State, m.Job)
	if !m.Written.IsZero() {
		w += ", at " + m.Written.Format(time.RFC3339)
	}
	return w
}

// markerKind is what a run found at the target's root.
type markerKind int

const (
	markerTrusted   markerKind = iota // the token this job last wrote: the registry is right
	markerNew                         // the job never wrote one and none is there
	markerMissing                     // the job wrote one and it is gone: wiped or replaced
	markerStale                       // this job's, with an older token: restored from a backup
	markerRecreated                   // this job's host and state directory, by a registry since recreated
	markerTakenOver                   // another registry's, taken over with --takeover
)

var markerWords = [...]string{"trusted", "new", "missing", "old-token", "recreated", "taken-over"}

func (k markerKind) String() string { return markerWords[k] }

// markerCheck is the verdict of one check.
type markerCheck struct {
	kind   markerKind
	reason string // why the remote is listed, for the summary and the log
}

// checkMarker reads what the target says about who wrote it last: one stat
// when the marker is this job's and unchanged, a read only when it is not.
// A missing target is made (except in a dry run), as Open always did.
// Another registry's marker is refused (exit 3) unless takeover is set.
func (s *Session) checkMarker(ctx context.Context, c remote.Conn, job *registry.Job, takeover bool) (markerCheck, error) {
	o := s.o
	rec, err := job.Marker(ctx)
	if err != nil {
		return markerCheck{}, &Error{Outcome: Aborted, Err: err}
	}
	caps := c.Caps()
	stamped := rec.Token != "" && rec.Mtime != 0 && caps.SetModTime
	if sp, ok := c.(remote.Stamper); ok && stamped {
		// One round trip where a stat takes two (FTP without MLST): the
		// stamp alone is the proof (see markerStamp).
		t, err := sp.ModTime(ctx, o.Marker)
		switch {
		case err == nil && entry.MtimeMatch(t, time.Unix(0, rec.Mtime), caps.ModTimePrecision):
			return markerCheck{kind: markerTrusted}, nil
		case err != nil && !errors.Is(err, remote.ErrNotExist):
			return markerCheck{}, s.markerErr(ctx, "stat", err)
		}
		// Missing or another stamp: the stat below says what is there.
	}
	st, err := c.Stat(ctx, o.Marker)
	switch {
	case errors.Is(err, remote.ErrNotExist):
		if err := s.ensureTarget(ctx, c); err != nil {
			return markerCheck{}, err
		}
		if rec.Token == "" {
			return markerCheck{kind: markerNew, reason: fmt.Sprintf("no marker %s on the target yet", o.Marker)}, nil
		}
		return markerCheck{kind: markerMissing, reason: fmt.Sprintf("the marker %s is gone from the target (wiped or replaced?)", o.Marker)}, nil
	case err != nil:
		return markerCheck{}, s.markerErr(ctx, "stat", err)
	case st.IsDir:
		return markerCheck{}, fail(Aborted, "target %s: %s is a directory, not ferry's marker; move it away or name the marker otherwise (--marker, marker =)", o.Target, o.Marker)
	}
	if stamped && st.Size == rec.Size &&
		entry.MtimeMatch(st.ModTime, time.Unix(0, rec.Mtime), caps.ModTimePrecision) {
		return markerCheck{kind: markerTrusted}, nil // the stamp this job set: no need to read
	}
	rd, ok := c.(remote.Reader)
	if !ok {
		return markerCheck{}, fail(Aborted, "target %s: this backend cannot read the marker %s back", o.Target, o.Marker)
	}
	b, err := rd.ReadSmall(ctx, o.Marker, markerLimit)
	if err != nil {
		return markerCheck{}, s.markerErr(ctx, "read", err)
	}
	m, perr := parseMarker(b)
	switch {
	case perr != nil && takeover:
		return markerCheck{kind: markerTakenOver, reason: fmt.Sprintf("%s was not a marker ferry can read (%v); taken over (--takeover)", o.Marker, perr)}, nil
	case perr != nil:
		return markerCheck{}, &Error{Outcome: Refused, Err: fmt.Errorf("refused: %s at the root of %s is not a marker ferry can read (%v), so ferry cannot tell who writes this target: %w; if nothing else does, run again with --takeover to list the remote, repair it and write this job's marker; nothing was changed", o.Marker, o.Target, perr, ErrNotOurs)}
	case m.Registry == s.db.ID() && m.Job == o.Job && m.Token == rec.Token:
		return markerCheck{kind: markerTrusted}, nil // ours; the server did not keep the stamp
	case m.Registry == s.db.ID() && m.Job == o.Job:
		return markerCheck{kind: markerStale, reason: fmt.Sprintf("the marker %s holds an older token of this registry (written %s): the target was restored from a backup or rolled back", o.Marker, m.Written.Format(time.RFC3339))}, nil
	case m.Registry != s.db.ID() && m.Job == o.Job && m.Host == hostname() && m.State == o.StateDir:
		// The registry that wrote it lived in this very state directory,
		// which this process holds locked: it was deleted and made anew.
		return markerCheck{kind: markerRecreated, reason: fmt.Sprintf("the marker %s was written by an earlier registry in this state directory (recreated since)", o.Marker)}, nil
	case takeover:
		return markerCheck{kind: markerTakenOver, reason: fmt.Sprintf("the target was written by another registry (%s); taken over (--takeover)", m.who())}, nil
	}
	return markerCheck{}, &Error{Outcome: Refused, Err: fmt.Errorf("refused: %s was last written by another registry (%s): %w; two registries writing one target each believe the remote is theirs. If that one is retired, run again with --takeover: this run then lists the remote, repairs it and writes its own marker; nothing was changed", o.Target, m.who(), ErrNotOurs)}
}

// markerErr explains a marker that cannot be stat-ed or read.
func (s *Session) markerErr(ctx context.Context, op string, err error) error {
	if ctx.Err() != nil {
		return &Error{Outcome: Interrupted, Err: ctx.Err()}
	}
	return fail(Aborted, "target %s: the marker %s cannot be %s (%w): ferry checks it to know the remote is as its registry says; check the remote account's rights on it", s.o.Target, s.o.Marker, map[string]string{"stat": "stat-ed", "read": "read"}[op], err)
}

// ensureTarget makes the target directory when it is missing (not in a
// dry run, which changes nothing).
func (s *Session) ensureTarget(ctx context.Context, c remote.Conn) error {
	_, err := c.Stat(ctx, "")
	switch {
	case err == nil:
		return nil
	case errors.Is(err, remote.ErrNotExist) && s.o.DryRun:
		return nil
	case errors.Is(err, remote.ErrNotExist):
		if err := c.Mkdir(ctx, ""); err != nil {
			return &Error{Outcome: Aborted, Err: fmt.Errorf("create the target directory %s: %w", s.o.Target, err)}
		}
		return nil
	case ctx.Err() != nil:
		return &Error{Outcome: Interrupted, Err: ctx.Err()}
	}
	return &Error{Outcome: Aborted, Err: fmt.Errorf("target %s: %w", s.o.Target, err)}
}

// writeMarker puts a new token on the target (through a temporary name and
// a rename, like any upload: a half-written marker is never read as one)
// and then records it. A crash between the two leaves a marker the
// registry does not know: the next run lists the remote, which is safe.
func (s *Session) writeMarker(ctx context.Context, c remote.Conn, job *registry.Job) error {
	o := s.o
	prev, err := job.Marker(ctx)
	if err != nil {
		return err
	}
	m := markerFile{Token: registry.NewToken(), Registry: s.db.ID(), Job: o.Job, Host: hostname(), State: o.StateDir, Written: o.Now()}
	stamp := markerStamp(prev.Mtime)
	n, err := c.Put(ctx, o.Marker, bytes.NewReader(m.encode()), stamp)
	if err != nil {
		return fmt.Errorf("write the marker %s on %s: %w", o.Marker, o.Target, err)
	}
	rec := registry.Marker{Token: m.Token, Size: n}
	if c.Caps().SetModTime {
		rec.Mtime = stamp.UnixNano()
	}
	return job.MarkerWritten(ctx, rec)
}

// markerStamp is the marker's modification time: not a date but a random
// whole second (2000 to 2017), different from the last one, which the
// registry keeps. A stat that finds the same size and stamp proves the
// token without reading the file; a marker from a backup, or another
// registry's, has another stamp (one chance in 2^29 of a false match).
func markerStamp(prev int64) time.Time {
	base := time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	for {
		t := base.Add(time.Duration(rand.Int64N(1<<29)) * time.Second)
		if t.UnixNano() != prev {
			return t
		}
	}
}

func hostname() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "unknown"
	}
	return h
}

// changes counts what the session did to the remote, to tell whether the
// marker needs a new token (a backup taken before these changes must not
// pass for the current remote).
func (r *stages) changes() int64 {
	return r.ship.Counters.Transferred.Load() + r.ship.Counters.Touched.Load() + r.ship.Counters.Deleted.Load() + r.ship.Counters.Cleaned.Load() + r.ship.Counters.Moved.Load() + r.ship.Counters.Conflicts.Load()
}

// settleMarker writes a new token at the end of a pass that ran to its end
// (files that failed are recorded as failed, so the registry still knows
// what the remote holds) when the marker was not trusted or the remote
// changed since the token was written. A pass that listed the remote
// writes it only if the listing was complete. It reports whether it wrote.
func (s *Session) settleMarker(ctx context.Context, code Outcome, listedAll bool, mkdirs int64) (bool, error) {
	r := s.r
	if s.o.DryRun || (code != Complete && code != Partial && code != Refused) || (s.marker.kind != markerTrusted && !listedAll) {
		return false, nil
	}
	n := r.changes()
	if s.marker.kind == markerTrusted && n == s.markerMark && mkdirs == 0 {
		return false, nil
	}
	c := r.conns.take()
	if c == nil {
		var err error
		if c, err = s.o.Open(ctx, s.o.Target, s.o.RemoteOpts); err != nil {
			return false, fmt.Errorf("connect to %s to write the marker: %w", s.o.Target, err)
		}
	}
	defer r.conns.give(c)
	if err := s.writeMarker(ctx, c, r.job); err != nil {
		return false, err
	}
	s.marker, s.markerMark, s.markerOurs = markerCheck{kind: markerTrusted}, n, true
	return true, nil
}

// rescanMarker checks the marker again (the daemon, before each scan).
// --takeover holds until this session has written its own marker.
func (s *Session) rescanMarker(ctx context.Context) (markerCheck, error) {
	r := s.r
	c := r.conns.take()
	if c == nil {
		var err error
		if c, err = s.o.Open(ctx, s.o.Target, s.o.RemoteOpts); err != nil {
			return markerCheck{}, &Error{Outcome: Aborted, Err: fmt.Errorf("connect to %s: %w", s.o.Target, err)}
		}
	}
	defer r.conns.give(c)
	chk, err := s.checkMarker(ctx, c, r.job, s.o.Takeover && !s.markerOurs)
	if err != nil {
		return chk, err
	}
	if s.marker.kind == markerTrusted || chk.kind != markerTrusted {
		s.marker = chk // an untrusted verdict stands until a token is written
	}
	return s.marker, nil
}

// reserveMarker checks the marker's name and keeps it out of the mirror: a
// source file of that name is an error (it would pass for the marker), and
// the scans leave the name out from then on.
func (o *Options) reserveMarker() error {
	if err := CheckMarkerName(o.Marker); err != nil {
		return &Error{Outcome: Aborted, Err: err}
	}
	w := scanner.NewWalker(o.Source, scanner.Options{Excludes: o.Excludes, Links: o.Links})
	if fi, err := os.Lstat(filepath.Join(o.Source, o.Marker)); err == nil && !w.Excluded(o.Marker, fi.IsDir()) {
		return fail(Aborted, "source %s holds %s at its root: that name is ferry's marker on the target, so it cannot be mirrored; rename it, exclude it, or name the marker otherwise (--marker, marker =)", o.Source, o.Marker)
	}
	o.Excludes = append(slices.Clip(o.Excludes), "/"+o.Marker)
	return nil
}
