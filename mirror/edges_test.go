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

	"ferry/internal/testrig"
)

// serverBackends are the real servers the edge tests run against.
func serverBackends() []func(*testing.T) *env {
	return []func(*testing.T) *env{newFTPEnv, newSFTPEnv}
}

// remoteWrite puts content at rel on the server's disk behind ferry's back,
// owned by the servers' account so that ferry may remove it.
func (e *env) remoteWrite(rel, content string) {
	e.t.Helper()
	p := filepath.Join(e.disk, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		e.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		e.t.Fatal(err)
	}
	e.chownRemote()
}

func (e *env) chownRemote() {
	e.t.Helper()
	acct, err := testrig.EnsureAccount()
	if err != nil {
		e.t.Fatal(err)
	}
	if err := acct.Chown(e.disk); err != nil {
		e.t.Fatal(err)
	}
}

// xferLines counts the lines of vsftpd's log where op (e.g. "OK RENAME",
// the last step of an upload, or "OK DELETE") ends at p; -1 on other
// servers.
func (e *env) xferLines(op, p string) int {
	e.t.Helper()
	if e.ftp == nil {
		return -1
	}
	b, err := os.ReadFile(e.ftp.XferLog)
	if err != nil && !os.IsNotExist(err) {
		e.t.Fatal(err)
	}
	n := 0
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, "] "+op+": ") && strings.HasSuffix(strings.TrimSpace(l), "/mirror/"+p+`"`) {
			n++
		}
	}
	return n
}

// wantRemote fails unless the remote holds exactly want (dirs end in "/";
// a file's content is compared when want gives one other than "*").
func (e *env) wantRemote(want map[string]string) {
	e.t.Helper()
	got := snapshot(e.t, e.disk)
	var diffs []string
	for p, w := range want {
		g, ok := got[p]
		switch {
		case !ok:
			diffs = append(diffs, "missing "+p)
		case w != "*" && g != w:
			diffs = append(diffs, "differs "+p)
		}
	}
	for p := range got {
		if _, ok := want[p]; !ok {
			diffs = append(diffs, "extra "+p)
		}
	}
	if len(diffs) > 0 {
		e.t.Fatalf("%s: remote: %s\nlog:\n%s", e.name, strings.Join(diffs, ", "), e.logs)
	}
}

