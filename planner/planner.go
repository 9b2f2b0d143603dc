// Package planner owns settling: for each directory the scanner streams, it
// compares what is on disk (and, when the remote was listed, what is there)
// with what the registry recorded, and writes back only what is really out
// of sync. Identical content means no work: an unchanged file is skipped on
// size and mtime, and a touched file whose bytes are the same is hashed and
// only has its remote mtime set.
//
// It also owns the decisions a worker asks for when the remote holds what
// ferry did not expect (conflict.go: adopt, overwrite, or apply the
// conflict policy), and the deletion rules (safety.go: excluded paths,
// deletions held back under failures, the deletion limit; policy.go holds
// the policies' types).
package planner

import (
	"context"
	"path"
	"path/filepath"
	"time"

	"ferry/entry"
	"ferry/internal/digest"
	"ferry/queue"
	"ferry/scanner"
)

// Sink receives the planner's decisions: the registry's Writer, or a
// printer for --dry-run.
type Sink interface {
	Put(e entry.Entry) error
	// Plan records an upload or a touch whose remote side was read from
	// the registry: what a worker records of the remote copy meanwhile
	// must not be undone by it (registry.Writer.Plan).
	Plan(e entry.Entry) error
	Forget(path string) error
}

// Recorded is what the planner reads of the registry.
type Recorded interface {
	Dir(ctx context.Context, dir string, fn func(entry.Entry) error) error
}

// Options shape a plan.
type Options struct {
	Source   string // local root
	Delete   bool   // plan deletions of remote files missing locally
	Checksum bool   // compare content hashes even when size and mtime match
	// Excluded matches the job's exclude patterns (nil = none). A remote
	// path it matches is not ferry's: never deleted, whether listed or
	// recorded from before the pattern came, unless DeleteExcluded.
	Excluded       func(rel string, isDir bool) bool
	DeleteExcluded bool
	// ListPrecision is how far a listed mtime can be trusted (the remote's
	// Caps().ListModTimePrecision); listings are only used when it is set.
	ListPrecision time.Duration
	Now           func() time.Time
	// KeepBytes says the job's Git stage keeps the bytes of every file
	// that comes into sync: one that is in sync but whose bytes were
	// never kept (adopted from a listing, or shipped before the stage was
	// on) goes to a worker, which proves the remote copy with a stat and
	// reads the local bytes once; nothing is adopted from a listing alone.
	KeepBytes bool
}

// Stats count what the plan found.
type Stats struct {
	Dirs, Files         int64
	Unchanged           int64
	Uploads, UploadSize int64
	Touches             int64
	Mkdirs              int64
	Deletes             int64 // remote files and directories to delete
	Cleanups            int64 // temporary files of dead runs to remove
	Adopted             int64 // already identical on the remote: recorded, not sent
	Links               int64 // symbolic links skipped
	DirErrors           []error
}

// Planner settles one directory at a time.
type Planner struct {
	o     Options
	rec   Recorded
	sink  Sink
	Stats Stats
	// ErrDirs are directories whose local read failed: no deletion may be
	// planned at or under them.
	ErrDirs map[string]bool
	// RemoteOnlyDirs are directories found only on the remote while
	// --delete is on; RemoteOnly walks them to plan their deletion.
	RemoteOnlyDirs []string
	// notDirs are local directories the listing showed as remote files:
	// listings at or under them describe nothing of theirs.
	notDirs map[string]bool
}

// New returns a planner writing its decisions to sink.
func New(rec Recorded, sink Sink, o Options) *Planner {
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Planner{o: o, rec: rec, sink: sink, ErrDirs: map[string]bool{}}
}

