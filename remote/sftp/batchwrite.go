package sftp

import (
	"net"
	"sync"
	"time"
)

// batchConn coalesces the SSH packets written to a connection. The SSH
// transport writes each packet with its own write(2), one per SFTP request
// or reply — for small files, five per file — and on loopback those system
// calls were a third of ferry's CPU. Here Write only queues the packet and
// returns; one goroutine owns the socket's writing end and sends everything
// queued since its last write in one call, so packets from the many uploads
// sharing a connection leave together while the first one never waits.
//
// The order of bytes is kept. A failed write closes the connection, so the
// reader (and everyone waiting on a reply) fails at once instead of waiting
// for an answer to a packet that never left; later Writes return the error.
type batchConn struct {
	net.Conn
	timeout time.Duration // for each write(2): a server that stops reading

	mu      sync.Mutex
	cond    *sync.Cond // signals the writer (data, close) and blocked Writes (room)
	pending []byte
	err     error
	closed  bool
	done    chan struct{} // the writer has returned
	onErr   func(error)   // told of a failed write (the watchdog's timeout bookkeeping)
}

// maxPending bounds what Write queues before it blocks, so a server that
// reads slowly pushes back on the uploads rather than growing memory.
const maxPending = 1 << 20

func newBatchConn(c net.Conn, timeout time.Duration, onErr func(error)) *batchConn {
	b := &batchConn{Conn: c, timeout: timeout, done: make(chan struct{}), onErr: onErr}
	b.cond = sync.NewCond(&b.mu)
	go b.writer()
	return b
}

// Write queues p for the writer.
func (b *batchConn) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for b.err == nil && !b.closed && len(b.pending) >= maxPending {
		b.cond.Wait()
	}
	if b.err != nil {
		return 0, b.err
	}
	if b.closed {
		return 0, net.ErrClosed
	}
	b.pending = append(b.pending, p...)
	b.cond.Broadcast()
	return len(p), nil
}

// writer sends what is queued until the connection closes or fails.
func (b *batchConn) writer() {
	defer close(b.done)
	var out []byte
	for {
		b.mu.Lock()
		for len(b.pending) == 0 && !b.closed {
			b.cond.Wait()
		}
		if b.closed {
			b.mu.Unlock()
			return
		}
		out, b.pending = b.pending, out[:0]
		b.cond.Broadcast() // room for blocked Writes
		b.mu.Unlock()

		_ = b.Conn.SetWriteDeadline(time.Now().Add(b.timeout))
		if _, err := b.Conn.Write(out); err != nil {
			b.mu.Lock()
			b.err = err
			b.pending = nil
			b.cond.Broadcast()
			b.mu.Unlock()
			if b.onErr != nil {
				b.onErr(err)
			}
			_ = b.Conn.Close()
			return
		}
		if cap(out) > maxPending { // do not keep a burst's buffer for good
			out = nil
		}
	}
}

// Close closes the connection at once — what is still queued is dropped,
// as the kernel would drop unsent bytes — and waits for the writer.
func (b *batchConn) Close() error {
	b.mu.Lock()
	b.closed = true
	b.cond.Broadcast()
	b.mu.Unlock()
	err := b.Conn.Close()
	<-b.done
	return err
}
