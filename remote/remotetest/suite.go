// Package remotetest owns the conformance suite that every remote backend
// runs, against a real server wherever one exists. A backend passes when it
// behaves like the reference (remote/file) in every case: atomic uploads,
// listings, modification times to the claimed precision, renames, removals,
// odd names, empty and large files, and failures that leave nothing behind.
package remotetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand"
	"path"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"ferry/entry"
	"ferry/remote"
)

// Harness connects the suite to one backend.
type Harness struct {
	// Open returns a new session whose root is a directory shared by all
	// cases (each case works in a subdirectory of its own).
	Open func(t testing.TB) remote.Conn
	// ReadFile returns what the server stored at rel (relative to the
	// root), read behind the backend's back, e.g. from the server's disk.
	// A missing file yields an error matching fs.ErrNotExist.
	ReadFile func(rel string) ([]byte, error)
	// LargeSize is the size of the large-file case; 0 means 64 MiB.
	LargeSize int64
}

// Run runs every case against h.
func Run(t *testing.T, h Harness) {
	cases := []struct {
		name string
		fn   func(*testing.T, *env)
	}{
		{"PutStat", testPutStat},
		{"Overwrite", testOverwrite},
		{"NestedDirs", testNestedDirs},
		{"List", testList},
		{"ModTimeRoundTrip", testModTime},
		{"Rename", testRename},
		{"Remove", testRemove},
		{"OddNames", testOddNames},
		{"EmptyFile", testEmptyFile},
		{"LargeFile", testLargeFile},
		{"PacketBoundaries", testPacketBoundaries},
		{"NotExist", testNotExist},
		{"MissingParent", testMissingParent},
		{"FailedUploadLeavesNothing", testFailedUpload},
		{"CancelledUploadLeavesNothing", testCancelledUpload},
		{"PathEscape", testPathEscape},
		{"ConcurrentSessions", testConcurrent},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := &env{h: h, conn: h.Open(t), dir: c.name, ctx: context.Background()}
			t.Cleanup(func() { _ = e.conn.Close() })
			if err := e.conn.Mkdir(e.ctx, e.dir); err != nil {
				t.Fatalf("mkdir case dir: %v", err)
			}
			c.fn(t, e)
		})
	}
}

type env struct {
	h    Harness
	conn remote.Conn
	dir  string
	ctx  context.Context
}

// p names a path inside the case's own directory.
func (e *env) p(rel string) string { return path.Join(e.dir, rel) }

func (e *env) put(t testing.TB, rel string, data []byte, mtime time.Time) {
	t.Helper()
	n, err := e.conn.Put(e.ctx, e.p(rel), bytes.NewReader(data), mtime)
	if err != nil {
		t.Fatalf("Put(%q): %v", rel, err)
	}
	if n != int64(len(data)) {
		t.Fatalf("Put(%q) wrote %d bytes, want %d", rel, n, len(data))
	}
}

func (e *env) stat(t testing.TB, rel string) entry.FileInfo {
	t.Helper()
	fi, err := e.conn.Stat(e.ctx, e.p(rel))
	if err != nil {
		t.Fatalf("Stat(%q): %v", rel, err)
	}
	return fi
}

func (e *env) list(t testing.TB, rel string) map[string]entry.FileInfo {
	t.Helper()
	out := map[string]entry.FileInfo{}
	err := e.conn.List(e.ctx, e.p(rel), func(fi entry.FileInfo) error {
		if _, dup := out[fi.Name]; dup {
			return fmt.Errorf("entry %q listed twice", fi.Name)
		}
		out[fi.Name] = fi
		return nil
	})
	if err != nil {
		t.Fatalf("List(%q): %v", rel, err)
	}
	return out
}

