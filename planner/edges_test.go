package planner

import (
	"context"
	"sort"
	"strings"
	"testing"
	"time"

	"ferry/entry"
	"ferry/scanner"
)

// TestPlanLeavesExcluded: an excluded remote path is not ferry's — listed
// or recorded, it is never planned for deletion (and never counted) unless
// DeleteExcluded; what an earlier run planned for it is undone.
func TestPlanLeavesExcluded(t *testing.T) {
	excl := scanner.Excluder([]string{"*.log", "cache/"})
	dir := func(p string) entry.Entry {
		return entry.Entry{Path: p, IsDir: true, LocalSize: -1, RemoteSize: -1, State: entry.Done}
	}
	planned := func(e entry.Entry) entry.Entry {
		e.State, e.Action, e.Lane = entry.Pending, entry.Delete, entry.LaneDeletes
		return e
	}
	tests := []struct {
		name      string
		rec       fakeRec
		listed    []entry.FileInfo
		deleteExc bool
		want      string
		deletes   int64
	}{
		{name: "listed excluded file", listed: []entry.FileInfo{{Name: "error.log", Size: 3}}, want: ""},
		{name: "listed excluded directory", listed: []entry.FileInfo{{Name: "cache", IsDir: true}}, want: ""},
		{name: "a file named like a directory pattern is ferry's", listed: []entry.FileInfo{{Name: "cache", Size: 1}}, want: "delete+recheck cache", deletes: 1},
		{name: "listed, --delete-excluded", listed: []entry.FileInfo{{Name: "error.log", Size: 3}}, deleteExc: true, want: "delete+recheck error.log", deletes: 1},
		{name: "shipped before the pattern", rec: fakeRec{"": {done("notes.log", 1, t0, hello)}}, want: ""},
		{name: "shipped before, --delete-excluded", rec: fakeRec{"": {done("notes.log", 1, t0, hello)}}, deleteExc: true, want: "delete+recheck notes.log", deletes: 1},
		{name: "excluded directory recorded", rec: fakeRec{"": {dir("cache")}, "cache": {done("cache/a", 1, t0, "")}}, want: ""},
		{name: "excluded file in a directory gone locally keeps it",
			rec:  fakeRec{"": {dir("old")}, "old": {done("old/a.txt", 1, t0, ""), done("old/b.log", 1, t0, "")}},
			want: "delete+recheck old/a.txt", deletes: 1},
		{name: "deletion planned before the pattern is undone", rec: fakeRec{"": {planned(done("notes.log", 1, t0, hello))}}, want: "done notes.log"},
		{name: "a directory planned over a shipped file, then excluded, keeps the file's record",
			rec: fakeRec{"": {entry.Entry{Path: "cache", IsDir: true, LocalSize: -1, RemoteSize: 5, RemoteMtime: t0.UnixNano(), Hash: hello,
				GitBlob: "b10b", State: entry.Pending, Action: entry.Mkdir}}},
			want: "done cache"},
		{name: "deletion of a listed file planned before the pattern is forgotten",
			rec:  fakeRec{"": {planned(entry.Entry{Path: "error.log", LocalSize: -1, RemoteSize: 3})}},
			want: "forget error.log"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := &sink{}
			if tc.rec == nil {
				tc.rec = fakeRec{}
			}
			p := New(tc.rec, s, Options{Delete: true, Excluded: excl, DeleteExcluded: tc.deleteExc, Now: func() time.Time { return t1 }})
			pair := &scanner.Pair{Local: &scanner.Dir{}}
			if tc.listed != nil {
				pair.Listed, pair.Remote = true, tc.listed
			}
			if err := p.Dir(context.Background(), pair); err != nil {
				t.Fatal(err)
			}
			sort.Strings(s.out)
			if got := strings.Join(s.out, ", "); got != tc.want || p.Stats.Deletes != tc.deletes || len(p.RemoteOnlyDirs) != 0 {
				t.Fatalf("plan = %q (%d deletes, remote-only dirs %v), want %q (%d)", got, p.Stats.Deletes, p.RemoteOnlyDirs, tc.want, tc.deletes)
			}
		})
	}
}

