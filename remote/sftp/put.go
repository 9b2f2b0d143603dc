package sftp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"sync"
	"time"

	psftp "github.com/pkg/sftp"

	"ferry/entry"
	"ferry/remote"
)

// Put uploads r to a temporary name in p's directory, sets its mtime and
// renames it over p, so nobody ever sees a partial file under p. On any
// failure the temporary file is removed, on a fresh session if the failure
// took the old one down; a removal that fails is reported in the error.
func (c *Conn) Put(ctx context.Context, p string, r io.Reader, mtime time.Time) (n int64, err error) {
	a, err := c.abs("put", p)
	if err != nil {
		return 0, err
	}
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("put %q: %w", p, err)
	}
	s, err := c.session(ctx, "put", p)
	if err != nil {
		return 0, err
	}
	tmp := entry.TempName(a)
	release := c.guard(ctx, s)
	n, created, err := c.upload(ctx, s, p, a, tmp, r, mtime)
	release()
	if err != nil && created {
		left := path.Join(path.Dir(p), path.Base(tmp))
		if remote.GivenUp(ctx) || remote.Unreachable(err) {
			// The server did not answer (or the caller gave up on it
			// for that): a new session would wait out the same silence.
			// The file is recorded, and removed once the server answers.
			err = &remote.TempLeftError{Temp: left, Err: err, CleanupErr: remote.ErrNoAnswer}
		} else if cerr := c.removeTemp(ctx, p, tmp); cerr != nil {
			err = &remote.TempLeftError{Temp: left, Err: err, CleanupErr: cerr}
		}
	}
	return n, err
}

// upload does Put's work on s. created reports whether the temporary file
// may exist and so needs removing if err is set.
func (c *Conn) upload(ctx context.Context, s *session, p, a, tmp string, r io.Reader, mtime time.Time) (n int64, created bool, err error) {
	f, err := s.sftp.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL)
	if err != nil {
		// A lost connection may have lost only the reply to a create.
		return 0, isTransport(err), c.fail(ctx, s, "put", p, err)
	}
	src := &sourceReader{r: remote.ContextReader(ctx, r), wd: s.wd}
	n, werr := send(f, src, sizeHint(r))
	cerr := f.Close()
	if src.err != nil {
		// The source failed (or ctx ended): report that, not the writes it
		// cut short; a dead session still has to be noticed though.
		if isTransport(werr) || isTransport(cerr) {
			s.close()
		}
		return n, true, fmt.Errorf("put %q: %w", p, src.err)
	}
	if werr == nil {
		werr = cerr
	}
	if werr != nil {
		return n, true, c.writeFailed(ctx, s, p, a, n, werr)
	}
	if !mtime.IsZero() {
		if err := s.sftp.Chtimes(tmp, mtime, mtime); err != nil {
			return n, true, c.fail(ctx, s, "put", p, err)
		}
	}
	if err := c.replace(s, tmp, a); err != nil {
		return n, true, c.fail(ctx, s, "put", p, err)
	}
	return n, false, nil
}

// packetSize is pkg/sftp's default largest WRITE payload.
const packetSize = 32 << 10

// smallBufs holds the buffers of whole small files (see send).
var smallBufs = sync.Pool{New: func() any { b := make([]byte, packetSize+1); return &b }}

// send writes src to f. A file that fits one packet — most of a website,
// most source trees — goes as a single WRITE with no goroutines; pkg/sftp's
// concurrent path starts a reader and a writer per request in flight, which
// cost more CPU than the bytes for a 4 KiB file. Larger files keep as many
// writes in flight as they have packets, up to the client's 64: ReadFrom
// alone would write sequentially for a reader of unknown length.
func send(f *psftp.File, src io.Reader, hint int64) (int64, error) {
	bp := smallBufs.Get().(*[]byte)
	defer smallBufs.Put(bp)
	buf := *bp
	n, err := io.ReadFull(src, buf)
	switch err {
	case io.EOF, io.ErrUnexpectedEOF: // the whole file is in buf
		if n == 0 {
			return 0, nil
		}
		w, err := f.Write(buf[:n])
		return int64(w), err
	case nil: // more than a packet
	default:
		return 0, err
	}
	conc := 0 // pkg/sftp's maximum
	if hint > 0 {
		conc = int(min(64, hint/packetSize+1))
	}
	return f.ReadFromWithConcurrency(io.MultiReader(bytes.NewReader(buf[:n]), src), conc)
}