func (e *env) mustContain(t testing.TB, rel string, want []byte) {
	t.Helper()
	got, err := e.h.ReadFile(e.p(rel))
	if err != nil {
		t.Fatalf("server copy of %q: %v", rel, err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("server copy of %q: %d bytes (sha256 %x), want %d bytes (sha256 %x)", rel, len(got), sha256.Sum256(got), len(want), sha256.Sum256(want))
	}
}

func (e *env) mustBeAbsent(t testing.TB, rel string) {
	t.Helper()
	if _, err := e.h.ReadFile(e.p(rel)); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("%q: want absent on the server, got err=%v", rel, err)
	}
	if _, err := e.conn.Stat(e.ctx, e.p(rel)); !errors.Is(err, remote.ErrNotExist) {
		t.Fatalf("Stat(%q): want ErrNotExist, got %v", rel, err)
	}
}

// noTemps fails if a temporary upload is left in dir.
func (e *env) noTemps(t testing.TB, rel string) {
	t.Helper()
	for name := range e.list(t, rel) {
		if entry.IsTemp(name) {
			t.Fatalf("temporary file %q left in %q", name, e.p(rel))
		}
	}
}

// mtimeClose compares modification times to a claimed precision: servers
// truncate (MDTM, SFTP v3) or round, so allow one unit either way.
func mtimeClose(got, want time.Time, prec time.Duration) bool {
	d := got.Sub(want)
	if d < 0 {
		d = -d
	}
	return d < prec || (prec <= time.Nanosecond && d == 0)
}

var t0 = time.Date(2024, 3, 14, 15, 9, 26, 0, time.UTC)

func testPutStat(t *testing.T, e *env) {
	data := []byte("hello, ferry\n")
	e.put(t, "a.txt", data, t0)
	fi := e.stat(t, "a.txt")
	if fi.Name != "a.txt" || fi.Size != int64(len(data)) || fi.IsDir {
		t.Fatalf("Stat = %+v, want a.txt, %d bytes, file", fi, len(data))
	}
	caps := e.conn.Caps()
	if caps.SetModTime && !mtimeClose(fi.ModTime, t0, caps.ModTimePrecision) {
		t.Fatalf("mtime %v, want %v within %v", fi.ModTime, t0, caps.ModTimePrecision)
	}
	e.mustContain(t, "a.txt", data)
	root := e.stat(t, "")
	if !root.IsDir {
		t.Fatalf("Stat(case dir) = %+v, want a directory", root)
	}
	e.noTemps(t, "")
}

func testOverwrite(t *testing.T, e *env) {
	e.put(t, "f", bytes.Repeat([]byte("1"), 1000), t0)
	v2 := []byte("second version")
	e.put(t, "f", v2, t0.Add(time.Hour))
	if fi := e.stat(t, "f"); fi.Size != int64(len(v2)) {
		t.Fatalf("after overwrite size %d, want %d", fi.Size, len(v2))
	}
	e.mustContain(t, "f", v2)
	if got := e.list(t, ""); len(got) != 1 {
		t.Fatalf("after overwrite dir holds %v, want only f", keys(got))
	}
}

func testNestedDirs(t *testing.T, e *env) {
	if err := e.conn.Mkdir(e.ctx, e.p("a/b/c")); err != nil {
		t.Fatalf("Mkdir a/b/c: %v", err)
	}
	if err := e.conn.Mkdir(e.ctx, e.p("a/b/c")); err != nil {
		t.Fatalf("Mkdir of an existing dir: %v", err)
	}
	if err := e.conn.Mkdir(e.ctx, e.p("a/b")); err != nil {
		t.Fatalf("Mkdir of an existing parent: %v", err)
	}
	e.put(t, "a/b/c/deep.txt", []byte("deep"), t0)
	if fi := e.stat(t, "a/b"); !fi.IsDir {
		t.Fatalf("a/b is %+v, want a directory", fi)
	}
	got := e.list(t, "a/b")
	if fi, ok := got["c"]; !ok || !fi.IsDir || len(got) != 1 {
		t.Fatalf("List(a/b) = %v, want one directory c", got)
	}
	e.mustContain(t, "a/b/c/deep.txt", []byte("deep"))
	// Mkdir over a file must fail rather than report success.
	if err := e.conn.Mkdir(e.ctx, e.p("a/b/c/deep.txt")); err == nil {
		t.Fatalf("Mkdir over an existing file succeeded")
	}
}

