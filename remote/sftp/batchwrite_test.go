package sftp

import (
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// TestBatchConnKeepsOrder: what many writers queue arrives whole and in
// each writer's order, interleaved only at Write boundaries.
func TestBatchConnKeepsOrder(t *testing.T) {
	client, server := net.Pipe()
	b := newBatchConn(client, 5*time.Second, nil)
	const writers, each = 8, 500
	got := make(chan []byte)
	go func() {
		data := make([]byte, writers*each*4)
		n, _ := io.ReadFull(server, data)
		got <- data[:n]
	}()
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				if _, err := b.Write([]byte{byte(w), byte(i), byte(i >> 8), '\n'}); err != nil {
					t.Errorf("write: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	data := <-got // everything queued arrived; nothing is left to drop
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if len(data) != writers*each*4 {
		t.Fatalf("read %d bytes, want %d", len(data), writers*each*4)
	}
	next := make([]int, writers)
	for off := 0; off < len(data); off += 4 {
		rec := data[off : off+4]
		if rec[3] != '\n' {
			t.Fatalf("record at %d torn: %q", off, rec)
		}
		w, i := int(rec[0]), int(rec[1])|int(rec[2])<<8
		if i != next[w] {
			t.Fatalf("writer %d: record %d arrived where %d was due", w, i, next[w])
		}
		next[w]++
	}
}

// TestBatchConnFailure: a failed write closes the connection (so a reader
// waiting for a reply fails too), reports the error to the watchdog, and
// later Writes return it; Close still returns.
func TestBatchConnFailure(t *testing.T) {
	client, server := net.Pipe()
	var noted error
	var mu sync.Mutex
	b := newBatchConn(client, 50*time.Millisecond, func(err error) { mu.Lock(); noted = err; mu.Unlock() })
	// Nobody reads server: the write times out.
	if _, err := b.Write([]byte("hello")); err != nil {
		t.Fatalf("first write is only queued, got %v", err)
	}
	readErr := make(chan error, 1)
	go func() {
		_, err := b.Read(make([]byte, 1))
		readErr <- err
	}()
	select {
	case err := <-readErr:
		if err == nil {
			t.Fatal("read succeeded on a dead connection")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a reader still waits 5 s after the write failed")
	}
	mu.Lock()
	if noted == nil {
		t.Error("the write error was not reported")
	}
	mu.Unlock()
	if _, err := b.Write([]byte("again")); err == nil {
		t.Error("a write after the failure succeeded")
	}
	done := make(chan struct{})
	go func() { b.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close hangs after a failure")
	}
	server.Close()
}

// TestBatchConnBackpressure: with the peer not reading, Write blocks once
// maxPending bytes are queued, and Close releases it with an error.
func TestBatchConnBackpressure(t *testing.T) {
	client, server := net.Pipe()
	defer server.Close()
	b := newBatchConn(client, time.Minute, nil)
	chunk := make([]byte, 64<<10)
	blocked := make(chan error, 1)
	go func() {
		for n := 0; ; n += len(chunk) {
			if n > 4*maxPending {
				blocked <- errors.New("queued 4× maxPending without blocking")
				return
			}
			if _, err := b.Write(chunk); err != nil {
				blocked <- err
				return
			}
		}
	}()
	select {
	case err := <-blocked:
		t.Fatalf("Write returned before Close: %v", err)
	case <-time.After(200 * time.Millisecond): // blocked, as it should be
	}
	b.Close()
	select {
	case err := <-blocked:
		if err == nil {
			t.Fatal("blocked Write returned no error after Close")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not release a blocked Write")
	}
}
