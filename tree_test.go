package main

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"

	"ferry/entry"
)

// files returns every regular file under root by its slash path, failing
// the test on any walk error: a missing root is not an empty tree.
func files(t *testing.T, root string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		out[filepath.ToSlash(rel)] = b
		return nil
	})
	if err != nil {
		t.Fatalf("walk %s: %v", root, err)
	}
	return out
}

// sameTree fails unless the remote's disk holds exactly the source's files,
// byte for byte, and no temporary file. ferry's own bookkeeping files at
// the remote root (names starting ".ferry-" that are not temporary files)
// are not part of the copy.
func sameTree(t *testing.T, src, disk string) {
	t.Helper()
	want, got := files(t, src), files(t, disk)
	var diffs []string
	for p, b := range want {
		g, ok := got[p]
		switch {
		case !ok:
			diffs = append(diffs, "missing on the remote: "+p)
		case !bytes.Equal(g, b):
			diffs = append(diffs, "different on the remote: "+p)
		}
	}
	for p := range got {
		if _, ok := want[p]; ok {
			continue
		}
		base := p[strings.LastIndex(p, "/")+1:]
		if !strings.Contains(p, "/") && strings.HasPrefix(base, ".ferry-") && !entry.IsTemp(base) {
			continue
		}
		diffs = append(diffs, "only on the remote: "+p)
	}
	if len(diffs) > 0 {
		sort.Strings(diffs)
		if len(diffs) > 20 {
			diffs = append(diffs[:20], "…")
		}
		t.Fatalf("%s is not an exact copy of %s (%d files there, %d here):\n%s", disk, src, len(got), len(want), strings.Join(diffs, "\n"))
	}
}

// inodes maps each regular file under root to its inode number. ferry puts
// a file by writing a temporary name and renaming it, so an unchanged inode
// proves the file was not sent again.
func inodes(t *testing.T, root string) map[string]uint64 {
	t.Helper()
	out := map[string]uint64{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		out[filepath.ToSlash(rel)] = fi.Sys().(*syscall.Stat_t).Ino
		return nil
	})
	if err != nil {
		t.Fatalf("walk %s: %v", root, err)
	}
	return out
}

// arrived counts the files under root so far, temporary files aside,
// while a daemon may still be writing there: a root not made yet holds
// none, and an entry renamed away during the walk is not an error. Any
// other error fails the test.
func arrived(t *testing.T, root string) int {
	t.Helper()
	n := 0
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return nil
		case err != nil:
			return err
		case d.Type().IsRegular() && !entry.IsTemp(d.Name()):
			n++
		}
		return nil
	})
	if err != nil {
		t.Fatalf("walk %s: %v", root, err)
	}
	return n
}
