package sftp

import (
	"context"
	"errors"
	"io/fs"
	"path"
	"time"

	"ferry/entry"
)

// Stat describes p without following a symlink: the mirror holds what is
// there, not what it points to.
func (c *Conn) Stat(ctx context.Context, p string) (entry.FileInfo, error) {
	a, err := c.abs("stat", p)
	if err != nil {
		return entry.FileInfo{}, err
	}
	var fi fs.FileInfo
	err = c.call(ctx, "stat", p, func(s *session) (err error) {
		fi, err = s.sftp.Lstat(a)
		return err
	})
	if err != nil {
		return entry.FileInfo{}, err
	}
	return info(fi), nil
}

// List reads dir in one go (one directory is the unit the interface allows
// in memory) and then hands the entries to fn outside the call, so a slow
// fn never holds the session's watchdog armed.
func (c *Conn) List(ctx context.Context, dir string, fn func(entry.FileInfo) error) error {
	a, err := c.abs("list", dir)
	if err != nil {
		return err
	}
	var ents []fs.FileInfo
	err = c.call(ctx, "list", dir, func(s *session) (err error) {
		ents, err = s.sftp.ReadDirContext(ctx, a)
		return err
	})
	if err != nil {
		return err
	}
	for _, fi := range ents {
		if n := fi.Name(); n == "." || n == ".." {
			continue
		}
		if err := fn(info(fi)); err != nil {
			return err
		}
	}
	return nil
}

// Remove deletes a file or an empty directory. pkg/sftp tries the file
// removal first and the directory removal second, and when both fail
// reports the one that fits what p is.
func (c *Conn) Remove(ctx context.Context, p string) error {
	a, err := c.abs("remove", p)
	if err != nil {
		return err
	}
	return c.call(ctx, "remove", p, func(s *session) error {
		return s.sftp.Remove(a)
	})
}

// Mkdir creates p and any missing parents; an existing directory is fine,
// an existing file is not.
func (c *Conn) Mkdir(ctx context.Context, p string) error {
	a, err := c.abs("mkdir", p)
	if err != nil {
		return err
	}
	return c.call(ctx, "mkdir", p, func(s *session) error {
		return mkdirAll(ctx, s, a)
	})
}

// mkdirAll walks up until it finds an existing directory, then creates
// downwards. A lost race with another creator is success.
func mkdirAll(ctx context.Context, s *session, a string) error {
	fi, err := s.sftp.Stat(a)
	if err == nil {
		if fi.IsDir() {
			return nil
		}
		return errNotDir
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if parent := path.Dir(a); parent != a && parent != "/" && parent != "." {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := mkdirAll(ctx, s, parent); err != nil {
			return err
		}
	}
	if err := s.sftp.Mkdir(a); err != nil {
		if fi, serr := s.sftp.Lstat(a); serr == nil && fi.IsDir() {
			return nil
		}
		return err
	}
	return nil
}

// Rename moves from to to. With posix-rename@openssh.com an existing to is
// replaced atomically; plain SFTP v3 rename refuses to replace it.
func (c *Conn) Rename(ctx context.Context, from, to string) error {
	a, err := c.abs("rename", from)
	if err != nil {
		return err
	}
	b, err := c.abs("rename", to)
	if err != nil {
		return err
	}
	return c.call(ctx, "rename", from, func(s *session) error {
		if s.posixRename {
			return s.sftp.PosixRename(a, b)
		}
		return s.sftp.Rename(a, b)
	})
}

// Chtimes sets the modification time of p (and its access time, which SFTP
// v3 can only set together with it).
func (c *Conn) Chtimes(ctx context.Context, p string, mtime time.Time) error {
	a, err := c.abs("chtimes", p)
	if err != nil {
		return err
	}
	return c.call(ctx, "chtimes", p, func(s *session) error {
		return s.sftp.Chtimes(a, mtime, mtime)
	})
}

func info(fi fs.FileInfo) entry.FileInfo {
	out := entry.FileInfo{Name: fi.Name(), ModTime: fi.ModTime(), IsDir: fi.IsDir()}
	if !out.IsDir {
		out.Size = fi.Size()
	}
	return out
}
