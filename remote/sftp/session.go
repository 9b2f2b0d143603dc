package sftp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	psftp "github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"

	"ferry/remote"
)

// session is one SSH connection with its SFTP client.
type session struct {
	ssh  *ssh.Client
	sftp *psftp.Client
	wd   *watchdogConn
	home string // the login directory, absolute

	posixRename bool // posix-rename@openssh.com: rename replaces atomically
	statVFS     bool // statvfs@openssh.com: free space can be asked for

	broken atomic.Bool
	once   sync.Once
	dead   chan struct{} // closed when the SSH connection has ended
}

// close tears the session down and marks it broken so the Conn replaces it.
// The SSH connection goes first: that fails every pending request at once,
// whereas closing the SFTP channel first would wait on a dead server.
func (s *session) close() {
	s.broken.Store(true)
	s.once.Do(func() {
		_ = s.ssh.Close()
		_ = s.sftp.Close()
		<-s.dead // the watcher started in handshake has exited
	})
}

// watch marks the session broken as soon as the SSH connection ends, so a
// server that went away between calls costs a redial, not a failed call.
// close waits for it.
func (s *session) watch() {
	defer close(s.dead)
	_ = s.ssh.Wait()
	s.broken.Store(true)
}

// The SFTP options every session uses: pkg/sftp keeps up to 64 writes of
// 32 KiB in flight per file, which is what makes uploads run at link speed
// instead of one round trip per packet.
var clientOptions = []psftp.ClientOption{
	psftp.UseConcurrentWrites(true),
	psftp.MaxConcurrentRequestsPerFile(64),
}

// keepAlive is the TCP keepalive period; it keeps NAT state alive between
// calls and lets the kernel notice a vanished peer on an idle session.
const keepAlive = 15 * time.Second

// dial connects, verifies the host key, logs in and starts SFTP. The whole
// login is bounded by o.IOTimeout() and aborted when ctx ends.
func dial(ctx context.Context, t *remote.Target, o remote.Options, url string) (*session, error) {
	lg, err := newLogin(o, url)
	if err != nil {
		return nil, err
	}
	defer lg.close()
	hk, err := newHostKeys(t, o, url)
	if err != nil {
		return nil, err
	}
	timeout := o.IOTimeout()
	d := net.Dialer{Timeout: timeout, KeepAlive: keepAlive}
	raw, err := d.DialContext(ctx, "tcp", t.Addr())
	if err != nil {
		if cerr := ctx.Err(); cerr != nil {
			return nil, fmt.Errorf("dial %s: %w", url, cerr)
		}
		return nil, dialErr(url, err)
	}
	cfg := &ssh.ClientConfig{
		User:              t.User,
		Auth:              lg.methods,
		AuthCallback:      lg.callback,
		HostKeyCallback:   hk.callback,
		HostKeyAlgorithms: hk.algorithms(raw.RemoteAddr()),
		Timeout:           timeout,
	}
	// One deadline for the whole login; calls later use the watchdog.
	_ = raw.SetDeadline(time.Now().Add(timeout))
	done := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		defer close(done)
		_ = raw.Close()
	})
	s, err := handshake(newWatchdogConn(raw, timeout), t, cfg, hk, lg, url)
	if !stop() {
		<-done
		if s != nil {
			s.close()
		}
		return nil, fmt.Errorf("login %s: %w", url, ctx.Err())
	}
	if err != nil {
		_ = raw.Close()
		return nil, err
	}
	_ = raw.SetDeadline(time.Time{})
	return s, nil
}

func handshake(wd *watchdogConn, t *remote.Target, cfg *ssh.ClientConfig, hk *hostKeys, lg *login, url string) (*session, error) {
	c, chans, reqs, err := ssh.NewClientConn(wd, t.Addr(), cfg)
	if err != nil {
		if herr := hk.refusal(); herr != nil {
			return nil, herr
		}
		if isAuthRefusal(err) {
			return nil, lg.refused(t.User, url, err)
		}
		return nil, loginErr(url, wd, err)
	}
	client := ssh.NewClient(c, chans, reqs)
	sc, err := psftp.NewClient(client, clientOptions...)
	if err != nil {
		_ = client.Close()
		_ = client.Wait()
		if isTransport(err) && !isSubsystemRefusal(err) {
			return nil, loginErr(url, wd, err)
		}
		return nil, &remote.Error{Op: "login", Path: url, Kind: remote.KindOther,
			Err:    fmt.Errorf("starting SFTP: %w", err),
			Advice: "the server accepted the login but does not offer SFTP to this account (check Subsystem sftp in sshd_config)"}
	}
	s := &session{ssh: client, sftp: sc, wd: wd, dead: make(chan struct{})}
	go s.watch()
	_, s.posixRename = sc.HasExtension("posix-rename@openssh.com")
	_, s.statVFS = sc.HasExtension("statvfs@openssh.com")
	if s.home, err = sc.Getwd(); err != nil {
		s.close()
		if isTransport(err) {
			return nil, loginErr(url, wd, err)
		}
		return nil, mapErr("login", url, fmt.Errorf("resolving the login directory: %w", err))
	}
	return s, nil
}

// isSubsystemRefusal recognises a server that logged us in but runs no
// SFTP; the ssh package reports it as plain text only.
func isSubsystemRefusal(err error) bool {
	return strings.Contains(err.Error(), "subsystem request failed")
}

// dialErr classifies a TCP connect failure. An unknown host name is a
// typo, not a transient failure, so it is not retried.
func dialErr(url string, err error) error {
	var dns *net.DNSError
	if errors.As(err, &dns) && dns.IsNotFound {
		return &remote.Error{Op: "dial", Path: url, Kind: remote.KindOther, Err: err,
			Advice: "check the host name in the target URL"}
	}
	if errors.Is(err, syscall.ECONNREFUSED) {
		return &remote.Error{Op: "dial", Path: url, Kind: remote.KindTransport, Err: err,
			Advice: "nothing listens on that port: check the host and port, and that sshd runs; ferry retries transient failures"}
	}
	return remote.Errorf(remote.KindTransport, "dial", url, err)
}

// loginErr classifies a failure after TCP connected but before SFTP ran:
// the server hung up or stopped answering, both worth a retry.
func loginErr(url string, wd *watchdogConn, err error) error {
	var ne net.Error
	if wd.timedOut.Load() || (errors.As(err, &ne) && ne.Timeout()) {
		err = fmt.Errorf("%w during login within %v: %w", remote.ErrNoAnswer, wd.timeout, err)
	} else if errors.Is(err, io.EOF) {
		err = fmt.Errorf("the server closed the connection during login (MaxStartups, a firewall, or not an SSH server?): %w", err)
	}
	return remote.Errorf(remote.KindTransport, "login", url, err)
}