func testList(t *testing.T, e *env) {
	// Recent times: a plain LIST shows hh:mm only for the last six months.
	base := time.Now().UTC().Add(-48 * time.Hour).Truncate(time.Second)
	want := map[string]int{"one": 1, "two": 22, "three": 333, "zero": 0}
	i := 0
	for name, size := range want {
		e.put(t, name, bytes.Repeat([]byte{'x'}, size), base.Add(time.Duration(i)*time.Hour))
		i++
	}
	if err := e.conn.Mkdir(e.ctx, e.p("sub")); err != nil {
		t.Fatal(err)
	}
	got := e.list(t, "")
	if len(got) != len(want)+1 {
		t.Fatalf("List = %v, want %d files and sub", keys(got), len(want))
	}
	caps := e.conn.Caps()
	i = 0
	for name, size := range want {
		fi, ok := got[name]
		if !ok || fi.IsDir || fi.Size != int64(size) {
			t.Fatalf("entry %q = %+v (present %v), want a %d-byte file", name, fi, ok, size)
		}
		i++
	}
	for name, fi := range got {
		if fi.IsDir || !caps.SetModTime {
			continue
		}
		st := e.stat(t, name)
		if !mtimeClose(fi.ModTime, st.ModTime, caps.ListModTimePrecision) {
			t.Fatalf("listed mtime of %q %v, stat says %v: beyond the claimed %v", name, fi.ModTime, st.ModTime, caps.ListModTimePrecision)
		}
	}
	if fi := got["sub"]; !fi.IsDir {
		t.Fatalf("sub listed as %+v, want a directory", fi)
	}
	if got := e.list(t, "sub"); len(got) != 0 {
		t.Fatalf("empty dir lists %v", keys(got))
	}
}

func testModTime(t *testing.T, e *env) {
	e.put(t, "m", []byte("m"), t0)
	caps := e.conn.Caps()
	for _, when := range []time.Time{
		time.Date(2001, 2, 3, 4, 5, 6, 789_000_000, time.UTC),
		time.Date(2038, 1, 19, 3, 14, 7, 0, time.UTC).Add(-time.Hour),
		time.Date(2024, 7, 1, 12, 0, 0, 0, time.FixedZone("CEST", 2*3600)),
	} {
		err := e.conn.Chtimes(e.ctx, e.p("m"), when)
		if !caps.SetModTime {
			if !errors.Is(err, remote.ErrUnsupported) {
				t.Fatalf("Chtimes without SetModTime: want ErrUnsupported, got %v", err)
			}
			return
		}
		if err != nil {
			t.Fatalf("Chtimes(%v): %v", when, err)
		}
		if got := e.stat(t, "m").ModTime; !mtimeClose(got, when, caps.ModTimePrecision) {
			t.Fatalf("after Chtimes(%v) Stat says %v (claimed precision %v)", when, got, caps.ModTimePrecision)
		}
	}
	if err := e.conn.Chtimes(e.ctx, e.p("missing"), t0); !errors.Is(err, remote.ErrNotExist) {
		t.Fatalf("Chtimes on a missing file: want ErrNotExist, got %v", err)
	}
}

func testRename(t *testing.T, e *env) {
	e.put(t, "old", []byte("payload"), t0)
	if err := e.conn.Mkdir(e.ctx, e.p("d")); err != nil {
		t.Fatal(err)
	}
	if err := e.conn.Rename(e.ctx, e.p("old"), e.p("d/new")); err != nil {
		t.Fatalf("Rename: %v", err)
	}
	e.mustBeAbsent(t, "old")
	e.mustContain(t, "d/new", []byte("payload"))
	if e.conn.Caps().AtomicReplace {
		e.put(t, "other", []byte("replacement"), t0)
		if err := e.conn.Rename(e.ctx, e.p("other"), e.p("d/new")); err != nil {
			t.Fatalf("Rename over an existing file with AtomicReplace: %v", err)
		}
		e.mustContain(t, "d/new", []byte("replacement"))
	}
	if err := e.conn.Rename(e.ctx, e.p("nope"), e.p("x")); !errors.Is(err, remote.ErrNotExist) {
		t.Fatalf("Rename of a missing file: want ErrNotExist, got %v", err)
	}
}

