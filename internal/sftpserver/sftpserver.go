// Package sftpserver owns an in-process SFTP server on loopback: pkg/sftp's
// server behind golang.org/x/crypto/ssh, listening on 127.0.0.1 inside the
// ferry process. It backs `ferry demo` (no setup, no root) and the tests and
// benchmarks that need a server but cannot be root. It is not OpenSSH: the
// real-server tests use OpenSSH and decide what ferry supports.
package sftpserver

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	psftp "github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// Options configure Start.
type Options struct {
	// Root is the directory served (created if missing). Clients see it as
	// their working directory and may use absolute paths inside it.
	Root string
	// Dir is where the client key and known_hosts file are written
	// (required; created if missing).
	Dir string
	// User is the login name; default "demo".
	User string
	// Password is the login password; default a random one.
	Password string
}

// Server is a running SFTP server on 127.0.0.1. Its fields describe how to
// reach it and must not be changed.
type Server struct {
	Addr           string // "127.0.0.1:PORT"
	Host           string // "127.0.0.1"
	Port           int
	User, Password string
	Root           string // absolute path of the served directory
	// KnownHostsFile holds exactly this server's ed25519 host key, as
	// "[127.0.0.1]:PORT ssh-ed25519 ...".
	KnownHostsFile string
	// IdentityFile is an unencrypted OpenSSH ed25519 private key the
	// server accepts for User.
	IdentityFile string

	ln        net.Listener
	cfg       *ssh.ServerConfig
	clientKey []byte // wire form of the accepted client public key
	wg        sync.WaitGroup

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
}

// Start generates a fresh ed25519 host key and client key, writes the
// client key and known_hosts into o.Dir, and starts serving on a free port
// of 127.0.0.1. The server accepts password and public key authentication
// for User and serves only the "sftp" subsystem of "session" channels.
// Call Close to stop it.
func Start(o Options) (*Server, error) {
	if o.Dir == "" || o.Root == "" {
		return nil, errors.New("sftpserver: Options.Dir and Options.Root are required")
	}
	root, err := filepath.Abs(o.Root)
	if err == nil {
		err = errors.Join(os.MkdirAll(root, 0o755), os.MkdirAll(o.Dir, 0o700))
	}
	if err != nil {
		return nil, fmt.Errorf("sftpserver: %w", err)
	}
	s := &Server{Host: "127.0.0.1", User: o.User, Password: o.Password, Root: root,
		KnownHostsFile: filepath.Join(o.Dir, "known_hosts"),
		IdentityFile:   filepath.Join(o.Dir, "id_ed25519"),
		conns:          map[net.Conn]struct{}{}}
	if s.User == "" {
		s.User = "demo"
	}
	if s.Password == "" {
		s.Password = rand.Text() // 128 random bits
	}

	// ed25519.GenerateKey(nil) reads crypto/rand, which never fails.
	_, hostPriv, _ := ed25519.GenerateKey(nil)
	clientPub, clientPriv, _ := ed25519.GenerateKey(nil)
	hostSigner, err := ssh.NewSignerFromKey(hostPriv)
	if err != nil {
		return nil, fmt.Errorf("sftpserver: host key: %w", err)
	}
	sshPub, err := ssh.NewPublicKey(clientPub)
	if err != nil {
		return nil, fmt.Errorf("sftpserver: client key: %w", err)
	}
	s.clientKey = sshPub.Marshal()
	block, err := ssh.MarshalPrivateKey(clientPriv, "")
	if err != nil {
		return nil, fmt.Errorf("sftpserver: client key: %w", err)
	}
	if err := os.WriteFile(s.IdentityFile, pem.EncodeToMemory(block), 0o600); err != nil {
		return nil, fmt.Errorf("sftpserver: %w", err)
	}

	s.cfg = &ssh.ServerConfig{PasswordCallback: s.checkPassword, PublicKeyCallback: s.checkKey}
	s.cfg.AddHostKey(hostSigner)

	if s.ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		return nil, fmt.Errorf("sftpserver: %w", err)
	}
	s.Port = s.ln.Addr().(*net.TCPAddr).Port
	s.Addr = net.JoinHostPort(s.Host, strconv.Itoa(s.Port))
	line := knownhosts.Line([]string{knownhosts.Normalize(s.Addr)}, hostSigner.PublicKey()) + "\n"
	if err := os.WriteFile(s.KnownHostsFile, []byte(line), 0o644); err != nil {
		_ = s.ln.Close()
		return nil, fmt.Errorf("sftpserver: %w", err)
	}
	s.wg.Go(s.accept)
	return s, nil
}

