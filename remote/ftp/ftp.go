// Package ftp owns the ftp:// and ftps:// (explicit TLS) backends, built on
// github.com/jlaffaye/ftp. A Conn is one logged-in control connection; it
// sends absolute paths only (no CWD per file), probes a connection that sat
// idle before trusting it, and redials after any transport failure so its
// owner never has to.
package ftp

import (
	"context"
	"errors"
	"fmt"
	"path"
	"strings"
	"sync"
	"time"

	jftp "github.com/jlaffaye/ftp"

	"ferry/remote"
)

// idleProbe is how long a control connection may sit unused before a NOOP
// checks it is still alive: servers drop idle sessions (vsftpd after 300 s
// by default) and a dead session must be replaced before, not during, work.
const idleProbe = 15 * time.Second

// Conn is a session on an FTP server. Calls are serialised: FTP has one
// command in flight per control connection.
type Conn struct {
	t *remote.Target
	o remote.Options

	mu       sync.Mutex
	sc       *jftp.ServerConn // nil when no live session
	d        *dialer
	root     string // absolute path of the target root on the server
	caps     remote.Caps
	lastUsed time.Time
	tail     *tail // the pipelined tail of uploads, nil over FTPS (see pipeline.go)
	noTail   bool  // a tail went out of step once: one command at a time
}

var (
	_ remote.Conn   = (*Conn)(nil)
	_ remote.Opener = Open
)

// Open logs in to the server named by t (scheme ftp or ftps) and returns the
// session. Failures are classified: KindAuth for a refused login,
// KindTooMany when the server caps connections, KindTransport when it cannot
// be reached, KindHostKey for an untrusted TLS certificate.
func Open(ctx context.Context, t *remote.Target, o remote.Options) (remote.Conn, error) {
	if t.Scheme != "ftp" && t.Scheme != "ftps" {
		return nil, fmt.Errorf("ftp backend: scheme %q", t.Scheme)
	}
	c := &Conn{t: t, o: o}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.connect(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

// connect dials and logs in. Callers hold c.mu.
func (c *Conn) connect(ctx context.Context) error {
	d := &dialer{ctx: ctx, timeout: c.o.IOTimeout()}
	opts := []jftp.DialOption{
		jftp.DialWithContext(ctx),
		jftp.DialWithTimeout(c.o.IOTimeout()),
		jftp.DialWithShutTimeout(c.o.IOTimeout()),
		jftp.DialWithDialFunc(d.dial),
		jftp.DialWithWritingMDTM(true),
		// Temporary uploads are dot-files: plain LIST would hide them.
		jftp.DialWithForceListHidden(true),
	}
	if c.t.Scheme == "ftps" {
		tc, err := tlsConfig(c.t, c.o)
		if err != nil {
			return remote.Errorf(remote.KindOther, "dial", c.t.String(), err)
		}
		d.tls = tc
		opts = append(opts, jftp.DialWithExplicitTLS(tc))
	}
	stop := context.AfterFunc(ctx, d.closeControl)
	defer stop()
	sc, err := jftp.Dial(c.t.Addr(), opts...)
	if err != nil {
		return c.ctxErr(ctx, classifyDial("dial", c.t.String(), err))
	}
	if err := sc.Login(c.t.User, c.o.Password); err != nil {
		_ = sc.Quit()
		return c.ctxErr(ctx, classifyDial("login", c.t.String(), err))
	}
	root := c.t.Path
	if !strings.HasPrefix(root, "/") {
		wd, err := sc.CurrentDir()
		if err != nil {
			_ = sc.Quit()
			return c.ctxErr(ctx, classify("login", c.t.String(), err))
		}
		root = path.Join(wd, root)
	}
	c.sc, c.d, c.root, c.lastUsed = sc, d, root, time.Now()
	c.caps = remote.Caps{
		ModTimePrecision:     time.Second,
		ListModTimePrecision: 24 * time.Hour,
		SetModTime:           sc.IsSetTimeSupported(),
		AtomicReplace:        true, // RNTO is rename(2) on Unix servers; Put falls back if refused
		Resume:               true,
		Streams:              1, // one command at a time per control connection
	}
	if sc.IsTimePreciseInList() {
		c.caps.ListModTimePrecision = time.Second
	}
	c.tail = c.newTail()
	return nil
}

// session returns a live server connection, redialing a dropped one and
// probing one that sat idle. Callers hold c.mu.
func (c *Conn) session(ctx context.Context) (*jftp.ServerConn, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if c.sc != nil && time.Since(c.lastUsed) > idleProbe {
		if err := c.guard(ctx, func() error { return c.sc.NoOp() }); err != nil {
			c.drop()
		}
	}
	if c.sc == nil {
		if err := c.connect(ctx); err != nil {
			return nil, err
		}
	}
	c.lastUsed = time.Now()
	return c.sc, nil
}

// guard runs one library call with ctx: cancelling ctx closes the control
// socket, which makes the blocked call return at once.
func (c *Conn) guard(ctx context.Context, fn func() error) error {
	stop := context.AfterFunc(ctx, c.d.closeControl)
	err := fn()
	if !stop() {
		// The socket was closed under the call: the session is gone.
		c.drop()
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	return err
}

// drop forgets the session; the next call dials a new one.
func (c *Conn) drop() {
	if c.sc != nil {
		_ = c.sc.Quit()
		c.sc = nil
	}
	c.tail = nil
}

// ctxErr prefers the context's error: a dial that failed because the caller
// gave up is a cancellation, not a server fault.
func (c *Conn) ctxErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("%w: %w", ctx.Err(), err)
	}
	return err
}

// do runs op on a live session, classifies its error and drops the session
// after a transport failure.
func (c *Conn) do(ctx context.Context, op, rel string, fn func(sc *jftp.ServerConn) error) error {
	sc, err := c.session(ctx)
	if err != nil {
		return err
	}
	err = c.guard(ctx, func() error { return fn(sc) })
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return fmt.Errorf("%s %q: %w", op, rel, ctx.Err())
	}
	err = classify(op, rel, err)
	if k := remote.KindOf(err); k == remote.KindTransport || k == remote.KindTooMany {
		c.drop()
	}
	return err
}

// Caps reports the features negotiated at login.
func (c *Conn) Caps() remote.Caps {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.caps
}

// abs maps a root-relative path to the absolute server path.
func (c *Conn) abs(op, rel string) (string, error) {
	p, err := remote.Join(c.root, rel)
	if err != nil {
		return "", remote.Errorf(remote.KindOther, op, rel, err)
	}
	if strings.ContainsAny(p, "\r\n") {
		return "", remote.Errorf(remote.KindOther, op, rel, errors.New("FTP cannot carry CR or LF in a name"))
	}
	return p, nil
}

// Close logs out.
func (c *Conn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sc == nil {
		return nil
	}
	err := c.sc.Quit()
	c.sc = nil
	return err
}
