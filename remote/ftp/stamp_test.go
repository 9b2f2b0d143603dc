package ftp_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"ferry/internal/testrig"
	"ferry/remote"
)

// TestModTime: vsftpd has no MLST, so a stat is SIZE then MDTM; ModTime
// reads the stamp with one MDTM, the same stamp the stat reads, and a
// missing path or a directory is ErrNotExist.
func TestModTime(t *testing.T) {
	srv := testrig.FTP(t, testrig.FTPOptions{})
	c := mustOpen(t, srv, "")
	defer c.Close()
	ctx := context.Background()
	sp, ok := c.(remote.Stamper)
	if !ok {
		t.Fatal("the FTP backend is not a remote.Stamper")
	}
	stamp := time.Date(2009, 2, 13, 23, 31, 30, 0, time.UTC)
	if _, err := c.Put(ctx, "f.txt", strings.NewReader("hello"), stamp); err != nil {
		t.Fatal(err)
	}
	if err := c.Mkdir(ctx, "d"); err != nil {
		t.Fatal(err)
	}
	got, err := sp.ModTime(ctx, "f.txt")
	if err != nil || !got.Equal(stamp) {
		t.Fatalf("ModTime(f.txt) = %v, %v; want %v", got, err, stamp)
	}
	st, err := c.Stat(ctx, "f.txt")
	if err != nil || !st.ModTime.Equal(got) {
		t.Fatalf("Stat(f.txt) = %+v, %v; ModTime said %v", st, err, got)
	}
	for _, p := range []string{"missing.txt", "d"} {
		if _, err := sp.ModTime(ctx, p); !errors.Is(err, remote.ErrNotExist) {
			t.Errorf("ModTime(%s) = %v, want ErrNotExist", p, err)
		}
	}
}