// TestPlanRemoteOnlyKeepsWhatStays: in a directory found only on the
// remote, an excluded name or a conflict copy stays, and so do the
// directories that hold it; the rest is planned for deletion, and an
// excluded directory is never listed.
func TestPlanRemoteOnlyKeepsWhatStays(t *testing.T) {
	tree := map[string][]entry.FileInfo{
		"old":           {{Name: "a.txt", Size: 1}, {Name: "logs", IsDir: true}, {Name: "cache", IsDir: true}, {Name: "empty", IsDir: true}},
		"old/logs":      {{Name: "x.log", Size: 1}, {Name: "y.txt", Size: 1}},
		"old/empty":     {},
		"old/cache":     {{Name: "never listed", Size: 1}},
		"gone":          {{Name: "b.ferry-conflict-20250601-120000.txt", Size: 1}},
		"nothing/kept":  {},
		"nothing":       {{Name: "kept", IsDir: true}},
		"unlisted/deep": {},
	}
	var listedDirs []string
	list := func(_ context.Context, dir string) ([]entry.FileInfo, error) {
		listedDirs = append(listedDirs, dir)
		return append([]entry.FileInfo(nil), tree[dir]...), nil
	}
	s := &sink{}
	p := New(fakeRec{}, s, Options{Delete: true, Excluded: scanner.Excluder([]string{"*.log", "cache/"})})
	p.RemoteOnlyDirs = []string{"old", "gone", "nothing"}
	if err := p.RemoteOnly(context.Background(), list, 1); err != nil {
		t.Fatal(err)
	}
	sort.Strings(s.out)
	want := "delete+recheck nothing, delete+recheck nothing/kept, delete+recheck old/a.txt, delete+recheck old/empty, delete+recheck old/logs/y.txt"
	if got := strings.Join(s.out, ", "); got != want {
		t.Fatalf("plan = %q, want %q", got, want)
	}
	for _, d := range listedDirs {
		if d == "old/cache" {
			t.Fatalf("the excluded directory old/cache was listed")
		}
	}
}

// TestPlanTypeChange: a directory that became a file is uploaded with a
// check of what is in its way; a file that became a directory is made with
// what the old file was, so the worker can tell whether someone changed it
// before removing it.
func TestPlanTypeChange(t *testing.T) {
	var got []entry.Entry
	s := sinkFunc(func(e entry.Entry) { got = append(got, e) })
	rec := fakeRec{"": {
		{Path: "x", IsDir: true, LocalSize: -1, RemoteSize: -1, State: entry.Done},
		done("y", 7, t0, hello),
	}}
	p := New(rec, s, Options{Delete: true, Now: func() time.Time { return t1 }})
	local := &scanner.Dir{Files: []scanner.File{{Name: "x", Size: 3, Mtime: t1}, {Name: "y", IsDir: true}}}
	if err := p.Dir(context.Background(), &scanner.Pair{Local: local}); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("planned %+v", got)
	}
	x, y := got[0], got[1]
	if x.Path != "x" || x.Action != entry.Upload || !x.Recheck || x.IsDir {
		t.Fatalf("dir → file: %+v", x)
	}
	if y.Path != "y" || y.Action != entry.Mkdir || !y.IsDir || !y.Recheck || y.RemoteSize != 7 || y.RemoteMtime != t0.UnixNano() || y.Hash != hello {
		t.Fatalf("file → dir: %+v", y)
	}

	// Listed: the remote shows the old types ferry never recorded; the
	// listing of y (a file) says nothing of the directory y.
	got = nil
	p = New(fakeRec{}, s, Options{Delete: true, ListPrecision: time.Second, Now: func() time.Time { return t1 }})
	pair := &scanner.Pair{Local: local, Listed: true, Remote: []entry.FileInfo{{Name: "x", IsDir: true}, {Name: "y", Size: 9, ModTime: t0}}}
	if err := p.Dir(context.Background(), pair); err != nil {
		t.Fatal(err)
	}
	x, y = got[0], got[1]
	if !x.Recheck || y.RemoteSize != 9 || !y.Recheck || !p.RemoteNotDir("y") || !p.RemoteNotDir("y/sub") || p.RemoteNotDir("x") {
		t.Fatalf("listed type change: x %+v, y %+v", x, y)
	}
	got = nil
	sub := &scanner.Pair{Local: &scanner.Dir{Path: "y", Files: []scanner.File{{Name: "c", Size: 1, Mtime: t1}}}, Listed: true,
		Remote: []entry.FileInfo{{Name: "y", Size: 9}}} // FTP lists a file as itself
	if err := p.Dir(context.Background(), sub); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Path != "y/c" || got[0].Action != entry.Upload || p.Stats.Deletes != 0 {
		t.Fatalf("inside y: %+v, %d deletes", got, p.Stats.Deletes)
	}
}