// URL returns the sftp:// URL naming p, a slash-separated path inside Root
// ("/" is Root itself), by its absolute path on the server, e.g.
// "sftp://demo@127.0.0.1:PORT/tmp/x/root/sub". Each segment is
// percent-escaped.
func (s *Server) URL(p string) string {
	full := path.Join(filepath.ToSlash(s.Root), "/"+p)
	segs := strings.Split(full, "/")
	for i, seg := range segs {
		segs[i] = url.PathEscape(seg)
	}
	return "sftp://" + url.User(s.User).String() + "@" + s.Addr + strings.Join(segs, "/")
}

// Close stops accepting, closes every open connection and waits for every
// goroutine the server started. Calls after the first return nil.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	err := s.ln.Close()
	for c := range s.conns {
		_ = c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return err
}

func (s *Server) checkPassword(md ssh.ConnMetadata, pw []byte) (*ssh.Permissions, error) {
	if md.User() == s.User && string(pw) == s.Password {
		return nil, nil
	}
	return nil, errors.New("wrong user or password")
}

func (s *Server) checkKey(md ssh.ConnMetadata, k ssh.PublicKey) (*ssh.Permissions, error) {
	if md.User() == s.User && bytes.Equal(k.Marshal(), s.clientKey) {
		return nil, nil
	}
	return nil, errors.New("unknown key")
}

// accept runs until the listener is closed, handing each connection to its
// own goroutine, tracked in conns so that Close can drop it.
func (s *Server) accept() {
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			_ = nc.Close()
			return
		}
		s.conns[nc] = struct{}{}
		s.mu.Unlock()
		s.wg.Go(func() {
			s.serveConn(nc)
			s.mu.Lock()
			delete(s.conns, nc)
			s.mu.Unlock()
			_ = nc.Close()
		})
	}
}

// serveConn runs one SSH connection until the client leaves or Close drops
// it. Global requests (keepalives) are refused; only session channels are
// accepted.
func (s *Server) serveConn(nc net.Conn) {
	sc, chans, reqs, err := ssh.NewServerConn(nc, s.cfg)
	if err != nil {
		return
	}
	defer sc.Close()
	s.wg.Go(func() { ssh.DiscardRequests(reqs) })
	for nch := range chans {
		if nch.ChannelType() != "session" {
			_ = nch.Reject(ssh.UnknownChannelType, "only session channels with the sftp subsystem")
			continue
		}
		ch, creqs, err := nch.Accept()
		if err != nil {
			continue
		}
		s.wg.Go(func() { s.serveSession(ch, creqs) })
	}
}

// serveSession accepts the first "subsystem sftp" request and refuses every
// other request (exec, shell, pty, env, a second subsystem). The SFTP server
// runs in its own goroutine so that later requests are still answered; the
// channel is closed when it ends, which ends creqs.
func (s *Server) serveSession(ch ssh.Channel, creqs <-chan *ssh.Request) {
	started := false
	for req := range creqs {
		ok := !started && req.Type == "subsystem" && isSFTP(req.Payload)
		_ = req.Reply(ok, nil)
		if !ok {
			continue
		}
		started = true
		srv, err := psftp.NewServer(ch, psftp.WithServerWorkingDirectory(s.Root))
		if err != nil {
			_ = ch.Close()
			continue
		}
		s.wg.Go(func() {
			_ = srv.Serve()
			_ = srv.Close()
			_ = ch.Close()
		})
	}
	if !started {
		_ = ch.Close()
	}
}

// isSFTP reports whether a subsystem request payload (an SSH string) names
// "sftp".
func isSFTP(payload []byte) bool {
	return len(payload) == 4+len("sftp") && string(payload[4:]) == "sftp"
}
