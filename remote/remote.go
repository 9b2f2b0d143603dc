// Package remote owns the boundary between ferry and the server it mirrors to.
//
// The stages that reach the server (the scanner's listing, transfer's
// workers, the session) speak only the small Conn interface defined here
// and never learn which protocol is in use; what they say about files (a
// listed FileInfo, temporary and conflict names) is the shared vocabulary
// of package entry. Each protocol lives in its own subpackage (remote/ftp, remote/sftp,
// remote/file) and maps its failures onto the typed errors of errors.go, so
// that retry and safety decisions stay generic.
//
// All paths given to a Conn are slash-separated and relative to the root of
// the target URL; "" names the root itself. A Conn never lets a path escape
// its root.
package remote

import (
	"context"
	"io"
	"time"

	"ferry/entry"
)

// Conn is one logged-in session with a target. It is owned by one worker at a
// time; implementations serialise calls that their protocol cannot run
// concurrently. After a transport failure a Conn redials on its next call, so
// an owner keeps the same Conn for its whole life.
type Conn interface {
	// Caps reports what this server can do, as negotiated at login.
	Caps() Caps

	// Stat describes one path. A missing path yields an error matching
	// ErrNotExist.
	Stat(ctx context.Context, path string) (entry.FileInfo, error)

	// List calls fn for each entry of directory dir (never "." or ".."),
	// in no particular order. Entries are streamed: an implementation
	// holds at most one directory's listing in memory. If fn returns an
	// error, List stops and returns it.
	List(ctx context.Context, dir string, fn func(entry.FileInfo) error) error

	// Put writes r to path atomically: the bytes go to a temporary name in
	// the same directory, the modification time is set (when the server
	// can), and the temporary file is renamed over path. On any failure the
	// temporary file is removed, so no reader ever sees a partial file
	// under its final name. The server's confirmation that it holds every
	// byte (write acknowledgements, or a SIZE) comes before the rename, and
	// its confirmation of the mtime (when set) too: a nil error means the
	// final name holds exactly the bytes read from r with that mtime. The
	// parent directory must exist. Put returns the number of bytes written.
	Put(ctx context.Context, path string, r io.Reader, mtime time.Time) (int64, error)

	// Remove deletes a file or an empty directory.
	Remove(ctx context.Context, path string) error

	// Mkdir creates directory path and any missing parents. An existing
	// directory is not an error.
	Mkdir(ctx context.Context, path string) error

	// Rename moves from to to. Whether an existing to is replaced
	// atomically is reported by Caps().AtomicReplace.
	Rename(ctx context.Context, from, to string) error

	// Chtimes sets the modification time of path. It fails with an error
	// matching ErrUnsupported when Caps().SetModTime is false.
	Chtimes(ctx context.Context, path string, mtime time.Time) error

	// Close logs out and releases the session.
	Close() error
}

// Caps describes what a server supports. Callers use it to decide how far a
// listed or stat-ed value can be trusted, never to pick a protocol.
type Caps struct {
	// ModTimePrecision is how precisely Stat reports a modification time
	// that was set with Chtimes or Put (1s for MDTM and SFTP v3).
	ModTimePrecision time.Duration
	// ListModTimePrecision is how precisely List reports it. A plain LIST
	// shows only the day for files older than six months, so FTP servers
	// without MLSD claim 24h: a listing alone cannot prove an mtime.
	ListModTimePrecision time.Duration
	// SetModTime reports whether Chtimes works (MFMT, MDTM-write, SFTP).
	SetModTime bool
	// Hashes lists the server-side hash algorithms the server computes,
	// e.g. "sha256", "md5"; empty when none.
	Hashes []string
	// AtomicReplace reports whether Rename over an existing file replaces
	// it in one step (POSIX rename semantics).
	AtomicReplace bool
	// Resume reports whether an interrupted upload can continue at an
	// offset (FTP REST+STOR, SFTP writes at offset).
	Resume bool
	// Streams is how many operations one Conn can usefully run at once.
	// FTP has one command in flight per control connection (1); SFTP
	// multiplexes requests on one channel, so a single connection can
	// carry several small uploads at once instead of waiting out each
	// one's round trips.
	Streams int
}

// Opener dials a target. main builds a map from URL scheme to Opener; the
// layers above receive the map and never import a protocol package.
type Opener func(ctx context.Context, t *Target, o Options) (Conn, error)

// Stamper is implemented by a Conn whose Stat takes more than one round
// trip (FTP without MLST asks SIZE, then MDTM) but which can read a file's
// modification time alone in one. A check that needs only the stamp (the
// target's marker, on every run) uses it. A missing path, or one the
// server has no time for (a directory), yields an error matching
// ErrNotExist.
type Stamper interface {
	ModTime(ctx context.Context, path string) (time.Time, error)
}

// Hasher is implemented by a Conn whose server computes checksums itself, so
// a verify needs no download.
type Hasher interface {
	// Hash returns the lowercase hex digest of path with algo, one of
	// Caps().Hashes.
	Hash(ctx context.Context, path, algo string) (string, error)
}
