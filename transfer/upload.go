// Package transfer owns carrying out the plan: the pool of workers that each
// hold one connection (pool.go, worker.go, growth.go, silence.go), the
// Shipper that ships one item and records its outcome through a Recorder
// (ship.go, send.go, replace.go, remove.go, dirs.go), and the upload of one
// local file with its checks (upload.go: the file did not change while it
// was read, and the server holds what was sent). What to do when the
// remote holds something unexpected is the planner's decision.
package transfer

import (
	"context"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"time"

	"golang.org/x/time/rate"

	"ferry/internal/digest"
	"ferry/remote"
)

// ErrChanged reports a local file that changed while it was being read; the
// upload was abandoned before it could replace the remote copy.
var ErrChanged = errors.New("local file changed during upload")

// ErrVanished reports a local file that disappeared before it was read.
var ErrVanished = errors.New("local file vanished")

// ErrVerify reports a remote copy that does not match what was sent.
var ErrVerify = errors.New("remote copy does not match what was sent")

// LocalError wraps a failure on the local side (unreadable file): retrying
// will not help until the user fixes it.
type LocalError struct{ Err error }

func (e *LocalError) Error() string { return e.Err.Error() }
func (e *LocalError) Unwrap() error { return e.Err }

// Shipped describes what an upload put on the remote.
type Shipped struct {
	Size        int64
	LocalMtime  time.Time // the source file's mtime, set on the remote copy
	RemoteMtime time.Time // as the server reports it
	Hash        string    // digest of the bytes sent (internal/digest)
	// GitBlob is the id of the blob Upload's keep wrote from the bytes it
	// sent ("" without one).
	GitBlob string
	// Exec says the source file had an execute bit (any of the three)
	// when it was opened: the Git stage commits it as 100755. From the
	// stat of the open the bytes are read from, as they are, and not from
	// the scan, which may be older.
	Exec bool
}

// Blobs keeps the bytes an upload ships, written from the upload's own read
// (the Git stage's object store): what is committed later is exactly what
// was sent, never the file as it is by then.
type Blobs interface {
	NewBlob(size int64) (Blob, error)
}

// Blob receives one file's bytes as they are read. Close returns the blob's
// id once all size bytes came; Abort drops it.
type Blob interface {
	io.Writer
	Close() (id string, err error)
	Abort()
}

// Upload sends the local file src to rel on c. The remote copy appears
// under rel only complete and confirmed by the server (remote.Conn.Put's
// promise), and only if the local file did not change while it was read.
// With keep set, the bytes read are also written to a blob there, which
// is kept only when the upload succeeds.
func Upload(ctx context.Context, c remote.Conn, src, rel string, lim *rate.Limiter, keep Blobs) (Shipped, error) {
	f, err := os.Open(src)
	if errors.Is(err, fs.ErrNotExist) {
		return Shipped{}, fmt.Errorf("upload %q: %w", rel, ErrVanished)
	}
	if err != nil {
		return Shipped{}, &LocalError{fmt.Errorf("upload %q: open local file: %w", rel, err)}
	}
	defer f.Close()
	before, err := f.Stat()
	if err != nil {
		return Shipped{}, &LocalError{fmt.Errorf("upload %q: stat local file: %w", rel, err)}
	}
	if !before.Mode().IsRegular() {
		return Shipped{}, &LocalError{fmt.Errorf("upload %q: %s is not a regular file", rel, src)}
	}
	g := &guard{ctx: ctx, f: f, before: before, h: digest.New(), lim: lim, beat: Beat(ctx)}
	if keep != nil {
		if g.blob, err = keep.NewBlob(before.Size()); err != nil {
			return Shipped{}, &LocalError{fmt.Errorf("upload %q: keep the bytes for the Git stage: %w", rel, err)}
		}
		defer func() {
			if g.blob != nil {
				g.blob.Abort()
			}
		}()
	}
	n, err := c.Put(ctx, rel, g, before.ModTime())
	if g.localErr != nil {
		if errors.Is(g.localErr, ErrChanged) {
			return Shipped{}, fmt.Errorf("upload %q: %w", rel, ErrChanged)
		}
		return Shipped{}, &LocalError{fmt.Errorf("upload %q: read %s: %w", rel, src, g.localErr)}
	}
	if err != nil {
		return Shipped{}, err
	}
	// Put returns only once the server confirmed the size (and the mtime)
	// of the temporary file it renamed: that is the verification, done
	// before the file became visible rather than after.
	if n != before.Size() {
		return Shipped{}, fmt.Errorf("verify %q: %w: %d bytes sent, the file has %d", rel, ErrVerify, n, before.Size())
	}
	out := Shipped{Size: n, LocalMtime: before.ModTime(), Hash: digest.Sum(g.h), Exec: isExec(before)}
	if g.blob != nil {
		b := g.blob
		g.blob = nil
		if out.GitBlob, err = b.Close(); err != nil {
			// On the remote, but not kept for the Git stage: failed, so
			// the next attempt sends it again and keeps it then.
			return Shipped{}, &LocalError{fmt.Errorf("upload %q: keep the bytes for the Git stage: %w", rel, err)}
		}
	}
	out.RemoteMtime = before.ModTime()
	if caps := c.Caps(); caps.SetModTime && caps.ModTimePrecision > 0 {
		out.RemoteMtime = before.ModTime().Truncate(caps.ModTimePrecision)
	}
	return out, nil
}

// isExec reports whether a file has an execute bit: Git records a file as
// executable or not, and takes any of the three bits as executable.
func isExec(fi fs.FileInfo) bool { return fi.Mode().Perm()&0o111 != 0 }

// guard reads the local file, hashing and pacing it, and refuses to end
// cleanly if the file changed under it: the upload is then abandoned before
// its rename, so a torn file is never shipped.
type guard struct {
	ctx      context.Context
	f        *os.File
	before   fs.FileInfo
	h        hash.Hash
	lim      *rate.Limiter
	n        int64
	localErr error
	beat     func() // bytes move: the server is taking them
	blob     Blob   // the Git stage's copy of the bytes read, or nil
}

// Size is the file's size when the upload began: a hint for how a backend
// sends it, never a promise (the file is checked again at the end).
func (g *guard) Size() int64 { return g.before.Size() }

func (g *guard) Read(p []byte) (int, error) {
	if g.lim != nil && len(p) > g.lim.Burst() {
		p = p[:g.lim.Burst()]
	}
	n, err := g.f.Read(p)
	if n > 0 {
		// A read comes after the previous buffer went out: the bytes
		// move, so a long upload is never taken for a silent server.
		g.beat()
	}
	g.n += int64(n)
	g.h.Write(p[:n])
	if g.blob != nil && n > 0 {
		if _, werr := g.blob.Write(p[:n]); werr != nil {
			g.localErr = fmt.Errorf("keep the bytes for the Git stage: %w", werr)
			return n, g.localErr
		}
	}
	if g.lim != nil && n > 0 {
		if werr := g.lim.WaitN(g.ctx, n); werr != nil {
			return n, werr
		}
	}
	if err == io.EOF {
		after, serr := g.f.Stat()
		if serr != nil {
			g.localErr = serr
			return n, serr
		}
		if after.Size() != g.before.Size() || !after.ModTime().Equal(g.before.ModTime()) || g.n != g.before.Size() {
			g.localErr = ErrChanged
			return n, ErrChanged
		}
		return n, io.EOF
	}
	if err != nil {
		g.localErr = err
	}
	return n, err
}
