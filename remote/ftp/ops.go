package ftp

import (
	"context"
	"errors"
	"fmt"
	"path"
	"time"

	jftp "github.com/jlaffaye/ftp"

	"ferry/entry"
	"ferry/remote"
)

// Stat describes rel with MLST when the server has it, else with SIZE and
// MDTM (and CWD to recognise a directory): two round trips for a file.
func (c *Conn) Stat(ctx context.Context, rel string) (entry.FileInfo, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	abs, err := c.abs("stat", rel)
	if err != nil {
		return entry.FileInfo{}, err
	}
	var fi entry.FileInfo
	err = c.do(ctx, "stat", rel, func(sc *jftp.ServerConn) error {
		var err error
		fi, err = statOn(sc, abs)
		return err
	})
	return fi, err
}

// ModTime reads rel's modification time with one MDTM (remote.Stamper). On
// a server with MLST a Stat is one round trip already, and says more.
func (c *Conn) ModTime(ctx context.Context, rel string) (time.Time, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	abs, err := c.abs("stat", rel)
	if err != nil {
		return time.Time{}, err
	}
	var t time.Time
	err = c.do(ctx, "stat", rel, func(sc *jftp.ServerConn) error {
		if sc.IsTimePreciseInList() || !sc.IsGetTimeSupported() {
			fi, err := statOn(sc, abs)
			if err == nil && fi.IsDir {
				err = notExist(fmt.Errorf("%s is a directory", abs))
			}
			t = fi.ModTime
			return err
		}
		var err error
		if t, err = sc.GetTime(abs); err != nil && is550(err) {
			return notExist(err)
		}
		return err
	})
	return t, err
}

func statOn(sc *jftp.ServerConn, abs string) (entry.FileInfo, error) {
	fi := entry.FileInfo{Name: path.Base(abs)}
	if sc.IsTimePreciseInList() { // the server has MLST
		e, err := sc.GetEntry(abs)
		if err != nil {
			if is550(err) {
				return fi, notExist(err)
			}
			return fi, err
		}
		fi.IsDir = e.Type == jftp.EntryTypeFolder
		if !fi.IsDir {
			fi.Size = int64(e.Size)
		}
		fi.ModTime = e.Time
		return fi, nil
	}
	size, err := sc.FileSize(abs)
	if err != nil {
		if !is550(err) {
			return fi, err
		}
		// SIZE fails on directories too: CWD tells them apart.
		if cerr := sc.ChangeDir(abs); cerr != nil {
			if is550(cerr) {
				return fi, notExist(err)
			}
			return fi, cerr
		}
		fi.IsDir = true
		return fi, nil
	}
	fi.Size = size
	if sc.IsGetTimeSupported() {
		if fi.ModTime, err = sc.GetTime(abs); err != nil {
			return fi, err
		}
	}
	return fi, nil
}

// notExist turns a 550 into an error that classify reads as KindNotExist
// whatever the server's wording.
func notExist(err error) error {
	return &notExistErr{err}
}

type notExistErr struct{ err error }

func (e *notExistErr) Error() string { return e.err.Error() }
func (e *notExistErr) Unwrap() error { return e.err }

// List streams the entries of dir. LIST on a missing directory succeeds with
// an empty listing on some servers (vsftpd), so the directory is entered
// first: a listing is only trusted for a directory that exists.
func (c *Conn) List(ctx context.Context, dir string, fn func(entry.FileInfo) error) error {
	c.mu.Lock()
	abs, err := c.abs("list", dir)
	if err != nil {
		c.mu.Unlock()
		return err
	}
	var entries []*jftp.Entry
	err = c.do(ctx, "list", dir, func(sc *jftp.ServerConn) error {
		if err := sc.ChangeDir(abs); err != nil {
			if is550(err) {
				return notExist(err)
			}
			return err
		}
		var err error
		entries, err = sc.List(abs)
		return err
	})
	c.mu.Unlock()
	if err != nil {
		return err
	}
	for _, e := range entries {
		if e.Name == "." || e.Name == ".." || e.Name == "" {
			continue
		}
		fi := entry.FileInfo{Name: e.Name, ModTime: e.Time, IsDir: e.Type == jftp.EntryTypeFolder}
		if !fi.IsDir {
			fi.Size = int64(e.Size)
		}
		if err := fn(fi); err != nil {
			return err
		}
	}
	return nil
}

// Remove deletes a file (DELE) or an empty directory (RMD).
func (c *Conn) Remove(ctx context.Context, rel string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	abs, err := c.abs("remove", rel)
	if err != nil {
		return err
	}
	return c.do(ctx, "remove", rel, func(sc *jftp.ServerConn) error {
		derr := sc.Delete(abs)
		if derr == nil || !is550(derr) {
			return derr
		}
		rerr := sc.RemoveDir(abs)
		if rerr == nil || !is550(rerr) {
			return rerr
		}
		// Neither worked: find out why, since both replies are vague.
		if _, serr := statOn(sc, abs); serr != nil {
			return serr
		}
		if cerr := sc.ChangeDir(abs); cerr == nil {
			return fmt.Errorf("directory not empty: %w", rerr)
		}
		return derr
	})
}

// Mkdir creates rel and its missing parents.
func (c *Conn) Mkdir(ctx context.Context, rel string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	abs, err := c.abs("mkdir", rel)
	if err != nil {
		return err
	}
	return c.do(ctx, "mkdir", rel, func(sc *jftp.ServerConn) error { return mkdirAll(sc, abs, 0) })
}

func mkdirAll(sc *jftp.ServerConn, abs string, depth int) error {
	err := sc.MakeDir(abs)
	if err == nil || !is550(err) {
		return err
	}
	if sc.ChangeDir(abs) == nil {
		return nil // already there
	}
	parent := path.Dir(abs)
	if parent == abs || parent == "/" || parent == "." || depth > 256 {
		return err
	}
	if perr := mkdirAll(sc, parent, depth+1); perr != nil {
		return perr
	}
	return sc.MakeDir(abs)
}

// Rename moves from to to (RNFR/RNTO).
func (c *Conn) Rename(ctx context.Context, from, to string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	a, err := c.abs("rename", from)
	if err != nil {
		return err
	}
	b, err := c.abs("rename", to)
	if err != nil {
		return err
	}
	return c.do(ctx, "rename", from, func(sc *jftp.ServerConn) error {
		err := sc.Rename(a, b)
		if is550(err) {
			if _, serr := statOn(sc, a); serr != nil {
				return serr
			}
		}
		return err
	})
}

// Chtimes sets the modification time with MFMT or vsftpd's MDTM-write form.
func (c *Conn) Chtimes(ctx context.Context, rel string, mtime time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	abs, err := c.abs("chtimes", rel)
	if err != nil {
		return err
	}
	if !c.caps.SetModTime {
		return remote.Errorf(remote.KindUnsupported, "chtimes", rel, errors.New("the server has neither MFMT nor MDTM-write"))
	}
	return c.do(ctx, "chtimes", rel, func(sc *jftp.ServerConn) error {
		err := sc.SetTime(abs, mtime)
		if is550(err) {
			return notExist(err)
		}
		return err
	})
}
