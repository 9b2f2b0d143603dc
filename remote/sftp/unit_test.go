package sftp

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"

	"ferry/remote"
	"ferry/remote/remotetest"
)

// noAgent keeps a developer's own ssh-agent out of the tests.
func noAgent(t *testing.T) { t.Setenv("SSH_AUTH_SOCK", "") }

func (s *fakeServer) keyOptions() remote.Options {
	return remote.Options{IdentityFile: s.IdentityFile, KnownHostsFile: s.KnownHostsFile}
}

func (s *fakeServer) open(t testing.TB, p string, o remote.Options) *Conn {
	t.Helper()
	c, err := Open(context.Background(), s.target(p), o)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c.(*Conn)
}

func TestInProcessConformance(t *testing.T) {
	noAgent(t)
	s := newFakeServer(t, fakeOptions{})
	remotetest.Run(t, remotetest.Harness{
		Open: func(t testing.TB) remote.Conn { return s.open(t, s.Root, s.keyOptions()) },
		ReadFile: func(rel string) ([]byte, error) {
			return os.ReadFile(filepath.Join(s.Root, filepath.FromSlash(rel)))
		},
		LargeSize: 8 << 20,
	})
}

func TestRelativeTargetPath(t *testing.T) {
	noAgent(t)
	s := newFakeServer(t, fakeOptions{})
	o := remote.Options{Password: s.Password, KnownHostsFile: s.KnownHostsFile}
	c := s.open(t, "site/www", o)
	if want := filepath.Join(s.Root, "site/www"); c.root != want {
		t.Fatalf("root %q, want %q (login dir + relative path)", c.root, want)
	}
	ctx := context.Background()
	if err := c.Mkdir(ctx, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Put(ctx, "f", strings.NewReader("x"), time.Time{}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(s.Root, "site/www/f")); err != nil {
		t.Fatalf("file not under the login directory: %v", err)
	}
	if home := s.open(t, "", o); home.root != s.Root {
		t.Fatalf("empty path: root %q, want the login dir %q", home.root, s.Root)
	}
}

func TestRedialAfterDrop(t *testing.T) {
	noAgent(t)
	s := newFakeServer(t, fakeOptions{})
	c := s.open(t, s.Root, s.keyOptions())
	ctx := context.Background()
	first := c.cur
	s.dropAll()
	waitFor(t, "session marked broken", first.broken.Load)
	if _, err := c.Stat(ctx, ""); err != nil {
		t.Fatalf("Stat after the server dropped an idle session: %v (want a transparent redial)", err)
	}
	if c.cur == first {
		t.Fatalf("no redial happened")
	}
}

func TestWatchdogDetectsSilentServer(t *testing.T) {
	noAgent(t)
	s := newFakeServer(t, fakeOptions{})
	o := s.keyOptions()
	o.Timeout = 300 * time.Millisecond
	c := s.open(t, s.Root, o)
	ctx := context.Background()
	s.stall()
	start := time.Now()
	_, err := c.Stat(ctx, "")
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("Stat on a silent server took %v, want about the 300ms timeout", d)
	}
	if !remote.IsTemporary(err) || !strings.Contains(err.Error(), "did not answer") {
		t.Fatalf("Stat on a silent server: want a temporary 'did not answer' error, got %v", err)
	}
	s.unstall()
	if _, err := c.Stat(ctx, ""); err != nil {
		t.Fatalf("Stat after the server came back: %v", err)
	}
}

func TestIdleAndSlowSourceKeepSession(t *testing.T) {
	noAgent(t)
	s := newFakeServer(t, fakeOptions{})
	o := s.keyOptions()
	// The timeout is far above how long a healthy in-process server takes
	// to answer even on a loaded machine, so only idling and a slow
	// source (each longer than it) could trip the watchdog.
	o.Timeout = time.Second
	c := s.open(t, s.Root, o)
	ctx := context.Background()
	first := c.cur
	time.Sleep(o.Timeout * 3 / 2) // idle for longer than the timeout
	if _, err := c.Stat(ctx, ""); err != nil {
		t.Fatalf("Stat after idling: %v", err)
	}
	r := &slowReader{chunks: 3, pause: o.Timeout * 3 / 2}
	if n, err := c.Put(ctx, "slow", r, time.Time{}); err != nil || n != 3*1024 {
		t.Fatalf("Put from a slow source: n=%d err=%v", n, err)
	}
	if c.cur != first {
		t.Fatalf("the session was replaced: the watchdog fired on a healthy server")
	}
}

// slowReader yields chunks of 1 KiB with a pause before each.
type slowReader struct {
	chunks int
	pause  time.Duration
}

func (r *slowReader) Read(p []byte) (int, error) {
	if r.chunks == 0 {
		return 0, io.EOF
	}
	time.Sleep(r.pause)
	r.chunks--
	return copy(p, bytes.Repeat([]byte{'s'}, 1024)), nil
}

func TestReplaceWithoutPosixRename(t *testing.T) {
	noAgent(t)
	s := newFakeServer(t, fakeOptions{})
	c := s.open(t, s.Root, s.keyOptions())
	c.cur.posixRename = false
	ctx := context.Background()
	for _, v := range []string{"one", "two"} {
		if _, err := c.Put(ctx, "f", strings.NewReader(v), time.Time{}); err != nil {
			t.Fatalf("Put %s: %v", v, err)
		}
	}
	if got, _ := os.ReadFile(filepath.Join(s.Root, "f")); string(got) != "two" {
		t.Fatalf("content %q, want two", got)
	}
	ents, _ := os.ReadDir(s.Root)
	if len(ents) != 1 {
		t.Fatalf("root holds %d entries, want only f", len(ents))
	}
}

