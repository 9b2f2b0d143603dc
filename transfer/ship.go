package transfer

import (
	"context"
	"errors"
	"fmt"
	"path"
	"path/filepath"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"ferry/entry"
	"ferry/planner"
	"ferry/queue"
	"ferry/remote"
)

// Recorder is where a worker records what it did to a path: the only place
// "shipped" is decided. The registry's writer satisfies it (a later stage,
// such as a Git commit of what was shipped, can hang on it). Records are
// batched; one is durable once Flush returns.
type Recorder interface {
	Put(e entry.Entry) error
	Forget(path string) error
	Flush(ctx context.Context) error
}

// Records reads what the registry holds (what was flushed).
type Records interface {
	Get(ctx context.Context, path string) (entry.Entry, bool, error)
	Dir(ctx context.Context, dir string, fn func(entry.Entry) error) error
}

// Progress is told how each item ends; calls come from many goroutines.
type Progress interface {
	Done(path string, bytes int64) // bytes sent, 0 for non-uploads
	Failed(path string, err error)
}

// ShipOptions configure a Shipper.
type ShipOptions struct {
	Source  string // local root
	Caps    remote.Caps
	Limiter *rate.Limiter // shared by all workers: a bandwidth limit is the job's
	Rec     Recorder
	Records Records
	// Safety and Conflict are the planner's rules for what a worker finds
	// on the remote that ferry did not just put there.
	Safety   *planner.Safety
	Conflict planner.Conflict
	// Keep, when set, keeps the bytes each upload ships (the Git stage):
	// the entry it records then carries the blob's id (entry.GitBlob) and
	// whether the file was executable when that read opened it
	// (entry.GitExec). SetKeep sets it later, for a stage that opens
	// after the Shipper.
	Keep     Blobs
	Delete   bool // type changes may remove what stands in their way
	Move     bool // remove each local file once its upload is recorded
	Logf     func(format string, args ...any)
	Now      func() time.Time
	Progress Progress
}

// Counters are what a Shipper did, for the summary and the metrics.
type Counters struct {
	Transferred, Bytes, Touched, Adopted, Deleted, Failed, Conflicts, Cleaned, Moved atomic.Int64
}

// Shipper ships one item and records the outcome: it is a Pool's Handle and
// Result. It uploads (after a recheck against the remote when the registry
// asks for one), makes directories, sets mtimes, renames moved files,
// removes temporary files and deletes, each under the planner's rules.
type Shipper struct {
	o        ShipOptions
	Dirs     *Dirs // the remote directories known to exist
	Counters Counters
	rate     rateMeter
	// keep is o.Keep, or what SetKeep put there since: read once per
	// upload, so that an upload keeps its bytes or does not, whole.
	// unkept counts the uploads under way that read none (Unkept).
	keep   atomic.Pointer[Blobs]
	unkept atomic.Int64
}

// NewShipper returns a Shipper for one session.
func NewShipper(o ShipOptions) *Shipper {
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	s := &Shipper{o: o, Dirs: NewDirs()}
	if o.Keep != nil {
		s.keep.Store(&o.Keep)
	}
	return s
}

// SetKeep makes the uploads that start from now on keep their bytes in b:
// the daemon's Git stage may open after its session (the repository was
// unreachable), and what ships from then on is kept for it.
func (s *Shipper) SetKeep(b Blobs) { s.keep.Store(&b) }

// Unkept counts the uploads (and their rechecks) under way that keep no
// bytes. Once it reads 0 after SetKeep, every upload that began before is
// recorded: a scan from then on finds each file shipped without its bytes
// kept (in sync, with no blob), and none lands after it unkept.
func (s *Shipper) Unkept() int64 { return s.unkept.Load() }

