package sftp

import (
	"errors"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// watchdogConn is the TCP connection under an SSH session. It turns "the
// server stopped answering" into a read error within the timeout, which
// TCP alone would only notice after many minutes of retransmissions.
//
// A plain per-read deadline would also kill a healthy idle session (the SSH
// client always has a read pending), so the read deadline is armed only while
// at least one call is waiting for the server (busy > 0), and every packet
// that arrives or leaves pushes it forward: a long upload that keeps
// receiving acknowledgements never trips it.
type watchdogConn struct {
	net.Conn
	timeout time.Duration

	mu   sync.Mutex
	busy int

	// timedOut records that the deadline fired, so the error a caller sees
	// can say "did not answer within 30s" instead of "connection lost".
	timedOut atomic.Bool
}

// newWatchdogConn wraps the TCP connection c; writes go through a batchConn,
// which bounds each write(2) by the timeout.
func newWatchdogConn(c net.Conn, timeout time.Duration) *watchdogConn {
	w := &watchdogConn{timeout: timeout}
	w.Conn = newBatchConn(c, timeout, w.noteErr)
	return w
}

func (w *watchdogConn) noteErr(err error) {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		w.timedOut.Store(true)
	}
}

// Read passes through and, when data arrived during a call, extends the
// deadline: the server is alive.
func (w *watchdogConn) Read(p []byte) (int, error) {
	n, err := w.Conn.Read(p)
	if n > 0 {
		w.extend()
	}
	if err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
		w.timedOut.Store(true)
	}
	return n, err
}

// Write re-arms the read deadline, because what we send is owed an answer.
// (A server that stops reading is caught by batchConn's write timeout.)
func (w *watchdogConn) Write(p []byte) (int, error) {
	w.extend()
	n, err := w.Conn.Write(p)
	if err != nil {
		w.noteErr(err)
	}
	return n, err
}

func (w *watchdogConn) extend() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.busy > 0 {
		_ = w.Conn.SetReadDeadline(time.Now().Add(w.timeout))
	}
}

// begin marks that a call now waits for the server.
func (w *watchdogConn) begin() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.busy++
	if w.busy == 1 {
		_ = w.Conn.SetReadDeadline(time.Now().Add(w.timeout))
	}
}

// end undoes begin; the last one out disarms the deadline so an idle
// session stays up.
func (w *watchdogConn) end() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.busy--
	if w.busy == 0 {
		_ = w.Conn.SetReadDeadline(time.Time{})
	}
}
