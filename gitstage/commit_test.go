package gitstage

import (
	"errors"
	"strings"
	"testing"
	"time"
)

var when = time.Date(2026, 12, 3, 10, 0, 0, 0, time.FixedZone("", 3600))

// The first batch of an empty repository is a root commit; each later
// batch is one commit on the previous one, pushed, with the configured
// author, the batch's date, exact bytes and modes.
func TestRootCommitThenBatches(t *testing.T) {
	ctx := ctxT(t)
	target := newTarget(t)
	r := openT(t, target, nil)
	if tip, err := r.Tip(ctx); err != nil || tip != "" {
		t.Fatalf("Tip of a new clone = %q, %v", tip, err)
	}
	c1, err := r.Publish(ctx, []Change{
		{Path: "index.html", Blob: blobT(t, r, "<h1>hi</h1>\n")},
		{Path: "bin/run.sh", Blob: blobT(t, r, "#!/bin/sh\n"), Exec: true},
		{Path: "empty", Blob: blobT(t, r, "")},
	}, "first batch", when, true)
	if err != nil {
		t.Fatal(err)
	}
	if h := history(t, target, "main"); len(h) != 1 || h[0] != c1+" first batch" {
		t.Fatalf("target history after the first batch: %q (want one root commit %s)", h, c1)
	}
	sameFiles(t, files(t, target, "main"), map[string]string{
		"index.html": "100644 <h1>hi</h1>\n",
		"bin/run.sh": "100755 #!/bin/sh\n",
		"empty":      "100644 ",
	})
	c2, err := r.Publish(ctx, []Change{
		{Path: "index.html", Blob: blobT(t, r, "<h1>hello</h1>\n")},
		{Path: "about/team.html", Blob: blobT(t, r, "team\n")},
	}, "second batch\n\nM index.html\nA about/team.html\n", when.Add(time.Hour), true)
	if err != nil {
		t.Fatal(err)
	}
	h := history(t, target, "main")
	if len(h) != 2 || h[0] != c2+" "+c1+" second batch" {
		t.Fatalf("target history after the second batch: %q", h)
	}
	sameFiles(t, files(t, target, "main"), map[string]string{
		"index.html":      "100644 <h1>hello</h1>\n",
		"bin/run.sh":      "100755 #!/bin/sh\n",
		"empty":           "100644 ",
		"about/team.html": "100644 team\n",
	})
	if got := gitT(t, target, "log", "-1", "--format=%an <%ae> %ad|%cn <%ce> %cd|%B", "--date=raw", "main"); got != "ferry <ferry@example.org> 1796292000 +0100|ferry <ferry@example.org> 1796292000 +0100|second batch\n\nM index.html\nA about/team.html" {
		t.Errorf("commit header and message: %q", got)
	}
	if tip, _ := r.Tip(ctx); tip != c2 {
		t.Errorf("clone's tip %s, want %s", tip, c2)
	}
	if raw := gitT(t, target, "cat-file", "commit", c2); strings.Contains(raw, "gpgsig") || strings.Contains(raw, "encoding") {
		t.Errorf("commit has a signature or an encoding header:\n%s", raw)
	}
}

// A deleted file goes; a deleted directory goes with all it holds;
// deleting what is not there is no error and no change.
func TestDeletions(t *testing.T) {
	ctx := ctxT(t)
	target := newTarget(t)
	r := openT(t, target, nil)
	x := blobT(t, r, "x\n")
	if _, err := r.Publish(ctx, []Change{
		{Path: "a.txt", Blob: x}, {Path: "d/x", Blob: x}, {Path: "d/sub/y", Blob: x},
		{Path: "dx", Blob: x}, {Path: "keep/k", Blob: x}, {Path: "odd\tname\nwith a newline", Blob: x},
	}, "all", when, true); err != nil {
		t.Fatal(err)
	}
	c, err := r.Publish(ctx, []Change{{Path: "a.txt"}, {Path: "d"}, {Path: "nothere"}, {Path: "keep/nothere/deep"}, {Path: "odd\tname\nwith a newline"}}, "deletions", when, true)
	if err != nil {
		t.Fatal(err)
	}
	sameFiles(t, files(t, target, "main"), map[string]string{"dx": "100644 x\n", "keep/k": "100644 x\n"})
	if got := gitT(t, target, "diff-tree", "-r", "--no-commit-id", "--name-status", c); got != "D\ta.txt\nD\td/sub/y\nD\td/x\nD\t\"odd\\tname\\nwith a newline\"" {
		t.Errorf("the deletions' commit records:\n%s", got)
	}
	if _, err := r.Publish(ctx, []Change{{Path: "a.txt"}, {Path: "gone/too"}}, "nothing", when, true); !errors.Is(err, ErrNothingToCommit) {
		t.Errorf("deleting what is not there: %v, want ErrNothingToCommit", err)
	}
	if n := len(history(t, target, "main")); n != 2 {
		t.Errorf("%d commits, want 2", n)
	}
}

