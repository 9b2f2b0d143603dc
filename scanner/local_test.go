package scanner

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"ferry/entry"
	"ferry/remote"
)

func mkTree(t *testing.T, files ...string) string {
	t.Helper()
	root := t.TempDir()
	for _, f := range files {
		p := filepath.Join(root, filepath.FromSlash(f))
		if strings.HasSuffix(f, "/") {
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(f), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func walkAll(t *testing.T, w *Walker) []string {
	t.Helper()
	var got []string
	err := w.Walk(context.Background(), func(d *Dir) error {
		if d.Err != nil {
			t.Fatalf("dir %q: %v", d.Path, d.Err)
		}
		for _, f := range d.Files {
			s := d.Path + "/" + f.Name
			if f.IsDir {
				s += "/"
			}
			if f.Link {
				s += "@"
			}
			got = append(got, strings.TrimPrefix(s, "/"))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func TestWalkOrderAndExcludes(t *testing.T) {
	root := mkTree(t, "a.txt", "b/c.txt", "b/d/e.tmp", "b/d/keep.tmp", "build/out.o", "z/", "node_modules/x/y.js",
		"src/.ferry-tmp-0123-old.txt")
	tests := []struct {
		excludes []string
		want     string
	}{
		{nil, "[a.txt b/ build/ node_modules/ src/ z/ b/c.txt b/d/ b/d/e.tmp b/d/keep.tmp build/out.o node_modules/x/ node_modules/x/y.js]"},
		{[]string{"*.tmp", "!keep.tmp", "/build/", "node_modules/"}, "[a.txt b/ src/ z/ b/c.txt b/d/ b/d/keep.tmp]"},
		{[]string{"b/d"}, "[a.txt b/ build/ node_modules/ src/ z/ b/c.txt build/out.o node_modules/x/ node_modules/x/y.js]"},
	}
	for _, tc := range tests {
		got := walkAll(t, NewWalker(root, Options{Excludes: tc.excludes}))
		if fmt.Sprint(got) != tc.want {
			t.Errorf("excludes %q:\n got %v\nwant %s", tc.excludes, got, tc.want)
		}
	}
}

func TestWalkLinks(t *testing.T) {
	root := mkTree(t, "real/f.txt")
	if err := os.Symlink("real", filepath.Join(root, "alias")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("..", filepath.Join(root, "real", "loop")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("nowhere", filepath.Join(root, "dangling")); err != nil {
		t.Fatal(err)
	}
	got := walkAll(t, NewWalker(root, Options{}))
	if want := "[alias@ dangling@ real/ real/f.txt real/loop@]"; fmt.Sprint(got) != want {
		t.Errorf("skip links: got %v want %s", got, want)
	}
	got = walkAll(t, NewWalker(root, Options{Links: FollowLinks}))
	// alias is followed as a directory; real/loop points back to the root and is not descended.
	if want := "[alias/ dangling@ real/ alias/f.txt alias/loop/ real/f.txt real/loop/]"; fmt.Sprint(got) != want {
		t.Errorf("follow links: got %v want %s", got, want)
	}
}

func TestWalkMissingSource(t *testing.T) {
	err := NewWalker(filepath.Join(t.TempDir(), "nope"), Options{}).Walk(context.Background(), func(*Dir) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "nope") {
		t.Fatalf("missing source: %v", err)
	}
}

func TestWalkPairsAndRemoteWalk(t *testing.T) {
	root := mkTree(t, "a/1", "a/2", "b/3", "c/d/4")
	fake := map[string][]entry.FileInfo{
		"":    {{Name: "a", IsDir: true}, {Name: "b", IsDir: true}, {Name: "x", IsDir: true}},
		"a":   {{Name: "1", Size: 1}},
		"b":   {},
		"x":   {{Name: "y", IsDir: true}, {Name: "old", Size: 3}},
		"x/y": {{Name: "deep"}},
	}
	list := func(_ context.Context, dir string) ([]entry.FileInfo, error) {
		ents, ok := fake[dir]
		if !ok {
			return nil, remote.Errorf(remote.KindNotExist, "list", dir, nil)
		}
		return ents, nil
	}
	var seen []string
	err := WalkPairs(context.Background(), NewWalker(root, Options{}), list, 3, func(p *Pair) error {
		seen = append(seen, fmt.Sprintf("%s:%d:%v", p.Local.Path, len(p.Remote), p.Missing))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := "[:3:false a:1:false b:0:false c:0:true c/d:0:true]"; fmt.Sprint(seen) != want {
		t.Fatalf("WalkPairs order: %v want %s", seen, want)
	}
	var dirs []string
	err = RemoteWalk(context.Background(), list, "x", 4, func(dir string, ents []entry.FileInfo) error {
		dirs = append(dirs, fmt.Sprintf("%s:%d", dir, len(ents)))
		return nil
	})
	if err != nil || fmt.Sprint(dirs) != "[x:2 x/y:1]" {
		t.Fatalf("RemoteWalk = %v, %v", dirs, err)
	}
}
