package watcher

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestDirMove: a watched directory renamed inside the tree is one Moved
// change with Dir (not a removal and a rescan), whatever was pending under
// it follows it, and its subtree is watched under the new name; moved into
// an excluded name or out of the tree, it is a removal.
func TestDirMove(t *testing.T) {
	outside := t.TempDir()
	for _, tc := range []struct {
		name  string
		do    func(t *testing.T, root string)
		want  string
		moved bool // the first change is the directory's move
	}{
		{"a directory moved is one move", func(t *testing.T, root string) {
			os.Rename(filepath.Join(root, "docs"), filepath.Join(root, "manual"))
		}, "moved manual from docs", true},
		{"a directory moved into another one", func(t *testing.T, root string) {
			os.Rename(filepath.Join(root, "docs"), filepath.Join(root, "old", "docs"))
		}, "moved old/docs from docs", false},
		// The settle delay is longer than the test takes to move the
		// directory: a file that settled before the watcher saw the move
		// is reported removed under its old name (the consumer's scan of
		// the new name settles it all the same).
		{"a file edited just before the move follows it", func(t *testing.T, root string) {
			write(t, root, "docs/sub/b.txt", "edited")
			os.Rename(filepath.Join(root, "docs"), filepath.Join(root, "manual"))
		}, "moved manual from docs; changed manual/sub/b.txt", true},
		{"moved into an excluded name is a removal", func(t *testing.T, root string) {
			os.Rename(filepath.Join(root, "docs"), filepath.Join(root, "cache"))
		}, "removed docs", false},
		{"moved out of the tree is a removal", func(t *testing.T, root string) {
			os.Rename(filepath.Join(root, "docs"), filepath.Join(outside, "docs"))
		}, "removed docs", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			excl := func(rel string, isDir bool) bool { return isDir && rel == "cache" }
			root, out := start(t, Options{Excluded: excl, Settle: 400 * time.Millisecond}, "docs/a.txt", "docs/sub/b.txt", "docs/sub/deeper/c.txt", "old/keep")
			tc.do(t, root)
			got := collect(out, time.Second)
			if g := sortedShow(got); g != sortedShow(parseWant(tc.want)) {
				t.Fatalf("got %q, want %q", show(got), tc.want)
			}
			for _, c := range got {
				if c.Kind == Moved && !c.Dir {
					t.Errorf("%s: a directory's move without Dir", c.Path)
				}
			}
			if !tc.moved {
				return
			}
			// Watched under the new name, nested directories too, and
			// nothing reported under the old one.
			write(t, root, "manual/sub/deeper/c.txt", "new")
			write(t, root, "manual/a.txt", "new")
			if g := sortedShow(collect(out, time.Second)); g != "changed manual/a.txt; changed manual/sub/deeper/c.txt" {
				t.Errorf("after the move: %q, want the files changed under the new name", g)
			}
		})
	}
}
