// Package sftp owns the sftp:// backend: a target reached over SSH with the
// SFTP subsystem (OpenSSH's sftp-server or internal-sftp).
//
// Host keys are always checked against known_hosts; there is no switch to
// skip the check. A session that dies (server restarted, network dropped,
// no answer within the timeout) is closed and the next call logs in again,
// so the owner of a Conn keeps it for its whole life.
package sftp

import (
	"context"
	"errors"
	"fmt"
	"path"
	"sync"
	"time"

	"ferry/remote"
)

// Conn is a session with an SFTP server. It is safe for concurrent use:
// calls share one SSH connection (the SFTP client multiplexes requests)
// and the redial after a failure is serialised.
type Conn struct {
	t    *remote.Target
	o    remote.Options
	url  string // t.String(): names the target in dial and login errors, never with a password
	root string // absolute path of the target root on the server
	caps remote.Caps

	mu     sync.Mutex
	cur    *session // nil once closed; broken sessions are replaced on the next call
	closed bool
}

var (
	_ remote.Conn   = (*Conn)(nil)
	_ remote.Opener = Open
)

// cleanupTimeout bounds the removal of a temporary file after a cancelled or
// broken upload; it runs on a detached context because the caller's is gone.
const cleanupTimeout = 10 * time.Second

// Open logs in to t and resolves the target root. t.Path is absolute on the
// server, or relative to the login directory ("" is the login directory
// itself); either way every path sent afterwards is absolute, so a server
// that changes the working directory cannot move the mirror.
func Open(ctx context.Context, t *remote.Target, o remote.Options) (remote.Conn, error) {
	if t.Scheme != "sftp" {
		return nil, fmt.Errorf("sftp backend: scheme %q", t.Scheme)
	}
	c := &Conn{t: t, o: o, url: t.String()}
	s, err := dial(ctx, t, o, c.url)
	if err != nil {
		return nil, err
	}
	c.root = path.Clean(t.Path)
	if !path.IsAbs(t.Path) {
		c.root = path.Join(s.home, t.Path)
	}
	c.caps = remote.Caps{
		// SFTP v3 carries whole seconds only.
		ModTimePrecision:     time.Second,
		ListModTimePrecision: time.Second,
		SetModTime:           true,
		AtomicReplace:        s.posixRename,
		Resume:               true,
		Streams:              streamsPerConn,
	}
	c.cur = s
	return c, nil
}

// streamsPerConn is how many uploads share one SSH connection. Each small
// file costs five sequential round trips (open, write, close, setstat,
// rename); several in flight on one channel hide them.
const streamsPerConn = 8

// Caps reports what the server negotiated at the first login.
func (c *Conn) Caps() remote.Caps { return c.caps }

// Close logs out. Calls after Close fail.
func (c *Conn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	if c.cur != nil {
		c.cur.close()
		c.cur = nil
	}
	return nil
}

// session returns the live session, logging in again when the last one
// broke. Holding mu while dialing makes concurrent callers share one redial
// instead of each opening a connection.
func (c *Conn) session(ctx context.Context, op, rel string) (*session, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, remote.Errorf(remote.KindOther, op, rel, errors.New("connection closed"))
	}
	if c.cur != nil && !c.cur.broken.Load() {
		return c.cur, nil
	}
	if c.cur != nil {
		c.cur.close()
		c.cur = nil
	}
	s, err := dial(ctx, c.t, c.o, c.url)
	if err != nil {
		return nil, err
	}
	c.cur = s
	return s, nil
}

// guard arms the two ways a call on s is kept from hanging: the watchdog
// deadline (a silent server) and ctx (a caller that gave up, whose only way
// to abort a pending SFTP request is to close the session). The returned
// release must be called when the call is over; it waits for a close that
// ctx already started, so no goroutine outlives the call.
func (c *Conn) guard(ctx context.Context, s *session) (release func()) {
	s.wd.begin()
	done := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		defer close(done)
		s.close()
	})
	return func() {
		if !stop() {
			<-done
		}
		s.wd.end()
	}
}

// call runs fn on a live session and classifies its error.
func (c *Conn) call(ctx context.Context, op, rel string, fn func(s *session) error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s %q: %w", op, rel, err)
	}
	s, err := c.session(ctx, op, rel)
	if err != nil {
		return err
	}
	release := c.guard(ctx, s)
	err = fn(s)
	release()
	return c.fail(ctx, s, op, rel, err)
}

// abs maps a path relative to the target root onto the server's absolute
// path, refusing paths that would leave the root.
func (c *Conn) abs(op, rel string) (string, error) {
	a, err := remote.Join(c.root, rel)
	if err != nil {
		return "", remote.Errorf(remote.KindOther, op, rel, err)
	}
	return a, nil
}

// fail classifies err from a call on s. A failure that did not come from
// the server itself means the session is unusable: it is closed here, and
// the next call logs in again.
func (c *Conn) fail(ctx context.Context, s *session, op, rel string, err error) error {
	if err == nil {
		return nil
	}
	if !isTransport(err) {
		return mapErr(op, rel, err)
	}
	s.close()
	if cerr := ctx.Err(); cerr != nil {
		return fmt.Errorf("%s %q: %w", op, rel, cerr)
	}
	if s.wd.timedOut.Load() {
		err = fmt.Errorf("%w within %v: %w", remote.ErrNoAnswer, c.o.IOTimeout(), err)
	}
	return remote.Errorf(remote.KindTransport, op, rel, err)
}
