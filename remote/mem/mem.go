// Package mem owns an in-memory remote for fast unit tests of the layers
// above remote/ (planner, transfer pool, the --once engine). It behaves like
// the reference backend (remote/file) and adds the hooks those tests need to
// provoke what a real server does only occasionally: refused connections,
// failed uploads, slow calls and outages.
//
// Every path the FS itself takes (ReadFile, WriteFile, Puts, FailPut, Tree)
// is slash-separated from the root of the whole tree; a leading "/" is
// optional. A Conn's paths are relative to its own root, as for every Conn.
package mem

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"
	"sync"
	"time"

	"ferry/remote"
)

// FS is one in-memory tree shared by any number of Conns. It is safe for
// concurrent use.
//
// The exported fields are test hooks. Set them before the code under test
// runs, or later through Update: every call reads them under the FS's lock,
// so changing them directly while Conns are in use is a data race.
type FS struct {
	// Caps is what every Conn reports. New sets nanosecond mtimes, SetModTime
	// and AtomicReplace. Stored mtimes are truncated to ModTimePrecision and
	// listed ones to ListModTimePrecision, so a test can simulate a coarse
	// server. With SetModTime false, Chtimes fails with KindUnsupported and
	// Put stamps the upload time, as such servers do. Listing "sha256" in
	// Hashes makes Hash work.
	Caps remote.Caps

	// MaxConns, when > 0, caps the Conns Open hands out at once: one more
	// fails with a KindTooMany error, like FTP's 421. Close frees a slot.
	MaxConns int

	// FailPut, when set and returning an error for the final path of a Put,
	// makes that Put fail with the error after half of the bytes reached the
	// temporary file (which is then removed, as on any failure). A
	// *remote.Error is returned unchanged, so the test picks the kind;
	// anything else is wrapped as KindOther.
	FailPut func(path string) error

	// Latency is slept at the start of every call (and Open), honouring the
	// caller's context, so timeouts and cancellation can be exercised.
	Latency time.Duration

	mu    sync.Mutex
	root  *node
	down  bool
	open  int            // Conns from Open not yet closed
	calls map[string]int // per operation name
	puts  map[string]int // completed uploads per final path
	total int
}

// node is a file or a directory. A file's data is never changed once the
// node is reachable under its final name: Put fills a temporary node and
// renames it, WriteFile swaps in a new node.
type node struct {
	dir   bool
	kids  map[string]*node // directories only
	data  []byte
	mtime time.Time
}

var (
	_ remote.Opener = (*FS)(nil).Open

	errDown     = errors.New("connection refused: the server is down (mem.FS.Down)")
	errClosed   = errors.New("use of a closed connection")
	errNotDir   = errors.New("not a directory")
	errIsDir    = errors.New("is a directory")
	errNotEmpty = errors.New("directory not empty")
)

// New returns an empty tree (only the root directory exists) with the
// capabilities of a local filesystem.
func New() *FS {
	return &FS{
		Caps: remote.Caps{
			ModTimePrecision:     time.Nanosecond,
			ListModTimePrecision: time.Nanosecond,
			SetModTime:           true,
			AtomicReplace:        true,
		},
		root:  &node{dir: true, kids: map[string]*node{}, mtime: time.Now().UTC()},
		calls: map[string]int{},
		puts:  map[string]int{},
	}
}

// Open returns a Conn rooted at t.Path (any scheme; "" and "/" name the root
// of the tree, and a nil t does too). It counts as "open" in Calls and is
// subject to Latency, Down and MaxConns. Use the method value as a
// remote.Opener.
func (m *FS) Open(ctx context.Context, t *remote.Target, _ remote.Options) (remote.Conn, error) {
	root := ""
	if t != nil {
		root = norm(t.Path)
	}
	m.mu.Lock()
	m.calls["open"]++
	lat := m.Latency
	m.mu.Unlock()
	if err := sleep(ctx, lat); err != nil {
		return nil, fmt.Errorf("dial %q: %w", root, err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.down {
		return nil, remote.Errorf(remote.KindTransport, "dial", root, errDown)
	}
	if m.MaxConns > 0 && m.open >= m.MaxConns {
		return nil, remote.Errorf(remote.KindTooMany, "dial", root, fmt.Errorf("%d connections open, the limit is %d", m.open, m.MaxConns))
	}
	m.open++
	return &conn{fs: m, root: root, counted: true}, nil
}

// Conn returns a Conn rooted at the top of the tree. It is the test's own
// session, for setup and assertions: it cannot fail to open, so it is not
// counted against MaxConns nor in OpenConns, but its calls obey every other
// hook and are counted in Calls.
func (m *FS) Conn() remote.Conn {
	return &conn{fs: m}
}

// Update runs fn with the FS locked, so a test can change the hook fields
// while Conns are in use. fn must not call methods of the FS.
func (m *FS) Update(fn func()) {
	m.mu.Lock()
	defer m.mu.Unlock()
	fn()
}

// Down takes the server down (true) or brings it back (false). While down,
// Open and every Conn call fail with a KindTransport error, which callers
// treat as temporary, and an upload in progress fails at its next buffer.
// Conns opened before stay usable once the server is back, as a real Conn
// redials.
func (m *FS) Down(down bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.down = down
}

// OpenConns returns how many Conns from Open are not closed yet, so a test
// can check that the code under test closes what it opens.
func (m *FS) OpenConns() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.open
}

// Puts returns how many uploads to path completed.
func (m *FS) Puts(path string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.puts[norm(path)]
}

// TotalPuts returns how many uploads completed, to any path.
func (m *FS) TotalPuts() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.total
}

