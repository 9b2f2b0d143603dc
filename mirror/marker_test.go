package mirror

import (
	"context"
	"errors"
	"ferry/planner"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"ferry/remote"
	"ferry/remote/mem"
)

// realBackends are the real servers the marker tests run against.
func realBackends() []func(t *testing.T) *env {
	return []func(t *testing.T) *env{newFTPEnv, newSFTPEnv}
}

func (e *env) markerBytes() string {
	e.t.Helper()
	b, err := os.ReadFile(filepath.Join(e.disk, DefaultMarker))
	if err != nil {
		e.t.Fatalf("%s: the marker: %v", e.name, err)
	}
	return string(b)
}

// TestMarkerWipedRemote: the remote directory deleted by hand after a run
// is noticed by the next plain run (no --check-remote), which lists the
// remote, sends everything again, says why and exits 0 with the remote
// equal to the source; the run after it is a no-op again.
func TestMarkerWipedRemote(t *testing.T) {
	for _, mk := range realBackends() {
		e := mk(t)
		t.Run(e.name, func(t *testing.T) {
			e.t = t
			e.tree(120, 4)
			if sum := e.mustRun(nil); sum.Transferred != 120 || !sum.MarkerWritten {
				t.Fatalf("first run: %+v", sum)
			}
			first := e.markerBytes()
			if err := os.RemoveAll(e.disk); err != nil {
				t.Fatal(err)
			}
			sum := e.mustRun(nil)
			if sum.Transferred != 120 || !sum.ListedRemote || sum.Marker != "missing" || !sum.MarkerWritten {
				t.Fatalf("run after the wipe: %+v\nlog:\n%s", sum, e.logs)
			}
			var text strings.Builder
			sum.WriteText(&text)
			if !strings.Contains(text.String(), "marker .ferry-marker is gone") || !strings.Contains(e.logs.String(), "is gone from the target") {
				t.Fatalf("the summary or the log does not say why:\n%s\nlog:\n%s", text.String(), e.logs)
			}
			e.sameTree()
			if e.markerBytes() == first {
				t.Fatal("the marker was not written anew")
			}
			if sum := e.mustRun(nil); sum.Transferred != 0 || sum.ListedRemote || sum.Marker != "" || sum.MarkerWritten {
				t.Fatalf("the run after the repair: %+v", sum)
			}
		})
	}
}

// TestMarkerRestoredBackup: a remote restored from a copy taken before the
// last changes (its marker holds an older token of this registry) is
// listed and repaired: files added since are sent again, files changed
// since are written over (their stale copies are conflicts), exit 0.
func TestMarkerRestoredBackup(t *testing.T) {
	for _, mk := range realBackends() {
		e := mk(t)
		t.Run(e.name, func(t *testing.T) {
			e.t = t
			e.tree(60, 3)
			e.mustRun(nil)
			backup := filepath.Join(t.TempDir(), "backup")
			if out, err := exec.Command("cp", "-a", e.disk, backup).CombinedOutput(); err != nil {
				t.Fatalf("cp: %v %s", err, out)
			}
			for i, p := range []string{"d00/s0/f00000.txt", "d01/s1/f00001.txt"} {
				e.write(filepath.Join(e.src, filepath.FromSlash(p)), 20000+i) // another size
			}
			e.write(filepath.Join(e.src, "d02", "new.txt"), 100)
			if sum := e.mustRun(nil); sum.Transferred != 3 || !sum.MarkerWritten {
				t.Fatalf("changes: %+v", sum)
			}
			if err := os.RemoveAll(e.disk); err != nil {
				t.Fatal(err)
			}
			if out, err := exec.Command("cp", "-a", backup, e.disk).CombinedOutput(); err != nil {
				t.Fatalf("cp: %v %s", err, out)
			}
			sum := e.mustRun(func(o *Options) { o.Conflict = planner.Overwrite })
			if sum.Marker != "old-token" || !sum.ListedRemote || sum.Transferred != 3 || sum.Conflicts != 2 || !sum.MarkerWritten {
				t.Fatalf("run after the restore: %+v\nlog:\n%s", sum, e.logs)
			}
			if !strings.Contains(sum.MarkerReason, "restored from a backup") {
				t.Fatalf("reason: %q", sum.MarkerReason)
			}
			e.sameTree()
			if sum := e.mustRun(nil); sum.Transferred != 0 || sum.ListedRemote {
				t.Fatalf("the run after the repair: %+v", sum)
			}
		})
	}
}

