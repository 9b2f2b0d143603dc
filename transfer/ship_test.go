package transfer

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"ferry/entry"
	"ferry/internal/digest"
	"ferry/planner"
	"ferry/queue"
	"ferry/remote"
	"ferry/remote/mem"
)

// The Shipper's decisions are tested here in process, on the in-memory
// remote and a registry kept in a map; each case checks both sides of an
// item's outcome, what the remote holds and what was recorded, since a
// worker that does the right thing on the server but records the wrong
// thing (or the reverse) breaks the next run.

// fakeRegistry is a Recorder and Records over a map. Like the registry's
// writer it batches: Put and Forget are seen by Get and Dir only after a
// Flush, so a Shipper that reads the registry without flushing first reads
// stale rows here too.
type fakeRegistry struct {
	mu      sync.Mutex
	rows    map[string]entry.Entry // flushed
	pending []func()               // Put and Forget not yet flushed
	onFlush func()                 // when set, runs at each Flush (a test's hook)
}

func newFakeRegistry() *fakeRegistry { return &fakeRegistry{rows: map[string]entry.Entry{}} }

func (r *fakeRegistry) Put(e entry.Entry) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.pending = append(r.pending, func() { r.rows[e.Path] = e })
	return nil
}

func (r *fakeRegistry) Forget(p string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.pending = append(r.pending, func() { delete(r.rows, p) })
	return nil
}

func (r *fakeRegistry) Flush(context.Context) error {
	if r.onFlush != nil {
		r.onFlush()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, f := range r.pending {
		f()
	}
	r.pending = nil
	return nil
}

func (r *fakeRegistry) Get(_ context.Context, p string) (entry.Entry, bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.rows[p]
	return e, ok, nil
}

func (r *fakeRegistry) Dir(_ context.Context, dir string, fn func(entry.Entry) error) error {
	r.mu.Lock()
	var out []entry.Entry
	for p, e := range r.rows {
		d := path.Dir(p)
		if d == "." {
			d = ""
		}
		if d == dir {
			out = append(out, e)
		}
	}
	r.mu.Unlock()
	slices.SortFunc(out, func(a, b entry.Entry) int { return strings.Compare(a.Path, b.Path) })
	for _, e := range out {
		if err := fn(e); err != nil {
			return err
		}
	}
	return nil
}

// seed records rows as a previous run left them (flushed).
func (r *fakeRegistry) seed(es ...entry.Entry) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range es {
		r.rows[e.Path] = e
	}
}

// all returns every row once what the Shipper recorded is flushed.
func (r *fakeRegistry) all(t *testing.T) map[string]entry.Entry {
	t.Helper()
	if err := r.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return maps.Clone(r.rows)
}

// counts is a plain copy of Counters, comparable as a whole: a case that
// counts something it should not fails as surely as one that misses a count.
type counts struct {
	Transferred, Bytes, Touched, Adopted, Deleted, Failed, Conflicts, Cleaned, Moved int64
}

func countsOf(c *Counters) counts {
	return counts{c.Transferred.Load(), c.Bytes.Load(), c.Touched.Load(), c.Adopted.Load(), c.Deleted.Load(),
		c.Failed.Load(), c.Conflicts.Load(), c.Cleaned.Load(), c.Moved.Load()}
}

// The remote's target directory inside the in-memory tree: a non-root
// target, so the Shipper's paths go through the Conn's rooting.
const memRoot = "srv/site"

var (
	m0      = time.Date(2024, 3, 14, 15, 9, 26, 0, time.UTC) // what ferry shipped
	m1      = m0.Add(time.Hour)                              // a later local save
	m2      = m0.Add(2 * time.Hour)                          // someone else's save on the remote
	shipNow = time.Date(2026, 11, 23, 5, 13, 0, 0, time.UTC)
)

type shipRig struct {
	t      *testing.T
	fs     *mem.FS
	conn   remote.Conn
	src    string
	reg    *fakeRegistry
	safety *planner.Safety
	ship   *Shipper
}

