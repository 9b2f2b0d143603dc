package mem

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"slices"
	"strings"
	"time"

	"ferry/entry"
	"ferry/remote"
)

// conn is one session on an FS, rooted at a key of the tree. Unlike a
// network Conn it is safe for concurrent use; all its state is guarded by
// the FS's lock.
type conn struct {
	fs      *FS
	root    string
	counted bool // from Open: holds a MaxConns slot until closed
	closed  bool
}

var (
	_ remote.Conn   = (*conn)(nil)
	_ remote.Hasher = (*conn)(nil)
)

// putBuf is how much Put reads at a time; each buffer lands in the temporary
// file before the next is read, so observers see the upload grow.
const putBuf = 32 << 10

// enter starts call op on p: it counts the call, sleeps the latency, and
// refuses when the Conn is closed, the context done or the server down. It
// returns the key p resolves to.
func (c *conn) enter(ctx context.Context, op, p string) (string, error) {
	m := c.fs
	m.mu.Lock()
	m.calls[op]++
	lat, closed := m.Latency, c.closed
	m.mu.Unlock()
	if closed {
		return "", remote.Errorf(remote.KindOther, op, p, errClosed)
	}
	if err := sleep(ctx, lat); err != nil {
		return "", fmt.Errorf("%s %q: %w", op, p, err)
	}
	m.mu.Lock()
	down := m.down
	m.mu.Unlock()
	if down {
		return "", remote.Errorf(remote.KindTransport, op, p, errDown)
	}
	k, err := remote.Join(c.root, p)
	if err != nil {
		return "", remote.Errorf(remote.KindOther, op, p, err)
	}
	return k, nil
}

func notExist(op, p string) error { return remote.Errorf(remote.KindNotExist, op, p, fs.ErrNotExist) }

// Caps reports the FS's Caps.
func (c *conn) Caps() remote.Caps {
	c.fs.mu.Lock()
	defer c.fs.mu.Unlock()
	caps := c.fs.Caps
	caps.Hashes = slices.Clone(caps.Hashes)
	return caps
}

// Stat describes p.
func (c *conn) Stat(ctx context.Context, p string) (entry.FileInfo, error) {
	k, err := c.enter(ctx, "stat", p)
	if err != nil {
		return entry.FileInfo{}, err
	}
	m := c.fs
	m.mu.Lock()
	defer m.mu.Unlock()
	n := m.walk(k)
	if n == nil {
		return entry.FileInfo{}, notExist("stat", p)
	}
	name := path.Base(k)
	if k == "" {
		name = "/"
	}
	return info(name, n, n.mtime), nil
}

func info(name string, n *node, mtime time.Time) entry.FileInfo {
	fi := entry.FileInfo{Name: name, ModTime: mtime, IsDir: n.dir}
	if !n.dir {
		fi.Size = int64(len(n.data))
	}
	return fi
}

// List calls fn for each entry of dir, from a snapshot taken at the start,
// so fn may call back into the FS.
func (c *conn) List(ctx context.Context, dir string, fn func(entry.FileInfo) error) error {
	k, err := c.enter(ctx, "list", dir)
	if err != nil {
		return err
	}
	m := c.fs
	m.mu.Lock()
	n := m.walk(k)
	if n == nil || !n.dir {
		m.mu.Unlock()
		if n != nil {
			return remote.Errorf(remote.KindNotExist, "list", dir, errNotDir)
		}
		return notExist("list", dir)
	}
	prec := m.Caps.ListModTimePrecision
	snap := make([]entry.FileInfo, 0, len(n.kids))
	for name, kid := range n.kids {
		snap = append(snap, info(name, kid, kid.mtime.Truncate(prec)))
	}
	m.mu.Unlock()
	for _, fi := range snap {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(fi); err != nil {
			return err
		}
	}
	return nil
}