// Dir settles one directory pair.
func (p *Planner) Dir(ctx context.Context, pr *scanner.Pair) error {
	d := pr.Local
	p.Stats.Dirs++
	rec := map[string]entry.Entry{}
	if err := p.rec.Dir(ctx, d.Path, func(e entry.Entry) error {
		rec[path.Base(e.Path)] = e
		return nil
	}); err != nil {
		return err
	}
	if d.Err != nil {
		p.Stats.DirErrors = append(p.Stats.DirErrors, d.Err)
		p.ErrDirs[d.Path] = true
		return nil // without the local content, nothing here can be settled
	}
	var listed map[string]entry.FileInfo
	if pr.Listed && (pr.RemoteErr == nil || p.RemoteNotDir(d.Path)) {
		listed = make(map[string]entry.FileInfo, len(pr.Remote))
		if !p.RemoteNotDir(d.Path) {
			for _, fi := range pr.Remote {
				listed[fi.Name] = fi
			}
		}
	}
	now := p.o.Now().UnixNano()
	local := make(map[string]bool, len(d.Files))
	for _, f := range d.Files {
		local[f.Name] = true
		rel := path.Join(d.Path, f.Name)
		e, known := rec[f.Name]
		rf, onRemote := listed[f.Name]
		switch {
		case f.Link:
			p.Stats.Links++
			local[f.Name] = known && e.Shipped() // a link does not delete what ferry shipped
		case f.IsDir:
			if err := p.dir(rel, e, known, rf, onRemote, listed != nil, now); err != nil {
				return err
			}
		default:
			p.Stats.Files++
			if known && !e.IsDir && e.State == entry.Pending && e.Lane == entry.LaneLive {
				// A live change queued it: the daemon's live queue holds it
				// in memory and ships the file as it is then. Planned again
				// by a scan, it would be claimable by a bulk worker too, and
				// sent twice. (After a restart such rows are Stale, and
				// planned again.) A live change itself (File) is always
				// settled: the upload under way may carry older bytes.
				continue
			}
			if err := p.file(rel, f, e, known, rf, onRemote, listed != nil, now); err != nil {
				return err
			}
		}
	}
	// Recorded entries no longer on disk.
	for name, e := range rec {
		if local[name] {
			continue
		}
		if _, err := p.gone(ctx, e, now); err != nil {
			return err
		}
	}
	// Remote entries ferry never recorded and that are not on disk.
	for name, fi := range listed {
		if local[name] {
			continue
		}
		if _, known := rec[name]; known {
			continue
		}
		rel := path.Join(d.Path, name)
		switch {
		case entry.IsTemp(name):
			p.Stats.Cleanups++
			if err := p.sink.Put(entry.Entry{Path: rel, LocalSize: -1, RemoteSize: fi.Size, State: entry.Pending, Action: entry.Cleanup, DirtySince: now}); err != nil {
				return err
			}
		case entry.IsConflictCopy(name):
			// Kept: it holds someone else's version.
		case p.notOurs(rel, fi.IsDir):
			// Excluded: not ferry's to delete.
		case !p.o.Delete:
		case fi.IsDir:
			p.RemoteOnlyDirs = append(p.RemoteOnlyDirs, rel)
		default:
			if err := p.PlanRemoteDelete(rel, fi, now); err != nil {
				return err
			}
		}
	}
	return nil
}

func (p *Planner) dir(rel string, e entry.Entry, known bool, rf entry.FileInfo, onRemote, listed bool, now int64) error {
	if known && e.IsDir && e.State == entry.Done && (!listed || (onRemote && rf.IsDir)) {
		return nil
	}
	if listed && onRemote && rf.IsDir {
		// There already: record it without a round trip.
		return p.sink.Put(entry.Entry{Path: rel, IsDir: true, LocalSize: -1, RemoteSize: -1, State: entry.Done})
	}
	out := entry.Entry{Path: rel, IsDir: true, LocalSize: -1, RemoteSize: -1, State: entry.Pending, Action: entry.Mkdir, DirtySince: now}
	// A file became a directory: the remote file in the way goes first
	// (with --delete). The entry carries what the file should be so the
	// worker can tell whether someone else changed it before removing it.
	switch {
	case listed && onRemote && !rf.IsDir:
		p.remoteFile(rel)
		out.RemoteSize, out.RemoteMtime, out.Recheck = rf.Size, rf.ModTime.UnixNano(), true
		if known && !e.IsDir && e.RemoteSize == rf.Size {
			out.RemoteMtime, out.Hash = e.RemoteMtime, e.Hash // ferry's own: its record is more precise
		}
	case listed:
	case known && !e.IsDir && e.RemoteSize >= 0:
		out.RemoteSize, out.RemoteMtime, out.Hash, out.Recheck = e.RemoteSize, e.RemoteMtime, e.Hash, true
	case known && e.IsDir && e.State != entry.Done && e.RemoteSize >= 0:
		out = e // planned by an earlier run: keep what it carries
		out.State, out.Lane = entry.Pending, 0
	}
	p.Stats.Mkdirs++
	return p.sink.Put(out)
}

// remoteFile notes a local directory that is a file on the remote.
func (p *Planner) remoteFile(rel string) {
	if p.notDirs == nil {
		p.notDirs = map[string]bool{}
	}
	p.notDirs[rel] = true
}

