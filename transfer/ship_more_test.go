package transfer

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"ferry/entry"
	"ferry/queue"
)

// TestShipResultVanished: a file deleted locally since the scan is not a
// failure: never shipped, it is forgotten; shipped, its row stays as the
// remote copy it describes, for the next scan to settle.
func TestShipResultVanished(t *testing.T) {
	r := newShipRig(t, nil)
	fresh := claimedRow(entry.Entry{Path: "new.txt", LocalSize: 3, RemoteSize: -1}, entry.Upload)
	old := claimedRow(shippedRow("old.txt", "xxh64:1", 5), entry.Upload)
	r.reg.seed(fresh, old)
	for _, e := range []entry.Entry{fresh, old} {
		err := r.handle(queue.Item{Path: e.Path, Entry: e})
		if !errors.Is(err, ErrVanished) {
			t.Fatalf("%s: %v, want ErrVanished", e.Path, err)
		}
		r.ship.Result(queue.Item{Path: e.Path, Entry: e}, err, 1)
	}
	kept := old
	kept.State = entry.Done
	r.check(map[string]string{}, map[string]entry.Entry{"old.txt": kept}, counts{})
	if r.safety.HeldBack("x") {
		t.Error("a vanished file held deletions back")
	}
}

// TestShipRemoveDir: a directory is deleted when empty, kept (as one ferry
// made) when it holds something ferry keeps, and forgotten when gone.
func TestShipRemoveDir(t *testing.T) {
	dir := claimedRow(entry.Entry{Path: "d", IsDir: true, RemoteSize: -1, Lane: entry.LaneDirDeletes}, entry.Delete)
	cases := []struct {
		name  string
		setup func(r *shipRig)
		tree  map[string]string
		rows  map[string]entry.Entry
		count counts
	}{
		{"empty", func(r *shipRig) { r.fs.Conn().Mkdir(context.Background(), memRoot+"/d") },
			map[string]string{}, map[string]entry.Entry{}, counts{Deleted: 1}},
		{"holds a conflict copy", func(r *shipRig) { r.remote("d/a.ferry-conflict-x.txt", "theirs", m2) },
			map[string]string{"d/a.ferry-conflict-x.txt": "theirs"},
			map[string]entry.Entry{"d": func() entry.Entry { k := dir; k.KeepDir(); return k }()}, counts{}},
		{"gone", func(*shipRig) {}, map[string]string{}, map[string]entry.Entry{}, counts{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := newShipRig(t, nil)
			tc.setup(r)
			r.reg.seed(dir)
			if err := r.ship.Remove(context.Background(), r.conn, dir); err != nil {
				t.Fatal(err)
			}
			r.check(tc.tree, tc.rows, tc.count)
		})
	}
}

// TestShipMoveFallsBack: when the remote copy of the old name is not what
// ferry shipped, the moved file is uploaded under its new name instead,
// and the old remote copy is left to the deletions.
func TestShipMoveFallsBack(t *testing.T) {
	r := newShipRig(t, nil)
	sum := r.local("new/a.txt", "hello", m0)
	from := shippedRow("old/a.txt", sum, 5)
	r.reg.seed(from)
	r.remote("old/a.txt", "someone else's", m2)
	to := claimedRow(shippedRow("new/a.txt", sum, 5), entry.Upload)
	if err := r.handle(queue.Item{Path: to.Path, Entry: to, Move: &queue.Move{From: from}}); err != nil {
		t.Fatal(err)
	}
	want := to
	want.RemoteSize, want.RemoteMtime, want.Hash = 5, m0.UnixNano(), sum
	r.check(map[string]string{"new/a.txt": "hello", "old/a.txt": "someone else's"},
		map[string]entry.Entry{"old/a.txt": from, "new/a.txt": doneRow(want)}, counts{Transferred: 1, Bytes: 5})
	if calls := r.fs.Calls(); calls["rename"] != 0 {
		t.Errorf("calls %v: renamed a copy ferry did not ship", calls)
	}
}

