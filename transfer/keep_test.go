package transfer

import (
	"bytes"
	"context"
	"errors"
	"ferry/entry"
	"ferry/queue"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// memBlobs keeps blobs in memory, as the Git stage's object store keeps
// them on disk: a blob is kept only when closed with all its bytes.
type memBlobs struct {
	mu       sync.Mutex
	kept     map[string][]byte
	open     int // blobs begun and neither closed nor aborted
	failNew  error
	failFrom int // a Write fails once this many bytes came (0 = never)
}

type memBlob struct {
	b    *memBlobs
	size int64
	buf  bytes.Buffer
}

func (m *memBlobs) NewBlob(size int64) (Blob, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.failNew != nil {
		return nil, m.failNew
	}
	m.open++
	return &memBlob{b: m, size: size}, nil
}

func (b *memBlob) Write(p []byte) (int, error) {
	if f := b.b.failFrom; f > 0 && b.buf.Len()+len(p) >= f {
		return 0, errors.New("no space left on device")
	}
	return b.buf.Write(p)
}

func (b *memBlob) Close() (string, error) {
	b.b.mu.Lock()
	defer b.b.mu.Unlock()
	b.b.open--
	if int64(b.buf.Len()) != b.size {
		return "", fmt.Errorf("blob: %d bytes written, %d announced", b.buf.Len(), b.size)
	}
	id := fmt.Sprintf("blob-%d-%x", b.size, b.buf.Bytes()[:min(4, b.buf.Len())])
	if b.b.kept == nil {
		b.b.kept = map[string][]byte{}
	}
	b.b.kept[id] = bytes.Clone(b.buf.Bytes())
	return id, nil
}

func (b *memBlob) Abort() {
	b.b.mu.Lock()
	defer b.b.mu.Unlock()
	b.b.open--
}

// TestUploadKeepsWhatItSent: the kept blob holds exactly the bytes the
// server received, from the upload's own read; a failed upload keeps
// nothing, and a blob that cannot be kept fails the upload before the
// file appears under its name.
func TestUploadKeepsWhatItSent(t *testing.T) {
	ctx := context.Background()
	content := bytes.Repeat([]byte("0123456789abcdef"), 40_000) // 640 KB: many reads
	cases := []struct {
		name    string
		blobs   *memBlobs
		change  bool // the file changes while it is read
		wantErr bool
	}{
		{"kept", &memBlobs{}, false, false},
		{"changed while read", &memBlobs{}, true, true},
		{"blob cannot begin", &memBlobs{failNew: errors.New("read-only file system")}, false, true},
		{"blob write fails", &memBlobs{failFrom: 100_000}, false, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, root := fileConn(t)
			src := filepath.Join(t.TempDir(), "page.html")
			if err := os.WriteFile(src, content, 0o644); err != nil {
				t.Fatal(err)
			}
			conn := c
			if tc.change {
				conn = &hookConn{Conn: c, fn: func() {
					f, _ := os.OpenFile(src, os.O_APPEND|os.O_WRONLY, 0)
					f.Write([]byte("more"))
					f.Close()
				}}
			}
			got, err := Upload(ctx, conn, src, "page.html", nil, tc.blobs)
			if tc.blobs.open != 0 {
				t.Errorf("%d blobs left open", tc.blobs.open)
			}
			onRemote, rerr := os.ReadFile(filepath.Join(root, "page.html"))
			if tc.wantErr {
				if err == nil {
					t.Fatalf("upload succeeded: %+v", got)
				}
				if len(tc.blobs.kept) != 0 || got.GitBlob != "" {
					t.Fatalf("a failed upload kept %d blobs (%q)", len(tc.blobs.kept), got.GitBlob)
				}
				if tc.blobs.failFrom > 0 && rerr == nil {
					t.Fatal("the file is on the remote though its bytes could not be kept")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			kept, ok := tc.blobs.kept[got.GitBlob]
			if !ok || len(tc.blobs.kept) != 1 {
				t.Fatalf("Shipped.GitBlob %q; kept %d blobs", got.GitBlob, len(tc.blobs.kept))
			}
			if !bytes.Equal(kept, onRemote) || !bytes.Equal(kept, content) {
				t.Fatalf("kept %d bytes, the remote holds %d, the file has %d", len(kept), len(onRemote), len(content))
			}
		})
	}
}

// TestShipKeepsForGit: with Keep set, what the Shipper records of an
// upload, and of a remote copy it adopts, names the blob kept of those
// bytes; a touch keeps the blob the path had (the bytes did not change).
func TestShipKeepsForGit(t *testing.T) {
	blobs := &memBlobs{}
	r := newShipRig(t, func(o *ShipOptions) { o.Keep = blobs })
	r.local("d/new.txt", "fresh bytes", m1)
	up := claimedRow(entry.Entry{Path: "d/new.txt", LocalSize: 11, LocalMtime: m1.UnixNano(), RemoteSize: -1}, entry.Upload)
	r.reg.seed(up)
	if err := r.handle(queue.Item{Path: up.Path, Size: 11, Entry: up}); err != nil {
		t.Fatal(err)
	}
	r.local("d/same.txt", "hello", m1)
	r.remote("d/same.txt", "hello", m1)
	ad := claimedRow(entry.Entry{Path: "d/same.txt", LocalSize: 5, LocalMtime: m1.UnixNano(), RemoteSize: -1, Recheck: true}, entry.Upload)
	r.reg.seed(ad)
	if err := r.handle(queue.Item{Path: ad.Path, Size: 5, Entry: ad}); err != nil {
		t.Fatal(err)
	}
	rows := r.reg.all(t)
	for p, want := range map[string]string{"d/new.txt": "fresh bytes", "d/same.txt": "hello"} {
		id := rows[p].GitBlob
		if got, ok := blobs.kept[id]; !ok || string(got) != want {
			t.Errorf("%s: recorded blob %q holds %q, want %q", p, id, got, want)
		}
	}
	if blobs.open != 0 || len(blobs.kept) != 2 {
		t.Fatalf("%d blobs kept, %d left open", len(blobs.kept), blobs.open)
	}
}

// TestShipKeepsExecBit: what the Shipper records of an upload, and of a
// remote copy it adopts, says whether the file had an execute bit (any of
// the three) when the read that kept its bytes opened it.
func TestShipKeepsExecBit(t *testing.T) {
	r := newShipRig(t, func(o *ShipOptions) { o.Keep = &memBlobs{} })
	modes := map[string]os.FileMode{"run.sh": 0o755, "page.html": 0o644, "group.sh": 0o610, "own.sh": 0o700, "other.sh": 0o601, "ro": 0o444}
	for p, mode := range modes {
		r.local(p, "bytes of "+p, m1)
		if err := os.Chmod(filepath.Join(r.src, p), mode); err != nil {
			t.Fatal(err)
		}
		up := claimedRow(entry.Entry{Path: p, LocalSize: int64(len("bytes of " + p)), LocalMtime: m1.UnixNano(), RemoteSize: -1}, entry.Upload)
		r.reg.seed(up)
		if err := r.handle(queue.Item{Path: up.Path, Size: up.LocalSize, Entry: up}); err != nil {
			t.Fatal(err)
		}
	}
	for p, mode := range map[string]os.FileMode{"adopt.sh": 0o750, "adopt.txt": 0o640} {
		r.local(p, "there", m1)
		r.remote(p, "there", m1)
		if err := os.Chmod(filepath.Join(r.src, p), mode); err != nil {
			t.Fatal(err)
		}
		modes[p] = mode
		ad := claimedRow(entry.Entry{Path: p, LocalSize: 5, LocalMtime: m1.UnixNano(), RemoteSize: -1, Recheck: true}, entry.Upload)
		r.reg.seed(ad)
		if err := r.handle(queue.Item{Path: p, Size: 5, Entry: ad}); err != nil {
			t.Fatal(err)
		}
	}
	rows := r.reg.all(t)
	for p, mode := range modes {
		if e := rows[p]; e.GitBlob == "" || e.GitExec != (mode&0o111 != 0) {
			t.Errorf("%s (%v): recorded blob %q, exec %v", p, mode, e.GitBlob, e.GitExec)
		}
	}
	if n := r.ship.Counters.Adopted.Load(); n != 2 {
		t.Errorf("%d adopted, want 2", n)
	}
}

// TestShipSetKeep: a Shipper built without Keep (the daemon's Git stage
// could not be opened with the session) keeps nothing until SetKeep; an
// upload under way then stays unkept, whole, and Unkept counts it until it
// is recorded. From then on uploads, and the adoptions of the rechecks
// that follow (what shipped unkept), record the blob of their bytes.
func TestShipSetKeep(t *testing.T) {
	r := newShipRig(t, nil)
	blobs := &memBlobs{}
	r.local("before.txt", "unkept", m1)
	b := claimedRow(entry.Entry{Path: "before.txt", LocalSize: 6, LocalMtime: m1.UnixNano(), RemoteSize: -1}, entry.Upload)
	r.reg.seed(b)
	var during int64 = -1
	c := &hookConn{Conn: r.conn, fn: func() {
		r.ship.SetKeep(blobs) // the stage opens while the upload reads
		during = r.ship.Unkept()
	}}
	if err := r.ship.Handle(context.Background(), c, queue.Item{Path: b.Path, Size: 6, Entry: b}); err != nil {
		t.Fatal(err)
	}
	if id := r.reg.all(t)["before.txt"].GitBlob; id != "" || len(blobs.kept) != 0 {
		t.Fatalf("the upload begun before SetKeep kept %q (%d blobs)", id, len(blobs.kept))
	}
	if during != 1 || r.ship.Unkept() != 0 {
		t.Fatalf("Unkept: %d during the unkept upload, %d after it; want 1, 0", during, r.ship.Unkept())
	}

	r.local("after.txt", "kept bytes", m1)
	a := claimedRow(entry.Entry{Path: "after.txt", LocalSize: 10, LocalMtime: m1.UnixNano(), RemoteSize: -1}, entry.Upload)
	r.reg.seed(a)
	if err := r.handle(queue.Item{Path: a.Path, Size: 10, Entry: a}); err != nil {
		t.Fatal(err)
	}
	// What the planner sends for a file in sync without a blob: a recheck,
	// which adopts the remote copy and keeps the local bytes.
	again := r.reg.all(t)["before.txt"]
	again.State, again.Recheck = entry.Transferring, true
	r.reg.seed(again)
	if err := r.handle(queue.Item{Path: again.Path, Size: 6, Entry: again}); err != nil {
		t.Fatal(err)
	}
	rows := r.reg.all(t)
	for p, want := range map[string]string{"after.txt": "kept bytes", "before.txt": "unkept"} {
		id := rows[p].GitBlob
		if got, ok := blobs.kept[id]; !ok || string(got) != want {
			t.Errorf("%s: recorded blob %q holds %q, want %q", p, id, got, want)
		}
	}
	if n := r.ship.Counters.Adopted.Load(); n != 1 {
		t.Errorf("%d adopted, want 1 (before.txt, not sent again)", n)
	}
	if r.ship.Unkept() != 0 {
		t.Errorf("Unkept %d with nothing under way", r.ship.Unkept())
	}
}