// newShipRig returns a Shipper on a Conn of an empty in-memory remote (the
// target directory exists) and an empty local source; opt adjusts its
// options before it is made.
func newShipRig(t *testing.T, opt func(*ShipOptions)) *shipRig {
	t.Helper()
	r := &shipRig{t: t, fs: mem.New(), src: t.TempDir(), reg: newFakeRegistry()}
	if err := r.fs.Conn().Mkdir(context.Background(), memRoot); err != nil {
		t.Fatal(err)
	}
	c, err := r.fs.Open(context.Background(), &remote.Target{Scheme: "mem", Path: "/" + memRoot}, remote.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	r.conn = c
	r.safety = &planner.Safety{Target: "mem:/" + memRoot,
		InSync: func(context.Context) (int64, error) { return 100, nil }}
	o := ShipOptions{Source: r.src, Caps: c.Caps(), Rec: r.reg, Records: r.reg, Safety: r.safety,
		Logf: t.Logf, Now: func() time.Time { return shipNow }}
	if opt != nil {
		opt(&o)
	}
	r.ship = NewShipper(o)
	return r
}

// local writes a source file with the given mtime and returns its digest.
func (r *shipRig) local(rel, data string, mtime time.Time) string {
	r.t.Helper()
	p := filepath.Join(r.src, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		r.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		r.t.Fatal(err)
	}
	if err := os.Chtimes(p, mtime, mtime); err != nil {
		r.t.Fatal(err)
	}
	sum, err := digest.File(p)
	if err != nil {
		r.t.Fatal(err)
	}
	return sum
}

// remote puts a file on the remote as someone else would.
func (r *shipRig) remote(rel, data string, mtime time.Time) {
	r.fs.WriteFile(memRoot+"/"+rel, []byte(data), mtime)
}

// tree is every file under the target, temporary ones included.
func (r *shipRig) tree() map[string]string {
	out := map[string]string{}
	for p, data := range r.fs.Tree() {
		if rel, ok := strings.CutPrefix(p, memRoot+"/"); ok {
			out[rel] = data
		}
	}
	return out
}

func (r *shipRig) stat(rel string) entry.FileInfo {
	r.t.Helper()
	st, err := r.fs.Conn().Stat(context.Background(), memRoot+"/"+rel)
	if err != nil {
		r.t.Fatal(err)
	}
	return st
}

func (r *shipRig) handle(it queue.Item) error {
	return r.ship.Handle(context.Background(), r.conn, it)
}

// check compares the remote's files, the recorded rows and the counters
// with what a case wants.
func (r *shipRig) check(tree map[string]string, rows map[string]entry.Entry, want counts) {
	r.t.Helper()
	if got := r.tree(); !maps.Equal(got, tree) {
		r.t.Errorf("remote holds %q, want %q", got, tree)
	}
	if got := r.reg.all(r.t); !maps.Equal(got, rows) {
		r.t.Errorf("recorded:\n%s\nwant:\n%s", fmtRows(got), fmtRows(rows))
	}
	if got := countsOf(&r.ship.Counters); got != want {
		r.t.Errorf("counters %+v, want %+v", got, want)
	}
}

func fmtRows(rows map[string]entry.Entry) string {
	var b strings.Builder
	for _, p := range slices.Sorted(maps.Keys(rows)) {
		fmt.Fprintf(&b, "  %+v\n", rows[p])
	}
	return b.String()
}

// shippedRow is the row of a file ferry put on the remote at m0 and recorded.
func shippedRow(p, hash string, size int64) entry.Entry {
	return entry.Entry{Path: p, LocalSize: size, LocalMtime: m0.UnixNano(), RemoteSize: size, RemoteMtime: m0.UnixNano(),
		Hash: hash, State: entry.Done, Action: entry.Upload}
}

// claimedRow is e as a worker gets it: pending work, claimed.
func claimedRow(e entry.Entry, a entry.Action) entry.Entry {
	e.State, e.Action, e.DirtySince = entry.Transferring, a, m1.UnixNano()
	return e
}

// doneRow is e as the Shipper records it once its action is carried out.
func doneRow(e entry.Entry) entry.Entry {
	e.MarkDone()
	return e
}

func TestShipUploadNew(t *testing.T) {
	r := newShipRig(t, nil)
	sum := r.local("d/a.txt", "hello", m0)
	e := claimedRow(entry.Entry{Path: "d/a.txt", LocalSize: 5, LocalMtime: m0.UnixNano(), RemoteSize: -1}, entry.Upload)
	r.reg.seed(e)
	if err := r.handle(queue.Item{Path: e.Path, Size: 5, Entry: e}); err != nil {
		t.Fatal(err)
	}
	want := e
	want.RemoteSize, want.RemoteMtime, want.Hash = 5, m0.UnixNano(), sum
	r.check(map[string]string{"d/a.txt": "hello"}, map[string]entry.Entry{"d/a.txt": doneRow(want)},
		counts{Transferred: 1, Bytes: 5})
	if st := r.stat("d/a.txt"); !st.ModTime.Equal(m0) {
		t.Errorf("remote mtime %v, want the local %v", st.ModTime, m0)
	}
	if n := r.fs.Puts(memRoot + "/d/a.txt"); n != 1 {
		t.Errorf("%d uploads of d/a.txt, want 1", n)
	}
}

// TestShipRecheckAdopts: a remote file with the local size and mtime that
// ferry never recorded (a run died before recording it, or another tool
// put it there) is adopted without sending. The remote copy holds
// different bytes of the same size, so a send would show.
func TestShipRecheckAdopts(t *testing.T) {
	r := newShipRig(t, nil)
	sum := r.local("d/a.txt", "hello", m1)
	r.remote("d/a.txt", "HELLO", m1)
	e := claimedRow(entry.Entry{Path: "d/a.txt", LocalSize: 5, LocalMtime: m1.UnixNano(), RemoteSize: -1, Recheck: true}, entry.Upload)
	r.reg.seed(e)
	if err := r.handle(queue.Item{Path: e.Path, Size: 5, Entry: e}); err != nil {
		t.Fatal(err)
	}
	want := e
	want.RemoteSize, want.RemoteMtime, want.Hash = 5, m1.UnixNano(), sum
	r.check(map[string]string{"d/a.txt": "HELLO"}, map[string]entry.Entry{"d/a.txt": doneRow(want)}, counts{Adopted: 1})
	if calls := r.fs.Calls(); calls["put"] != 0 {
		t.Errorf("%d puts for an adopted file", calls["put"])
	}
}

// TestShipRecheckConflict: ferry shipped a.txt at m0; since then the file
// was saved locally (m1) and someone else replaced the remote copy (m2).
// The policy decides what becomes of their copy.
func TestShipRecheckConflict(t *testing.T) {
	aside := entry.ConflictName("d/a.txt", shipNow)
	tests := []struct {
		policy planner.Conflict
		tree   map[string]string
		sent   bool
	}{
		{planner.KeepBoth, map[string]string{"d/a.txt": "hello world", aside: "theirs"}, true},
		{planner.Overwrite, map[string]string{"d/a.txt": "hello world"}, true},
		{planner.Skip, map[string]string{"d/a.txt": "theirs"}, false},
	}
	for _, tc := range tests {
		t.Run(tc.policy.String(), func(t *testing.T) {
			r := newShipRig(t, func(o *ShipOptions) { o.Conflict = tc.policy })
			old := shippedRow("d/a.txt", "xxh64:0000000000000001", 5)
			r.reg.seed(old)
			sum := r.local("d/a.txt", "hello world", m1)
			r.remote("d/a.txt", "theirs", m2)
			e := old
			e.LocalSize, e.LocalMtime, e.Recheck = 11, m1.UnixNano(), true
			e = claimedRow(e, entry.Upload)
			err := r.handle(queue.Item{Path: e.Path, Size: 11, Entry: e})
			rows := map[string]entry.Entry{"d/a.txt": old}
			c := counts{Conflicts: 1}
			if tc.sent {
				if err != nil {
					t.Fatal(err)
				}
				want := e
				want.RemoteSize, want.RemoteMtime, want.Hash = 11, m1.UnixNano(), sum
				rows["d/a.txt"] = doneRow(want)
				c.Transferred, c.Bytes = 1, 11
			} else if !errors.Is(err, errConflictSkipped) {
				t.Fatalf("err = %v, want the skip refusal", err)
			}
			r.check(tc.tree, rows, c)
			var copies []string
			if err := r.fs.Conn().List(context.Background(), memRoot+"/d", func(fi entry.FileInfo) error {
				if entry.IsConflictCopy(fi.Name) {
					copies = append(copies, fi.Name)
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			if wantCopies := tc.policy == planner.KeepBoth; (len(copies) == 1) != wantCopies || len(copies) > 1 {
				t.Errorf("conflict copies listed: %q (keep-both: %v)", copies, wantCopies)
			}
		})
	}
}

// TestShipTouch: same bytes, new local mtime: only the remote mtime moves.
func TestShipTouch(t *testing.T) {
	r := newShipRig(t, nil)
	sum := r.local("d/a.txt", "hello", m1)
	old := shippedRow("d/a.txt", sum, 5)
	r.reg.seed(old)
	r.remote("d/a.txt", "hello", m0)
	e := old
	e.LocalMtime, e.Recheck = m1.UnixNano(), true
	e = claimedRow(e, entry.Touch)
	if err := r.handle(queue.Item{Path: e.Path, Entry: e}); err != nil {
		t.Fatal(err)
	}
	want := e
	want.RemoteMtime = m1.UnixNano()
	r.check(map[string]string{"d/a.txt": "hello"}, map[string]entry.Entry{"d/a.txt": doneRow(want)}, counts{Touched: 1})
	if st := r.stat("d/a.txt"); !st.ModTime.Equal(m1) {
		t.Errorf("remote mtime %v, want %v", st.ModTime, m1)
	}
	if calls := r.fs.Calls(); calls["put"] != 0 || calls["chtimes"] != 1 {
		t.Errorf("calls %v: want one chtimes and no put", calls)
	}
}

// TestShipCleanup: a temporary file a dead run left is removed and its row
// forgotten; the real file beside it stays.
func TestShipCleanup(t *testing.T) {
	r := newShipRig(t, nil)
	tmp := "d/" + entry.TempPrefix + "0123456789ab-a.txt"
	r.remote(tmp, "hal", m0)
	r.remote("d/a.txt", "hello", m0)
	e := claimedRow(entry.Entry{Path: tmp, LocalSize: -1, RemoteSize: -1}, entry.Cleanup)
	r.reg.seed(e, shippedRow("d/a.txt", "xxh64:1", 5))
	if err := r.handle(queue.Item{Path: e.Path, Entry: e}); err != nil {
		t.Fatal(err)
	}
	r.check(map[string]string{"d/a.txt": "hello"}, map[string]entry.Entry{"d/a.txt": shippedRow("d/a.txt", "xxh64:1", 5)}, counts{Cleaned: 1})
}

// TestShipDelete: a deletion goes only when the remote file is still what
// ferry recorded, and waits while something failed beside it.
func TestShipDelete(t *testing.T) {
	old := shippedRow("d/old.txt", "xxh64:1", 5)
	e := claimedRow(old, entry.Delete)
	e.Lane, e.Recheck = entry.LaneDeletes, true
	tests := []struct {
		name     string
		remote   string
		failed   string // a directory where something failed this pass
		wantErr  string
		tree     map[string]string
		rows     map[string]entry.Entry
		counters counts
	}{
		{name: "matches the record", remote: "olddd",
			tree: map[string]string{}, rows: map[string]entry.Entry{}, counters: counts{Deleted: 1}},
		{name: "changed size on the remote", remote: "theirs",
			wantErr: "changed on the remote since ferry recorded it; not deleted",
			tree:    map[string]string{"d/old.txt": "theirs"}, rows: map[string]entry.Entry{"d/old.txt": e}, counters: counts{Conflicts: 1}},
		{name: "held back after a failure", remote: "olddd", failed: "d",
			tree: map[string]string{"d/old.txt": "olddd"}, rows: map[string]entry.Entry{"d/old.txt": func() entry.Entry {
				p := e
				p.State = entry.Pending
				return p
			}()}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newShipRig(t, nil)
			r.remote("d/old.txt", tc.remote, m0)
			r.reg.seed(e)
			if tc.failed != "" {
				r.safety.Failed(tc.failed)
			}
			err := r.handle(queue.Item{Path: e.Path, Entry: e})
			if tc.wantErr == "" && err != nil {
				t.Fatal(err)
			}
			if tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("err = %v, want %q", err, tc.wantErr)
			}
			r.check(tc.tree, tc.rows, tc.counters)
		})
	}
}

// TestShipMove: a file the user moved is renamed on the remote, not sent
// again; the registry moves with it.
func TestShipMove(t *testing.T) {
	r := newShipRig(t, nil)
	sum := r.local("new/a.txt", "hello", m0)
	from := shippedRow("old/a.txt", sum, 5)
	r.reg.seed(from)
	r.remote("old/a.txt", "hello", m0)
	to := claimedRow(shippedRow("new/a.txt", sum, 5), entry.Upload)
	if err := r.handle(queue.Item{Path: to.Path, Entry: to, Move: &queue.Move{From: from}}); err != nil {
		t.Fatal(err)
	}
	r.check(map[string]string{"new/a.txt": "hello"}, map[string]entry.Entry{"new/a.txt": doneRow(to)}, counts{Moved: 1})
	if calls := r.fs.Calls(); calls["put"] != 0 || calls["rename"] != 1 {
		t.Errorf("calls %v: want one rename and no put", calls)
	}
	if st := r.stat("new/a.txt"); !st.ModTime.Equal(m0) {
		t.Errorf("moved copy's mtime %v, want %v", st.ModTime, m0)
	}
}

// TestShipTypeChangeFileToDir: the source has a directory d where the
// remote holds the file d ferry shipped. With --delete the file goes and
// the directory is made, within the deletion limit; without it nothing
// changes and the error says what would.
func TestShipTypeChangeFileToDir(t *testing.T) {
	file := shippedRow("d", "xxh64:1", 1)
	// What the planner puts in the registry for d: the directory to make,
	// carrying what the file in its way was.
	planned := entry.Entry{Path: "d", IsDir: true, LocalSize: -1, RemoteSize: 1, RemoteMtime: m0.UnixNano(), Hash: "xxh64:1",
		State: entry.Pending, Action: entry.Mkdir, DirtySince: m1.UnixNano(), Recheck: true}
	made := planned
	made.MarkDone()
	made.RemoteSize, made.RemoteMtime, made.Hash = -1, 0, ""
	tests := []struct {
		name     string
		rec      entry.Entry // the row of d before the item runs
		delete   bool
		max      planner.MaxDelete
		remote   string // the file d's content on the remote
		wantErr  func(error) bool
		madeDir  bool
		counters counts
		replaced [2]int64 // Safety's used, refused
	}{
		{name: "delete, planned row", rec: planned, delete: true, remote: "x", madeDir: true,
			counters: counts{Deleted: 1}, replaced: [2]int64{1, 0}},
		{name: "delete, the file's row", rec: file, delete: true, remote: "x", madeDir: true,
			counters: counts{Deleted: 1}, replaced: [2]int64{1, 0}},
		{name: "no delete", rec: planned, remote: "x",
			wantErr: func(err error) bool { return strings.Contains(err.Error(), "--delete would replace it") }},
		{name: "max delete 0", rec: planned, delete: true, max: planner.MaxDelete{N: 0, Set: true}, remote: "x",
			wantErr:  func(err error) bool { return errors.Is(err, planner.ErrTooManyDeletes) },
			replaced: [2]int64{0, 1}},
		{name: "changed by someone else", rec: planned, delete: true, remote: "yy",
			wantErr: func(err error) bool {
				return errors.Is(err, planner.ErrKept) && strings.Contains(err.Error(), "changed by someone else")
			},
			counters: counts{Conflicts: 1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newShipRig(t, func(o *ShipOptions) { o.Delete = tc.delete })
			r.safety.MaxDelete = tc.max
			r.remote("d", tc.remote, m0)
			r.reg.seed(tc.rec)
			it := claimedRow(planned, entry.Mkdir)
			err := r.handle(queue.Item{Path: "d", Entry: it})
			tree := map[string]string{"d": tc.remote}
			rows := map[string]entry.Entry{"d": tc.rec}
			if tc.madeDir {
				if err != nil {
					t.Fatal(err)
				}
				tree = map[string]string{}
				want := made
				rows["d"] = want
			} else if err == nil || !tc.wantErr(err) {
				t.Fatalf("err = %v", err)
			}
			r.check(tree, rows, tc.counters)
			if st := r.stat("d"); st.IsDir != tc.madeDir {
				t.Errorf("remote d is a directory: %v, want %v", st.IsDir, tc.madeDir)
			}
			if used, refused := r.safety.Replacements(); [2]int64{used, refused} != tc.replaced {
				t.Errorf("replacements used %d, refused %d; want %v", used, refused, tc.replaced)
			}
		})
	}
}

// TestShipResultFailure: an item that gives up is recorded failed with its
// attempts, and holds back the deletions beside it for the rest of the
// pass.
func TestShipResultFailure(t *testing.T) {
	r := newShipRig(t, nil)
	r.local("d/a.txt", "hello", m1)
	r.remote("d/b.txt", "bbbbb", m0)
	r.fs.FailPut = func(p string) error {
		if p == memRoot+"/d/a.txt" {
			return remote.Errorf(remote.KindPermission, "put", "d/a.txt", errors.New("550 permission denied"))
		}
		return nil
	}
	e := claimedRow(entry.Entry{Path: "d/a.txt", LocalSize: 5, LocalMtime: m1.UnixNano(), RemoteSize: -1, Attempts: 1, LastError: "earlier"}, entry.Upload)
	del := claimedRow(shippedRow("d/b.txt", "xxh64:2", 5), entry.Delete)
	r.reg.seed(e, del)
	it := queue.Item{Path: e.Path, Size: 5, Entry: e}
	err := r.handle(it)
	if err == nil {
		t.Fatal("upload through a failing Put succeeded")
	}
	if r.safety.HeldBack("d/b.txt") {
		t.Fatal("a deletion is held back before the failure is final")
	}
	r.ship.Result(it, err, 3)
	failed := e
	failed.State, failed.Attempts, failed.LastError = entry.Failed, 4, err.Error()
	r.check(map[string]string{"d/b.txt": "bbbbb"}, map[string]entry.Entry{"d/a.txt": failed, "d/b.txt": del}, counts{Failed: 1})
	for p, want := range map[string]bool{"d/b.txt": true, "d/sub/c.txt": true, "e/b.txt": false, "b.txt": false} {
		if got := r.safety.HeldBack(p); got != want {
			t.Errorf("HeldBack(%q) = %v, want %v", p, got, want)
		}
	}
	// The sibling's deletion now waits.
	if err := r.handle(queue.Item{Path: del.Path, Entry: del}); err != nil {
		t.Fatal(err)
	}
	pending := del
	pending.State = entry.Pending
	r.check(map[string]string{"d/b.txt": "bbbbb"}, map[string]entry.Entry{"d/a.txt": failed, "d/b.txt": pending}, counts{Failed: 1})
}

// TestShipTypeChangeAboveUpload: the file ferry shipped as d stands where
// an upload needs the directory d. With --delete it goes, and its row
// with it: nothing else records d, so a row left behind would describe a
// file the remote no longer has.
func TestShipTypeChangeAboveUpload(t *testing.T) {
	r := newShipRig(t, func(o *ShipOptions) { o.Delete = true })
	file := shippedRow("d", "xxh64:1", 1)
	r.reg.seed(file)
	r.remote("d", "x", m0)
	sum := r.local("d/x.txt", "hello", m1)
	e := claimedRow(entry.Entry{Path: "d/x.txt", LocalSize: 5, LocalMtime: m1.UnixNano(), RemoteSize: -1}, entry.Upload)
	if err := r.handle(queue.Item{Path: e.Path, Size: 5, Entry: e}); err != nil {
		t.Fatal(err)
	}
	want := e
	want.RemoteSize, want.RemoteMtime, want.Hash = 5, m1.UnixNano(), sum
	r.check(map[string]string{"d/x.txt": "hello"}, map[string]entry.Entry{"d/x.txt": doneRow(want)},
		counts{Transferred: 1, Bytes: 5, Deleted: 1})
}
