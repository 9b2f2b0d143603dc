package entry

import (
	"strings"
	"testing"
	"time"
)

func TestTempName(t *testing.T) {
	long := strings.Repeat("é", 127) // 254 bytes
	for _, p := range []string{"a.txt", "dir/sub/a.txt", long, "d/" + long} {
		tn := TempName(p)
		dir, base := splitLast(tn)
		wantDir, _ := splitLast(p)
		if dir != wantDir {
			t.Errorf("TempName(%q) = %q: not in the same directory", p, tn)
		}
		if !IsTemp(base) || len(base) > 255 {
			t.Errorf("TempName(%q) base %q (%d bytes) not a valid temp name", p, base, len(base))
		}
		if TempName(p) == tn {
			t.Errorf("TempName(%q) not unique", p)
		}
	}
}

func splitLast(p string) (string, string) {
	i := strings.LastIndex(p, "/")
	return p[:i+1], p[i+1:]
}

func TestMtimeMatch(t *testing.T) {
	local := time.Date(2024, 1, 1, 10, 0, 0, 700_000_000, time.UTC)
	for _, tc := range []struct {
		remote time.Time
		prec   time.Duration
		want   bool
	}{
		{local.Truncate(time.Second), time.Second, true},
		{local.Truncate(time.Second).Add(time.Second), time.Second, false},
		{local, time.Nanosecond, true},
		{local.Add(time.Microsecond), time.Nanosecond, false},
		{local.Truncate(time.Minute), 24 * time.Hour, true},
	} {
		if got := MtimeMatch(tc.remote, local, tc.prec); got != tc.want {
			t.Errorf("MtimeMatch(%v, %v, %v) = %v", tc.remote, local, tc.prec, got)
		}
	}
}

func TestConflictName(t *testing.T) {
	at := time.Date(2026, 11, 23, 5, 13, 0, 0, time.UTC)
	for in, want := range map[string]string{
		"report.pdf":   "report.ferry-conflict-20261123-051300.pdf",
		"dir/a.tar.gz": "dir/a.tar.ferry-conflict-20261123-051300.gz",
		".htaccess":    ".htaccess.ferry-conflict-20261123-051300",
		"noext":        "noext.ferry-conflict-20261123-051300",
	} {
		got := ConflictName(in, at)
		if got != want || !IsConflictCopy(got[strings.LastIndex(got, "/")+1:]) {
			t.Errorf("ConflictName(%q) = %q, want %q", in, got, want)
		}
	}
	long := strings.Repeat("x", 250) + ".txt"
	if got := ConflictName(long, at); len(got) > 255 || !IsConflictCopy(got) {
		t.Errorf("ConflictName of a 254-byte name = %d bytes", len(got))
	}
}
