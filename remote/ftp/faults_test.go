package ftp_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"ferry/entry"
	"ferry/internal/testrig"
	"ferry/remote"
	"ferry/remote/ftp"
)

// dirEntries lists a directory on the server's disk, behind the backend.
func dirEntries(t testing.TB, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

func wantKind(t testing.TB, err error, kind remote.Kind, sentinel error, mustMention ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("want a %v error, got nil", sentinel)
	}
	if remote.KindOf(err) != kind || !errors.Is(err, sentinel) {
		t.Fatalf("want kind %v (%v), got kind %v: %v", kind, sentinel, remote.KindOf(err), err)
	}
	for _, s := range mustMention {
		if !strings.Contains(err.Error(), s) {
			t.Fatalf("error %q does not mention %q", err, s)
		}
	}
}

func TestBadInput(t *testing.T) {
	srv := testrig.FTP(t, testrig.FTPOptions{})
	before := dirEntries(t, srv.Root)

	t.Run("WrongPassword", func(t *testing.T) {
		_, err := open(t, srv, "", func(o *remote.Options) { o.Password = "not-the-password" })
		wantKind(t, err, remote.KindAuth, remote.ErrAuth, "login", "password")
		if strings.Contains(err.Error(), "not-the-password") {
			t.Fatalf("error leaks the password: %v", err)
		}
	})
	t.Run("ConnectionRefused", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().(*net.TCPAddr)
		l.Close()
		tg := &remote.Target{Scheme: "ftp", User: "x", Host: "127.0.0.1", Port: addr.Port}
		_, err = ftp.Open(context.Background(), tg, remote.Options{Timeout: 2 * time.Second})
		wantKind(t, err, remote.KindTransport, remote.ErrTransport, "127.0.0.1")
		if !remote.IsTemporary(err) {
			t.Fatalf("connection refused should be temporary: %v", err)
		}
	})
	t.Run("MissingPath", func(t *testing.T) {
		c := mustOpen(t, srv, "does/not/exist")
		defer c.Close()
		_, err := c.Stat(context.Background(), "")
		wantKind(t, err, remote.KindNotExist, remote.ErrNotExist)
		err = c.List(context.Background(), "sub", func(entry.FileInfo) error { return nil })
		wantKind(t, err, remote.KindNotExist, remote.ErrNotExist, "sub")
		_, err = c.Put(context.Background(), "f", strings.NewReader("x"), time.Time{})
		wantKind(t, err, remote.KindNotExist, remote.ErrNotExist, "f")
	})
	if after := dirEntries(t, srv.Root); len(after) != len(before) {
		t.Fatalf("bad input changed the server: %v -> %v", before, after)
	}
}

func TestUntrustedCertificate(t *testing.T) {
	srv := testrig.FTP(t, testrig.FTPOptions{TLS: true})
	_, err := open(t, srv, "", func(o *remote.Options) { o.CAFile = "" })
	wantKind(t, err, remote.KindHostKey, remote.ErrHostKey, "tls_ca_file")
	if got := dirEntries(t, srv.Root); len(got) != 0 {
		t.Fatalf("refused login changed the server: %v", got)
	}
}

func TestTooManyConnections(t *testing.T) {
	srv := testrig.FTP(t, testrig.FTPOptions{MaxPerIP: 2})
	a, b := mustOpen(t, srv, ""), mustOpen(t, srv, "")
	defer a.Close()
	defer b.Close()
	_, err := open(t, srv, "", nil)
	wantKind(t, err, remote.KindTooMany, remote.ErrTooMany, "421")
	if !remote.IsTemporary(err) {
		t.Fatalf("too many connections must be temporary: %v", err)
	}
	// The capped sessions keep working.
	if _, err := a.Put(context.Background(), "ok", strings.NewReader("ok"), time.Time{}); err != nil {
		t.Fatal(err)
	}
}

