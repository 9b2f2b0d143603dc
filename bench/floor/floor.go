// Package floor owns the bench's raw protocol floor: a tree uploaded with
// the same protocol libraries ferry uses (jlaffaye/ftp, pkg/sftp) and the
// fewest commands each protocol allows per file — FTP: EPSV and STOR to the
// final name; SFTP: OPEN, pipelined WRITEs, CLOSE — over the same number of
// connections, with every directory made once before the files. It keeps no
// state, writes no temporary names, sets no times and verifies nothing: it is
// what ferry's safety is measured against, not a way to mirror.
package floor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"time"

	"github.com/jlaffaye/ftp"
	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
	"golang.org/x/sync/errgroup"
)

// Options is one floor upload.
type Options struct {
	Src        string // local directory
	URL        string // ftp://user@host:port/path or sftp://user@host:port/path
	Password   string // FTP
	Identity   string // SFTP private key file
	KnownHosts string // SFTP known_hosts file
	Conns      int    // connections
	Streams    int    // SFTP: files in flight per connection (ferry's default is 8)
}

// tree is the source as the floor sends it: directories parents first, files
// as slash-separated paths relative to Src.
type tree struct{ dirs, files []string }

func walk(src string) (tree, error) {
	var t tree
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil || rel == "." {
			return err
		}
		rel = filepath.ToSlash(rel)
		switch {
		case d.IsDir():
			t.dirs = append(t.dirs, rel)
		case d.Type().IsRegular():
			t.files = append(t.files, rel)
		}
		return nil
	})
	return t, err
}

// uploader is one connection's way of sending one file and making one directory.
type uploader interface {
	mkdir(remote string) error
	put(local, remote string) error
	close() error
}

// Run uploads the tree and returns the number of files sent.
func Run(ctx context.Context, o Options) (int, error) {
	u, err := url.Parse(o.URL)
	if err != nil {
		return 0, fmt.Errorf("floor: target %q: %w", o.URL, err)
	}
	t, err := walk(o.Src)
	if err != nil {
		return 0, fmt.Errorf("floor: walk %s: %w", o.Src, err)
	}
	dial := func() (uploader, error) { return nil, fmt.Errorf("floor: scheme %q: want ftp or sftp", u.Scheme) }
	streams := 1
	switch u.Scheme {
	case "ftp":
		dial = func() (uploader, error) { return dialFTP(ctx, u, o.Password) }
	case "sftp":
		cfg, err := sshConfig(u, o.Identity, o.KnownHosts)
		if err != nil {
			return 0, err
		}
		dial = func() (uploader, error) { return dialSFTP(u, cfg) }
		streams = max(1, o.Streams)
	}
	base := u.Path
	conns := make([]uploader, max(1, o.Conns))
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.close()
			}
		}
	}()
	g, gctx := errgroup.WithContext(ctx)
	for i := range conns {
		g.Go(func() (err error) { conns[i], err = dial(); return err })
	}
	if err := g.Wait(); err != nil {
		return 0, err
	}
	// The target directory itself may exist already; anything really wrong
	// with it shows in the first MKD or upload below.
	_ = conns[0].mkdir(base)
	for _, d := range t.dirs {
		if err := conns[0].mkdir(path.Join(base, d)); err != nil {
			return 0, err
		}
	}
	next := make(chan string)
	g, gctx = errgroup.WithContext(ctx)
	g.Go(func() error {
		defer close(next)
		for _, f := range t.files {
			select {
			case next <- f:
			case <-gctx.Done():
				return gctx.Err()
			}
		}
		return nil
	})
	for _, c := range conns {
		for range streams {
			g.Go(func() error {
				for f := range next {
					if err := c.put(filepath.Join(o.Src, filepath.FromSlash(f)), path.Join(base, f)); err != nil {
						return err
					}
				}
				return nil
			})
		}
	}
	if err := g.Wait(); err != nil {
		return 0, err
	}
	return len(t.files), nil
}

type ftpConn struct{ c *ftp.ServerConn }

func dialFTP(ctx context.Context, u *url.URL, password string) (uploader, error) {
	c, err := ftp.Dial(u.Host, ftp.DialWithContext(ctx), ftp.DialWithTimeout(10*time.Second))
	if err != nil {
		return nil, fmt.Errorf("floor: dial %s: %w", u.Host, err)
	}
	if err := c.Login(u.User.Username(), password); err != nil {
		c.Quit()
		return nil, fmt.Errorf("floor: login to %s: %w", u.Host, err)
	}
	return &ftpConn{c: c}, nil
}

func (f *ftpConn) mkdir(remote string) error {
	if err := f.c.MakeDir(remote); err != nil {
		return fmt.Errorf("floor: MKD %s: %w", remote, err)
	}
	return nil
}

func (f *ftpConn) put(local, remote string) error {
	r, err := os.Open(local)
	if err != nil {
		return fmt.Errorf("floor: %w", err)
	}
	defer r.Close()
	if err := f.c.Stor(remote, r); err != nil {
		return fmt.Errorf("floor: STOR %s: %w", remote, err)
	}
	return nil
}

func (f *ftpConn) close() error { return f.c.Quit() }

type sftpConn struct {
	ssh *ssh.Client
	c   *sftp.Client
}

func sshConfig(u *url.URL, identity, knownHostsFile string) (*ssh.ClientConfig, error) {
	key, err := os.ReadFile(identity)
	if err != nil {
		return nil, fmt.Errorf("floor: identity file: %w", err)
	}
	signer, err := ssh.ParsePrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("floor: identity file %s: %w", identity, err)
	}
	hk, err := knownhosts.New(knownHostsFile)
	if err != nil {
		return nil, fmt.Errorf("floor: known hosts: %w", err)
	}
	return &ssh.ClientConfig{User: u.User.Username(), Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: hk, Timeout: 10 * time.Second}, nil
}

func dialSFTP(u *url.URL, cfg *ssh.ClientConfig) (uploader, error) {
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), strconv.Itoa(22))
	}
	sc, err := ssh.Dial("tcp", host, cfg)
	if err != nil {
		return nil, fmt.Errorf("floor: ssh to %s: %w", host, err)
	}
	c, err := sftp.NewClient(sc, sftp.UseConcurrentWrites(true))
	if err != nil {
		sc.Close()
		return nil, fmt.Errorf("floor: sftp on %s: %w", host, err)
	}
	return &sftpConn{ssh: sc, c: c}, nil
}

func (s *sftpConn) mkdir(remote string) error {
	if err := s.c.Mkdir(remote); err != nil {
		return fmt.Errorf("floor: mkdir %s: %w", remote, err)
	}
	return nil
}

func (s *sftpConn) put(local, remote string) error {
	r, err := os.Open(local)
	if err != nil {
		return fmt.Errorf("floor: %w", err)
	}
	defer r.Close()
	w, err := s.c.OpenFile(remote, os.O_WRONLY|os.O_CREATE|os.O_TRUNC)
	if err != nil {
		return fmt.Errorf("floor: open %s: %w", remote, err)
	}
	if _, err := io.Copy(w, r); err != nil {
		w.Close()
		return fmt.Errorf("floor: write %s: %w", remote, err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("floor: close %s: %w", remote, err)
	}
	return nil
}

func (s *sftpConn) close() error {
	return errors.Join(s.c.Close(), s.ssh.Close())
}