// Put writes r to p through a temporary entry in the same directory, which
// grows as r is read and is renamed over p only once complete.
func (c *conn) Put(ctx context.Context, p string, r io.Reader, mtime time.Time) (n int64, err error) {
	k, err := c.enter(ctx, "put", p)
	if err != nil {
		return 0, err
	}
	m := c.fs
	if k == "" {
		return 0, remote.Errorf(remote.KindOther, "put", p, errIsDir)
	}
	dir, name := split(k)
	tmpName := path.Base(entry.TempName(name))
	tmp := &node{}
	m.mu.Lock()
	parent := m.dirAt(dir)
	if parent != nil {
		tmp.mtime = m.stamp(time.Now())
		parent.kids[tmpName] = tmp
		parent.mtime = tmp.mtime
	}
	failPut := m.FailPut
	m.mu.Unlock()
	if parent == nil {
		return 0, notExist("put", p)
	}
	defer func() {
		if err != nil {
			m.mu.Lock()
			if parent.kids[tmpName] == tmp {
				delete(parent.kids, tmpName)
			}
			m.mu.Unlock()
		}
	}()

	src := remote.ContextReader(ctx, r)
	if failPut != nil {
		if ferr := failPut(k); ferr != nil {
			return c.failHalf(p, src, tmp, ferr)
		}
	}
	buf := make([]byte, putBuf)
	for {
		got, rerr := src.Read(buf)
		if got > 0 {
			m.mu.Lock()
			down := m.down
			if !down {
				tmp.data = append(tmp.data, buf[:got]...)
			}
			m.mu.Unlock()
			if down {
				return n, remote.Errorf(remote.KindTransport, "put", p, errDown)
			}
			n += int64(got)
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			// The reader's own error (a local disk, a cancelled
			// context) stays recognisable with errors.Is.
			return n, fmt.Errorf("put %q: %w", p, rerr)
		}
	}

	m.mu.Lock()
	defer m.mu.Unlock()
	if parent.kids[tmpName] != tmp {
		// Someone removed the temporary file under us, as a cleanup of
		// stale uploads might: the rename would find nothing.
		return n, notExist("put", p)
	}
	if old := parent.kids[name]; old != nil && old.dir {
		return n, remote.Errorf(remote.KindOther, "put", p, errIsDir)
	}
	if mtime.IsZero() || !m.Caps.SetModTime {
		mtime = time.Now()
	}
	tmp.mtime = m.stamp(mtime)
	delete(parent.kids, tmpName)
	parent.kids[name] = tmp
	parent.mtime = m.stamp(time.Now())
	m.puts[k]++
	m.total++
	return n, nil
}

// failHalf carries out FailPut's injected failure: it reads all of src,
// stores the first half in the temporary file (so the failure happens
// mid-upload, with bytes visible) and fails. The caller removes the temp.
func (c *conn) failHalf(p string, src io.Reader, tmp *node, ferr error) (int64, error) {
	all, err := io.ReadAll(src)
	if err != nil {
		return 0, fmt.Errorf("put %q: %w", p, err)
	}
	half := all[:len(all)/2]
	c.fs.mu.Lock()
	tmp.data = append(tmp.data, half...)
	c.fs.mu.Unlock()
	var re *remote.Error
	if !errors.As(ferr, &re) {
		ferr = remote.Errorf(remote.KindOther, "put", p, ferr)
	}
	return int64(len(half)), ferr
}

// Remove deletes a file or an empty directory.
func (c *conn) Remove(ctx context.Context, p string) error {
	k, err := c.enter(ctx, "remove", p)
	if err != nil {
		return err
	}
	m := c.fs
	m.mu.Lock()
	defer m.mu.Unlock()
	if k == "" {
		return remote.Errorf(remote.KindPermission, "remove", p, errors.New("the root of the tree cannot be removed"))
	}
	dir, name := split(k)
	parent := m.dirAt(dir)
	if parent == nil || parent.kids[name] == nil {
		return notExist("remove", p)
	}
	if n := parent.kids[name]; n.dir && len(n.kids) > 0 {
		return remote.Errorf(remote.KindOther, "remove", p, errNotEmpty)
	}
	delete(parent.kids, name)
	parent.mtime = m.stamp(time.Now())
	return nil
}