// TestMarkerSecondRegistry: a second state directory pointed at the same
// target is refused (exit 3) naming the first, changes nothing, and takes
// over with Takeover; the first is then refused in turn.
func TestMarkerSecondRegistry(t *testing.T) {
	for _, mk := range realBackends() {
		e := mk(t)
		t.Run(e.name, func(t *testing.T) {
			e.t = t
			e.tree(30, 3)
			e.mustRun(nil)
			before := snapshot(t, e.disk)
			marker := e.markerBytes()
			stateA, stateB := e.state, t.TempDir()
			run := func(state string, takeover bool) (*Summary, error) {
				o := e.options()
				o.StateDir, o.Takeover = state, takeover
				return Run(context.Background(), o)
			}
			_, err := run(stateB, false)
			var me *Error
			if !errors.As(err, &me) || me.Outcome != Refused || !errors.Is(err, ErrNotOurs) ||
				!strings.Contains(err.Error(), stateA) || !strings.Contains(err.Error(), "--takeover") {
				t.Fatalf("second registry: %v", err)
			}
			if got := snapshot(t, e.disk); len(got) != len(before) || e.markerBytes() != marker {
				t.Fatal("the refused run changed the remote")
			}
			// A dry run is refused too, and never writes the marker.
			o := e.options()
			o.StateDir, o.DryRun, o.DryRunOut = stateB, true, &strings.Builder{}
			if _, err := Run(context.Background(), o); !errors.Is(err, ErrNotOurs) {
				t.Fatalf("dry run of the second registry: %v", err)
			}
			sum, err := run(stateB, true)
			if err != nil || sum.Marker != "taken-over" || !sum.ListedRemote || sum.Transferred != 0 || sum.Adopted != 30 || !sum.MarkerWritten {
				t.Fatalf("takeover: %v %+v\nlog:\n%s", err, sum, e.logs)
			}
			if !strings.Contains(e.markerBytes(), "state "+stateB+"\n") {
				t.Fatalf("the marker does not name the new state directory:\n%s", e.markerBytes())
			}
			if _, err := run(stateA, false); !errors.Is(err, ErrNotOurs) || !strings.Contains(err.Error(), stateB) {
				t.Fatalf("the first registry after the takeover: %v", err)
			}
			if sum, err := run(stateB, false); err != nil || sum.ListedRemote || sum.Transferred != 0 {
				t.Fatalf("the new owner's next run: %v %+v", err, sum)
			}
		})
	}
}

// TestMarkerNeverMirrored: --delete with a listing never removes the
// marker; a dry run on a fresh target writes none; a source file of the
// marker's name is an error that says so; the name is configurable.
func TestMarkerNeverMirrored(t *testing.T) {
	for _, mk := range realBackends() {
		e := mk(t)
		t.Run(e.name, func(t *testing.T) {
			e.t = t
			e.tree(20, 2)
			if _, code := e.run(func(o *Options) { o.DryRun, o.DryRunOut = true, &strings.Builder{} }); code != Complete {
				t.Fatalf("dry run: exit %d", code)
			}
			if _, err := os.Stat(filepath.Join(e.disk, DefaultMarker)); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("a dry run wrote the marker: %v", err)
			}
			del := func(o *Options) { o.Delete, o.CheckRemote = true, true }
			e.mustRun(del)
			sum := e.mustRun(del)
			if sum.Deleted != 0 || sum.Conflicts != 0 || sum.Plan.Deletes != 0 {
				t.Fatalf("--delete --check-remote: %+v", sum)
			}
			e.markerBytes()

			e.write(filepath.Join(e.src, DefaultMarker), 10)
			_, err := Run(context.Background(), e.options())
			var me *Error
			if !errors.As(err, &me) || me.Outcome != Aborted || !strings.Contains(err.Error(), "holds .ferry-marker at its root") {
				t.Fatalf("a source file named like the marker: %v", err)
			}
			os.Remove(filepath.Join(e.src, DefaultMarker))

			o := e.options()
			o.Marker = ".other-marker"
			if _, err := Run(context.Background(), o); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(filepath.Join(e.disk, ".other-marker")); err != nil {
				t.Fatalf("--marker: %v", err)
			}
		})
	}
}

