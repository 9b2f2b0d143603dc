package mem_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"strings"
	"sync"
	"testing"
	"time"

	"ferry/entry"
	"ferry/remote"
	"ferry/remote/mem"
	"ferry/remote/remotetest"
)

var t0 = time.Date(2024, 3, 14, 15, 9, 26, 0, time.UTC)

func TestConformance(t *testing.T) {
	m := mem.New()
	const root = "/srv/site" // a non-root target, so rooting is exercised
	remotetest.Run(t, remotetest.Harness{
		Open: func(t testing.TB) remote.Conn {
			c, err := m.Open(context.Background(), &remote.Target{Scheme: "mem", Path: root}, remote.Options{})
			if err != nil {
				t.Fatal(err)
			}
			return c
		},
		ReadFile:  func(rel string) ([]byte, error) { return m.ReadFile(root + "/" + rel) },
		LargeSize: 8 << 20,
	})
	if n := m.OpenConns(); n != 0 {
		t.Errorf("suite left %d conns open", n)
	}
}

func open(t *testing.T, m *mem.FS, path string) (remote.Conn, error) {
	t.Helper()
	return m.Open(context.Background(), &remote.Target{Scheme: "ftp", Path: path}, remote.Options{})
}

func TestMaxConns(t *testing.T) {
	m := mem.New()
	m.MaxConns = 2
	a, err := open(t, m, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := open(t, m, ""); err != nil {
		t.Fatal(err)
	}
	_, err = open(t, m, "")
	if remote.KindOf(err) != remote.KindTooMany || !remote.IsTemporary(err) {
		t.Fatalf("third Open: want a temporary KindTooMany error, got %v", err)
	}
	_ = m.Conn() // the test's own session takes no slot
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	_ = a.Close() // a second Close must not free a second slot
	if m.OpenConns() != 1 {
		t.Fatalf("OpenConns = %d after one Close, want 1", m.OpenConns())
	}
	if _, err := open(t, m, ""); err != nil {
		t.Fatalf("Open after Close: %v", err)
	}
	if _, err := open(t, m, ""); remote.KindOf(err) != remote.KindTooMany {
		t.Fatalf("Open beyond the limit again: got %v", err)
	}
	if _, err := a.Stat(context.Background(), ""); err == nil {
		t.Fatalf("Stat on a closed Conn succeeded")
	}
}

func TestFailPut(t *testing.T) {
	m := mem.New()
	c := m.Conn()
	ctx := context.Background()
	if err := c.Mkdir(ctx, "d"); err != nil {
		t.Fatal(err)
	}
	m.WriteFile("d/keep", []byte("old"), t0)
	boom := errors.New("injected")
	full := remote.Errorf(remote.KindDiskFull, "put", "d/keep", nil)
	m.FailPut = func(p string) error {
		switch p {
		case "d/new":
			return boom
		case "d/keep":
			return full
		}
		return nil
	}
	data := bytes.Repeat([]byte("x"), 1000)
	n, err := c.Put(ctx, "d/new", bytes.NewReader(data), t0)
	if !errors.Is(err, boom) || n != 500 {
		t.Fatalf("Put with FailPut: n=%d err=%v, want 500 bytes and the injected error", n, err)
	}
	if _, err := c.Put(ctx, "d/keep", bytes.NewReader(data), t0); remote.KindOf(err) != remote.KindDiskFull {
		t.Fatalf("FailPut returning a *remote.Error: kind %v, want KindDiskFull (%v)", remote.KindOf(err), err)
	}
	want := map[string]string{"d/keep": "old"}
	if got := m.Tree(); len(got) != 1 || got["d/keep"] != "old" {
		t.Fatalf("after failed Puts the tree is %q, want %q", got, want)
	}
	if _, err := m.ReadFile("d/new"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("ReadFile of the failed upload: %v", err)
	}
	if m.TotalPuts() != 0 {
		t.Fatalf("failed Puts counted as completed")
	}
	if _, err := c.Put(ctx, "d/other", strings.NewReader("ok"), t0); err != nil {
		t.Fatalf("Put of a path FailPut spares: %v", err)
	}
}

// gate hands out its bytes one chunk at a time. Each Read first announces
// itself on asked (so the previous chunk has been stored) and then waits on
// next, so a test can look at the tree in the middle of an upload.
type gate struct {
	chunks      [][]byte
	asked, next chan struct{}
}

func newGate(chunks ...string) *gate {
	g := &gate{asked: make(chan struct{}), next: make(chan struct{})}
	for _, c := range chunks {
		g.chunks = append(g.chunks, []byte(c))
	}
	return g
}

func (g *gate) Read(p []byte) (int, error) {
	if len(g.chunks) == 0 {
		return 0, io.EOF
	}
	g.asked <- struct{}{}
	<-g.next
	n := copy(p, g.chunks[0])
	g.chunks = g.chunks[1:]
	return n, nil
}

func TestPutShowsOnlyTheTempWhileWriting(t *testing.T) {
	m := mem.New()
	c := m.Conn()
	g := newGate("first ", "second")
	done := make(chan error)
	go func() {
		_, err := c.Put(context.Background(), "f", g, t0)
		done <- err
	}()
	<-g.asked
	g.next <- struct{}{}
	<-g.asked // the first chunk is stored once the second is asked for
	var temp string
	for p, content := range m.Tree() {
		if p == "f" {
			t.Fatalf("final name visible mid-upload with %q", content)
		}
		if entry.IsTemp(p) && content == "first " {
			temp = p
		}
	}
	if temp == "" {
		t.Fatalf("no partial temp file mid-upload; tree %q", m.Tree())
	}
	var listed bool
	if err := c.List(context.Background(), "", func(fi entry.FileInfo) error {
		listed = listed || fi.Name == temp
		return nil
	}); err != nil {
		t.Fatalf("List mid-upload: %v", err)
	}
	if !listed {
		t.Fatalf("temp file %q not listed mid-upload", temp)
	}
	g.next <- struct{}{}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := m.Tree(); len(got) != 1 || got["f"] != "first second" {
		t.Fatalf("after the upload the tree is %q", got)
	}
}

func TestDown(t *testing.T) {
	m := mem.New()
	ctx := context.Background()
	c, err := open(t, m, "/")
	if err != nil {
		t.Fatal(err)
	}
	m.Down(true)
	if _, err := open(t, m, "/"); remote.KindOf(err) != remote.KindTransport || !remote.IsTemporary(err) {
		t.Fatalf("Open while down: %v", err)
	}
	if _, err := c.Stat(ctx, ""); remote.KindOf(err) != remote.KindTransport || !remote.IsTemporary(err) {
		t.Fatalf("Stat while down: %v", err)
	}
	if _, err := c.Put(ctx, "f", strings.NewReader("x"), t0); remote.KindOf(err) != remote.KindTransport {
		t.Fatalf("Put while down: %v", err)
	}
	m.Down(false)
	if _, err := c.Put(ctx, "f", strings.NewReader("x"), t0); err != nil {
		t.Fatalf("Put after recovery: %v", err)
	}
	if _, err := open(t, m, "/"); err != nil {
		t.Fatalf("Open after recovery: %v", err)
	}
	if got := m.Tree(); len(got) != 1 {
		t.Fatalf("tree %q, want only f", got)
	}
}

func TestDownMidUpload(t *testing.T) {
	m := mem.New()
	c := m.Conn()
	g := newGate("a", "b", "c")
	done := make(chan error)
	go func() {
		_, err := c.Put(context.Background(), "f", g, t0)
		done <- err
	}()
	<-g.asked
	g.next <- struct{}{}
	<-g.asked // "a" is in the temp file
	if got := m.Tree(); len(got) != 1 {
		t.Fatalf("mid-upload tree %q, want one temp file", got)
	}
	m.Down(true)
	g.next <- struct{}{} // "b" arrives after the outage
	if err := <-done; remote.KindOf(err) != remote.KindTransport {
		t.Fatalf("upload across an outage: %v", err)
	}
	m.Down(false)
	if got := m.Tree(); len(got) != 0 {
		t.Fatalf("outage left %q", got)
	}
}

func TestPutsAndCalls(t *testing.T) {
	m := mem.New()
	c, err := open(t, m, "site")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := c.Mkdir(ctx, ""); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 5 {
		wg.Go(func() {
			if _, err := c.Put(ctx, "a", strings.NewReader("a"), t0); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if _, err := c.Put(ctx, "b", strings.NewReader("b"), t0); err != nil {
		t.Fatal(err)
	}
	if m.Puts("site/a") != 5 || m.Puts("/site/b") != 1 || m.Puts("a") != 0 || m.TotalPuts() != 6 {
		t.Fatalf("Puts a=%d b=%d total=%d, want 5, 1, 6", m.Puts("site/a"), m.Puts("site/b"), m.TotalPuts())
	}
	calls := m.Calls()
	if calls["open"] != 1 || calls["mkdir"] != 1 || calls["put"] != 6 {
		t.Fatalf("Calls = %v", calls)
	}
}

func TestLatencyHonoursContext(t *testing.T) {
	m := mem.New()
	m.Latency = time.Hour
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := m.Conn().Stat(ctx, ""); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("slow Stat past its deadline: %v", err)
	}
	m.Update(func() { m.Latency = time.Millisecond })
	start := time.Now()
	if _, err := m.Conn().Stat(context.Background(), ""); err != nil || time.Since(start) < time.Millisecond {
		t.Fatalf("Stat with 1ms latency: %v after %v", err, time.Since(start))
	}
}

func TestWriteFileAndCaps(t *testing.T) {
	m := mem.New()
	m.Caps.ModTimePrecision = time.Second
	m.Caps.ListModTimePrecision = 24 * time.Hour
	m.Caps.Hashes = []string{"sha256"}
	when := time.Date(2024, 5, 6, 7, 8, 9, 987654321, time.FixedZone("X", 3600))
	m.WriteFile("/a/b/c.txt", []byte("third party"), when)
	c := m.Conn()
	ctx := context.Background()
	fi, err := c.Stat(ctx, "a/b/c.txt")
	if err != nil || fi.Size != 11 || !fi.ModTime.Equal(when.Truncate(time.Second)) {
		t.Fatalf("Stat = %+v, %v; want 11 bytes at %v", fi, err, when.Truncate(time.Second))
	}
	listed := 0
	if err := c.List(ctx, "a/b", func(fi entry.FileInfo) error {
		listed++
		if !fi.ModTime.Equal(when.UTC().Truncate(24 * time.Hour)) {
			t.Errorf("listed mtime %v, want the day only", fi.ModTime)
		}
		return nil
	}); err != nil || listed != 1 {
		t.Fatalf("List a/b: %d entries, %v; want c.txt", listed, err)
	}
	h, err := c.(remote.Hasher).Hash(ctx, "a/b/c.txt", "sha256")
	if err != nil || len(h) != 64 {
		t.Fatalf("Hash = %q, %v", h, err)
	}
	if err := c.Mkdir(ctx, "a/b/c.txt/d"); remote.KindOf(err) != remote.KindExist {
		t.Fatalf("Mkdir through a file: %v", err)
	}
	if err := c.Remove(ctx, "a"); err == nil {
		t.Fatalf("Remove of a non-empty dir succeeded")
	}
	if _, err := m.ReadFile("a/b"); err == nil || errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("ReadFile of a directory: %v", err)
	}
	m.Caps.SetModTime = false
	if err := c.Chtimes(ctx, "a/b/c.txt", t0); !errors.Is(err, remote.ErrUnsupported) {
		t.Fatalf("Chtimes without SetModTime: %v", err)
	}
}