// Mkdir creates p and any missing parents; a file in the way is an error.
func (c *conn) Mkdir(ctx context.Context, p string) error {
	k, err := c.enter(ctx, "mkdir", p)
	if err != nil {
		return err
	}
	m := c.fs
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, err := m.mkdirAll(k); err != nil {
		return remote.Errorf(remote.KindExist, "mkdir", p, err)
	}
	return nil
}

// Rename moves from to to with POSIX rename semantics: a file replaces a
// file and a directory an empty directory, in one step.
func (c *conn) Rename(ctx context.Context, from, to string) error {
	kf, err := c.enter(ctx, "rename", from)
	if err != nil {
		return err
	}
	kt, err := remote.Join(c.root, to)
	if err != nil {
		return remote.Errorf(remote.KindOther, "rename", to, err)
	}
	m := c.fs
	m.mu.Lock()
	defer m.mu.Unlock()
	fail := func(kind remote.Kind, err error) error { return remote.Errorf(kind, "rename", from, err) }
	if kf == "" || kt == "" {
		return fail(remote.KindPermission, errors.New("the root of the tree cannot be renamed"))
	}
	fdir, fname := split(kf)
	tdir, tname := split(kt)
	sp, dp := m.dirAt(fdir), m.dirAt(tdir)
	if sp == nil || sp.kids[fname] == nil || dp == nil {
		return fail(remote.KindNotExist, fs.ErrNotExist)
	}
	src, dst := sp.kids[fname], dp.kids[tname]
	switch {
	case kf == kt:
		return nil
	case src.dir && strings.HasPrefix(kt, kf+"/"):
		return fail(remote.KindOther, fmt.Errorf("cannot move a directory into itself (%q)", to))
	case dst == nil:
	case src.dir && !dst.dir:
		return fail(remote.KindOther, fmt.Errorf("%q: %w", to, errNotDir))
	case !src.dir && dst.dir:
		return fail(remote.KindOther, fmt.Errorf("%q: %w", to, errIsDir))
	case dst.dir && len(dst.kids) > 0:
		return fail(remote.KindOther, fmt.Errorf("%q: %w", to, errNotEmpty))
	}
	delete(sp.kids, fname)
	dp.kids[tname] = src
	now := m.stamp(time.Now())
	sp.mtime, dp.mtime = now, now
	return nil
}

// Chtimes sets the modification time of p.
func (c *conn) Chtimes(ctx context.Context, p string, mtime time.Time) error {
	k, err := c.enter(ctx, "chtimes", p)
	if err != nil {
		return err
	}
	m := c.fs
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.Caps.SetModTime {
		return remote.Errorf(remote.KindUnsupported, "chtimes", p, nil)
	}
	n := m.walk(k)
	if n == nil {
		return notExist("chtimes", p)
	}
	n.mtime = m.stamp(mtime)
	return nil
}

// Hash returns the sha256 of p when the FS's Caps.Hashes lists it.
func (c *conn) Hash(ctx context.Context, p, algo string) (string, error) {
	k, err := c.enter(ctx, "hash", p)
	if err != nil {
		return "", err
	}
	m := c.fs
	m.mu.Lock()
	defer m.mu.Unlock()
	if algo != "sha256" || !slices.Contains(m.Caps.Hashes, algo) {
		return "", remote.Errorf(remote.KindUnsupported, "hash", p, fmt.Errorf("algorithm %q", algo))
	}
	n := m.walk(k)
	if n == nil {
		return "", notExist("hash", p)
	}
	if n.dir {
		return "", remote.Errorf(remote.KindOther, "hash", p, errIsDir)
	}
	sum := sha256.Sum256(n.data)
	return hex.EncodeToString(sum[:]), nil
}

// Close frees the Conn's MaxConns slot. It never fails, even while the
// server is down, so a slot is never leaked; later calls on the Conn fail.
func (c *conn) Close() error {
	m := c.fs
	m.mu.Lock()
	defer m.mu.Unlock()
	m.calls["close"]++
	if !c.closed {
		c.closed = true
		if c.counted {
			m.open--
		}
	}
	return nil
}
