package sftpserver

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	psftp "github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"ferry/remote"
	ferrysftp "ferry/remote/sftp"
)

func start(t *testing.T) *Server {
	t.Helper()
	dir := t.TempDir()
	srv, err := Start(Options{Root: filepath.Join(dir, "root"), Dir: filepath.Join(dir, "keys")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	return srv
}

func dial(t *testing.T, srv *Server, auth ssh.AuthMethod) (*ssh.Client, error) {
	t.Helper()
	hk, err := knownhosts.New(srv.KnownHostsFile)
	if err != nil {
		t.Fatal(err)
	}
	return ssh.Dial("tcp", srv.Addr, &ssh.ClientConfig{User: srv.User, Auth: []ssh.AuthMethod{auth},
		HostKeyCallback: hk, Timeout: 10 * time.Second})
}

func keyAuth(t *testing.T, srv *Server) ssh.AuthMethod {
	t.Helper()
	pem, err := os.ReadFile(srv.IdentityFile)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.ParsePrivateKey(pem)
	if err != nil {
		t.Fatal(err)
	}
	return ssh.PublicKeys(signer)
}

func TestPasswordAndKeyLogin(t *testing.T) {
	srv := start(t)
	data, err := os.ReadFile(srv.KnownHostsFile)
	if err != nil {
		t.Fatal(err)
	}
	if want := "[127.0.0.1]:" + srv.Addr[len("127.0.0.1:"):] + " ssh-ed25519 "; !strings.HasPrefix(string(data), want) ||
		strings.Count(string(data), "\n") != 1 {
		t.Fatalf("known_hosts = %q, want one line starting %q", data, want)
	}
	for name, auth := range map[string]ssh.AuthMethod{
		"password": ssh.Password(srv.Password),
		"key":      keyAuth(t, srv),
	} {
		t.Run(name, func(t *testing.T) {
			c, err := dial(t, srv, auth)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			sc, err := psftp.NewClient(c)
			if err != nil {
				t.Fatal(err)
			}
			defer sc.Close()
			want := []byte("hello " + name)
			// Relative paths are under Root; absolute ones inside Root work too.
			for _, p := range []string{name + ".txt", filepath.ToSlash(filepath.Join(srv.Root, name+"-abs.txt"))} {
				f, err := sc.Create(p)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := f.Write(want); err != nil {
					t.Fatal(err)
				}
				if err := f.Close(); err != nil {
					t.Fatal(err)
				}
			}
			for _, p := range []string{name + ".txt", name + "-abs.txt"} {
				got, err := os.ReadFile(filepath.Join(srv.Root, p))
				if err != nil || !bytes.Equal(got, want) {
					t.Fatalf("%s on disk = %q, %v; want %q", p, got, err, want)
				}
			}
		})
	}
}

func TestRefusals(t *testing.T) {
	srv := start(t)
	if c, err := dial(t, srv, ssh.Password("wrong")); err == nil {
		c.Close()
		t.Fatal("wrong password accepted")
	}
	c, err := dial(t, srv, ssh.Password(srv.Password))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sess, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	if err := sess.Run("id"); err == nil {
		t.Fatal("exec accepted")
	}
	if _, _, err := c.OpenChannel("direct-tcpip", nil); err == nil {
		t.Fatal("direct-tcpip channel accepted")
	}
}

func TestCloseWithConnectedClients(t *testing.T) {
	before := runtime.NumGoroutine()
	dir := t.TempDir()
	srv, err := Start(Options{Root: filepath.Join(dir, "root"), Dir: dir, User: "u", Password: "p"})
	if err != nil {
		t.Fatal(err)
	}
	var clients []*ssh.Client
	for range 3 { // ferry's workers open several connections
		c, err := dial(t, srv, ssh.Password("p"))
		if err != nil {
			t.Fatal(err)
		}
		clients = append(clients, c)
		if _, err := psftp.NewClient(c); err != nil {
			t.Fatal(err)
		}
	}
	done := make(chan error, 1)
	go func() { done <- srv.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return while clients were connected")
	}
	for _, c := range clients {
		_ = c.Wait() // the server dropped the connection
		c.Close()
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines before, %d after Close:\n%s", before, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestFerryBackend(t *testing.T) {
	t.Setenv("SSH_AUTH_SOCK", "") // only the password is offered
	srv := start(t)
	if err := os.Mkdir(filepath.Join(srv.Root, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	target, err := remote.ParseURL(srv.URL("/sub"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	conn, err := ferrysftp.Open(ctx, target, remote.Options{Password: srv.Password, KnownHostsFile: srv.KnownHostsFile})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	mtime := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	n, err := conn.Put(ctx, "a b.txt", strings.NewReader("payload"), mtime)
	if err != nil || n != 7 {
		t.Fatalf("Put = %d, %v", n, err)
	}
	fi, err := conn.Stat(ctx, "a b.txt")
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size != 7 || !fi.ModTime.Equal(mtime) {
		t.Fatalf("Stat = %+v", fi)
	}
	if got, err := os.ReadFile(filepath.Join(srv.Root, "sub", "a b.txt")); err != nil || string(got) != "payload" {
		t.Fatalf("on disk: %q, %v", got, err)
	}
}

func TestURL(t *testing.T) {
	s := &Server{User: "demo", Addr: "127.0.0.1:2222", Root: "/tmp/r oot"}
	for p, want := range map[string]string{
		"/":       "sftp://demo@127.0.0.1:2222/tmp/r%20oot",
		"/sub":    "sftp://demo@127.0.0.1:2222/tmp/r%20oot/sub",
		"/a#b/c?": "sftp://demo@127.0.0.1:2222/tmp/r%20oot/a%23b/c%3F",
	} {
		if got := s.URL(p); got != want {
			t.Errorf("URL(%q) = %q, want %q", p, got, want)
		}
	}
}