// keeping returns where an upload starting now keeps its bytes (nil: it
// keeps none) and the func to call when it ends. The count goes up before
// keep is read, so that Unkept cannot miss an upload that read none just
// before SetKeep.
func (s *Shipper) keeping() (Blobs, func()) {
	s.unkept.Add(1)
	if b := s.keep.Load(); b != nil && *b != nil {
		s.unkept.Add(-1)
		return *b, func() {}
	}
	return nil, func() { s.unkept.Add(-1) }
}

// Rate is the measured upload rate of one connection in bytes per second
// (0 until a file big enough to tell has been sent).
func (s *Shipper) Rate() float64 { return s.rate.get() }

// errConflictSkipped marks a path left alone by --conflict skip.
var errConflictSkipped = errors.New("the remote copy was changed by someone else; left as it is (--conflict skip)")

// Handle makes one attempt at an item on a worker's connection.
func (s *Shipper) Handle(ctx context.Context, c remote.Conn, it queue.Item) error {
	if it.Move != nil {
		return s.rename(ctx, c, it.Move.From, it.Entry)
	}
	e := it.Entry
	if it.Waited && (e.Action == entry.Upload || e.Action == entry.Touch) {
		// Another item of this path shipped while this one waited (a
		// live change and the scan of its new directory both planned the
		// file): compare with the remote first, so what is already there
		// is adopted, not sent twice.
		e.Recheck = true
	}
	switch e.Action {
	case entry.Upload:
		return s.upload(ctx, c, e)
	case entry.Mkdir:
		if err := s.EnsureDir(ctx, c, e.Path); err != nil {
			return err
		}
		e.MarkDone()
		e.RemoteSize, e.RemoteMtime, e.Hash = -1, 0, "" // what a file in the way was, if one was
		return s.record(e, 0)
	case entry.Touch:
		return s.touch(ctx, c, e)
	case entry.Cleanup:
		if err := c.Remove(ctx, e.Path); err != nil && !errors.Is(err, remote.ErrNotExist) {
			return err
		}
		s.Counters.Cleaned.Add(1)
		return s.forget(e.Path)
	case entry.Delete:
		return s.Remove(ctx, c, e)
	}
	return fmt.Errorf("%s: unknown action %v", e.Path, e.Action)
}

// Result records an item's final failure (successes are recorded by
// Handle).
func (s *Shipper) Result(it queue.Item, err error, attempts int) {
	if err == nil {
		return
	}
	e := it.Entry
	if errors.Is(err, ErrVanished) {
		// Deleted locally since the scan: the next scan settles it.
		if !e.Shipped() {
			_ = s.o.Rec.Forget(e.Path)
		} else {
			e.State = entry.Done
			_ = s.o.Rec.Put(e)
		}
		s.done(e.Path, 0)
		return
	}
	s.Counters.Failed.Add(1)
	s.o.Safety.Failed(path.Dir(e.Path))
	e.MarkFailed(attempts, err)
	_ = s.o.Rec.Put(e)
	if s.o.Progress != nil {
		s.o.Progress.Failed(e.Path, err)
	}
	s.o.Logf("failed: %v", err)
}

func (s *Shipper) local(rel string) string {
	return filepath.Join(s.o.Source, filepath.FromSlash(rel))
}

func (s *Shipper) done(p string, bytes int64) {
	if s.o.Progress != nil {
		s.o.Progress.Done(p, bytes)
	}
}

func (s *Shipper) record(e entry.Entry, bytes int64) error {
	s.done(e.Path, bytes)
	return s.o.Rec.Put(e)
}

func (s *Shipper) forget(p string) error {
	s.done(p, 0)
	return s.o.Rec.Forget(p)
}

// noteLeftover records a temporary file a failed upload could not remove,
// so that a cleanup removes it later in this pass or in the next one.
func (s *Shipper) noteLeftover(err error) {
	var tl *remote.TempLeftError
	if errors.As(err, &tl) {
		_ = s.o.Rec.Put(entry.Entry{Path: tl.Temp, LocalSize: -1, RemoteSize: -1, State: entry.Pending, Action: entry.Cleanup, DirtySince: s.o.Now().UnixNano()})
	}
}