// RemoteNotDir reports whether dir, or a directory above it, is a file on
// the remote: its listing (an error, or the file itself on FTP) says
// nothing about it, and is taken as empty.
func (p *Planner) RemoteNotDir(dir string) bool {
	if len(p.notDirs) == 0 {
		return false
	}
	for d := dir; d != "." && d != ""; d = path.Dir(d) {
		if p.notDirs[d] {
			return true
		}
	}
	return false
}

func (p *Planner) file(rel string, f scanner.File, e entry.Entry, known bool, rf entry.FileInfo, onRemote, listed bool, now int64) error {
	mtime := f.Mtime.UnixNano()
	same := known && !e.IsDir && e.State == entry.Done && e.LocalSize == f.Size && e.LocalMtime == mtime
	if same && p.o.Checksum {
		sum, err := digest.File(filepath.Join(p.o.Source, filepath.FromSlash(rel)))
		same = err == nil && sum == e.Hash
	}
	if same && listed && !(onRemote && !rf.IsDir && rf.Size == e.RemoteSize) {
		same = false // the remote copy was removed or changed by someone else
	}
	keepOnly := same && p.o.KeepBytes && e.GitBlob == ""
	if same && !keepOnly {
		p.Stats.Unchanged++
		return nil
	}
	out := entry.Entry{Path: rel, LocalSize: f.Size, LocalMtime: mtime, RemoteSize: -1, State: entry.Pending,
		Action: entry.Upload, Lane: queue.LaneOf(f.Size), DirtySince: now}
	if known && !e.IsDir {
		out.RemoteSize, out.RemoteMtime, out.Hash = e.RemoteSize, e.RemoteMtime, e.Hash
		out.Attempts, out.LastError = e.Attempts, e.LastError
		if e.State != entry.Done && e.DirtySince != 0 {
			out.DirtySince = e.DirtySince // first out of sync, not last
		}
		out.Recheck = e.Recheck
	}
	// Touched but identical: set the mtime instead of sending the bytes. A
	// touch an earlier session left unfinished (Stale) stays a touch.
	wasTouch := e.State == entry.Done || e.State == entry.Stale && e.Action == entry.Touch
	if known && wasTouch && !keepOnly && e.LocalSize == f.Size && e.Hash != "" && (!listed || onRemote) {
		if sum, err := digest.File(filepath.Join(p.o.Source, filepath.FromSlash(rel))); err == nil && sum == e.Hash {
			out.Action, out.Lane = entry.Touch, 0
			p.Stats.Touches++
			out.Recheck = true
			return p.sink.Plan(out)
		}
	}
	switch {
	case out.RemoteSize >= 0:
		// Overwriting what ferry shipped: the worker stats it first to
		// catch a third-party change (the conflict policy decides).
		out.Recheck = true
	case listed && onRemote && !rf.IsDir:
		// A file ferry never recorded is already there: identical (the
		// worker adopts it without sending) or someone else's.
		out.Recheck = true
		// Adopted here only when no worker can hold the path: a pending
		// row may be claimed before this write lands, and the worker's
		// stat adopts it then (once).
		owned := !known || e.State == entry.Stale
		if owned && !p.o.KeepBytes && rf.Size == f.Size && p.o.ListPrecision > 0 && p.o.ListPrecision <= time.Second && entry.MtimeMatch(rf.ModTime, f.Mtime, p.o.ListPrecision) {
			p.Stats.Adopted++
			return p.sink.Put(entry.Entry{Path: rel, LocalSize: f.Size, LocalMtime: mtime, RemoteSize: rf.Size, RemoteMtime: rf.ModTime.UnixNano(), State: entry.Done})
		}
	case listed && onRemote && rf.IsDir, !listed && known && e.IsDir:
		// A directory in the way: the worker replaces it (--delete) or
		// reports it.
		out.Recheck = true
	}
	p.Stats.Uploads++
	p.Stats.UploadSize += f.Size
	return p.sink.Plan(out)
}

// File settles one file the watcher reported, as Dir settles each file of
// a directory but without a listing; e is what the registry holds for it
// (known false when nothing).
func (p *Planner) File(rel string, f scanner.File, e entry.Entry, known bool) error {
	p.Stats.Files++
	return p.file(rel, f, e, known, entry.FileInfo{}, false, false, p.o.Now().UnixNano())
}