func testRemove(t *testing.T, e *env) {
	e.put(t, "f", []byte("f"), t0)
	if err := e.conn.Mkdir(e.ctx, e.p("d")); err != nil {
		t.Fatal(err)
	}
	if err := e.conn.Remove(e.ctx, e.p("f")); err != nil {
		t.Fatalf("Remove file: %v", err)
	}
	e.mustBeAbsent(t, "f")
	if err := e.conn.Remove(e.ctx, e.p("d")); err != nil {
		t.Fatalf("Remove empty dir: %v", err)
	}
	if _, err := e.conn.Stat(e.ctx, e.p("d")); !errors.Is(err, remote.ErrNotExist) {
		t.Fatalf("removed dir still stats: %v", err)
	}
	if err := e.conn.Remove(e.ctx, e.p("f")); !errors.Is(err, remote.ErrNotExist) {
		t.Fatalf("Remove of a missing file: want ErrNotExist, got %v", err)
	}
	if err := e.conn.Mkdir(e.ctx, e.p("full/sub")); err != nil {
		t.Fatal(err)
	}
	if err := e.conn.Remove(e.ctx, e.p("full")); err == nil {
		t.Fatalf("Remove of a non-empty directory succeeded")
	}
	if fi := e.stat(t, "full/sub"); !fi.IsDir {
		t.Fatalf("failed Remove changed the tree")
	}
}

// OddNames are the names users really have, and the ones protocols trip on.
var OddNames = []string{
	"with space.txt",
	"  two leading spaces",
	"trailing space ",
	"ünïcødé-文件-😀.txt",
	"-leading-dash",
	"--",
	"#hash",
	"100%",
	"%41%",
	"semi;colon",
	"quote'n\"dq",
	"tab\there",
	"star*q?",
	"back\\slash",
	strings.Repeat("n", 200),
	strings.Repeat("é", 100), // 200 bytes, 100 runes
}

func testOddNames(t *testing.T, e *env) {
	if err := e.conn.Mkdir(e.ctx, e.p("dir with space/ü #%")); err != nil {
		t.Fatalf("Mkdir odd dir: %v", err)
	}
	for i, name := range OddNames {
		rel := path.Join("dir with space/ü #%", name)
		data := []byte(fmt.Sprintf("content %d of %q", i, name))
		e.put(t, rel, data, t0)
		e.mustContain(t, rel, data)
		if fi := e.stat(t, rel); fi.Size != int64(len(data)) || fi.Name != name {
			t.Fatalf("Stat(%q) = %+v, want name %q size %d", rel, fi, name, len(data))
		}
	}
	got := e.list(t, "dir with space/ü #%")
	if len(got) != len(OddNames) {
		t.Fatalf("List found %d names, want %d: %q", len(got), len(OddNames), keys(got))
	}
	for _, name := range OddNames {
		if _, ok := got[name]; !ok {
			t.Fatalf("List lost %q; got %q", name, keys(got))
		}
	}
	for _, name := range OddNames {
		from := path.Join("dir with space/ü #%", name)
		to := path.Join("dir with space/ü #%", "r-"+name[:min(len(name), 190)])
		if err := e.conn.Rename(e.ctx, e.p(from), e.p(to)); err != nil {
			t.Fatalf("Rename(%q): %v", name, err)
		}
		if err := e.conn.Remove(e.ctx, e.p(to)); err != nil {
			t.Fatalf("Remove(%q): %v", to, err)
		}
	}
	if got := e.list(t, "dir with space/ü #%"); len(got) != 0 {
		t.Fatalf("after removing every odd name the dir holds %q", keys(got))
	}
}

