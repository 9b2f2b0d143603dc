package ftp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"sync"
	"time"

	jftp "github.com/jlaffaye/ftp"

	"ferry/entry"
	"ferry/remote"
)

// Put uploads r under a temporary name, sets its mtime and renames it into
// place. Nothing is ever written under the final name until the bytes are
// complete, and a failed upload removes its temporary file, on a fresh
// session if the failure took the old one down.
func (c *Conn) Put(ctx context.Context, rel string, r io.Reader, mtime time.Time) (n int64, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	abs, err := c.abs("put", rel)
	if err != nil {
		return 0, err
	}
	tmp := entry.TempName(abs)
	src := &readRecorder{r: remote.ContextReader(ctx, r)}
	stored := false
	defer func() {
		if err != nil && stored {
			err = c.cleanup(ctx, rel, tmp, err)
		}
	}()
	err = c.do(ctx, "put", rel, func(sc *jftp.ServerConn) error {
		stored = true
		return sc.Stor(tmp, src)
	})
	n = src.n
	if src.err != nil {
		// The local side failed (or the caller cancelled): say so, not
		// whatever the server made of the short upload.
		return n, fmt.Errorf("put %q: %w", rel, src.err)
	}
	if err != nil {
		return n, c.explainPutErr(ctx, rel, abs, err)
	}
	// Only a temporary file the server confirms complete is published: a
	// SIZE before the rename is the proof, and the MDTM reply is the proof
	// of the mtime, so no stat is needed afterwards.
	if t := c.tail; t != nil {
		renaming := false
		err = c.do(ctx, "put", rel, func(*jftp.ServerConn) error {
			var err error
			renaming, err = c.putTail(t, rel, tmp, abs, n, mtime)
			return err
		})
		if err != nil && renaming && remote.KindOf(err) != remote.KindTransport && ctx.Err() == nil {
			err = c.replaceAside(ctx, rel, tmp, abs, err)
		}
		return n, err
	}
	err = c.do(ctx, "put", rel, func(sc *jftp.ServerConn) error {
		size, err := sc.FileSize(tmp)
		if err != nil {
			return err
		}
		if size != n {
			return remote.Errorf(remote.KindBusy, "put", rel, fmt.Errorf("the server stored %d bytes, %d were sent", size, n))
		}
		if !mtime.IsZero() && c.caps.SetModTime {
			return sc.SetTime(tmp, mtime)
		}
		return nil
	})
	if err != nil {
		return n, err
	}
	err = c.do(ctx, "put", rel, func(sc *jftp.ServerConn) error { return sc.Rename(tmp, abs) })
	if err != nil && remote.KindOf(err) != remote.KindTransport && ctx.Err() == nil {
		err = c.replaceAside(ctx, rel, tmp, abs, err)
	}
	return n, err
}

// explainPutErr refines a refused STOR: a missing parent directory reads as
// KindNotExist, which the caller fixes by making it.
func (c *Conn) explainPutErr(ctx context.Context, rel, abs string, err error) error {
	if k := remote.KindOf(err); k != remote.KindPermission && k != remote.KindOther {
		return err
	}
	perr := c.do(ctx, "put", rel, func(sc *jftp.ServerConn) error { return sc.ChangeDir(path.Dir(abs)) })
	if perr != nil && remote.KindOf(perr) == remote.KindPermission {
		return &remote.Error{Op: "put", Path: rel, Kind: remote.KindNotExist, Err: fmt.Errorf("parent directory missing: %w", errors.Unwrap(err))}
	}
	return err
}

// replaceAside handles servers whose RNTO refuses to overwrite: move the old
// file aside, rename the new one in, then remove the old one. The final name
// briefly does not exist, but it never holds a partial file.
func (c *Conn) replaceAside(ctx context.Context, rel, tmp, abs string, renameErr error) error {
	// A directory under the final name is not moved aside (it would hide
	// under a temporary name, and DELE cannot remove it): that is a type
	// change, which the caller settles.
	if c.do(ctx, "put", rel, func(sc *jftp.ServerConn) error { return sc.ChangeDir(abs) }) == nil {
		return remote.Errorf(remote.KindExist, "put", rel, fmt.Errorf("a directory of that name is in the way: %w", renameErr))
	}
	aside := entry.TempName(abs)
	if err := c.do(ctx, "put", rel, func(sc *jftp.ServerConn) error { return sc.Rename(abs, aside) }); err != nil {
		return renameErr // the final name is not in the way: the first error stands
	}
	if err := c.do(ctx, "put", rel, func(sc *jftp.ServerConn) error { return sc.Rename(tmp, abs) }); err != nil {
		_ = c.do(ctx, "put", rel, func(sc *jftp.ServerConn) error { return sc.Rename(aside, abs) })
		return err
	}
	return c.do(ctx, "put", rel, func(sc *jftp.ServerConn) error { return sc.Delete(aside) })
}

// cleanup removes a temporary upload after a failure. If the failure was a
// cancellation or a dropped connection, a fresh session does it.
func (c *Conn) cleanup(ctx context.Context, rel, tmp string, cause error) error {
	left := path.Join(path.Dir(rel), path.Base(tmp))
	if remote.GivenUp(ctx) || remote.Unreachable(cause) {
		// The server did not answer (or the caller gave up on it for
		// that): a new session would wait out the same silence. The
		// file is recorded, and removed once the server answers again.
		return &remote.TempLeftError{Temp: left, Err: cause, CleanupErr: remote.ErrNoAnswer}
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.o.IOTimeout())
	defer cancel()
	err := c.do(cctx, "put", rel, func(sc *jftp.ServerConn) error { return sc.Delete(tmp) })
	if err != nil && !is550(err) && remote.KindOf(err) != remote.KindNotExist {
		return &remote.TempLeftError{Temp: left, Err: cause, CleanupErr: err}
	}
	return cause
}

// readRecorder keeps the reader's own error apart from the server's.
type readRecorder struct {
	r   io.Reader
	n   int64
	err error
}

// copyBuffer is the chunk an upload moves per system call. Measured on a
// 256 MiB upload to vsftpd over loopback: 32 KiB 0.40 s, 64 KiB 0.36 s,
// 128 KiB 0.44 s, 1 MiB 0.47 s — 64 KiB stays in the CPU cache between the
// file read, the digest and the socket copy.
const copyBuffer = 64 << 10

var buffers = sync.Pool{New: func() any { b := make([]byte, copyBuffer); return &b }}

// WriteTo lets io.Copy (inside the FTP library's STOR) move big chunks.
func (r *readRecorder) WriteTo(w io.Writer) (int64, error) {
	bp := buffers.Get().(*[]byte)
	defer buffers.Put(bp)
	buf := *bp
	var total int64
	for {
		n, rerr := io.ReadFull(r, buf)
		if n > 0 {
			m, werr := w.Write(buf[:n])
			total += int64(m)
			if werr != nil {
				return total, werr
			}
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			return total, nil
		}
		if rerr != nil {
			return total, rerr
		}
	}
}

func (r *readRecorder) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	r.n += int64(n)
	if err != nil && err != io.EOF {
		r.err = err
	}
	return n, err
}