// TestDeleteLeavesExcluded: with --delete, an excluded name is not ferry's
// on the remote either — the server's own error.log, an excluded cache/
// directory, an excluded file inside a remote-only directory and files
// ferry shipped before they were excluded all stay, and none of them
// counts against --max-delete; --delete-excluded removes them.
func TestDeleteLeavesExcluded(t *testing.T) {
	for _, mk := range serverBackends() {
		e := mk(t)
		t.Run(e.name, func(t *testing.T) {
			e.t = t
			e.write(filepath.Join(e.src, "a.txt"), 10)
			e.write(filepath.Join(e.src, "d", "b.txt"), 20)
			e.write(filepath.Join(e.src, "notes.log"), 30)
			e.write(filepath.Join(e.src, "tmp", "t.bin"), 40)
			e.mustRun(nil)
			// Behind ferry's back: the server's own files, and two that
			// are nobody's (deleted by --delete).
			e.remoteWrite("error.log", "the server's log")
			e.remoteWrite("cache/c1.bin", "cached")
			e.remoteWrite("cache/sub/c2.bin", "cached too")
			e.remoteWrite("d/access.log", "in a mirrored directory")
			e.remoteWrite("old/keep.log", "excluded, in a remote-only directory")
			e.remoteWrite("old/gone.txt", "remote-only")
			e.remoteWrite("stale.txt", "remote-only")
			excl := []string{"*.log", "cache/", "tmp/"}
			two, _ := planner.ParseMaxDelete("2")

			// From the registry alone: notes.log and tmp/ were shipped
			// before the excludes came; they stay.
			sum := e.mustRun(func(o *Options) { o.Delete, o.Excludes, o.MaxDelete = true, excl, two })
			if sum.Deleted != 0 || sum.Conflicts != 0 {
				t.Fatalf("registry-only run: %+v\n%s", sum, e.logs)
			}
			// Listed: only the two remote-only files that are not excluded
			// go; --max-delete 2 is enough since nothing excluded counts.
			sum = e.mustRun(func(o *Options) { o.Delete, o.Excludes, o.MaxDelete, o.CheckRemote = true, excl, two, true })
			if sum.Deleted != 2 || sum.Conflicts != 0 {
				t.Fatalf("listed run: %+v\n%s", sum, e.logs)
			}
			kept := map[string]string{
				"a.txt": "*", "d/": "", "d/b.txt": "*", "notes.log": "*", "tmp/": "", "tmp/t.bin": "*",
				"error.log": "the server's log", "cache/": "", "cache/c1.bin": "cached", "cache/sub/": "", "cache/sub/c2.bin": "cached too",
				"d/access.log": "in a mirrored directory", "old/": "", "old/keep.log": "excluded, in a remote-only directory",
			}
			e.wantRemote(kept)
			if n := e.xferLines("OK RENAME", "notes.log"); n > 1 {
				t.Fatalf("the excluded notes.log was uploaded %d times", n)
			}

			// A dry run plans no deletion of an excluded name either.
			var out strings.Builder
			if _, code := e.run(func(o *Options) {
				o.Delete, o.Excludes, o.CheckRemote, o.DryRun, o.DryRunOut = true, excl, true, true, &out
			}); code != Complete || strings.Contains(out.String(), "delete") {
				t.Fatalf("dry run: exit %d, plan:\n%s", code, out.String())
			}

			// Asked for, they go — and then they count against --max-delete.
			if _, code := e.run(func(o *Options) {
				o.Delete, o.DeleteExcluded, o.Excludes, o.MaxDelete, o.CheckRemote = true, true, excl, two, true
			}); code != Refused {
				t.Fatalf("--delete-excluded beyond --max-delete: exit %d, want 3", code)
			}
			e.wantRemote(kept)
			sum = e.mustRun(func(o *Options) { o.Delete, o.DeleteExcluded, o.Excludes, o.CheckRemote = true, true, excl, true })
			e.wantRemote(map[string]string{"a.txt": "*", "d/": "", "d/b.txt": "*"})
			if sum.Deleted != 11 {
				t.Fatalf("--delete-excluded deleted %d, want 11 (5 files, 3 directories and the 3 shipped before)\n%s", sum.Deleted, e.logs)
			}
			if n := e.xferLines("OK RENAME", "tmp/t.bin"); n > 1 {
				t.Fatalf("the excluded tmp/t.bin was uploaded %d times", n)
			}
		})
	}
}

// TestLiveScanLeavesExcluded: the daemon's scans follow the same rule.
func TestLiveScanLeavesExcluded(t *testing.T) {
	for _, mk := range serverBackends() {
		e := mk(t)
		t.Run(e.name, func(t *testing.T) {
			e.t = t
			e.write(filepath.Join(e.src, "a.txt"), 10)
			e.mustRun(nil)
			e.remoteWrite("error.log", "the server's log")
			e.remoteWrite("cache/c1.bin", "cached")
			e.remoteWrite("stale.txt", "remote-only")
			o := e.options()
			o.Delete, o.Excludes = true, []string{"*.log", "cache/"}
			res := e.liveScan(o)
			if res.Err != nil || res.Deleted != 1 {
				t.Fatalf("scan: %+v\n%s", res, e.logs)
			}
			e.wantRemote(map[string]string{"a.txt": "*", "error.log": "*", "cache/": "", "cache/c1.bin": "*"})
		})
	}
}

// liveScan opens a daemon session, makes one full scan with a listing
// while its pool serves, and closes it.
func (e *env) liveScan(o Options) ScanResult {
	e.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s, _, err := Open(ctx, o)
	if err != nil {
		e.t.Fatal(err)
	}
	defer s.Close()
	l := s.Live(LiveOptions{})
	var wg sync.WaitGroup
	wg.Go(func() { _ = l.Serve(ctx) })
	defer wg.Wait()
	defer cancel()
	sctx, scancel := context.WithTimeout(ctx, 2*time.Minute)
	defer scancel()
	return l.Scan(sctx, "", true)
}