// TestShipMoveOption: with Move (--move) the local file goes once its
// upload is recorded, unless it changed since it was read.
func TestShipMoveOption(t *testing.T) {
	for _, changed := range []bool{false, true} {
		t.Run(fmt.Sprintf("changed=%v", changed), func(t *testing.T) {
			r := newShipRig(t, func(o *ShipOptions) { o.Move = true })
			r.local("a.txt", "hello", m0)
			e := claimedRow(entry.Entry{Path: "a.txt", LocalSize: 5, LocalMtime: m0.UnixNano(), RemoteSize: -1}, entry.Upload)
			r.reg.seed(e)
			if changed {
				r.reg.onFlush = func() { r.local("a.txt", "hello again", m1) }
			}
			if err := r.handle(queue.Item{Path: e.Path, Size: 5, Entry: e}); err != nil {
				t.Fatal(err)
			}
			_, err := os.Stat(filepath.Join(r.src, "a.txt"))
			if changed != (err == nil) {
				t.Fatalf("local file after --move (changed since read: %v): %v", changed, err)
			}
		})
	}
}

// TestShipTypeChangeDirKept: a directory in the way of a file is not
// removed when it holds a conflict copy or an excluded file; nothing in it
// is deleted.
func TestShipTypeChangeDirKept(t *testing.T) {
	for _, tc := range []struct{ name, inside, want string }{
		{"conflict copy", "x/a.ferry-conflict-20240101-000000.txt", "holds the conflict copy"},
		{"excluded", "x/keep.log", "which the excludes leave alone"},
		{"changed by someone", "x/b.txt", "changed on the remote since ferry recorded it"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newShipRig(t, func(o *ShipOptions) { o.Delete = true })
			r.safety.Excluded = func(p string, _ bool) bool { return strings.HasSuffix(p, ".log") }
			if tc.name == "conflict copy" {
				tc.inside = "x/" + entry.ConflictName("a.txt", m2)
			}
			r.remote(tc.inside, "kept", m2)
			r.reg.seed(shippedRow("x/b.txt", "xxh64:1", 5))
			r.local("x", "now a file", m1)
			e := claimedRow(entry.Entry{Path: "x", LocalSize: 10, LocalMtime: m1.UnixNano(), RemoteSize: -1, Recheck: true}, entry.Upload)
			err := r.handle(queue.Item{Path: "x", Size: 10, Entry: e})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			if got := r.tree(); got[tc.inside] != "kept" || len(got) != 1 {
				t.Fatalf("remote holds %q", got)
			}
		})
	}
}

func TestDirsCache(t *testing.T) {
	r := newShipRig(t, nil)
	ctx := context.Background()
	d := NewDirs()
	if err := d.Ensure(ctx, r.conn, "a/b/c"); err != nil {
		t.Fatal(err)
	}
	n := r.fs.Calls()["mkdir"]
	d.Move("a/b", "z/y")
	for _, dir := range []string{"z/y/c", "z/y", "z"} {
		if err := d.Ensure(ctx, r.conn, dir); err != nil {
			t.Fatal(err)
		}
	}
	if got := r.fs.Calls()["mkdir"]; got != n {
		t.Errorf("%d mkdirs for directories known after a move", got-n)
	}
	if err := d.Ensure(ctx, r.conn, "a/b/c"); err != nil {
		t.Fatal(err)
	}
	if got := r.fs.Calls()["mkdir"]; got == n {
		t.Error("the old name is still known after the move")
	}
}

func TestRateMeter(t *testing.T) {
	var m rateMeter
	m.note(100, time.Second) // too small to tell
	if m.get() != 0 {
		t.Fatalf("a 100-byte file set the rate: %v", m.get())
	}
	m.note(1<<20, time.Second)
	m.note(1<<20, time.Second/2)
	if got, want := m.get(), 0.8*(1<<20)+0.2*(2<<20); math.Abs(got-want) > 1 {
		t.Fatalf("rate %v, want %v", got, want)
	}
}
