// Package file owns the file:// backend: a target that is a local directory.
// It is the reference the conformance suite is written against, and the
// fastest target for benchmarks of everything above the protocol.
package file

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"ferry/entry"
	"ferry/remote"
)

// Conn is a session on a local directory. It is safe for concurrent use.
type Conn struct {
	root string
}

var (
	_ remote.Conn   = (*Conn)(nil)
	_ remote.Hasher = (*Conn)(nil)
	_ remote.Opener = Open
)

// Open returns a Conn rooted at t.Path. The root need not exist yet: Stat
// of "" reports ErrNotExist until someone makes it.
func Open(_ context.Context, t *remote.Target, _ remote.Options) (remote.Conn, error) {
	if t.Scheme != "file" {
		return nil, fmt.Errorf("file backend: scheme %q", t.Scheme)
	}
	return &Conn{root: filepath.Clean(t.Path)}, nil
}

// Caps reports what a local filesystem offers.
func (c *Conn) Caps() remote.Caps {
	return remote.Caps{
		ModTimePrecision:     time.Microsecond,
		ListModTimePrecision: time.Microsecond,
		SetModTime:           true,
		Hashes:               []string{"sha256"},
		AtomicReplace:        true,
		Resume:               true,
		Streams:              4,
	}
}

func (c *Conn) abs(op, p string) (string, error) {
	j, err := remote.Join(c.root, p)
	if err != nil {
		return "", remote.Errorf(remote.KindOther, op, p, err)
	}
	return filepath.FromSlash(j), nil
}

// Stat describes p.
func (c *Conn) Stat(_ context.Context, p string) (entry.FileInfo, error) {
	a, err := c.abs("stat", p)
	if err != nil {
		return entry.FileInfo{}, err
	}
	fi, err := os.Lstat(a)
	if err != nil {
		return entry.FileInfo{}, mapErr("stat", p, err)
	}
	return info(fi), nil
}

// List streams the entries of dir.
func (c *Conn) List(ctx context.Context, dir string, fn func(entry.FileInfo) error) error {
	a, err := c.abs("list", dir)
	if err != nil {
		return err
	}
	f, err := os.Open(a)
	if err != nil {
		return mapErr("list", dir, err)
	}
	defer f.Close()
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		ents, err := f.ReadDir(256)
		for _, de := range ents {
			fi, ierr := de.Info()
			if errors.Is(ierr, fs.ErrNotExist) {
				continue // removed while we listed
			}
			if ierr != nil {
				return mapErr("list", dir, ierr)
			}
			if err := fn(info(fi)); err != nil {
				return err
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return mapErr("list", dir, err)
		}
	}
}

// Put writes r to p through a temporary file in the same directory.
func (c *Conn) Put(ctx context.Context, p string, r io.Reader, mtime time.Time) (n int64, err error) {
	a, err := c.abs("put", p)
	if err != nil {
		return 0, err
	}
	tmp := filepath.Join(filepath.Dir(a), filepath.Base(entry.TempName(filepath.Base(a))))
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return 0, mapErr("put", p, err)
	}
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()
	n, err = io.Copy(f, remote.ContextReader(ctx, r))
	if err != nil {
		return n, wrapCopyErr("put", p, err)
	}
	if err = f.Close(); err != nil {
		return n, mapErr("put", p, err)
	}
	if !mtime.IsZero() {
		if err = os.Chtimes(tmp, time.Time{}, mtime); err != nil {
			return n, mapErr("put", p, err)
		}
	}
	if err = os.Rename(tmp, a); err != nil {
		return n, mapErr("put", p, err)
	}
	return n, nil
}

// wrapCopyErr keeps the reader's own error (a local failure, a cancelled
// context) recognisable while naming the path.
func wrapCopyErr(op, p string, err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) && pe.Op == "write" {
		return mapErr(op, p, err)
	}
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return mapErr(op, p, err)
	}
	return fmt.Errorf("%s %q: %w", op, p, err)
}

// Remove deletes a file or an empty directory.
func (c *Conn) Remove(_ context.Context, p string) error {
	a, err := c.abs("remove", p)
	if err != nil {
		return err
	}
	return mapErr("remove", p, os.Remove(a))
}

// Mkdir creates p and its parents.
func (c *Conn) Mkdir(_ context.Context, p string) error {
	a, err := c.abs("mkdir", p)
	if err != nil {
		return err
	}
	return mapErr("mkdir", p, os.MkdirAll(a, 0o755))
}

// Rename moves from to to, replacing to atomically.
func (c *Conn) Rename(_ context.Context, from, to string) error {
	a, err := c.abs("rename", from)
	if err != nil {
		return err
	}
	b, err := c.abs("rename", to)
	if err != nil {
		return err
	}
	return mapErr("rename", from, os.Rename(a, b))
}

// Chtimes sets the modification time of p.
func (c *Conn) Chtimes(_ context.Context, p string, mtime time.Time) error {
	a, err := c.abs("chtimes", p)
	if err != nil {
		return err
	}
	return mapErr("chtimes", p, os.Chtimes(a, time.Time{}, mtime))
}

// Hash returns the sha256 of p.
func (c *Conn) Hash(ctx context.Context, p, algo string) (string, error) {
	if algo != "sha256" {
		return "", remote.Errorf(remote.KindUnsupported, "hash", p, fmt.Errorf("algorithm %q", algo))
	}
	a, err := c.abs("hash", p)
	if err != nil {
		return "", err
	}
	f, err := os.Open(a)
	if err != nil {
		return "", mapErr("hash", p, err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, remote.ContextReader(ctx, f)); err != nil {
		return "", mapErr("hash", p, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// Close does nothing: there is no session to end.
func (c *Conn) Close() error { return nil }

func info(fi fs.FileInfo) entry.FileInfo {
	out := entry.FileInfo{Name: fi.Name(), ModTime: fi.ModTime(), IsDir: fi.IsDir()}
	if !out.IsDir {
		out.Size = fi.Size()
	}
	return out
}

func mapErr(op, p string, err error) error {
	if err == nil {
		return nil
	}
	kind := remote.KindOther
	switch {
	case errors.Is(err, fs.ErrNotExist):
		kind = remote.KindNotExist
	case errors.Is(err, fs.ErrExist):
		kind = remote.KindExist
	case errors.Is(err, fs.ErrPermission):
		kind = remote.KindPermission
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		kind = remote.KindDiskFull
	case errors.Is(err, syscall.ENOTDIR):
		kind = remote.KindNotExist
	}
	return remote.Errorf(kind, op, p, err)
}
