package mirror

import (
	"context"
	"ferry/planner"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// swapTypes replaces the local directory x/ by a file x and the file y by a
// directory y/ holding files.
func (e *env) swapTypes() {
	e.t.Helper()
	if err := os.RemoveAll(filepath.Join(e.src, "x")); err != nil {
		e.t.Fatal(err)
	}
	e.write(filepath.Join(e.src, "x"), 77)
	if err := os.Remove(filepath.Join(e.src, "y")); err != nil {
		e.t.Fatal(err)
	}
	e.write(filepath.Join(e.src, "y", "c.txt"), 12)
	e.write(filepath.Join(e.src, "y", "sub", "d.txt"), 13)
}

// typedTree is the tree before the swap: a directory x/ with a nested
// directory, a file y, and files around them.
func (e *env) typedTree() {
	e.write(filepath.Join(e.src, "x", "a.txt"), 5)
	e.write(filepath.Join(e.src, "x", "sub", "b.txt"), 6)
	e.write(filepath.Join(e.src, "y"), 7)
	e.write(filepath.Join(e.src, "z", "other.txt"), 8)
}

// failureOf returns the recorded error of p in sum, "" when none.
func failureOf(sum *Summary, p string) string {
	for _, f := range sum.Failures {
		if f.Path == p {
			return f.Error
		}
	}
	return ""
}

// TestTypeChangeConverges: a directory replaced by a file and a file
// replaced by a directory converge in one --delete run, whether ferry
// recorded the old types or only a listing shows them; without --delete
// those paths fail naming --delete and everything else is mirrored.
func TestTypeChangeConverges(t *testing.T) {
	for _, mk := range serverBackends() {
		e := mk(t)
		t.Run(e.name+"/recorded", func(t *testing.T) {
			e.t = t
			e.typedTree()
			e.mustRun(nil)
			e.swapTypes()
			e.write(filepath.Join(e.src, "z", "new.txt"), 9)

			sum, code := e.run(nil)
			if code != Partial {
				t.Fatalf("without --delete: exit %d, want 1; %+v", code, sum)
			}
			for p, kind := range map[string]string{"x": "directory", "y": "file"} {
				msg := failureOf(sum, p)
				if !strings.Contains(msg, "--delete") || !strings.Contains(msg, "holds a "+kind) {
					t.Fatalf("without --delete, %s: %q (failures %+v)", p, msg, sum.Failures)
				}
			}
			if got, err := os.ReadFile(filepath.Join(e.disk, "z", "new.txt")); err != nil || len(got) != 9 {
				t.Fatalf("without --delete the other files go on: %v", err)
			}

			sum = e.mustRun(func(o *Options) { o.Delete = true })
			if sum.Deleted != 5 || sum.Failed != 0 {
				t.Fatalf("with --delete: %+v\n%s", sum, e.logs)
			}
			e.sameTree()
			if sum := e.mustRun(func(o *Options) { o.Delete = true; o.CheckRemote = true }); sum.Transferred != 0 || sum.Deleted != 0 {
				t.Fatalf("converged run left work: %+v", sum)
			}
		})

		e = mk(t)
		t.Run(e.name+"/listed", func(t *testing.T) {
			e.t = t
			// The remote holds the old types, written by another tool:
			// ferry's first run lists it.
			e.remoteWrite("x/a.txt", "old a")
			e.remoteWrite("x/sub/b.txt", "old b")
			e.remoteWrite("y", "old y")
			e.typedTree()
			e.swapTypes()
			sum, code := e.run(nil)
			if code != Partial || !strings.Contains(failureOf(sum, "x"), "--delete") || !strings.Contains(failureOf(sum, "y"), "--delete") {
				t.Fatalf("without --delete: exit %d, failures %+v", code, sum.Failures)
			}
			sum = e.mustRun(func(o *Options) { o.Delete = true; o.CheckRemote = true })
			if sum.Failed != 0 {
				t.Fatalf("with --delete: %+v", sum)
			}
			e.sameTree()
		})
	}
}

// TestTypeChangeUnrecorded: without a listing, a directory ferry never
// recorded stands where a new file goes (made on the server since the last
// listing); the failed put shows it, and --delete replaces it.
func TestTypeChangeUnrecorded(t *testing.T) {
	for _, mk := range serverBackends() {
		e := mk(t)
		t.Run(e.name, func(t *testing.T) {
			e.t = t
			e.write(filepath.Join(e.src, "z", "other.txt"), 8)
			e.mustRun(nil)
			e.remoteWrite("x/theirs/a.txt", "made on the server")
			e.write(filepath.Join(e.src, "x"), 77)
			sum, code := e.run(nil)
			if code != Partial || !strings.Contains(failureOf(sum, "x"), "--delete") {
				t.Fatalf("without --delete: exit %d, failures %+v", code, sum.Failures)
			}
			if sum := e.mustRun(func(o *Options) { o.Delete = true }); sum.Deleted != 3 || sum.ListedRemote {
				t.Fatalf("with --delete: %+v", sum)
			}
			e.sameTree()
		})
	}
}

// TestTypeChangeSafety: the removal a type change needs follows the rules
// of any deletion — --max-delete counts it, a file someone else changed
// inside the old directory is not deleted, and neither is a conflict copy;
// the path then fails with the reason and the rest goes on.
func TestTypeChangeSafety(t *testing.T) {
	for _, mk := range serverBackends() {
		e := mk(t)
		t.Run(e.name, func(t *testing.T) {
			e.t = t
			e.typedTree()
			e.mustRun(nil)
			e.swapTypes()
			one, _ := planner.ParseMaxDelete("1")
			if _, code := e.run(func(o *Options) { o.Delete, o.MaxDelete = true, one }); code != Refused {
				t.Fatalf("type change beyond --max-delete: exit %d, want 3\n%s", code, e.logs)
			}
			if _, err := os.Stat(filepath.Join(e.disk, "x", "a.txt")); err != nil {
				t.Fatalf("a refused run deleted x/a.txt: %v", err)
			}

			theirs := "changed on the server"
			e.remoteWrite("x/sub/b.txt", theirs)
			sum, code := e.run(func(o *Options) { o.Delete = true })
			if code != Partial || !strings.Contains(failureOf(sum, "x"), "x/sub/b.txt") {
				t.Fatalf("changed file in the old directory: exit %d, failures %+v\n%s", code, sum.Failures, e.logs)
			}
			if got, _ := os.ReadFile(filepath.Join(e.disk, "x", "sub", "b.txt")); string(got) != theirs {
				t.Fatalf("someone else's file was deleted or changed: %q", got)
			}
			if got, _ := os.ReadFile(filepath.Join(e.disk, "y", "sub", "d.txt")); len(got) != 13 {
				t.Fatalf("the other type change did not converge")
			}

			// Moved aside by hand as a conflict copy: still not ferry's.
			copyName := "x/sub/b.ferry-conflict-20260101-000000.txt"
			if err := os.Rename(filepath.Join(e.disk, "x", "sub", "b.txt"), filepath.Join(e.disk, filepath.FromSlash(copyName))); err != nil {
				t.Fatal(err)
			}
			sum, code = e.run(func(o *Options) { o.Delete = true; o.CheckRemote = true })
			if code != Partial || !strings.Contains(failureOf(sum, "x"), "conflict") {
				t.Fatalf("conflict copy in the old directory: exit %d, failures %+v\n%s", code, sum.Failures, e.logs)
			}
			if _, err := os.Stat(filepath.Join(e.disk, filepath.FromSlash(copyName))); err != nil {
				t.Fatalf("the conflict copy was deleted: %v", err)
			}
			os.Remove(filepath.Join(e.disk, filepath.FromSlash(copyName)))
			e.mustRun(func(o *Options) { o.Delete = true })
			e.sameTree()
		})
	}
}

// TestLiveTypeChange: under the daemon, a watcher event for a new file x
// while the remote holds a directory x replaces it (delete on).
func TestLiveTypeChange(t *testing.T) {
	for _, mk := range serverBackends() {
		e := mk(t)
		t.Run(e.name, func(t *testing.T) {
			e.t = t
			e.typedTree()
			e.mustRun(nil)
			if err := os.RemoveAll(filepath.Join(e.src, "x")); err != nil {
				t.Fatal(err)
			}
			e.write(filepath.Join(e.src, "x"), 77)

			o := e.options()
			o.Delete = true
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			s, _, err := Open(ctx, o)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			l := s.Live(LiveOptions{})
			var wg sync.WaitGroup
			sctx, stop := context.WithCancel(ctx)
			wg.Go(func() { _ = l.Serve(sctx) })
			defer wg.Wait()
			defer stop()
			if queued, err := l.Changed(ctx, "x", time.Now()); err != nil || !queued {
				t.Fatalf("Changed: queued %v, %v", queued, err)
			}
			if err := l.Queue().WaitIdle(ctx); err != nil {
				t.Fatal(err)
			}
			if c := l.Counters(); c.Transferred != 1 || c.Deleted != 4 || c.Failed != 0 {
				t.Fatalf("live type change: %+v\n%s", c, e.logs)
			}
			e.sameTree()
		})
	}
}