func testEmptyFile(t *testing.T, e *env) {
	e.put(t, "empty", nil, t0)
	if fi := e.stat(t, "empty"); fi.Size != 0 || fi.IsDir {
		t.Fatalf("empty file stats as %+v", fi)
	}
	e.mustContain(t, "empty", []byte{})
	e.put(t, "empty", nil, t0) // overwrite an empty file with an empty file
	e.noTemps(t, "")
}

func testLargeFile(t *testing.T, e *env) {
	size := e.h.LargeSize
	if size == 0 {
		size = 64 << 20
	}
	src := io.LimitReader(rand.New(rand.NewSource(42)), size)
	sum := sha256.New()
	n, err := e.conn.Put(e.ctx, e.p("large.bin"), io.TeeReader(src, sum), t0)
	if err != nil || n != size {
		t.Fatalf("Put large: n=%d err=%v, want %d bytes", n, err, size)
	}
	if fi := e.stat(t, "large.bin"); fi.Size != size {
		t.Fatalf("large file size %d, want %d", fi.Size, size)
	}
	got, err := e.h.ReadFile(e.p("large.bin"))
	if err != nil {
		t.Fatal(err)
	}
	if sha256.Sum256(got) != [32]byte(sum.Sum(nil)) {
		t.Fatalf("large file content differs on the server")
	}
}

// hinted is a reader that announces a size, rightly or not: a file can grow
// or shrink between the stat that gave the hint and the read.
type hinted struct {
	io.Reader
	size int64
}

func (h hinted) Size() int64 { return h.size }

// testPacketBoundaries sends sizes around the protocols' packet and buffer
// sizes (32 KiB SFTP packets, 64 KiB FTP chunks), with no size hint, a
// right one, and wrong ones; every copy must arrive whole.
func testPacketBoundaries(t *testing.T, e *env) {
	sizes := []int{1, 32<<10 - 1, 32 << 10, 32<<10 + 1, 64 << 10, 64<<10 + 1, 100003, 1<<20 + 7}
	rng := rand.New(rand.NewSource(7))
	for _, size := range sizes {
		data := make([]byte, size)
		rng.Read(data)
		for _, hint := range []struct {
			name string
			r    func() io.Reader
		}{
			{"none", func() io.Reader { return io.MultiReader(bytes.NewReader(data)) }},
			{"right", func() io.Reader { return hinted{bytes.NewReader(data), int64(size)} }},
			{"small", func() io.Reader { return hinted{bytes.NewReader(data), 1} }},
			{"large", func() io.Reader { return hinted{bytes.NewReader(data), int64(size) * 10} }},
		} {
			rel := fmt.Sprintf("f%d-%s", size, hint.name)
			n, err := e.conn.Put(e.ctx, e.p(rel), hint.r(), t0)
			if err != nil || n != int64(size) {
				t.Fatalf("Put %s: n=%d err=%v, want %d bytes", rel, n, err, size)
			}
			e.mustContain(t, rel, data)
		}
	}
	e.noTemps(t, "")
}

func testNotExist(t *testing.T, e *env) {
	if _, err := e.conn.Stat(e.ctx, e.p("ghost")); !errors.Is(err, remote.ErrNotExist) {
		t.Fatalf("Stat(missing): want ErrNotExist, got %v", err)
	}
	err := e.conn.List(e.ctx, e.p("ghost-dir"), func(entry.FileInfo) error { return nil })
	if !errors.Is(err, remote.ErrNotExist) {
		t.Fatalf("List(missing dir): want ErrNotExist, got %v", err)
	}
	if err != nil && !strings.Contains(err.Error(), "ghost-dir") {
		t.Fatalf("error %q does not name the path", err)
	}
}

