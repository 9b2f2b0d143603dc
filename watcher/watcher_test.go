package watcher

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fsnotify/fsnotify"
)

// start watches a fresh tree (with the given files already in it) and
// returns the tree, the change channel and a stop function.
func start(t *testing.T, o Options, files ...string) (string, <-chan Change) {
	t.Helper()
	root := t.TempDir()
	for _, f := range files {
		write(t, root, f, "old")
	}
	// Pre-existing files must look settled (old mtimes).
	old := time.Now().Add(-time.Hour)
	for _, f := range files {
		os.Chtimes(filepath.Join(root, f), old, old)
	}
	if o.Settle == 0 {
		o.Settle = 30 * time.Millisecond
	}
	if o.MaxDelay == 0 {
		o.MaxDelay = 2 * time.Second
	}
	o.Logf = t.Logf
	w, err := New(root, o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	out := make(chan Change, 1024)
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx, out) }()
	t.Cleanup(func() {
		cancel()
		<-done
		w.Close()
	})
	return root, out
}

func write(t *testing.T, root, rel, content string) {
	t.Helper()
	p := filepath.Join(root, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// collect gathers changes until none has come for quiet.
func collect(out <-chan Change, quiet time.Duration) []Change {
	var got []Change
	for {
		select {
		case c := <-out:
			got = append(got, c)
		case <-time.After(quiet):
			return got
		}
	}
}

func show(cs []Change) string {
	var parts []string
	for _, c := range cs {
		s := c.Kind.String() + " " + c.Path
		if c.From != "" {
			s += " from " + c.From
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, "; ")
}

func TestCoalescing(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files []string // present before the watch starts
		do    func(t *testing.T, root string)
		want  string
	}{
		{"create and write is one change", nil, func(t *testing.T, root string) {
			f, err := os.Create(filepath.Join(root, "a.txt"))
			if err != nil {
				t.Fatal(err)
			}
			for i := range 50 {
				fmt.Fprintf(f, "line %d\n", i)
			}
			f.Close()
		}, "changed a.txt"},
		{"modify then delete is a delete", []string{"a.txt"}, func(t *testing.T, root string) {
			write(t, root, "a.txt", "new")
			os.Remove(filepath.Join(root, "a.txt"))
		}, "removed a.txt"},
		{"create then delete leaves a removal only", nil, func(t *testing.T, root string) {
			write(t, root, "tmp.txt", "x")
			os.Remove(filepath.Join(root, "tmp.txt"))
		}, "removed tmp.txt"},
		{"a move of a settled file is a move", []string{"a.txt"}, func(t *testing.T, root string) {
			os.Rename(filepath.Join(root, "a.txt"), filepath.Join(root, "b.txt"))
		}, "moved b.txt from a.txt"},
		{"a move into a subdirectory", []string{"a.txt", "sub/keep"}, func(t *testing.T, root string) {
			os.Rename(filepath.Join(root, "a.txt"), filepath.Join(root, "sub", "a.txt"))
		}, "moved sub/a.txt from a.txt"},
		{"an editor's save (temp file renamed over) is a change", []string{"doc.txt"}, func(t *testing.T, root string) {
			write(t, root, ".doc.txt.swp", "new content")
			os.Rename(filepath.Join(root, ".doc.txt.swp"), filepath.Join(root, "doc.txt"))
		}, "removed .doc.txt.swp; changed doc.txt"},
		{"excluded paths are not reported", nil, func(t *testing.T, root string) {
			write(t, root, "cache/x", "x")
			write(t, root, "a.tmp", "x")
			write(t, root, "kept", "x")
		}, "changed kept"},
		{"a removed file", []string{"a.txt"}, func(t *testing.T, root string) {
			os.Remove(filepath.Join(root, "a.txt"))
		}, "removed a.txt"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			excl := func(rel string, isDir bool) bool {
				return (isDir && rel == "cache") || strings.HasSuffix(rel, ".tmp")
			}
			// A settle delay far above the gaps between a case's steps,
			// even on a loaded machine: a step delayed past it would split
			// one change in two and the case would prove nothing.
			root, out := start(t, Options{Excluded: excl, Settle: 400 * time.Millisecond}, tc.files...)
			tc.do(t, root)
			got := collect(out, 1500*time.Millisecond)
			// Order between paths is not part of the contract.
			if g := sortedShow(got); g != sortedShow(parseWant(tc.want)) {
				t.Errorf("got %q, want %q", show(got), tc.want)
			}
		})
	}
}

func parseWant(s string) []Change {
	var out []Change
	for part := range strings.SplitSeq(s, "; ") {
		f := strings.Fields(part)
		c := Change{Path: f[1]}
		switch f[0] {
		case "changed":
			c.Kind = Changed
		case "removed":
			c.Kind = Removed
		case "moved":
			c.Kind, c.From = Moved, f[3]
		case "rescan":
			c.Kind = Rescan
		}
		out = append(out, c)
	}
	return out
}

func sortedShow(cs []Change) string {
	parts := strings.Split(show(cs), "; ")
	for i := range parts {
		for j := i + 1; j < len(parts); j++ {
			if parts[j] < parts[i] {
				parts[i], parts[j] = parts[j], parts[i]
			}
		}
	}
	return strings.Join(parts, "; ")
}

// TestNewDirectory: a new directory is reported for a scan (files may have
// landed in it before its watch did) and then watched like the rest.
func TestNewDirectory(t *testing.T) {
	root, out := start(t, Options{})
	write(t, root, "new/sub/f1", "x")
	first := collect(out, 300*time.Millisecond)
	if len(first) == 0 || first[0].Kind != Rescan || first[0].Path != "new" {
		t.Fatalf("first changes %q, want a rescan of new first", show(first))
	}
	for _, c := range first[1:] { // the file may also be seen, if its watch was there in time
		if !inside(c.Path, "new") {
			t.Errorf("unexpected change %+v", c)
		}
	}
	write(t, root, "new/sub/f2", "y")
	if got := show(collect(out, 300*time.Millisecond)); got != "changed new/sub/f2" {
		t.Errorf("after the scan: %q, want the new file seen by the new watch", got)
	}
}

// TestEditStorm: 1,000 rapid edits of one file are far fewer releases, and
// the last one comes after the last edit.
func TestEditStorm(t *testing.T) {
	root, out := start(t, Options{Settle: 50 * time.Millisecond, MaxDelay: time.Second})
	p := filepath.Join(root, "hot.txt")
	for i := range 1000 {
		if err := os.WriteFile(p, []byte(fmt.Sprintf("edit %d", i)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	last := time.Now()
	got := collect(out, 500*time.Millisecond)
	if len(got) == 0 || len(got) > 10 {
		t.Fatalf("1000 edits gave %d changes (%s), want 1 to 10", len(got), show(got))
	}
	for _, c := range got {
		if c.Kind != Changed || c.Path != "hot.txt" {
			t.Fatalf("unexpected change %+v", c)
		}
	}
	t.Logf("1000 edits in %v: %d changes released", last.Sub(got[0].Since), len(got))
}

// TestMaxDelay: a file written without pause is still released within the
// maximum delay.
func TestMaxDelay(t *testing.T) {
	root, out := start(t, Options{Settle: 100 * time.Millisecond, MaxDelay: 300 * time.Millisecond})
	p := filepath.Join(root, "log.txt")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	began := time.Now()
	deadline := began.Add(2 * time.Second)
	for time.Now().Before(deadline) {
		fmt.Fprintln(f, "still writing")
		select {
		case c := <-out:
			if c.Path != "log.txt" || c.Kind != Changed {
				t.Fatalf("unexpected %+v", c)
			}
			if took := time.Since(began); took > time.Second {
				t.Fatalf("released after %v, want about 300ms", took)
			}
			return
		case <-time.After(10 * time.Millisecond):
		}
	}
	t.Fatal("a file that never settles was not released within 2 s")
}

// TestLostEvents: when the kernel drops events (its queue overflowed) the
// whole tree is rescanned and the warning names the sysctl to raise; a
// refused watch names its own.
func TestLostEvents(t *testing.T) {
	var logs []string
	w := &Watcher{root: "/src", o: Options{Now: time.Now, Logf: func(f string, a ...any) { logs = append(logs, fmt.Sprintf(f, a...)) }},
		pending: map[string]*pend{}}
	w.failure(fsnotify.ErrEventOverflow)
	if len(w.ready) != 1 || w.ready[0].Kind != Rescan || w.ready[0].Path != "" {
		t.Fatalf("after an overflow: %+v, want one rescan of the whole tree", w.ready)
	}
	if len(logs) != 1 || !strings.Contains(logs[0], "fs.inotify.max_queued_events") {
		t.Errorf("overflow warning %q does not name the sysctl", logs)
	}
	for _, tc := range []struct {
		err  error
		want string
	}{
		{syscall.ENOSPC, "fs.inotify.max_user_watches"},
		{syscall.EMFILE, "fs.inotify.max_user_instances"},
		{syscall.EACCES, ""},
	} {
		if got := limitHint(fmt.Errorf("add: %w", tc.err)); (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
			t.Errorf("limitHint(%v) = %q, want one naming %q", tc.err, got, tc.want)
		}
	}
}

// inside reports whether rel is dir or under it.
func inside(rel, dir string) bool {
	return dir == "" || rel == dir || strings.HasPrefix(rel, dir+"/")
}