func TestHostKeyAlgorithmsFollowKnownHosts(t *testing.T) {
	noAgent(t)
	s := newFakeServer(t, fakeOptions{rsaHostKey: true})
	// The server has both keys and the client would pick RSA by default,
	// so knowing only one of them must still work either way.
	for _, k := range s.HostKeys {
		s.writeKnownHosts(t, s.KnownHostsFile, k.PublicKey())
		s.open(t, s.Root, s.keyOptions())
	}
}

func TestLoginRefusals(t *testing.T) {
	noAgent(t)
	s := newFakeServer(t, fakeOptions{})
	ctx := context.Background()
	dir := t.TempDir()
	other, err := ssh.NewPublicKey(ed25519.PublicKey(bytes.Repeat([]byte{7}, 32)))
	if err != nil {
		t.Fatal(err)
	}
	changed := filepath.Join(dir, "changed")
	s.writeKnownHosts(t, changed, other)
	encrypted := filepath.Join(dir, "encrypted")
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	block, err := ssh.MarshalPrivateKeyWithPassphrase(priv, "", []byte("pass"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(encrypted, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	fp := ssh.FingerprintSHA256(s.HostKeys[0].PublicKey())
	cases := []struct {
		name string
		o    remote.Options
		kind remote.Kind
		want []string
	}{
		{"WrongPassword", remote.Options{Password: "wrong-Passw0rd", KnownHostsFile: s.KnownHostsFile}, remote.KindAuth, []string{"refused", "password"}},
		{"NoMethods", remote.Options{KnownHostsFile: s.KnownHostsFile}, remote.KindAuth, []string{"no identity_file"}},
		{"EncryptedKey", remote.Options{IdentityFile: encrypted, KnownHostsFile: s.KnownHostsFile}, remote.KindAuth, []string{"passphrase", "ssh-add"}},
		{"UnknownHost", remote.Options{Password: s.Password, KnownHostsFile: filepath.Join(dir, "missing")}, remote.KindHostKey, []string{fp, "does not exist", "ssh-keyscan -p"}},
		{"ChangedHost", remote.Options{Password: s.Password, KnownHostsFile: changed}, remote.KindHostKey, []string{"HOST KEY CHANGED", fp, changed + ":1", "ssh-keygen -R"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Open(ctx, s.target(s.Root), tc.o)
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
			if strings.Contains(err.Error(), "wrong-Passw0rd") {
				t.Errorf("error shows the password: %v", err)
			}
		})
	}
}

func TestAgentAuth(t *testing.T) {
	s := newFakeServer(t, fakeOptions{})
	data, err := os.ReadFile(s.IdentityFile)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := ssh.ParseRawPrivateKey(data)
	if err != nil {
		t.Fatal(err)
	}
	keyring := agent.NewKeyring()
	if err := keyring.Add(agent.AddedKey{PrivateKey: raw}); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(t.TempDir(), "agent.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_ = agent.ServeAgent(keyring, c) // returns when ferry closes its end
			c.Close()
		}
	}()
	t.Setenv("SSH_AUTH_SOCK", sock)
	c := s.open(t, s.Root, remote.Options{KnownHostsFile: s.KnownHostsFile})
	if _, err := c.Stat(context.Background(), ""); err != nil {
		t.Fatal(err)
	}
}

func TestDialFailures(t *testing.T) {
	noAgent(t)
	s := newFakeServer(t, fakeOptions{})
	// A listener that accepts and never speaks, like a hung server.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var held []net.Conn
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range held {
			c.Close()
		}
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c)
			mu.Unlock()
		}
	}()
	hung := s.target(s.Root)
	hung.Port = ln.Addr().(*net.TCPAddr).Port
	o := remote.Options{Password: s.Password, KnownHostsFile: s.KnownHostsFile}

	t.Run("CancelDuringLogin", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := Open(ctx, hung, o)
		if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 2*time.Second {
			t.Fatalf("Open with an expiring ctx: %v after %v", err, time.Since(start))
		}
	})
	t.Run("LoginTimeout", func(t *testing.T) {
		o := o
		o.Timeout = 300 * time.Millisecond
		start := time.Now()
		_, err := Open(context.Background(), hung, o)
		if !remote.IsTemporary(err) || time.Since(start) > 3*time.Second {
			t.Fatalf("Open of a hung server: %v after %v", err, time.Since(start))
		}
	})
	t.Run("Refused", func(t *testing.T) {
		closed := s.target(s.Root)
		closed.Port = freePort(t)
		_, err := Open(context.Background(), closed, o)
		if remote.KindOf(err) != remote.KindTransport || !strings.Contains(err.Error(), "dial") {
			t.Fatalf("Open of a closed port: want a transport error from dial, got %v", err)
		}
	})
}

// freePort returns a port nothing listens on (it was just released).
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestNoGoroutineLeak(t *testing.T) {
	noAgent(t)
	s := newFakeServer(t, fakeOptions{})
	base := runtime.NumGoroutine()
	c, err := Open(context.Background(), s.target(s.Root), s.keyOptions())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// A cancelled upload closes the session and cleans up on a new one.
	r := io.MultiReader(strings.NewReader("x"), readerFunc(func([]byte) (int, error) {
		cancel()
		return 0, ctx.Err()
	}))
	if _, err := c.Put(ctx, "f", r, time.Now()); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled Put: %v", err)
	}
	if _, err := c.Stat(context.Background(), ""); err != nil {
		t.Fatal(err)
	}
	s.dropAll()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "goroutines to end", func() bool { return runtime.NumGoroutine() <= base })
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }
