package sftp

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"encoding/pem"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"

	psftp "github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"ferry/remote"
)

// fakeServer is an SSH server in the test process serving pkg/sftp's
// server on 127.0.0.1: fast and needs no root, but it is not OpenSSH, so
// the real-server tests in openssh_test.go still decide what works.
type fakeServer struct {
	t              *testing.T
	Root           string
	User, Password string
	IdentityFile   string
	KnownHostsFile string
	HostKeys       []ssh.Signer
	ln             net.Listener
	port           int

	mu      sync.Mutex
	conns   map[net.Conn]bool
	stalled chan struct{} // non-nil while the server must not answer
	wg      sync.WaitGroup
}

type fakeOptions struct {
	rsaHostKey bool // add an RSA host key besides the ed25519 one
}

// newFakeServer starts the server and stops it (waiting for every
// goroutine it started) at cleanup.
func newFakeServer(t *testing.T, opts fakeOptions) *fakeServer {
	t.Helper()
	dir := t.TempDir()
	s := &fakeServer{t: t, Root: filepath.Join(dir, "root"), User: "ferry", Password: "s3cret pass",
		IdentityFile: filepath.Join(dir, "id_ed25519"), KnownHostsFile: filepath.Join(dir, "known_hosts"),
		conns: map[net.Conn]bool{}}
	if err := os.Mkdir(s.Root, 0o755); err != nil {
		t.Fatal(err)
	}
	_, hostPriv, _ := ed25519.GenerateKey(rand.Reader)
	hostSigner, err := ssh.NewSignerFromKey(hostPriv)
	if err != nil {
		t.Fatal(err)
	}
	s.HostKeys = append(s.HostKeys, hostSigner)
	if opts.rsaHostKey {
		rk, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		rs, err := ssh.NewSignerFromKey(rk)
		if err != nil {
			t.Fatal(err)
		}
		s.HostKeys = append(s.HostKeys, rs)
	}
	_, clientPriv, _ := ed25519.GenerateKey(rand.Reader)
	block, err := ssh.MarshalPrivateKey(clientPriv, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(s.IdentityFile, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	clientPub, _ := ssh.NewPublicKey(clientPriv.Public())

	cfg := &ssh.ServerConfig{
		PasswordCallback: func(md ssh.ConnMetadata, pw []byte) (*ssh.Permissions, error) {
			if md.User() == s.User && string(pw) == s.Password {
				return nil, nil
			}
			return nil, errors.New("wrong password")
		},
		PublicKeyCallback: func(md ssh.ConnMetadata, k ssh.PublicKey) (*ssh.Permissions, error) {
			if md.User() == s.User && string(k.Marshal()) == string(clientPub.Marshal()) {
				return nil, nil
			}
			return nil, errors.New("unknown key")
		},
	}
	for _, k := range s.HostKeys {
		cfg.AddHostKey(k)
	}
	s.ln, err = net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.port = s.ln.Addr().(*net.TCPAddr).Port
	s.writeKnownHosts(t, s.KnownHostsFile, s.HostKeys[0].PublicKey())
	s.wg.Add(1)
	go s.accept(cfg)
	t.Cleanup(s.stop)
	return s
}

func (s *fakeServer) writeKnownHosts(t *testing.T, file string, keys ...ssh.PublicKey) {
	t.Helper()
	var data []byte
	for _, k := range keys {
		data = append(data, knownhosts.Line([]string{knownhosts.Normalize(s.addr())}, k)+"\n"...)
	}
	if err := os.WriteFile(file, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func (s *fakeServer) addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// target names the server's root (absolute), or a relative path under the
// login directory, which is Root.
func (s *fakeServer) target(p string) *remote.Target {
	return &remote.Target{Scheme: "sftp", User: s.User, Host: "127.0.0.1", Port: s.port, Path: p}
}

func (s *fakeServer) accept(cfg *ssh.ServerConfig) {
	defer s.wg.Done()
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		s.conns[nc] = true
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer func() {
				s.mu.Lock()
				delete(s.conns, nc)
				s.mu.Unlock()
				nc.Close()
			}()
			s.serve(&stallConn{Conn: nc, s: s}, cfg)
		}()
	}
}

func (s *fakeServer) serve(nc net.Conn, cfg *ssh.ServerConfig) {
	sc, chans, reqs, err := ssh.NewServerConn(nc, cfg)
	if err != nil {
		return
	}
	defer sc.Close()
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Add(1)
	go func() { defer wg.Done(); ssh.DiscardRequests(reqs) }()
	for nch := range chans {
		if nch.ChannelType() != "session" {
			_ = nch.Reject(ssh.UnknownChannelType, "only sessions")
			continue
		}
		ch, creqs, err := nch.Accept()
		if err != nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer ch.Close()
			for req := range creqs {
				ok := req.Type == "subsystem" && len(req.Payload) > 4 && string(req.Payload[4:]) == "sftp"
				_ = req.Reply(ok, nil)
				if !ok {
					continue
				}
				srv, err := psftp.NewServer(ch, psftp.WithServerWorkingDirectory(s.Root))
				if err != nil {
					return
				}
				_ = srv.Serve()
				_ = srv.Close()
				return
			}
		}()
	}
}

// dropAll closes every connection, like a server restart.
func (s *fakeServer) dropAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		c.Close()
	}
}

// stall makes the server stop answering (its writes block) until unstall.
func (s *fakeServer) stall() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stalled = make(chan struct{})
}

func (s *fakeServer) unstall() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stalled != nil {
		close(s.stalled)
		s.stalled = nil
	}
}

func (s *fakeServer) stop() {
	s.ln.Close()
	s.unstall()
	s.dropAll()
	s.wg.Wait()
}

// stallConn blocks the server's writes while the server is stalled, like
// a host that froze; closing the conn releases them.
type stallConn struct {
	net.Conn
	s *fakeServer
}

func (c *stallConn) Write(p []byte) (int, error) {
	c.s.mu.Lock()
	ch := c.s.stalled
	c.s.mu.Unlock()
	if ch != nil {
		<-ch
	}
	return c.Conn.Write(p)
}