// The mirrored tree lives under path_prefix; the rest of the repository
// is someone else's and stays as it is.
func TestPathPrefix(t *testing.T) {
	ctx := ctxT(t)
	target := newTarget(t)
	theirs := pushOther(t, target, map[string]string{"README": "readme\n", "site/old.html": "old\n", "site/www/keep.html": "keep\n"}, "theirs")
	r := openT(t, target, func(o *Options) { o.PathPrefix = "site/www" })
	x := blobT(t, r, "x\n")
	c, err := r.Publish(ctx, []Change{{Path: "index.html", Blob: x}, {Path: "css/a.css", Blob: x}}, "ours", when, true)
	if err != nil {
		t.Fatal(err)
	}
	if h := history(t, target, "main"); len(h) != 2 || h[0] != c+" "+theirs+" ours" {
		t.Fatalf("history: %q", h)
	}
	if _, err := r.Publish(ctx, []Change{{Path: "css"}, {Path: "README"}}, "deletions", when, true); err != nil {
		t.Fatal(err)
	}
	sameFiles(t, files(t, target, "main"), map[string]string{
		"README": "100644 readme\n", "site/old.html": "100644 old\n",
		"site/www/keep.html": "100644 keep\n", "site/www/index.html": "100644 x\n",
	})
	for _, bad := range []string{"/site", "site/", "../site", "a//b", ".git"} {
		_, err := Open(ctx, t.TempDir(), Options{Repository: target, PathPrefix: bad})
		if err == nil || !strings.Contains(err.Error(), "path_prefix") {
			t.Errorf("path_prefix %q: %v, want an error", bad, err)
		}
	}
}

// A file replaces a directory of its name, and a directory a file, with
// or without the old path's deletion in the batch.
func TestTypeChanges(t *testing.T) {
	ctx := ctxT(t)
	target := newTarget(t)
	r := openT(t, target, nil)
	x, y := blobT(t, r, "x\n"), blobT(t, r, "y\n")
	steps := []struct {
		changes []Change
		want    map[string]string
	}{
		{[]Change{{Path: "a/b", Blob: x}, {Path: "a/c/d", Blob: x}, {Path: "e", Blob: x}},
			map[string]string{"a/b": "100644 x\n", "a/c/d": "100644 x\n", "e": "100644 x\n"}},
		// a directory becomes a file, the batch naming only the file
		{[]Change{{Path: "a", Blob: y}},
			map[string]string{"a": "100644 y\n", "e": "100644 x\n"}},
		// a file becomes a directory, the batch naming only what is in it
		{[]Change{{Path: "a/new", Blob: x}},
			map[string]string{"a/new": "100644 x\n", "e": "100644 x\n"}},
		// and with the deletions spelled out
		{[]Change{{Path: "a/new"}, {Path: "a", Blob: y, Exec: true}, {Path: "e"}, {Path: "e/f", Blob: y}},
			map[string]string{"a": "100755 y\n", "e/f": "100644 y\n"}},
	}
	for i, s := range steps {
		if _, err := r.Publish(ctx, s.changes, "step", when, true); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		sameFiles(t, files(t, target, "main"), s.want)
	}
}

// A batch that changes nothing makes no commit, and moves nothing.
func TestNothingToCommit(t *testing.T) {
	ctx := ctxT(t)
	target := newTarget(t)
	r := openT(t, target, nil)
	x := blobT(t, r, "x\n")
	if _, err := r.Commit(ctx, "", []Change{{Path: "a"}}, "deletion only", when); !errors.Is(err, ErrNothingToCommit) {
		t.Errorf("root commit of a deletion: %v, want ErrNothingToCommit", err)
	}
	c, err := r.Publish(ctx, []Change{{Path: "a", Blob: x}}, "a", when, true)
	if err != nil {
		t.Fatal(err)
	}
	got, err := r.Publish(ctx, []Change{{Path: "a", Blob: x}}, "a again", when, true)
	if !errors.Is(err, ErrNothingToCommit) || got != "" {
		t.Errorf("the same bytes again: %q, %v; want ErrNothingToCommit", got, err)
	}
	if tip, _ := r.Tip(ctx); tip != c {
		t.Errorf("tip moved to %s", tip)
	}
	if h := history(t, target, "main"); len(h) != 1 {
		t.Errorf("history %q, want one commit", h)
	}
	// a mode change is a change
	if _, err := r.Publish(ctx, []Change{{Path: "a", Blob: x, Exec: true}}, "exec", when, true); err != nil {
		t.Errorf("mode change: %v", err)
	}
}

