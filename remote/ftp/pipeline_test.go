package ftp_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"ferry/internal/ftpfake"
	"ferry/remote"
)

// recorder keeps the commands a fake server read, in order.
type recorder struct {
	mu   sync.Mutex
	cmds []ftpfake.Command
}

func (r *recorder) add(c ftpfake.Command) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cmds = append(r.cmds, c)
}

// tail is what the server read after the last STOR: each verb, with "+"
// when the next command had already arrived behind it.
func (r *recorder) tail() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	i := len(r.cmds) - 1
	for i >= 0 && r.cmds[i].Verb != "STOR" {
		i--
	}
	var out []string
	for _, c := range r.cmds[i+1:] {
		v := c.Verb
		if c.Queued {
			v += "+"
		}
		out = append(out, v)
	}
	return strings.Join(out, " ")
}

func (r *recorder) sent(verb string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range r.cmds {
		if c.Verb == verb {
			return true
		}
	}
	return false
}

// TestTailPipelined: after a STOR, the size check goes with the mtime and
// the rename's two commands go together, once the size came back right:
// the server sees SIZE with MDTM behind it, then RNFR with RNTO behind it.
func TestTailPipelined(t *testing.T) {
	rec := &recorder{}
	s := start(t, ftpfake.Options{Commands: rec.add})
	c := dialFake(t, s)
	defer c.Close()
	mtime := time.Date(2026, 5, 4, 3, 2, 1, 0, time.UTC)
	if _, err := c.Put(context.Background(), "a.txt", strings.NewReader("hello"), mtime); err != nil {
		t.Fatal(err)
	}
	if got := rec.tail(); got != "SIZE+ MDTM RNFR+ RNTO" {
		t.Fatalf("after the STOR the server read %q; want SIZE with MDTM behind it, then RNFR with RNTO behind it", got)
	}
	fi, err := c.Stat(context.Background(), "a.txt")
	if err != nil || fi.Size != 5 || !fi.ModTime.Equal(mtime) {
		t.Fatalf("the uploaded file: %+v, %v", fi, err)
	}
}

// TestTailSizeDisagrees: a server whose SIZE is not what was sent gets no
// RNFR: the file never reaches its final name, and the upload is an error
// a retry may fix.
func TestTailSizeDisagrees(t *testing.T) {
	rec := &recorder{}
	s := start(t, ftpfake.Options{Commands: rec.add, Reply: func(c ftpfake.Command, line string) string {
		if c.Verb == "SIZE" && strings.HasPrefix(line, "213 ") {
			return "213 4"
		}
		return line
	}})
	root := s.Root()
	c := dialFake(t, s)
	defer c.Close()
	_, err := c.Put(context.Background(), "a.txt", strings.NewReader("hello"), time.Now())
	if remote.KindOf(err) != remote.KindBusy || !strings.Contains(err.Error(), "5 were sent") {
		t.Fatalf("Put with a SIZE that disagrees: %v (kind %v); want KindBusy naming the bytes sent", err, remote.KindOf(err))
	}
	if rec.sent("RNFR") {
		t.Fatal("RNFR sent after a SIZE that disagreed")
	}
	if _, err := os.Stat(filepath.Join(root, "a.txt")); !os.IsNotExist(err) {
		t.Fatalf("the final name exists: %v", err)
	}
	if left := dirEntries(t, root); len(left) != 0 {
		t.Fatalf("left on the server: %v", left)
	}
}

// TestTailOutOfStep: a server that answers one command twice puts the
// session out of step: the upload fails as a lost session, and the next
// ones go one command at a time, on a new session, and succeed.
func TestTailOutOfStep(t *testing.T) {
	rec := &recorder{}
	var once sync.Once
	s := start(t, ftpfake.Options{Commands: rec.add, Reply: func(c ftpfake.Command, line string) string {
		if c.Verb == "SIZE" && strings.HasPrefix(line, "213 ") {
			extra := ""
			once.Do(func() { extra = "\r\n213 0" })
			return line + extra
		}
		return line
	}})
	c := dialFake(t, s)
	defer c.Close()
	ctx := context.Background()
	_, err := c.Put(ctx, "a.txt", strings.NewReader("hello"), time.Now())
	if !remote.SessionLost(err) {
		t.Fatalf("Put on a session out of step: %v (kind %v); want a lost session", err, remote.KindOf(err))
	}
	for _, name := range []string{"a.txt", "b.txt"} {
		if _, err := c.Put(ctx, name, strings.NewReader("hello"), time.Now()); err != nil {
			t.Fatalf("Put %s after the session went out of step: %v", name, err)
		}
		if got := rec.tail(); got != "SIZE MDTM RNFR RNTO" {
			t.Fatalf("after the STOR of %s the server read %q; want one command at a time", name, got)
		}
	}
}

// TestTailMFMT: a server that lists MFMT in its features gets MFMT, not
// MDTM's write form (which proftpd would read as a query for a file named
// by the date and the path).
func TestTailMFMT(t *testing.T) {
	rec := &recorder{}
	s := start(t, ftpfake.Options{Commands: rec.add, MFMT: true})
	c := dialFake(t, s)
	defer c.Close()
	if _, err := c.Put(context.Background(), "a.txt", strings.NewReader("hello"), time.Now()); err != nil {
		t.Fatal(err)
	}
	if got := rec.tail(); got != "SIZE+ MFMT RNFR+ RNTO" {
		t.Fatalf("after the STOR the server read %q; want MFMT", got)
	}
}
