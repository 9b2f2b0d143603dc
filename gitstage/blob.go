package gitstage

import (
	"bufio"
	"compress/zlib"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"
)

// ErrBlobSize is a blob fed more or fewer bytes than it was opened for:
// the file changed size while it was read.
var ErrBlobSize = errors.New("blob size mismatch")

const blobTempPrefix = "tmp_obj_ferry_" // git's prune knows tmp_obj_ files

// A flate compressor is about a megabyte of tables; a mirror of small
// files would allocate one per file without the pool.
var (
	zpool   = sync.Pool{New: func() any { w, _ := zlib.NewWriterLevel(io.Discard, zlib.BestSpeed); return w }}
	bufpool = sync.Pool{New: func() any { return bufio.NewWriterSize(io.Discard, 64<<10) }}
)

// Blob writes one file's bytes into the clone as a loose object, from the
// same read that uploads them, so that what is committed is what was
// shipped and the file is read once. It is what git hash-object -w
// writes, without a process per file.
//
// Write never fails: a Blob fed by a tee cannot break the upload it
// rides on; what went wrong (a short or long file, a full disk) is
// Close's error. NewBlob may be called from any goroutine, concurrently
// with the owner's commands; a Blob is fed by one goroutine, and Abort
// may come from another.
type Blob struct {
	mu   sync.Mutex
	dir  string // objects directory
	size int64
	n    int64
	f    *os.File
	bw   *bufio.Writer
	zw   *zlib.Writer
	h    hash.Hash
	err  error
	done bool
}

// NewBlob starts a blob of exactly size bytes.
func (r *Repo) NewBlob(size int64) (*Blob, error) {
	return r.newObject("blob", size)
}

// newObject starts a loose object of type typ and exactly size bytes.
func (r *Repo) newObject(typ string, size int64) (*Blob, error) {
	if size < 0 {
		return nil, fmt.Errorf("gitstage: blob of negative size %d", size)
	}
	dir := filepath.Join(r.dir, "objects")
	f, err := os.CreateTemp(dir, blobTempPrefix)
	if err != nil {
		return nil, fmt.Errorf("gitstage: blob: %w", err)
	}
	b := &Blob{dir: dir, size: size, f: f, h: sha1.New()}
	b.bw = bufpool.Get().(*bufio.Writer)
	b.bw.Reset(f)
	b.zw = zpool.Get().(*zlib.Writer)
	b.zw.Reset(b.bw)
	hdr := strconv.AppendInt([]byte(typ+" "), size, 10)
	hdr = append(hdr, 0)
	b.h.Write(hdr)
	if _, err := b.zw.Write(hdr); err != nil {
		b.err = err
	}
	return b, nil
}

// Write feeds the next bytes of the file. It always reports success.
func (b *Blob) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.err != nil || b.done {
		return len(p), nil
	}
	if b.n+int64(len(p)) > b.size {
		b.err = fmt.Errorf("gitstage: %w: more than the %d bytes announced", ErrBlobSize, b.size)
		return len(p), nil
	}
	b.n += int64(len(p))
	b.h.Write(p)
	if _, err := b.zw.Write(p); err != nil {
		b.err = fmt.Errorf("gitstage: blob: %w", err)
	}
	return len(p), nil
}

// Close finishes the blob and returns its object id. The object is in
// the clone once Close returns; an object that was already there is kept
// and its time refreshed, as git does.
func (b *Blob) Close() (string, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.done {
		return "", errors.New("gitstage: blob already closed or aborted")
	}
	if b.err == nil && b.n != b.size {
		b.err = fmt.Errorf("gitstage: %w: %d bytes of the %d announced", ErrBlobSize, b.n, b.size)
	}
	if b.err == nil {
		b.err = b.zw.Close()
	}
	if b.err == nil {
		b.err = b.bw.Flush()
	}
	if b.err == nil {
		// Loose objects are read-only, like git's.
		b.err = b.f.Chmod(0o444)
	}
	if err := b.f.Close(); b.err == nil {
		b.err = err
	}
	tmp := b.f.Name()
	b.release()
	if b.err != nil {
		os.Remove(tmp)
		return "", b.err
	}
	oid := hex.EncodeToString(b.h.Sum(nil))
	if err := finalize(tmp, b.dir, oid); err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("gitstage: blob %s: %w", oid, err)
	}
	return oid, nil
}

// Abort drops the blob: the upload failed, or will not be recorded.
func (b *Blob) Abort() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.done {
		return
	}
	b.f.Close()
	os.Remove(b.f.Name())
	b.release()
}

func (b *Blob) release() {
	b.done = true
	b.zw.Reset(io.Discard)
	zpool.Put(b.zw)
	b.bw.Reset(io.Discard)
	bufpool.Put(b.bw)
	b.zw, b.bw = nil, nil
}

// finalize moves a finished temporary object to its name: by a hard link,
// which never replaces an object that is there (two writers of the same
// bytes both succeed), with a rename where links are not supported. An
// object that exists gets its time refreshed, so a prune that goes by age
// does not take an object just written again.
func finalize(tmp, objects, oid string) error {
	sub := filepath.Join(objects, oid[:2])
	final := filepath.Join(sub, oid[2:])
	if _, err := os.Stat(final); err == nil {
		now := time.Now()
		os.Chtimes(final, now, now)
		return os.Remove(tmp)
	}
	if err := os.Mkdir(sub, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return err
	}
	err := os.Link(tmp, final)
	switch {
	case err == nil || errors.Is(err, os.ErrExist):
		return os.Remove(tmp)
	default:
		return os.Rename(tmp, final)
	}
}