// Calls returns a copy of the call counts per operation: "open", "stat",
// "list", "put", "remove", "mkdir", "rename", "chtimes", "hash", "read",
// "close". Failed calls count too.
func (m *FS) Calls() map[string]int {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[string]int, len(m.calls))
	for k, v := range m.calls {
		out[k] = v
	}
	return out
}

// ReadFile returns a copy of the file at path, read behind the Conns' back.
// A missing path yields an error matching fs.ErrNotExist.
func (m *FS) ReadFile(path string) ([]byte, error) {
	p := norm(path)
	m.mu.Lock()
	defer m.mu.Unlock()
	n := m.walk(p)
	if n == nil {
		return nil, &fs.PathError{Op: "read", Path: p, Err: fs.ErrNotExist}
	}
	if n.dir {
		return nil, &fs.PathError{Op: "read", Path: p, Err: errIsDir}
	}
	return append([]byte{}, n.data...), nil
}

// WriteFile stores data at path as a third party would, creating missing
// parents; a zero mtime means now. It bypasses every hook and counter. It
// panics when a directory is at path or a file is in the way of a parent,
// since that is a mistake in the test.
func (m *FS) WriteFile(path string, data []byte, mtime time.Time) {
	p := norm(path)
	if p == "" {
		panic("mem.WriteFile: the root is a directory")
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	dir, name := split(p)
	parent, err := m.mkdirAll(dir)
	if err != nil {
		panic(fmt.Sprintf("mem.WriteFile %q: %v", p, err))
	}
	if old := parent.kids[name]; old != nil && old.dir {
		panic(fmt.Sprintf("mem.WriteFile %q: %v", p, errIsDir))
	}
	if mtime.IsZero() {
		mtime = time.Now()
	}
	parent.kids[name] = &node{data: append([]byte{}, data...), mtime: m.stamp(mtime)}
	parent.mtime = m.stamp(time.Now())
}

// Tree returns every file in the tree, temporary uploads included, as path
// → content. Directories are left out.
func (m *FS) Tree() map[string]string {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[string]string{}
	var walk func(prefix string, d *node)
	walk = func(prefix string, d *node) {
		for name, k := range d.kids {
			p := path.Join(prefix, name)
			if k.dir {
				walk(p, k)
			} else {
				out[p] = string(k.data)
			}
		}
	}
	walk("", m.root)
	return out
}

// norm turns a tree path into its key form: clean, no leading slash, "" for
// the root. It clamps ".." at the root, since tree paths come from tests.
func norm(p string) string {
	return strings.TrimPrefix(path.Clean("/"+p), "/")
}

// split returns the parent and base name of a non-root key.
func split(p string) (dir, name string) {
	i := strings.LastIndexByte(p, '/')
	if i < 0 {
		return "", p
	}
	return p[:i], p[i+1:]
}

// walk returns the node at key p, or nil. The caller holds m.mu.
func (m *FS) walk(p string) *node {
	cur := m.root
	if p == "" {
		return cur
	}
	for _, el := range strings.Split(p, "/") {
		if !cur.dir {
			return nil
		}
		if cur = cur.kids[el]; cur == nil {
			return nil
		}
	}
	return cur
}

// dirAt returns the directory at key p, or nil when it is missing or a
// file. The caller holds m.mu.
func (m *FS) dirAt(p string) *node {
	if n := m.walk(p); n != nil && n.dir {
		return n
	}
	return nil
}

// mkdirAll creates directory p and its parents. The caller holds m.mu.
func (m *FS) mkdirAll(p string) (*node, error) {
	cur := m.root
	if p == "" {
		return cur, nil
	}
	for i, el := range strings.Split(p, "/") {
		next := cur.kids[el]
		if next == nil {
			next = &node{dir: true, kids: map[string]*node{}, mtime: m.stamp(time.Now())}
			cur.kids[el] = next
			cur.mtime = next.mtime
		} else if !next.dir {
			return nil, fmt.Errorf("%q is a file", strings.Join(strings.Split(p, "/")[:i+1], "/"))
		}
		cur = next
	}
	return cur, nil
}

// stamp turns a modification time into what this server stores: UTC (no
// server keeps the zone), truncated to the claimed precision. The caller
// holds m.mu.
func (m *FS) stamp(t time.Time) time.Time {
	return t.UTC().Truncate(m.Caps.ModTimePrecision)
}

// sleep waits d unless ctx ends first; it reports ctx's error either way,
// so a cancelled caller never gets through.
func sleep(ctx context.Context, d time.Duration) error {
	if d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-ctx.Done():
		case <-t.C:
		}
	}
	return ctx.Err()
}
