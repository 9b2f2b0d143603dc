package ftp_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"ferry/entry"
	"ferry/internal/ftpfake"
	"ferry/remote"
	"ferry/remote/ftp"
)

// TestSessionLostKinds breaks one command in each way a server ends a
// session (vsftpd's "500 OOPS", a 421, a connection dropped before or after
// the command or in the middle of a STOR's data) under each operation. The
// error must read as a lost session, temporary, and the same Conn must
// work again on a new session, with nothing half-written under a final
// name.
func TestSessionLostKinds(t *testing.T) {
	ctx := context.Background()
	mtime := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	put := func(c remote.Conn, rel string) error {
		_, err := c.Put(ctx, rel, bytes.NewReader(bytes.Repeat([]byte("x"), 100<<10)), mtime)
		return err
	}
	ops := []struct {
		name, verb string
		op         func(c remote.Conn) error
	}{
		{"stat", "SIZE", func(c remote.Conn) error { _, err := c.Stat(ctx, "old"); return err }},
		{"list", "LIST", func(c remote.Conn) error { return c.List(ctx, "", func(entry.FileInfo) error { return nil }) }},
		{"read", "RETR", func(c remote.Conn) error { _, err := c.(remote.Reader).ReadSmall(ctx, "old", 1<<20); return err }},
		{"put-stor", "STOR", func(c remote.Conn) error { return put(c, "new") }},
		{"put-setmtime", "MDTM", func(c remote.Conn) error { return put(c, "new") }},
		{"put-rename", "RNTO", func(c remote.Conn) error { return put(c, "new") }},
		{"mkdir", "MKD", func(c remote.Conn) error { return c.Mkdir(ctx, "dir") }},
		{"remove", "DELE", func(c remote.Conn) error { return c.Remove(ctx, "old") }},
	}
	for _, kind := range ftpfake.Faults {
		for _, op := range ops {
			if kind == ftpfake.DropInData && op.verb != "STOR" {
				continue
			}
			t.Run(kind.String()+"/"+op.name, func(t *testing.T) {
				root := t.TempDir()
				if err := os.WriteFile(filepath.Join(root, "old"), []byte("old"), 0o644); err != nil {
					t.Fatal(err)
				}
				var armed atomic.Bool
				s := start(t, ftpfake.Options{Root: root, Fault: func(c ftpfake.Command) ftpfake.Fault {
					if c.Verb == op.verb && armed.CompareAndSwap(true, false) {
						return kind
					}
					return ftpfake.NoFault
				}})
				c := dialFake(t, s)
				defer c.Close()
				armed.Store(true)
				err := op.op(c)
				if s.Injected()[kind] != 1 {
					t.Fatalf("the fault was not made: %v", s.Injected())
				}
				if kind == ftpfake.DropAfter && err == nil {
					// A reply lost after the command took effect may go
					// unnoticed until the next one; the next must redial.
					if err = op.op(c); err != nil {
						t.Fatalf("after a dropped reply: %v", err)
					}
				} else {
					if !remote.SessionLost(err) || !remote.IsTemporary(err) || !errors.Is(err, remote.ErrTransport) {
						t.Fatalf("%v under %s: %v (kind %v); want a lost session, temporary", kind, op.verb, err, remote.KindOf(err))
					}
					if kind == ftpfake.Oops && !strings.Contains(err.Error(), "OOPS") {
						t.Errorf("the error does not say what the server said: %v", err)
					}
					// (A removal whose reply was lost had taken effect.)
					if err := op.op(c); err != nil && (kind != ftpfake.DropAfter || remote.KindOf(err) != remote.KindNotExist) {
						t.Fatalf("the same operation on a new session: %v", err)
					}
				}
				ents := dirEntries(t, root)
				for _, n := range ents {
					if entry.IsTemp(n) {
						t.Errorf("temporary file %s left behind: %q", n, ents)
					}
				}
				if got, err := os.ReadFile(filepath.Join(root, "new")); err == nil && len(got) != 100<<10 {
					t.Errorf("a half-written file under its final name: %d bytes", len(got))
				}
			})
		}
	}
	t.Run("oops/login", func(t *testing.T) {
		s := start(t, ftpfake.Options{Fault: func(c ftpfake.Command) ftpfake.Fault {
			if c.Verb == "PASS" {
				return ftpfake.Oops
			}
			return ftpfake.NoFault
		}})
		tg, _ := remote.ParseURL(s.URL("/"))
		_, err := ftp.Open(ctx, tg, remote.Options{Password: ftpfake.Password, Timeout: 5 * time.Second})
		if !remote.SessionLost(err) || !remote.IsTemporary(err) {
			t.Fatalf("500 OOPS at login: %v (kind %v); want a lost session", err, remote.KindOf(err))
		}
	})
}

func start(t *testing.T, o ftpfake.Options) *ftpfake.Server {
	t.Helper()
	if o.Root == "" {
		o.Root = t.TempDir()
	}
	if testing.Verbose() {
		o.Logf = t.Logf
	}
	s, err := ftpfake.Start(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func dialFake(t *testing.T, s *ftpfake.Server) remote.Conn {
	t.Helper()
	tg, err := remote.ParseURL(s.URL("/"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := ftp.Open(context.Background(), tg, remote.Options{Password: ftpfake.Password, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return c
}
