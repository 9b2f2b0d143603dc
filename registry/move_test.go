package registry

import (
	"context"
	"errors"
	"testing"
	"time"

	"ferry/entry"
)

// TestMovePrefix re-keys a directory's rows (nested ones too) and nothing
// else, keeps what was shipped, makes claimed rows pending, and refuses a
// new name the registry already holds.
func TestMovePrefix(t *testing.T) {
	ctx := context.Background()
	_, j := open(t)
	w := j.NewWriter(time.Hour, 1000)
	for _, e := range []entry.Entry{
		{Path: "docs", IsDir: true, LocalSize: -1, RemoteSize: -1, State: entry.Done},
		{Path: "docs/a.txt", LocalSize: 1, RemoteSize: 1, Hash: "h1", State: entry.Done},
		{Path: "docs/sub", IsDir: true, LocalSize: -1, RemoteSize: -1, State: entry.Done},
		{Path: "docs/sub/b.txt", LocalSize: 2, RemoteSize: 2, Hash: "h2", State: entry.Transferring, Lane: 1},
		{Path: "docs/sub/é/c.txt", LocalSize: 3, RemoteSize: -1, State: entry.Pending},
		{Path: "docsx/d.txt", LocalSize: 4, RemoteSize: 4, State: entry.Done},
		{Path: "other", IsDir: true, LocalSize: -1, RemoteSize: -1, State: entry.Done},
		{Path: "other/e.txt", LocalSize: 5, RemoteSize: 5, State: entry.Done},
	} {
		w.Put(e)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	n, err := j.MovePrefix(ctx, "docs", "manual/v1")
	if err != nil || n != 3 {
		t.Fatalf("MovePrefix = %d, %v; want 3 files", n, err)
	}
	tests := []struct {
		path  string
		want  bool
		state entry.State
		hash  string
	}{
		{"docs", false, 0, ""},
		{"docs/a.txt", false, 0, ""},
		{"docs/sub/b.txt", false, 0, ""},
		{"manual/v1", true, entry.Done, ""},
		{"manual/v1/a.txt", true, entry.Done, "h1"},
		{"manual/v1/sub", true, entry.Done, ""},
		{"manual/v1/sub/b.txt", true, entry.Pending, "h2"},
		{"manual/v1/sub/é/c.txt", true, entry.Pending, ""},
		{"docsx/d.txt", true, entry.Done, ""},
		{"other/e.txt", true, entry.Done, ""},
	}
	for _, tc := range tests {
		e, ok, err := j.Get(ctx, tc.path)
		if err != nil || ok != tc.want || (ok && (e.State != tc.state || e.Hash != tc.hash)) {
			t.Errorf("%s: %+v, recorded %v, %v; want recorded %v, %v, hash %q", tc.path, e, ok, err, tc.want, tc.state, tc.hash)
		}
	}
	if _, err := j.MovePrefix(ctx, "other", "manual"); !errors.Is(err, ErrMoveTarget) {
		t.Fatalf("move onto recorded rows: %v, want ErrMoveTarget", err)
	}
	w = j.NewWriter(time.Hour, 1000)
	w.Put(entry.Entry{Path: "other/gone.txt", LocalSize: 1, RemoteSize: 1, State: entry.Pending, Action: entry.Delete, Lane: entry.LaneDeletes})
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	for _, from := range []string{"other", "nowhere", "other/e.txt"} {
		if _, err := j.MovePrefix(ctx, from, "elsewhere"); !errors.Is(err, ErrMoveSource) {
			t.Errorf("move %s (deletions planned, unknown, a file): %v, want ErrMoveSource", from, err)
		}
	}
	if _, ok, _ := j.Get(ctx, "other/e.txt"); !ok {
		t.Fatalf("a refused move changed rows")
	}
}