// TestMarkerGarbageAndDirectory: a file of the marker's name that ferry
// did not write is refused (exit 3) unless taken over; an unreadable
// marker and a directory of that name are exit 2; a state directory made
// anew in the same place repairs without a refusal.
func TestMarkerGarbageAndDirectory(t *testing.T) {
	e := newSFTPEnv(t)
	e.tree(5, 1)
	e.mustRun(nil)
	p := filepath.Join(e.disk, DefaultMarker)
	if err := os.WriteFile(p, []byte("not mine\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, code := e.run(nil); code != Refused {
		t.Fatalf("garbage marker: exit %d, want 3", code)
	}
	if sum, code := e.run(func(o *Options) { o.Takeover = true }); code != Complete || sum.Marker != "taken-over" {
		t.Fatalf("garbage marker taken over: exit %d %+v", code, sum)
	}
	// Unreadable (and not this job's stamp, so it must be read): exit 2
	// with the reason, nothing changed.
	if err := os.Chmod(p, 0); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(p, time.Now(), time.Now()); err != nil {
		t.Fatal(err)
	}
	_, err := Run(context.Background(), e.options())
	var me *Error
	if !errors.As(err, &me) || me.Outcome != Aborted || !strings.Contains(err.Error(), "cannot be read") || !errors.Is(err, remote.ErrPermission) {
		t.Fatalf("an unreadable marker: %v", err)
	}
	os.Remove(p)
	os.Mkdir(p, 0o755)
	if _, code := e.run(nil); code != Aborted {
		t.Fatalf("a directory named like the marker: exit %d, want 2", code)
	}
	os.Remove(p)

	// The state directory deleted and made anew in the same place: its
	// new registry finds the marker of the old one, from this host and
	// this state directory, and repairs instead of refusing.
	e.mustRun(nil)
	if err := os.RemoveAll(e.state); err != nil {
		t.Fatal(err)
	}
	if sum := e.mustRun(nil); sum.Marker != "recreated" || !sum.ListedRemote || sum.Transferred != 0 {
		t.Fatalf("a recreated state directory: %+v", sum)
	}
}

// TestMarkerCost: a no-op re-run makes exactly one stat (the marker's,
// which also proves the target exists) and reads, lists and writes
// nothing; a run that changed something writes a new token.
func TestMarkerCost(t *testing.T) {
	fs := mem.New()
	fs.Caps.SetModTime = true
	fs.Caps.ModTimePrecision = time.Second
	e := baseEnv(t, "mem")
	e.target = &remote.Target{Scheme: "mem", Path: "/site"}
	e.open = fs.Open
	e.tree(40, 4)
	e.mustRun(nil)
	before := fs.Calls()
	if sum := e.mustRun(nil); sum.Transferred != 0 || sum.ListedRemote {
		t.Fatalf("no-op: %+v", sum)
	}
	after := fs.Calls()
	for _, op := range []string{"stat", "read", "list", "put", "mkdir", "rename", "chtimes"} {
		want := map[string]int{"stat": 1}[op]
		if n := after[op] - before[op]; n != want {
			t.Errorf("a no-op run made %d %s calls, want %d", n, op, want)
		}
	}
	e.write(filepath.Join(e.src, "d00", "changed.txt"), 10)
	old, _ := fs.ReadFile("site/" + DefaultMarker)
	if sum := e.mustRun(nil); sum.Transferred != 1 || !sum.MarkerWritten {
		t.Fatalf("one change: %+v", sum)
	}
	if now, _ := fs.ReadFile("site/" + DefaultMarker); string(now) == string(old) {
		t.Fatal("a run that changed the remote kept the old token")
	}
}

// TestMarkerLiveScan: the daemon's session checks the marker before each
// scan: after a wipe, even a subtree scan becomes a full scan with a
// listing that sends everything again; after another registry took the
// target over, the scan is refused with ErrNotOurs.
func TestMarkerLiveScan(t *testing.T) {
	for _, mk := range realBackends() {
		e := mk(t)
		t.Run(e.name, func(t *testing.T) {
			e.t = t
			e.tree(50, 2)
			ctx, cancel := context.WithCancel(context.Background())
			s, _, err := Open(ctx, e.options())
			if err != nil {
				t.Fatal(err)
			}
			l := s.Live(LiveOptions{})
			var wg sync.WaitGroup
			wg.Go(func() { _ = l.Serve(ctx) })
			defer func() {
				cancel()
				wg.Wait()
				s.Close()
			}()
			if res := l.Scan(ctx, "", true); res.Err != nil || !res.MarkerWritten {
				t.Fatalf("first scan: %+v", res)
			}
			e.sameTree()
			if err := os.RemoveAll(e.disk); err != nil {
				t.Fatal(err)
			}
			res := l.Scan(ctx, "d01", false)
			if res.Err != nil || res.Plan.Uploads != 50 || !res.MarkerWritten {
				t.Fatalf("subtree scan after the wipe: %+v\nlog:\n%s", res, e.logs)
			}
			e.sameTree()

			o := e.options()
			o.StateDir, o.Takeover = t.TempDir(), true
			if _, err := Run(ctx, o); err != nil {
				t.Fatal(err)
			}
			res = l.Scan(ctx, "", true)
			if res.Outcome != Refused || !errors.Is(res.Err, ErrNotOurs) || !strings.Contains(res.Err.Error(), o.StateDir) {
				t.Fatalf("scan after another registry took over: %+v", res)
			}
		})
	}
}
