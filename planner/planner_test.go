package planner

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"ferry/entry"
	"ferry/scanner"
)

type fakeRec map[string][]entry.Entry // dir → entries

func (f fakeRec) Dir(_ context.Context, dir string, fn func(entry.Entry) error) error {
	for _, e := range f[dir] {
		if err := fn(e); err != nil {
			return err
		}
	}
	return nil
}

type sink struct{ out []string }

func (s *sink) Put(e entry.Entry) error {
	tag := e.State.String()
	if e.State == entry.Pending {
		tag = e.Action.String()
		if e.Recheck {
			tag += "+recheck"
		}
	}
	s.out = append(s.out, tag+" "+e.Path)
	return nil
}

func (s *sink) Plan(e entry.Entry) error { return s.Put(e) }
func (s *sink) Forget(p string) error    { s.out = append(s.out, "forget "+p); return nil }

var (
	t0    = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	t1    = t0.Add(time.Hour)
	hello = "xxh64:26c7827d889f6da3" // digest of "hello"
)

func done(p string, size int64, mtime time.Time, hash string) entry.Entry {
	return entry.Entry{Path: p, LocalSize: size, LocalMtime: mtime.UnixNano(), RemoteSize: size, RemoteMtime: mtime.UnixNano(), Hash: hash, State: entry.Done}
}

// stale is an upload an earlier session left in flight.
func stale(p string, size int64, mtime time.Time, a entry.Action) entry.Entry {
	return entry.Entry{Path: p, LocalSize: size, LocalMtime: mtime.UnixNano(), RemoteSize: -1, State: entry.Stale, Action: a, Recheck: true}
}

