package gitstage

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
)

func randomBytes(n int, seed uint64) []byte {
	rng := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

// tempsLeft lists the blob writer's temporary files in the clone.
func tempsLeft(t *testing.T, r *Repo) []string {
	t.Helper()
	left, err := filepath.Glob(filepath.Join(r.Dir(), "objects", blobTempPrefix+"*"))
	if err != nil {
		t.Fatal(err)
	}
	return left
}

// A blob fed in pieces is the object git would write for the same bytes:
// same id, same content back, read-only, no temporary left.
func TestBlob(t *testing.T) {
	r := openT(t, newTarget(t), nil)
	for _, content := range [][]byte{
		nil,
		[]byte("hello\n"),
		bytes.Repeat([]byte("ferry "), 100000),
		randomBytes(1<<20+7, 1),
	} {
		b, err := r.NewBlob(int64(len(content)))
		if err != nil {
			t.Fatal(err)
		}
		for rest, n := content, 1; len(rest) > 0; n = n*3 + 1 {
			k := min(n, len(rest))
			if w, err := b.Write(rest[:k]); w != k || err != nil {
				t.Fatalf("Write = %d, %v", w, err)
			}
			rest = rest[k:]
		}
		oid, err := b.Close()
		if err != nil {
			t.Fatal(err)
		}
		want, err := gitTry("", string(content), "hash-object", "--stdin")
		if err != nil || oid != want {
			t.Errorf("%d bytes: id %s, git says %s (%v)", len(content), oid, want, err)
		}
		back, err := gitRaw(r.Dir(), "", "cat-file", "-p", oid)
		if err != nil || back != string(content) {
			t.Errorf("%d bytes: cat-file gives %d bytes back (%v)", len(content), len(back), err)
		}
		fi, err := os.Stat(filepath.Join(r.Dir(), "objects", oid[:2], oid[2:]))
		if err != nil || fi.Mode().Perm() != 0o444 {
			t.Errorf("%d bytes: loose object %v, %v", len(content), fi, err)
		}
	}
	if left := tempsLeft(t, r); len(left) != 0 {
		t.Errorf("temporaries left: %q", left)
	}
}

// A file that changed size while it was read is an error at Close, never
// at Write (which would break the upload it rides on), and leaves no
// object and no temporary.
func TestBlobSizeMismatch(t *testing.T) {
	r := openT(t, newTarget(t), nil)
	for _, c := range []struct {
		size  int64
		write string
	}{{10, "short"}, {3, "too long"}, {0, "x"}, {1, ""}} {
		b, err := r.NewBlob(c.size)
		if err != nil {
			t.Fatal(err)
		}
		if n, err := b.Write([]byte(c.write)); n != len(c.write) || err != nil {
			t.Errorf("size %d, %q: Write = %d, %v; want success", c.size, c.write, n, err)
		}
		oid, err := b.Close()
		if !errors.Is(err, ErrBlobSize) || oid != "" {
			t.Errorf("size %d, %q: Close = %q, %v; want ErrBlobSize", c.size, c.write, oid, err)
		}
		// A file that grew is noticed at the first byte too many:
		// the rest is neither hashed nor compressed.
		if long := int64(len(c.write)) > c.size; long != strings.Contains(err.Error(), "more than") {
			t.Errorf("size %d, %q: %v", c.size, c.write, err)
		}
		if _, err := b.Close(); err == nil {
			t.Error("a second Close succeeded")
		}
	}
	if left := tempsLeft(t, r); len(left) != 0 {
		t.Errorf("temporaries left: %q", left)
	}
	if n := gitT(t, r.Dir(), "count-objects"); n != "0 objects, 0 kilobytes" {
		t.Errorf("objects written: %s", n)
	}
}

// Abort drops the temporary; a Close after it fails.
func TestBlobAbort(t *testing.T) {
	r := openT(t, newTarget(t), nil)
	b, err := r.NewBlob(4)
	if err != nil {
		t.Fatal(err)
	}
	b.Write([]byte("ab"))
	if len(tempsLeft(t, r)) != 1 {
		t.Fatal("no temporary while writing")
	}
	b.Abort()
	b.Abort()
	if left := tempsLeft(t, r); len(left) != 0 {
		t.Errorf("temporaries left after Abort: %q", left)
	}
	if _, err := b.Close(); err == nil {
		t.Error("Close after Abort succeeded")
	}
}

// Workers write blobs concurrently, the same bytes as well as different
// ones, while the owner commits.
func TestBlobConcurrent(t *testing.T) {
	ctx := ctxT(t)
	r := openT(t, newTarget(t), nil)
	const workers, each = 6, 8
	var wg sync.WaitGroup
	errs := make(chan error, workers*each)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				content := []byte(fmt.Sprintf("same %d\n", i))
				if i%2 == 1 {
					content = randomBytes(1000+i, uint64(w*1000+i))
				}
				b, err := r.NewBlob(int64(len(content)))
				if err != nil {
					errs <- err
					return
				}
				b.Write(content)
				oid, err := b.Close()
				if err != nil {
					errs <- err
					continue
				}
				if back, err := gitRaw(r.Dir(), "", "cat-file", "blob", oid); err != nil || back != string(content) {
					errs <- fmt.Errorf("%s: read back %d bytes, %v", oid, len(back), err)
				}
			}
		}()
	}
	// The owner commits meanwhile.
	parent := ""
	for i := range 5 {
		c, err := r.Commit(ctx, parent, []Change{{Path: "f" + strconv.Itoa(i), Blob: blobT(t, r, strconv.Itoa(i))}}, "meanwhile", when)
		if err != nil {
			t.Fatal(err)
		}
		parent = c
	}
	if err := r.Advance(ctx, parent, ""); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if left := tempsLeft(t, r); len(left) != 0 {
		t.Errorf("temporaries left: %q", left)
	}
}