// sizeHint is the size r says it has (transfer's upload reader knows its
// file's), or -1.
func sizeHint(r io.Reader) int64 {
	if s, ok := r.(interface{ Size() int64 }); ok {
		return s.Size()
	}
	return -1
}

// replace renames tmp over a. Without posix-rename, SFTP v3 rename refuses
// an existing target, so the old file is first moved aside to another
// temporary name; readers see either version or, briefly, none.
func (c *Conn) replace(s *session, tmp, a string) error {
	if s.posixRename {
		return s.sftp.PosixRename(tmp, a)
	}
	err := s.sftp.Rename(tmp, a)
	if err == nil || isTransport(err) {
		return err
	}
	if fi, serr := s.sftp.Lstat(a); serr != nil || fi.IsDir() {
		// The target is not in the way, or it is a directory, which is
		// never moved aside (it would hide under a temporary name): a
		// type change, which the caller settles.
		return err
	}
	aside := entry.TempName(a)
	if err := s.sftp.Rename(a, aside); err != nil {
		return err
	}
	if err := s.sftp.Rename(tmp, a); err != nil {
		_ = s.sftp.Rename(aside, a) // put the old version back
		return err
	}
	if err := s.sftp.Remove(aside); err != nil {
		c.o.Warn("sftp: could not remove the old version %s: %v (the next run removes it)", aside, err)
	}
	return nil
}

// writeFailed classifies a failed write or close. OpenSSH answers ENOSPC and
// EDQUOT with the generic SSH_FX_FAILURE, so a failure is called "disk full"
// when the server's free space is below what we had sent (the partial
// temporary file still occupies it at this point).
func (c *Conn) writeFailed(ctx context.Context, s *session, p, a string, sent int64, err error) error {
	var se *psftp.StatusError
	if isTransport(err) || !errors.As(err, &se) || se.Code != fxFailure {
		return c.fail(ctx, s, "put", p, err)
	}
	if !s.statVFS {
		return remote.Errorf(remote.KindOther, "put", p,
			fmt.Errorf("the server failed a write (it cannot report free space; a full disk or quota is likely): %w", err))
	}
	st, verr := s.sftp.StatVFS(path.Dir(a))
	if verr != nil {
		return remote.Errorf(remote.KindOther, "put", p,
			fmt.Errorf("the server failed a write, and asking for its free space failed too (%v): %w", verr, err))
	}
	free := st.Bavail * st.Frsize
	if free < uint64(sent) {
		return remote.Errorf(remote.KindDiskFull, "put", p,
			fmt.Errorf("only %s free on the server's file system after writing %s: %w", remote.Bytes(int64(free)), remote.Bytes(sent), err))
	}
	return remote.Errorf(remote.KindOther, "put", p,
		fmt.Errorf("the server failed a write with %s still free (a quota may be exhausted): %w", remote.Bytes(int64(free)), err))
}

// removeTemp deletes a failed upload's temporary file. It runs on a context
// detached from the caller's (which may be the reason for the failure) and
// on whatever session is live, logging in again if the old one broke.
func (c *Conn) removeTemp(ctx context.Context, p, tmp string) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	err := c.call(ctx, "put", p, func(s *session) error {
		return s.sftp.Remove(tmp)
	})
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

// sourceReader keeps the caller's reader's own error, so Put can return it
// (errors.Is still matches a local read error or context.Canceled) even
// when pkg/sftp reports a write error at an earlier offset. It also
// disarms the watchdog while the caller's reader is busy: a slow source
// is not a silent server.
type sourceReader struct {
	r   io.Reader
	wd  *watchdogConn
	err error // first error other than io.EOF; pkg/sftp reads from one goroutine
}

func (s *sourceReader) Read(p []byte) (int, error) {
	s.wd.end()
	n, err := s.r.Read(p)
	s.wd.begin()
	if err != nil && err != io.EOF && s.err == nil {
		s.err = err
	}
	return n, err
}