func testMissingParent(t *testing.T, e *env) {
	_, err := e.conn.Put(e.ctx, e.p("no/such/dir/f"), strings.NewReader("x"), t0)
	if err == nil {
		t.Fatalf("Put into a missing directory succeeded")
	}
	if !strings.Contains(err.Error(), "no/such/dir/f") {
		t.Fatalf("error %q does not name the path", err)
	}
	e.mustBeAbsent(t, "no/such/dir/f")
	if got := e.list(t, ""); len(got) != 0 {
		t.Fatalf("failed Put left %q", keys(got))
	}
}

// failingReader yields n bytes and then fails, like a local disk error.
type failingReader struct{ n int }

var errLocal = errors.New("local read failed (test)")

func (r *failingReader) Read(p []byte) (int, error) {
	if r.n <= 0 {
		return 0, errLocal
	}
	k := min(len(p), r.n)
	for i := range p[:k] {
		p[i] = 'z'
	}
	r.n -= k
	return k, nil
}

func testFailedUpload(t *testing.T, e *env) {
	old := []byte("the good old version")
	e.put(t, "keep", old, t0)
	_, err := e.conn.Put(e.ctx, e.p("keep"), &failingReader{n: 3 << 20}, t0)
	if !errors.Is(err, errLocal) {
		t.Fatalf("Put with a failing reader: want the reader's error, got %v", err)
	}
	e.mustContain(t, "keep", old)
	_, err = e.conn.Put(e.ctx, e.p("new"), &failingReader{n: 1 << 20}, t0)
	if err == nil {
		t.Fatalf("Put with a failing reader succeeded")
	}
	e.mustBeAbsent(t, "new")
	e.noTemps(t, "")
	// The session must still work after a failed upload.
	e.put(t, "after", []byte("ok"), t0)
}

// blockingReader sends n bytes, then cancels and blocks until released.
type blockingReader struct {
	n      int
	cancel func()
}

func (r *blockingReader) Read(p []byte) (int, error) {
	if r.n <= 0 {
		r.cancel()
		time.Sleep(50 * time.Millisecond)
		return len(p), nil
	}
	k := min(len(p), r.n)
	r.n -= k
	return k, nil
}

func testCancelledUpload(t *testing.T, e *env) {
	ctx, cancel := context.WithCancel(e.ctx)
	defer cancel()
	start := time.Now()
	_, err := e.conn.Put(ctx, e.p("cancelled"), &blockingReader{n: 2 << 20, cancel: cancel}, t0)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled Put: want context.Canceled, got %v", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("cancelled Put took %v to return", d)
	}
	e.mustBeAbsent(t, "cancelled")
	e.noTemps(t, "")
	e.put(t, "after", []byte("ok"), t0)
}

func testPathEscape(t *testing.T, e *env) {
	for _, p := range []string{"../outside", "a/../../outside", "/etc/passwd"} {
		if _, err := e.conn.Stat(e.ctx, p); err == nil || errors.Is(err, remote.ErrNotExist) {
			t.Fatalf("Stat(%q) = %v, want a refusal to leave the root", p, err)
		}
		if _, err := e.conn.Put(e.ctx, p, strings.NewReader("x"), t0); err == nil {
			t.Fatalf("Put(%q) succeeded outside the root", p)
		}
	}
}

func testConcurrent(t *testing.T, e *env) {
	const sessions, files = 4, 10
	var wg sync.WaitGroup
	errs := make(chan error, sessions)
	for s := 0; s < sessions; s++ {
		c := e.h.Open(t)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			for i := 0; i < files; i++ {
				name := e.p(fmt.Sprintf("s%d-f%d", s, i))
				if _, err := c.Put(e.ctx, name, strings.NewReader(name), t0); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("concurrent Put: %v", err)
	}
	if got := e.list(t, ""); len(got) != sessions*files {
		t.Fatalf("after concurrent uploads %d entries, want %d", len(got), sessions*files)
	}
}

func keys(m map[string]entry.FileInfo) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
