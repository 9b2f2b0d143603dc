package sftp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"ferry/entry"
	"ferry/internal/testrig"
	"ferry/remote"
	"ferry/remote/remotetest"
)

// These tests run against the distribution's OpenSSH sshd (internal-sftp),
// started by testrig on 127.0.0.1; the in-process server cannot show how
// OpenSSH really answers a full disk, a crash or a bad key.

// openSSH opens a Conn on srv; path "" uses the login directory (srv.Root).
func openSSH(t testing.TB, srv *testrig.SSHServer, p string, o remote.Options) *Conn {
	t.Helper()
	c, err := Open(context.Background(), sshTarget(t, srv, p), o)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c.(*Conn)
}

// sshTarget goes through ParseURL, so the rig's URLs are parsed as users'.
func sshTarget(t testing.TB, srv *testrig.SSHServer, p string) *remote.Target {
	t.Helper()
	tg, err := remote.ParseURL(srv.URL(p))
	if err != nil {
		t.Fatal(err)
	}
	if p == "" {
		tg.Path = "" // the login directory, which the rig sets to Root
	}
	return tg
}

func keyAuth(srv *testrig.SSHServer) remote.Options {
	return remote.Options{IdentityFile: srv.IdentityFile, KnownHostsFile: srv.KnownHostsFile}
}

func passwordAuth(srv *testrig.SSHServer) remote.Options {
	return remote.Options{Password: srv.Password, KnownHostsFile: srv.KnownHostsFile}
}

func TestOpenSSHConformance(t *testing.T) {
	noAgent(t)
	srv := testrig.SSH(t, testrig.SSHOptions{})
	readFile := func(rel string) ([]byte, error) {
		return os.ReadFile(filepath.Join(srv.Root, filepath.FromSlash(rel)))
	}
	t.Run("KeyAuth", func(t *testing.T) {
		remotetest.Run(t, remotetest.Harness{
			Open:      func(t testing.TB) remote.Conn { return openSSH(t, srv, "key", keyAuth(srv)) },
			ReadFile:  func(rel string) ([]byte, error) { return readFile(filepath.Join("key", rel)) },
			LargeSize: 64 << 20,
		})
	})
	t.Run("PasswordAuthLoginDir", func(t *testing.T) {
		remotetest.Run(t, remotetest.Harness{
			Open:      func(t testing.TB) remote.Conn { return openSSH(t, srv, "", passwordAuth(srv)) },
			ReadFile:  readFile,
			LargeSize: 64 << 20,
		})
	})
}