// A stale temporary (a killed ferry's) goes when the clone is re-opened.
func TestStaleTemporariesRemoved(t *testing.T) {
	ctx := ctxT(t)
	target := newTarget(t)
	r := openT(t, target, nil)
	b, err := r.NewBlob(1)
	if err != nil {
		t.Fatal(err)
	}
	old := tempsLeft(t, r)[0]
	young, err := r.NewBlob(1)
	if err != nil {
		t.Fatal(err)
	}
	defer young.Abort()
	_ = b // left as a kill -9 leaves it
	long := when.AddDate(-1, 0, 0)
	if err := os.Chtimes(old, long, long); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(ctx, r.Dir(), r.Options()); err != nil {
		t.Fatal(err)
	}
	left := tempsLeft(t, r)
	if len(left) != 1 || left[0] == old {
		t.Errorf("temporaries after re-open: %q (the stale one was %s)", left, old)
	}
}

// Maintain packs the loose objects once there are many, and keeps the
// blobs no commit names yet, however old.
func TestMaintainKeepsUncommittedBlobs(t *testing.T) {
	ctx := ctxT(t)
	r := openT(t, newTarget(t), nil)
	if _, err := r.Publish(ctx, []Change{{Path: "a", Blob: blobT(t, r, "a\n")}}, "one", when, false); err != nil {
		t.Fatal(err)
	}
	waiting := blobT(t, r, "shipped, not committed yet\n")
	long := when.AddDate(-1, 0, 0)
	if err := os.Chtimes(filepath.Join(r.Dir(), "objects", waiting[:2], waiting[2:]), long, long); err != nil {
		t.Fatal(err)
	}
	if err := r.Maintain(ctx); err != nil {
		t.Fatal(err)
	}
	if packs, _ := filepath.Glob(filepath.Join(r.Dir(), "objects", "pack", "*.pack")); len(packs) != 0 {
		t.Fatalf("Maintain packed %d objects, below its threshold", r.maintainLoose)
	}
	r.maintainLoose = 3
	if err := r.Maintain(ctx); err != nil {
		t.Fatal(err)
	}
	if packs, _ := filepath.Glob(filepath.Join(r.Dir(), "objects", "pack", "*.pack")); len(packs) != 1 {
		t.Errorf("%d packs after Maintain, want 1", len(packs))
	}
	if _, err := gitTry(r.Dir(), "", "cat-file", "-e", waiting); err != nil {
		t.Errorf("Maintain pruned a blob waiting for its commit: %v", err)
	}
}

// The blob writer against git hash-object -w, a process per file.
func BenchmarkBlob(b *testing.B) {
	for _, size := range []int{4 << 10, 64 << 10, 1 << 20} {
		content := randomBytes(size, 7)
		b.Run(fmt.Sprintf("writer/%dKiB", size>>10), func(b *testing.B) {
			r := benchRepo(b)
			b.SetBytes(int64(size))
			for i := 0; b.Loop(); i++ {
				content[0] = byte(i) // a new object each time
				content[1] = byte(i >> 8)
				content[2] = byte(i >> 16)
				bl, err := r.NewBlob(int64(size))
				if err != nil {
					b.Fatal(err)
				}
				bl.Write(content)
				if _, err := bl.Close(); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("hash-object/%dKiB", size>>10), func(b *testing.B) {
			r := benchRepo(b)
			b.SetBytes(int64(size))
			for i := 0; b.Loop(); i++ {
				content[0] = byte(i)
				content[1] = byte(i >> 8)
				content[2] = byte(i >> 16)
				cmd := exec.Command("git", "--git-dir="+r.Dir(), "hash-object", "-w", "--stdin")
				cmd.Stdin = bytes.NewReader(content)
				if out, err := cmd.CombinedOutput(); err != nil {
					b.Fatalf("%v: %s", err, out)
				}
			}
		})
	}
}

func benchRepo(b *testing.B) *Repo {
	b.Helper()
	dir := filepath.Join(b.TempDir(), "target.git")
	if _, err := gitTry("", "", "init", "-q", "--bare", dir); err != nil {
		b.Fatal(err)
	}
	r, err := Open(b.Context(), filepath.Join(b.TempDir(), "git"), Options{Repository: dir})
	if err != nil {
		b.Fatal(err)
	}
	return r
}
