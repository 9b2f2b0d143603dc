package ftp

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"

	"ferry/remote"
)

// tlsConfig builds the client TLS settings for ftps://: the system roots plus
// the user's CA file, the host name checked, and a session cache so that data
// connections resume the control connection's TLS session instead of paying a
// full handshake per file.
func tlsConfig(t *remote.Target, o remote.Options) (*tls.Config, error) {
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if o.CAFile != "" {
		pem, err := os.ReadFile(o.CAFile)
		if err != nil {
			return nil, fmt.Errorf("tls CA file: %w", err)
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls CA file %s: no PEM certificate in it", o.CAFile)
		}
	}
	return &tls.Config{
		ServerName:         t.Host,
		RootCAs:            pool,
		MinVersion:         tls.VersionTLS12,
		ClientSessionCache: tls.NewLRUClientSessionCache(8),
	}, nil
}

// dialer opens the control connection and every data connection. It is
// handed to the FTP library so ferry keeps hold of the raw sockets: to put
// deadlines on reads, to keep TCP alive during long transfers, and to close
// the control socket when a context is cancelled.
type dialer struct {
	ctx     context.Context
	timeout time.Duration
	tls     *tls.Config // nil for plain FTP

	mu      sync.Mutex
	control net.Conn // first connection dialed: the control channel
}

func (d *dialer) dial(network, addr string) (net.Conn, error) {
	d.mu.Lock()
	first := d.control == nil
	d.mu.Unlock()
	// Only the control dial belongs to the caller's context; data
	// connections are bounded by the timeout and by guard closing the
	// control socket, since the context that logged in is long gone.
	ctx := context.Background()
	if first {
		ctx = d.ctx
	}
	// Keepalive matters for the control connection, which sits idle
	// through long transfers; a data connection lives for one file, and
	// its keepalive setup is three system calls per file for nothing.
	nd := net.Dialer{Timeout: d.timeout, KeepAlive: -1}
	if first {
		nd.KeepAlive = 15 * time.Second
	}
	c, err := nd.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	dc := &deadlineConn{Conn: c, timeout: d.timeout}
	d.mu.Lock()
	defer d.mu.Unlock()
	if first {
		// The library upgrades the control connection itself (AUTH TLS).
		d.control = dc
		return dc, nil
	}
	if d.tls != nil {
		// Data connections dialed through a custom dial function are not
		// wrapped by the library: protect them here (PROT P was sent).
		return &tlsData{Conn: tls.Client(dc, d.tls), timeout: d.timeout}, nil
	}
	return dc, nil
}

// closeControl drops the control socket, unblocking any call stuck on it.
func (d *dialer) closeControl() {
	d.mu.Lock()
	c := d.control
	d.mu.Unlock()
	if c != nil {
		_ = c.Close()
	}
}

// deadlineConn fails a read or write that makes no progress for timeout, so
// a server that stops answering is detected instead of hanging a worker.
// TCP keepalive (set on dial) keeps an idle control channel alive through
// NAT and firewalls while a long transfer runs on the data channel.
type deadlineConn struct {
	net.Conn
	timeout time.Duration
}

func (c *deadlineConn) Read(p []byte) (int, error) {
	_ = c.Conn.SetReadDeadline(time.Now().Add(c.timeout))
	return c.Conn.Read(p)
}

func (c *deadlineConn) Write(p []byte) (int, error) {
	_ = c.Conn.SetWriteDeadline(time.Now().Add(c.timeout))
	return c.Conn.Write(p)
}

// tlsData closes a TLS data connection the way servers expect: close_notify
// first, then wait for the server to finish. Closing the socket at once can
// leave unread TLS 1.3 session tickets in the receive buffer, which makes the
// kernel send a reset, and vsftpd then fails the upload with 426.
type tlsData struct {
	*tls.Conn
	timeout time.Duration
}

func (c *tlsData) Close() error {
	if err := c.Conn.CloseWrite(); err == nil {
		_ = c.Conn.SetReadDeadline(time.Now().Add(c.timeout))
		_, _ = io.Copy(io.Discard, c.Conn)
	}
	return c.Conn.Close()
}