// A path that cannot be in a tree is an error, not a file quietly left
// out; nothing is committed.
func TestBadPaths(t *testing.T) {
	ctx := ctxT(t)
	target := newTarget(t)
	r := openT(t, target, nil)
	x := blobT(t, r, "x\n")
	for _, c := range [][]Change{
		{{Path: "", Blob: x}},
		{{Path: "/abs", Blob: x}},
		{{Path: "a/../b", Blob: x}},
		{{Path: "..", Blob: x}},
		{{Path: "./a", Blob: x}},
		{{Path: "a//b", Blob: x}},
		{{Path: "a/", Blob: x}},
		{{Path: ".git/config", Blob: x}},
		{{Path: "x/.GIT/y", Blob: x}},
		{{Path: "x/.git. ./y", Blob: x}},
		{{Path: "GIT~1/y", Blob: x}},
		{{Path: ".g\u200cit/hooks/pre-commit", Blob: x}},
		{{Path: "a\\.git", Blob: x}},
		{{Path: "a", Blob: x}, {Path: "a"}},
		{{Path: "a", Blob: x}, {Path: "a/b", Blob: x}},
	} {
		if _, err := r.Publish(ctx, c, "bad", when, true); !errors.Is(err, ErrBadPath) {
			t.Errorf("%+v: %v, want ErrBadPath", c, err)
		}
	}
	if _, err := r.Publish(ctx, []Change{{Path: "a", Blob: "HEAD"}}, "bad", when, true); err == nil || !strings.Contains(err.Error(), "not an object id") {
		t.Errorf("a blob that is no object id: %v", err)
	}
	if _, err := r.Publish(ctx, []Change{{Path: "a", Blob: strings.Repeat("ab", 20)}}, "missing", when, true); !errors.Is(err, ErrMissingBlob) || !strings.Contains(err.Error(), "a") {
		t.Errorf("a blob not in the clone: %v, want ErrMissingBlob naming the path", err)
	}
	if tip, _ := r.Tip(ctx); tip != "" {
		t.Errorf("a bad batch committed %s", tip)
	}
	// Should a path checkPath lets through be one update-index skips,
	// the commit fails rather than leave the file out.
	if _, err := r.writeCommit(ctx, "", []entry{{"100644", x, "a"}, {"100644", x, "b/.git/c"}}, nil, "m", ident{"a", "b", "@1 +0000"}, ident{"a", "b", "@1 +0000"}); !errors.Is(err, ErrBadPath) || !strings.Contains(err.Error(), "b/.git/c") {
		t.Errorf("a path update-index skips: %v, want ErrBadPath naming it", err)
	}
}

func TestCheckPath(t *testing.T) {
	for _, p := range []string{"a", ".gitignore", ".github/workflows/x.yml", "a/.gitmodules", "git~2", ".gitx", "x.git", "a b/c\nd", "é/ü", "a\\b"} {
		if why := checkPath(p); why != "" {
			t.Errorf("checkPath(%q) = %q, want ok", p, why)
		}
	}
	for _, p := range []string{"", "/a", "a/", "a//b", ".", "a/./b", "a/..", ".git", ".Git/x", "a/.git ", "a/.git...", "git~1", "Git~1.", ".git:x", "a\\.git", "a\\git~1\\x", ".\u200dg\u200eit", "\ufeff.GIT", "a\x00b"} {
		if checkPath(p) == "" {
			t.Errorf("checkPath(%q) accepted it", p)
		}
	}
}

// Advance refuses a ref that is not where the caller saw it.
func TestAdvanceRefusesMovedRef(t *testing.T) {
	ctx := ctxT(t)
	r := openT(t, newTarget(t), nil)
	x := blobT(t, r, "x\n")
	c1, err := r.Commit(ctx, "", []Change{{Path: "a", Blob: x}}, "one", when)
	if err != nil {
		t.Fatal(err)
	}
	c2, err := r.Commit(ctx, c1, []Change{{Path: "b", Blob: x}}, "two", when)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Advance(ctx, c1, ""); err != nil {
		t.Fatal(err)
	}
	if err := r.Advance(ctx, c2, ""); !errors.Is(err, ErrRefMoved) {
		t.Errorf("Advance from nothing over an existing branch: %v, want ErrRefMoved", err)
	}
	if err := r.Advance(ctx, c2, c2); !errors.Is(err, ErrRefMoved) {
		t.Errorf("Advance from the wrong commit: %v, want ErrRefMoved", err)
	}
	if err := r.Advance(ctx, c2, c1); err != nil {
		t.Error(err)
	}
	if tip, _ := r.Tip(ctx); tip != c2 {
		t.Errorf("tip %s, want %s", tip, c2)
	}
}