func TestDiskFull(t *testing.T) {
	disk := testrig.SmallDisk(t, 1<<20)
	srv := testrig.FTP(t, testrig.FTPOptions{Root: disk})
	c := mustOpen(t, srv, "")
	defer c.Close()
	ctx := context.Background()
	_, err := c.Put(ctx, "big.bin", bytes.NewReader(make([]byte, 4<<20)), time.Now())
	wantKind(t, err, remote.KindDiskFull, remote.ErrDiskFull, "big.bin", "free space")
	if remote.IsTemporary(err) {
		t.Fatalf("disk full is not a retry-now error: %v", err)
	}
	if got := dirEntries(t, disk); len(got) != 0 {
		t.Fatalf("failed upload left %v on the full disk", got)
	}
	if _, err := c.Put(ctx, "small", strings.NewReader("fits"), time.Now()); err != nil {
		t.Fatalf("session unusable after a disk-full error: %v", err)
	}
}

// killAfter supplies zeros; after limit bytes it kills the server once, then
// keeps supplying, as a local file would.
type killAfter struct {
	limit, n int
	kill     func()
	once     sync.Once
}

func (k *killAfter) Read(p []byte) (int, error) {
	if k.n >= k.limit {
		k.once.Do(k.kill)
	}
	k.n += len(p)
	clear(p)
	return len(p), nil
}

func TestServerKilledMidUpload(t *testing.T) {
	for _, tlsOn := range []bool{false, true} {
		name := map[bool]string{false: "plain", true: "tls"}[tlsOn]
		t.Run(name, func(t *testing.T) {
			srv := testrig.FTP(t, testrig.FTPOptions{TLS: tlsOn})
			c := mustOpen(t, srv, "")
			defer c.Close()
			ctx := context.Background()
			src := &killAfter{limit: 2 << 20, kill: func() {
				if err := srv.Kill(); err != nil {
					t.Errorf("kill: %v", err)
				}
			}}
			_, err := c.Put(ctx, "victim.bin", io.LimitReader(src, 64<<20), time.Now())
			if err == nil {
				t.Fatalf("upload through a killed server succeeded")
			}
			if !remote.IsTemporary(err) {
				t.Fatalf("a killed server must give a temporary error, got kind %v: %v", remote.KindOf(err), err)
			}
			if _, serr := os.Stat(filepath.Join(srv.Root, "victim.bin")); !errors.Is(serr, os.ErrNotExist) {
				t.Fatalf("final name exists after a killed upload: %v", serr)
			}
			for _, name := range dirEntries(t, srv.Root) {
				if !entry.IsTemp(name) {
					t.Fatalf("unexpected %q after a killed upload", name)
				}
			}
			if err := srv.Restart(); err != nil {
				t.Fatal(err)
			}
			// The same Conn redials on its own.
			if _, err := c.Put(ctx, "after.txt", strings.NewReader("back"), time.Now()); err != nil {
				t.Fatalf("Put after restart: %v", err)
			}
			if got, _ := os.ReadFile(filepath.Join(srv.Root, "after.txt")); string(got) != "back" {
				t.Fatalf("after restart the server holds %q", got)
			}
		})
	}
}

func TestServerRestartBetweenCalls(t *testing.T) {
	srv := testrig.FTP(t, testrig.FTPOptions{})
	c := mustOpen(t, srv, "")
	defer c.Close()
	ctx := context.Background()
	if err := c.Mkdir(ctx, "d"); err != nil {
		t.Fatal(err)
	}
	if err := srv.Kill(); err != nil {
		t.Fatal(err)
	}
	_, err := c.Stat(ctx, "d")
	if !remote.IsTemporary(err) {
		t.Fatalf("Stat on a dead server: want a temporary error, got %v", err)
	}
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	fi, err := c.Stat(ctx, "d")
	if err != nil || !fi.IsDir {
		t.Fatalf("Stat after restart = %+v, %v; want the directory", fi, err)
	}
}
