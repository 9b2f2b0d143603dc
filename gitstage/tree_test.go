package gitstage

import (
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// gitEdit is the reference: what git's own index makes of base with adds
// and dels (read-tree, update-index --index-info with every file at or
// under a deleted path removed, write-tree).
func gitEdit(t *testing.T, dir, base string, adds []entry, dels []string) string {
	t.Helper()
	index := filepath.Join(t.TempDir(), "index")
	env := "GIT_INDEX_FILE=" + index
	run := func(stdin string, args ...string) string {
		t.Helper()
		full := append([]string{"-c", "core.protectNTFS=true", "-c", "core.protectHFS=true", "--git-dir=" + dir}, args...)
		cmdOut, err := gitEnv(env, stdin, full...)
		if err != nil {
			t.Fatal(err)
		}
		return cmdOut
	}
	run("", "read-tree", base)
	var in strings.Builder
	for _, d := range dels {
		for _, p := range strings.Split(run("", "ls-tree", "-r", "-z", "--full-tree", "--name-only", base, "--", d), "\x00") {
			if p != "" {
				fmt.Fprintf(&in, "0 %s\t%s\x00", zeroOID, p)
			}
		}
	}
	for _, a := range adds {
		fmt.Fprintf(&in, "%s %s\t%s\x00", a.mode, a.oid, a.path)
	}
	run(in.String(), "update-index", "-z", "--index-info")
	return strings.TrimSpace(run("", "write-tree"))
}

// The trees written in process are the trees git writes, over random
// batches of additions, replacements, deletions and file↔directory
// changes, on names whose order is git's trickiest ("a" as a directory
// sorts after "a.b" and "a-b", before "a0").
func TestEditTreeMatchesGit(t *testing.T) {
	r := openT(t, newTarget(t), nil)
	names := []string{"a", "a.b", "a-b", "a0", "b", "A"}
	blobs := []string{blobT(t, r, "one\n"), blobT(t, r, "two\n"), blobT(t, r, "")}
	rng := rand.New(rand.NewPCG(1, 2))
	randPath := func() string {
		n := 1 + rng.IntN(3)
		parts := make([]string, n)
		for i := range parts {
			parts[i] = names[rng.IntN(len(names))]
		}
		return strings.Join(parts, "/")
	}
	o, err := openObjects(ctxT(t), r.Dir())
	if err != nil {
		t.Fatal(err)
	}
	defer o.close()
	tree, batches := emptyTree, 0
	for round := 0; batches < 150 && round < 2000; round++ {
		var changes []Change
		for i := rng.IntN(6); i >= 0; i-- {
			c := Change{Path: randPath()}
			if rng.IntN(3) > 0 {
				c.Blob = blobs[rng.IntN(len(blobs))]
				c.Exec = rng.IntN(4) == 0
			}
			changes = append(changes, c)
		}
		adds, dels, err := r.prepare(changes)
		if err != nil {
			continue // a batch the stage never makes (a path twice, a file and its directory)
		}
		batches++
		got, err := r.editTree(o, tree, adds, dels)
		if err != nil {
			t.Fatalf("batch %d %v: %v", batches, changes, err)
		}
		want := gitEdit(t, r.Dir(), tree, adds, dels)
		if got != want {
			t.Fatalf("batch %d %v on %s:\nwritten  %s\n%s\ngit's    %s\n%s", batches, changes, tree,
				got, gitT(t, r.Dir(), "ls-tree", "-r", "-t", got), want, gitT(t, r.Dir(), "ls-tree", "-r", "-t", want))
		}
		tree = got
	}
	if batches < 150 {
		t.Fatalf("only %d valid batches", batches)
	}
	if out, err := gitTry(r.Dir(), "", "fsck", "--strict", "--no-dangling", tree); err != nil {
		t.Fatalf("fsck: %v\n%s", err, out)
	}
}

// Entries sort as git sorts them: a directory's name as if it ended with
// '/'.
func TestLessEntry(t *testing.T) {
	for _, tc := range []struct {
		a, b treeEntry
		less bool
	}{
		{treeEntry{mode: "100644", name: "a.b"}, treeEntry{mode: "40000", name: "a"}, true},
		{treeEntry{mode: "100644", name: "a"}, treeEntry{mode: "100644", name: "a.b"}, true},
		{treeEntry{mode: "40000", name: "a"}, treeEntry{mode: "100644", name: "a0"}, true},
		{treeEntry{mode: "40000", name: "a"}, treeEntry{mode: "100644", name: "a-b"}, false},
		{treeEntry{mode: "100644", name: "B"}, treeEntry{mode: "100644", name: "a"}, true},
	} {
		if got := lessEntry(tc.a, tc.b); got != tc.less {
			t.Errorf("lessEntry(%q %s, %q %s) = %v", tc.a.name, tc.a.mode, tc.b.name, tc.b.mode, got)
		}
	}
}

// A tree object that is cut short or malformed is an error, not a panic.
func TestParseTreeMalformed(t *testing.T) {
	good := "100644 a\x00" + strings.Repeat("\x01", 20)
	for _, data := range []string{good[:len(good)-1], "100644a\x00" + strings.Repeat("\x01", 20), " a\x00" + strings.Repeat("\x01", 20), "100644 \x00" + strings.Repeat("\x01", 20)} {
		if _, err := parseTree([]byte(data)); err == nil {
			t.Errorf("parseTree(%q) took it", data)
		}
	}
	if e, err := parseTree([]byte(good)); err != nil || len(e) != 1 || e[0].name != "a" || e[0].oid != strings.Repeat("01", 20) {
		t.Errorf("parseTree(good) = %v, %v", e, err)
	}
}

// gitEnv runs the tests' git with one more environment variable.
func gitEnv(kv, stdin string, args ...string) (string, error) {
	cmd := exec.Command("git", args...)
	cmd.Env = append(testEnv(), kv)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("git %s: %v: %s", strings.Join(args, " "), err, errb.String())
	}
	return out.String(), nil
}

// A directory an old tool wrote with mode 040000 is a directory: a file
// added in it keeps what it holds.
func TestEditTreeZeroPaddedDirectory(t *testing.T) {
	r := openT(t, newTarget(t), nil)
	f := blobT(t, r, "f\n")
	sub, err := r.writeObject("tree", mustEncode(t, treeEntry{mode: "100644", name: "f", oid: f}))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := hex.DecodeString(sub)
	root, err := r.writeObject("tree", append([]byte("040000 d\x00"), raw...))
	if err != nil {
		t.Fatal(err)
	}
	// fsck --strict refuses that tree: it goes before the check at the end.
	t.Cleanup(func() { os.Remove(filepath.Join(r.Dir(), "objects", root[:2], root[2:])) })
	o, err := openObjects(ctxT(t), r.Dir())
	if err != nil {
		t.Fatal(err)
	}
	defer o.close()
	got, err := r.editTree(o, root, []entry{{"100644", blobT(t, r, "g\n"), "d/g"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if ls := gitT(t, r.Dir(), "ls-tree", "-r", "--name-only", got); ls != "d/f\nd/g" {
		t.Fatalf("after adding d/g under a 040000 d: %q", ls)
	}
}

func mustEncode(t *testing.T, entries ...treeEntry) []byte {
	t.Helper()
	b, err := encodeTree(entries)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