// snapshot lists every path under root with its size, to show that a
// refused operation changed nothing.
func snapshot(t *testing.T, root string) string {
	t.Helper()
	var lines []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		lines = append(lines, fmt.Sprintf("%s %v %d", strings.TrimPrefix(p, root), fi.Mode(), fi.Size()))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

func TestOpenSSHBadInput(t *testing.T) {
	noAgent(t)
	srv := testrig.SSH(t, testrig.SSHOptions{})
	if err := os.WriteFile(filepath.Join(srv.Root, "existing"), []byte("keep me"), 0o644); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, srv.Root)
	dir := t.TempDir()
	empty := filepath.Join(dir, "known_hosts_empty")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	wrong, err := srv.WrongKnownHosts(dir)
	if err != nil {
		t.Fatal(err)
	}
	refused := sshTarget(t, srv, "")
	refused.Port = freePort(t)

	cases := []struct {
		name string
		tg   *remote.Target
		o    remote.Options
		kind remote.Kind
		want []string
	}{
		{"WrongPassword", sshTarget(t, srv, ""), remote.Options{Password: "not-the-Passw0rd", KnownHostsFile: srv.KnownHostsFile},
			remote.KindAuth, []string{"refused", "password"}},
		{"UnknownHostKey", sshTarget(t, srv, ""), remote.Options{Password: srv.Password, KnownHostsFile: empty},
			remote.KindHostKey, []string{"unknown host key", srv.HostKeyFingerprint, "ssh-keyscan"}},
		{"ChangedHostKey", sshTarget(t, srv, ""), remote.Options{Password: srv.Password, KnownHostsFile: wrong},
			remote.KindHostKey, []string{"HOST KEY CHANGED", srv.HostKeyFingerprint, wrong + ":1", "ssh-keygen -R"}},
		{"ConnectionRefused", refused, passwordAuth(srv), remote.KindTransport, []string{"dial", "refused"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Open(context.Background(), tc.tg, tc.o)
			if err == nil {
				c.Close()
				t.Fatalf("Open succeeded")
			}
			t.Log(err)
			if k := remote.KindOf(err); k != tc.kind {
				t.Fatalf("kind %v, want %v: %v", k, tc.kind, err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q: %v", w, err)
				}
			}
			if strings.Contains(err.Error(), "not-the-Passw0rd") || strings.Contains(err.Error(), srv.Password) {
				t.Errorf("error shows a password: %v", err)
			}
		})
	}
	t.Run("MissingRemotePath", func(t *testing.T) {
		c := openSSH(t, srv, "no/such/dir", keyAuth(srv))
		ctx := context.Background()
		_, err := c.Stat(ctx, "")
		if remote.KindOf(err) != remote.KindNotExist {
			t.Fatalf("Stat of a missing root: want KindNotExist, got %v", err)
		}
		err = c.List(ctx, "sub", func(entry.FileInfo) error { return nil })
		if remote.KindOf(err) != remote.KindNotExist || !strings.Contains(err.Error(), "sub") {
			t.Fatalf("List of a missing dir: want KindNotExist naming it, got %v", err)
		}
	})
	if after := snapshot(t, srv.Root); after != before {
		t.Fatalf("refused operations changed the server's disk:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

func TestOpenSSHDiskFull(t *testing.T) {
	noAgent(t)
	disk := testrig.SmallDisk(t, 1<<20)
	srv := testrig.SSH(t, testrig.SSHOptions{Root: disk})
	c := openSSH(t, srv, "", keyAuth(srv))
	ctx := context.Background()
	_, err := c.Put(ctx, "big.bin", bytes.NewReader(bytes.Repeat([]byte{'b'}, 4<<20)), time.Now())
	t.Log(err)
	if remote.KindOf(err) != remote.KindDiskFull || !strings.Contains(err.Error(), "free") {
		t.Fatalf("Put of 4 MiB onto a 1 MiB disk: want KindDiskFull saying how much is free, got %v", err)
	}
	ents, rerr := os.ReadDir(disk)
	if rerr != nil {
		t.Fatal(rerr)
	}
	if len(ents) != 0 {
		t.Fatalf("after the failed Put the disk holds %v, want nothing (no final, no temporary file)", names(ents))
	}
	if _, err := c.Put(ctx, "small.txt", strings.NewReader("fits"), time.Now()); err != nil {
		t.Fatalf("small Put after the disk-full failure: %v", err)
	}
	if got, _ := os.ReadFile(filepath.Join(disk, "small.txt")); string(got) != "fits" {
		t.Fatalf("small file holds %q", got)
	}
}

// killingReader supplies data without end; after after bytes it kills the
// server once, like a crash in the middle of an upload.
type killingReader struct {
	after int64
	kill  func()
	sent  int64
	once  sync.Once
}

func (r *killingReader) Read(p []byte) (int, error) {
	if r.sent >= r.after {
		r.once.Do(r.kill)
	}
	if r.sent >= 1<<30 {
		return 0, io.EOF // a bound, in case the kill went unnoticed
	}
	for i := range p {
		p[i] = byte(i)
	}
	r.sent += int64(len(p))
	return len(p), nil
}

func TestOpenSSHKilledMidUpload(t *testing.T) {
	noAgent(t)
	srv := testrig.SSH(t, testrig.SSHOptions{})
	c := openSSH(t, srv, "", keyAuth(srv))
	ctx := context.Background()
	var killErr error
	r := &killingReader{after: 2 << 20, kill: func() { killErr = srv.Kill() }}
	_, err := c.Put(ctx, "crash.bin", r, time.Now())
	t.Log(err)
	if killErr != nil {
		t.Fatalf("Kill: %v", killErr)
	}
	if !remote.IsTemporary(err) {
		t.Fatalf("Put interrupted by a server crash: want a temporary error, got %v", err)
	}
	if _, serr := os.Stat(filepath.Join(srv.Root, "crash.bin")); !errors.Is(serr, fs.ErrNotExist) {
		t.Fatalf("a file under the final name exists after the crash: %v", serr)
	}
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Put(ctx, "after.txt", strings.NewReader("after restart"), time.Now()); err != nil {
		t.Fatalf("Put on the same Conn after the restart: %v", err)
	}
	if got, _ := os.ReadFile(filepath.Join(srv.Root, "after.txt")); string(got) != "after restart" {
		t.Fatalf("after.txt holds %q", got)
	}
	ents, err := os.ReadDir(srv.Root)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		// The server died before the temporary file could be removed; all
		// that may remain is something the next run recognises and removes.
		if e.Name() != "after.txt" && !entry.IsTemp(e.Name()) {
			t.Fatalf("unexpected leftover %q after the crash", e.Name())
		}
	}
	t.Logf("entries after restart: %v", names(ents))
}

func names(ents []os.DirEntry) []string {
	out := make([]string, len(ents))
	for i, e := range ents {
		out[i] = e.Name()
	}
	return out
}
