package digest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestFileMatchesStreamedSum(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	os.WriteFile(p, []byte("hello"), 0o644)
	got, err := File(p)
	if err != nil {
		t.Fatal(err)
	}
	h := New()
	h.Write([]byte("hel"))
	h.Write([]byte("lo"))
	if want := Sum(h); got != want || !strings.HasPrefix(got, "xxh64:") || len(got) != len("xxh64:")+16 {
		t.Fatalf("File = %q, streamed = %q", got, want)
	}
	os.WriteFile(p, []byte("hellp"), 0o644)
	if other, _ := File(p); other == got {
		t.Fatalf("different content, same digest")
	}
	if _, err := File(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Fatalf("missing file hashed")
	}
}
