package mirror

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"ferry/entry"
	"ferry/remote"
)

// refusing is a connection whose server refuses uploads to one path while
// refuse is set, the way a server refuses a name it does not allow; and
// whose listing of listDir waits until that refusal has happened.
type refusing struct {
	remote.Conn
	path    string
	refuse  *atomic.Bool
	refused chan struct{} // closed at the first refusal
	once    *sync.Once
	listDir string
}

func (c refusing) Put(ctx context.Context, p string, r io.Reader, mtime time.Time) (int64, error) {
	if p == c.path && c.refuse.Load() {
		c.once.Do(func() { close(c.refused) })
		return 0, remote.Errorf(remote.KindPermission, "put", p, errors.New("553 refused by the test"))
	}
	return c.Conn.Put(ctx, p, r, mtime)
}

func (c refusing) List(ctx context.Context, dir string, fn func(entry.FileInfo) error) error {
	if c.listDir != "" && dir == c.listDir {
		select {
		case <-c.refused:
		case <-time.After(30 * time.Second):
		}
	}
	return c.Conn.List(ctx, dir, fn)
}

// refuser wraps e's opener: uploads to p are refused while the returned
// flag is set (it starts set).
func refuser(e *env, o *Options, p, listDir string) *atomic.Bool {
	refuse := &atomic.Bool{}
	refuse.Store(true)
	refused, once := make(chan struct{}), &sync.Once{}
	open := o.Open
	o.Open = func(ctx context.Context, t *remote.Target, ro remote.Options) (remote.Conn, error) {
		c, err := open(ctx, t, ro)
		if err != nil {
			return nil, err
		}
		return refusing{Conn: c, path: p, refuse: refuse, refused: refused, once: once, listDir: listDir}, nil
	}
	return refuse
}

// TestDaemonFailureHoldsBackDeletesForItsScan: in a daemon's session, an
// upload that fails holds back the deletions in its directory for the scan
// in which it failed; once it succeeds, the next scan deletes there.
// (Before, the failure was kept for the session's life: nothing was ever
// deleted in that directory again until a restart.)
func TestDaemonFailureHoldsBackDeletesForItsScan(t *testing.T) {
	for _, mk := range backends(t) {
		e := mk(t)
		t.Run(e.name, func(t *testing.T) {
			e.write(filepath.Join(e.src, "a", "keep.txt"), 10)
			e.write(filepath.Join(e.src, "a", "bad.txt"), 10)
			e.mustRun(nil)
			// Someone else's file in a/, and a change to bad.txt.
			old := filepath.Join(e.disk, "a", "old.txt")
			if err := os.WriteFile(old, []byte("theirs"), 0o644); err != nil {
				t.Fatal(err)
			}
			e.write(filepath.Join(e.src, "a", "bad.txt"), 20)

			o := e.options()
			o.Delete = true
			refuse := refuser(e, &o, "a/bad.txt", "")
			ctx, cancel := context.WithCancel(context.Background())
			s, _, err := Open(ctx, o)
			if err != nil {
				t.Fatal(err)
			}
			l := s.Live(LiveOptions{})
			var wg sync.WaitGroup
			wg.Go(func() { _ = l.Serve(ctx) })
			defer func() {
				cancel()
				wg.Wait()
				s.Close()
			}()

			res := l.Scan(ctx, "", true)
			if res.Err != nil {
				t.Fatalf("first scan: %v", res.Err)
			}
			if _, err := os.Stat(old); err != nil {
				t.Fatalf("a/old.txt was deleted although an upload in a/ failed in that scan: %v\n%s", err, e.logs)
			}
			if l.Counters().Failed != 1 {
				t.Fatalf("failed %d, want the refused upload\n%s", l.Counters().Failed, e.logs)
			}

			refuse.Store(false) // the server takes it now
			res = l.Scan(ctx, "", true)
			if res.Err != nil {
				t.Fatalf("second scan: %v", res.Err)
			}
			if _, err := os.Stat(old); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("a/old.txt still there after a scan in which nothing failed (%v)\n%s", err, e.logs)
			}
			e.sameTree()
		})
	}
}

// TestFailureDuringRemoteOnlyWalk: a --once pass with --delete walks the
// directories found only on the remote while the workers upload and record
// a failure (run with -race). The failure holds back deletions in its own
// directory only; in the remote-only directory the conflict copy is kept
// (with the directory that holds it) and the rest is deleted.
func TestFailureDuringRemoteOnlyWalk(t *testing.T) {
	for _, mk := range backends(t) {
		e := mk(t)
		t.Run(e.name, func(t *testing.T) {
			e.write(filepath.Join(e.src, "a", "good.txt"), 10)
			e.mustRun(nil) // the server makes the target, as its user
			e.write(filepath.Join(e.src, "a", "bad.txt"), 10)
			copyName := entry.ConflictName("x.txt", time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC))
			e.write(filepath.Join(e.disk, "gone", copyName), 5)
			e.write(filepath.Join(e.disk, "gone", "y.txt"), 5)
			e.chownRemote() // someone else's files, but the account may delete them

			sum, code := e.run(func(o *Options) {
				o.Delete, o.CheckRemote = true, true
				// The remote-only walk lists gone/ only once the upload
				// of a/bad.txt has been refused.
				refuser(e, o, "a/bad.txt", "gone")
			})
			if code != Partial || sum.Failed != 1 {
				t.Fatalf("exit %d, %d failed; want 1 and the refused upload\n%s", code, sum.Failed, e.logs)
			}
			// gone/ holds a conflict copy: it stays, y.txt goes.
			got := snapshot(t, filepath.Join(e.disk, "gone"))
			if _, ok := got[copyName]; !ok || len(got) != 1 {
				t.Fatalf("remote gone/ holds %v; want the conflict copy only\n%s", got, e.logs)
			}
			if _, err := os.Stat(filepath.Join(e.disk, "a", "good.txt")); err != nil {
				t.Fatalf("a/good.txt: %v", err)
			}
		})
	}
}