func TestPlanDirectory(t *testing.T) {
	src := t.TempDir()
	os.WriteFile(filepath.Join(src, "touched.txt"), []byte("hello"), 0o644)
	os.WriteFile(filepath.Join(src, "sneaky.txt"), []byte("HELLO"), 0o644)
	file := func(name string, size int64, mtime time.Time) scanner.File {
		return scanner.File{Name: name, Size: size, Mtime: mtime}
	}
	tests := []struct {
		name   string
		local  []scanner.File
		rec    []entry.Entry
		listed []entry.FileInfo // nil: the remote was not listed
		delete bool
		want   string
	}{
		{name: "new file", local: []scanner.File{file("a", 5, t0)}, want: "upload a"},
		{name: "unchanged", local: []scanner.File{file("a", 5, t0)}, rec: []entry.Entry{done("a", 5, t0, hello)}, want: ""},
		{name: "changed size", local: []scanner.File{file("a", 6, t1)}, rec: []entry.Entry{done("a", 5, t0, hello)}, want: "upload+recheck a"},
		{name: "touched, same bytes", local: []scanner.File{file("touched.txt", 5, t1)}, rec: []entry.Entry{done("touched.txt", 5, t0, hello)}, want: "touch+recheck touched.txt"},
		{name: "touched, other bytes", local: []scanner.File{file("sneaky.txt", 5, t1)}, rec: []entry.Entry{done("sneaky.txt", 5, t0, hello)}, want: "upload+recheck sneaky.txt"},
		{name: "gone, no --delete", rec: []entry.Entry{done("old", 1, t0, "")}, want: ""},
		{name: "gone, --delete", rec: []entry.Entry{done("old", 1, t0, "")}, delete: true, want: "delete+recheck old"},
		{name: "gone, never shipped", rec: []entry.Entry{{Path: "p", RemoteSize: -1, State: entry.Pending}}, delete: true, want: "forget p"},
		{name: "new dir", local: []scanner.File{{Name: "d", IsDir: true}}, want: "mkdir d"},
		{name: "known dir", local: []scanner.File{{Name: "d", IsDir: true}}, rec: []entry.Entry{{Path: "d", IsDir: true, RemoteSize: -1, State: entry.Done}}, want: ""},
		{name: "listed dir is adopted", local: []scanner.File{{Name: "d", IsDir: true}}, listed: []entry.FileInfo{{Name: "d", IsDir: true}}, want: "done d"},
		{name: "listed identical file is adopted", local: []scanner.File{file("a", 5, t0)}, listed: []entry.FileInfo{{Name: "a", Size: 5, ModTime: t0}}, want: "done a"},
		{name: "listed other file is rechecked", local: []scanner.File{file("a", 5, t0)}, listed: []entry.FileInfo{{Name: "a", Size: 9, ModTime: t0}}, want: "upload+recheck a"},
		{name: "remote copy deleted behind our back", local: []scanner.File{file("a", 5, t0)}, rec: []entry.Entry{done("a", 5, t0, hello)}, listed: []entry.FileInfo{}, want: "upload+recheck a"},
		{name: "leftover temp file", listed: []entry.FileInfo{{Name: entry.TempPrefix + "0123456789ab-x"}}, want: "cleanup .ferry-tmp-0123456789ab-x"},
		{name: "extra remote file, no --delete", listed: []entry.FileInfo{{Name: "theirs"}}, want: ""},
		{name: "extra remote file, --delete", listed: []entry.FileInfo{{Name: "theirs", Size: 3}}, delete: true, want: "delete+recheck theirs"},
		{name: "conflict copy is kept", listed: []entry.FileInfo{{Name: "a.ferry-conflict-20250601-120000.txt"}}, delete: true, want: ""},
		// What an earlier session left unfinished (registry.Job.Recover
		// made it Stale) is settled again, and only here.
		{name: "stale in flight, complete on the remote, is adopted", local: []scanner.File{file("a", 5, t0)}, rec: []entry.Entry{stale("a", 5, t0, entry.Upload)}, listed: []entry.FileInfo{{Name: "a", Size: 5, ModTime: t0}}, want: "done a"},
		{name: "stale in flight, not listed, is rechecked", local: []scanner.File{file("a", 5, t0)}, rec: []entry.Entry{stale("a", 5, t0, entry.Upload)}, want: "upload+recheck a"},
		{name: "stale touch stays a touch", local: []scanner.File{file("touched.txt", 5, t1)}, rec: []entry.Entry{{Path: "touched.txt", LocalSize: 5, LocalMtime: t1.UnixNano(), RemoteSize: 5, RemoteMtime: t0.UnixNano(), Hash: hello, State: entry.Stale, Action: entry.Touch}}, want: "touch+recheck touched.txt"},
		{name: "stale, gone, no --delete: the record stays, done", rec: []entry.Entry{{Path: "old", LocalSize: 2, RemoteSize: 1, State: entry.Stale}}, want: "done old"},
		{name: "stale, gone, never shipped", rec: []entry.Entry{stale("p", 1, t0, entry.Upload)}, want: "forget p"},
		// A row pending from an earlier scan of this session may be claimed
		// before the plan's write lands: a worker's stat adopts it, once.
		{name: "pending, complete on the remote, is left to the worker", local: []scanner.File{file("a", 5, t0)}, rec: []entry.Entry{{Path: "a", LocalSize: 5, LocalMtime: t0.UnixNano(), RemoteSize: -1, State: entry.Pending}}, listed: []entry.FileInfo{{Name: "a", Size: 5, ModTime: t0}}, want: "upload+recheck a"},
		{name: "queued by a live change: left to the live queue", local: []scanner.File{file("a", 5, t1)}, rec: []entry.Entry{{Path: "a", LocalSize: 5, LocalMtime: t0.UnixNano(), RemoteSize: -1, State: entry.Pending, Lane: entry.LaneLive}}, want: ""},
		{name: "skipped link keeps what was shipped", local: []scanner.File{{Name: "l", Link: true}}, rec: []entry.Entry{done("l", 1, t0, "")}, delete: true, want: ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := &sink{}
			p := New(fakeRec{"": tc.rec}, s, Options{Source: src, Delete: tc.delete, ListPrecision: time.Second, Now: func() time.Time { return t1 }})
			pair := &scanner.Pair{Local: &scanner.Dir{Path: "", Files: tc.local}}
			if tc.listed != nil {
				pair.Listed, pair.Remote = true, tc.listed
			}
			if err := p.Dir(context.Background(), pair); err != nil {
				t.Fatal(err)
			}
			sort.Strings(s.out)
			if got := strings.Join(s.out, ", "); got != tc.want {
				t.Fatalf("plan = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestPlanGoneDirectoryTakesItsContent(t *testing.T) {
	rec := fakeRec{
		"":         {{Path: "site", IsDir: true, RemoteSize: -1, State: entry.Done}},
		"site":     {done("site/a", 1, t0, ""), {Path: "site/sub", IsDir: true, RemoteSize: -1, State: entry.Done}},
		"site/sub": {done("site/sub/b", 1, t0, "")},
	}
	s := &sink{}
	p := New(rec, s, Options{Delete: true})
	if err := p.Dir(context.Background(), &scanner.Pair{Local: &scanner.Dir{}}); err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(s.out, ", "), "delete+recheck site/a, delete+recheck site/sub/b, delete+recheck site/sub, delete+recheck site"; got != want {
		t.Fatalf("plan = %q, want children before parents: %q", got, want)
	}
	if p.Stats.Deletes != 4 {
		t.Fatalf("deletes counted %d", p.Stats.Deletes)
	}
}

func TestPlanUnreadableDirectoryPlansNothing(t *testing.T) {
	s := &sink{}
	p := New(fakeRec{"d": {done("d/a", 1, t0, "")}}, s, Options{Delete: true})
	err := p.Dir(context.Background(), &scanner.Pair{Local: &scanner.Dir{Path: "d", Err: errors.New("permission denied")}})
	if err != nil || len(s.out) != 0 || !p.ErrDirs["d"] {
		t.Fatalf("unreadable dir: err %v, plan %v, errdirs %v", err, s.out, p.ErrDirs)
	}
}

func TestPlanKeepsFirstOutOfSyncTime(t *testing.T) {
	first := t0.UnixNano()
	var got entry.Entry
	s := sinkFunc(func(e entry.Entry) { got = e })
	p := New(fakeRec{"": {{Path: "a", LocalSize: 1, RemoteSize: -1, State: entry.Pending, DirtySince: first}}}, s, Options{Now: func() time.Time { return t1 }})
	p.Dir(context.Background(), &scanner.Pair{Local: &scanner.Dir{Files: []scanner.File{{Name: "a", Size: 2, Mtime: t1}}}})
	if got.DirtySince != first {
		t.Fatalf("dirty since %v, want the first time %v", time.Unix(0, got.DirtySince), t0)
	}
}

type sinkFunc func(entry.Entry)

func (f sinkFunc) Put(e entry.Entry) error  { f(e); return nil }
func (f sinkFunc) Plan(e entry.Entry) error { f(e); return nil }
func (sinkFunc) Forget(string) error        { return nil }
