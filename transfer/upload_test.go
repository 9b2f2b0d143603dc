package transfer

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"ferry/remote"
	"ferry/remote/file"
)

func fileConn(t *testing.T) (remote.Conn, string) {
	t.Helper()
	root := t.TempDir()
	c, err := file.Open(context.Background(), &remote.Target{Scheme: "file", Path: root}, remote.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return c, root
}

// hookConn runs fn after the first byte of an upload has been read.
type hookConn struct {
	remote.Conn
	fn func()
}

func (h *hookConn) Put(ctx context.Context, p string, r io.Reader, mtime time.Time) (int64, error) {
	return h.Conn.Put(ctx, p, &hookReader{r: r, fn: h.fn}, mtime)
}

type hookReader struct {
	r    io.Reader
	fn   func()
	done bool
}

func (h *hookReader) Read(p []byte) (int, error) {
	if !h.done {
		n, err := h.r.Read(p[:1])
		h.done = true
		if h.fn != nil {
			h.fn()
		}
		return n, err
	}
	return h.r.Read(p)
}

func TestUploadShipsAndVerifies(t *testing.T) {
	c, root := fileConn(t)
	src := filepath.Join(t.TempDir(), "a.txt")
	mtime := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	os.WriteFile(src, []byte("hello"), 0o644)
	os.Chtimes(src, mtime, mtime)
	got, err := Upload(context.Background(), c, src, "a.txt", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got.Size != 5 || !got.LocalMtime.Equal(mtime) || got.Hash != "xxh64:26c7827d889f6da3" {
		t.Fatalf("Shipped = %+v", got)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "a.txt")); string(b) != "hello" {
		t.Fatalf("remote holds %q", b)
	}
}

func TestUploadRefusesAFileThatChangesWhileRead(t *testing.T) {
	c, root := fileConn(t)
	src := filepath.Join(t.TempDir(), "log.txt")
	os.WriteFile(src, make([]byte, 100_000), 0o644)
	hc := &hookConn{Conn: c, fn: func() {
		f, _ := os.OpenFile(src, os.O_APPEND|os.O_WRONLY, 0)
		f.Write([]byte("appended while uploading"))
		f.Close()
	}}
	_, err := Upload(context.Background(), hc, src, "log.txt", nil, nil)
	if !errors.Is(err, ErrChanged) {
		t.Fatalf("want ErrChanged, got %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, "log.txt")); !os.IsNotExist(err) {
		t.Fatalf("a torn file was shipped: %v", err)
	}
	if ents, _ := os.ReadDir(root); len(ents) != 0 {
		t.Fatalf("left %v on the remote", ents)
	}
	if !retryable(err) {
		t.Fatalf("a changed file should be retried")
	}
}

func TestUploadVanishedAndUnverifiable(t *testing.T) {
	c, _ := fileConn(t)
	_, err := Upload(context.Background(), c, filepath.Join(t.TempDir(), "gone"), "gone", nil, nil)
	if !errors.Is(err, ErrVanished) || retryable(err) {
		t.Fatalf("vanished file: %v", err)
	}
	dir := t.TempDir()
	_, err = Upload(context.Background(), c, dir, "d", nil, nil)
	var le *LocalError
	if !errors.As(err, &le) {
		t.Fatalf("uploading a directory: %v", err)
	}
}
