package mirror

import (
	"ferry/planner"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"ferry/internal/testrig"
	"ferry/remote"
	"ferry/remote/mem"
)

// TestMirrorThenRerun: the second run transfers nothing; one changed file
// of 1,000 is exactly one transfer; a touched file sends no bytes.
func TestMirrorThenRerun(t *testing.T) {
	for _, mk := range backends(t) {
		e := mk(t)
		t.Run(e.name, func(t *testing.T) {
			e.t = t
			e.tree(1000, 12)
			sum := e.mustRun(nil)
			if sum.Transferred != 1000 || sum.Failed != 0 {
				t.Fatalf("first run: %+v", sum)
			}
			e.sameTree()
			uploads := func() int {
				if e.ftp == nil {
					return -1
				}
				n, err := e.ftp.Uploads()
				if err != nil {
					t.Fatal(err)
				}
				return n
			}
			before := uploads()

			sum = e.mustRun(nil)
			if sum.Transferred != 0 || sum.Unchanged != 1000 || sum.Bytes != 0 {
				t.Fatalf("re-run with nothing changed: %+v", sum)
			}
			if e.ftp != nil && uploads() != before {
				t.Fatalf("the server logged %d uploads for a no-op run", uploads()-before)
			}

			changed := filepath.Join(e.src, "d03", "s0", "f00003.txt")
			if err := os.WriteFile(changed, []byte("a new version"), 0o644); err != nil {
				t.Fatal(err)
			}
			sum = e.mustRun(nil)
			if sum.Transferred != 1 || sum.Unchanged != 999 {
				t.Fatalf("one file changed: %+v", sum)
			}
			if e.ftp != nil && uploads() != before+1 {
				t.Fatalf("the server logged %d uploads for one changed file", uploads()-before)
			}
			e.sameTree()

			touched := filepath.Join(e.src, "d05", "s2", "f00005.txt")
			later := time.Now().Add(time.Hour).Truncate(time.Second)
			if err := os.Chtimes(touched, later, later); err != nil {
				t.Fatal(err)
			}
			sum = e.mustRun(nil)
			if sum.Transferred != 0 || sum.Touched != 1 || sum.Bytes != 0 {
				t.Fatalf("touched file: %+v", sum)
			}
			fi, err := os.Stat(filepath.Join(e.disk, "d05", "s2", "f00005.txt"))
			if err != nil || !fi.ModTime().Equal(later) {
				t.Fatalf("remote mtime after touch: %v, %v; want %v", fi.ModTime(), err, later)
			}
		})
	}
}

// TestConflictPolicies: a remote file changed by someone else after ferry
// shipped it is kept aside, overwritten or skipped, as the policy says.
func TestConflictPolicies(t *testing.T) {
	for _, mk := range []func(*testing.T) *env{newFTPEnv, newSFTPEnv} {
		for _, policy := range []planner.Conflict{planner.KeepBoth, planner.Overwrite, planner.Skip} {
			e := mk(t)
			t.Run(e.name+"/"+policy.String(), func(t *testing.T) {
				e.t = t
				e.write(filepath.Join(e.src, "page.html"), 100)
				e.write(filepath.Join(e.src, "other.html"), 50)
				e.mustRun(nil)
				theirs := []byte("edited on the server by someone else")
				remotePath := filepath.Join(e.disk, "page.html")
				if err := os.WriteFile(remotePath, theirs, 0o644); err != nil {
					t.Fatal(err)
				}
				ours := []byte("our new local version")
				if err := os.WriteFile(filepath.Join(e.src, "page.html"), ours, 0o644); err != nil {
					t.Fatal(err)
				}
				sum, code := e.run(func(o *Options) { o.Conflict = policy })
				got, _ := os.ReadFile(remotePath)
				copies, _ := filepath.Glob(filepath.Join(e.disk, "page.ferry-conflict-*.html"))
				switch policy {
				case planner.KeepBoth:
					if code != Complete || string(got) != string(ours) || len(copies) != 1 {
						t.Fatalf("keep-both: exit %d, remote %q, copies %v", code, got, copies)
					}
					if kept, _ := os.ReadFile(copies[0]); string(kept) != string(theirs) {
						t.Fatalf("the conflict copy holds %q", kept)
					}
					// The kept copy survives --delete: it is someone's work.
					e.mustRun(func(o *Options) { o.Delete = true; o.CheckRemote = true })
					if _, err := os.Stat(copies[0]); err != nil {
						t.Fatalf("--delete removed the conflict copy: %v", err)
					}
				case planner.Overwrite:
					if code != Complete || string(got) != string(ours) || len(copies) != 0 {
						t.Fatalf("overwrite: exit %d, remote %q, copies %v", code, got, copies)
					}
				case planner.Skip:
					if code != Partial || string(got) != string(theirs) || len(copies) != 0 {
						t.Fatalf("skip: exit %d, remote %q, copies %v", code, got, copies)
					}
					if len(sum.Failures) != 1 || sum.Failures[0].Path != "page.html" || !strings.Contains(sum.Failures[0].Error, "someone else") {
						t.Fatalf("skip: failures %+v", sum.Failures)
					}
				}
				if sum.Conflicts != 1 {
					t.Fatalf("conflicts = %d, want 1", sum.Conflicts)
				}
			})
		}
	}
}

// TestRemoteDriftIsRepaired: with --check-remote, a remote file deleted or
// changed behind ferry's back is found and repaired (keep-both for changes).
func TestRemoteDriftIsRepaired(t *testing.T) {
	e := newSFTPEnv(t)
	e.tree(30, 3)
	e.mustRun(nil)
	os.Remove(filepath.Join(e.disk, "d00", "s0", "f00000.txt"))
	os.WriteFile(filepath.Join(e.disk, "d01", "s1", "f00001.txt"), []byte("drift"), 0o644)
	if sum := e.mustRun(nil); sum.Transferred != 0 {
		t.Fatalf("without --check-remote the registry answers: %+v", sum)
	}
	sum := e.mustRun(func(o *Options) { o.CheckRemote = true })
	if sum.Transferred != 2 || sum.Conflicts != 1 {
		t.Fatalf("--check-remote: %+v", sum)
	}
	copies, _ := filepath.Glob(filepath.Join(e.disk, "d01", "s1", "f00001.ferry-conflict-*.txt"))
	if len(copies) != 1 {
		t.Fatalf("conflict copies: %v", copies)
	}
	os.Remove(copies[0])
	e.sameTree()
}

// TestDeleteSafety: an empty or missing source with --delete is refused
// (exit 3, nothing deleted); so is a plan beyond --max-delete.
func TestDeleteSafety(t *testing.T) {
	for _, mk := range backends(t) {
		e := mk(t)
		t.Run(e.name, func(t *testing.T) {
			e.t = t
			e.tree(20, 2)
			e.mustRun(nil)
			before := snapshot(t, e.disk)
			full := e.src

			e.src = t.TempDir() // empty
			if _, code := e.run(func(o *Options) { o.Delete = true }); code != Refused {
				t.Fatalf("empty source with --delete: exit %d, want 3", code)
			}
			e.src = filepath.Join(t.TempDir(), "missing")
			if _, code := e.run(func(o *Options) { o.Delete = true }); code != Refused {
				t.Fatalf("missing source with --delete: exit %d, want 3", code)
			}
			e.src = full
			if len(snapshot(t, e.disk)) != len(before) {
				t.Fatalf("a refused run changed the remote")
			}

			removed := 0
			for _, p := range []string{"d00/s0/f00000.txt", "d01/s1/f00001.txt", "d00/s2/f00002.txt", "d01/s0/f00003.txt", "d00/s1/f00004.txt"} {
				if os.Remove(filepath.Join(e.src, filepath.FromSlash(p))) == nil {
					removed++
				}
			}
			md, _ := planner.ParseMaxDelete("2")
			_, code := e.run(func(o *Options) { o.Delete = true; o.MaxDelete = md })
			if code != Refused {
				t.Fatalf("%d deletions with --max-delete 2: exit %d, want 3", removed, code)
			}
			if got := snapshot(t, e.disk); len(got) != len(before) {
				t.Fatalf("a run refused for --max-delete deleted %d entries", len(before)-len(got))
			}
			md, _ = planner.ParseMaxDelete("50%")
			sum := e.mustRun(func(o *Options) { o.Delete = true; o.MaxDelete = md })
			if sum.Deleted != int64(removed) {
				t.Fatalf("deleted %d, want %d", sum.Deleted, removed)
			}
			e.sameTree()
		})
	}
}

// TestServerCappedBelowWorkers: vsftpd allows 2 connections per IP and
// ferry asks for 6; the run finishes with no failed file.
func TestServerCappedBelowWorkers(t *testing.T) {
	e := newFTPEnvWith(t, testrig.FTPOptions{MaxPerIP: 2})
	e.tree(300, 6)
	sum := e.mustRun(func(o *Options) { o.Workers = 6 })
	if sum.Failed != 0 || sum.Transferred != 300 {
		t.Fatalf("capped server: %+v\n%s", sum, e.logs)
	}
	e.sameTree()
}

// TestBadCredentialsChangeNothing: a wrong password or an unknown host key
// is exit 2, with nothing written on the remote.
func TestBadCredentialsChangeNothing(t *testing.T) {
	e := newFTPEnv(t)
	e.tree(5, 1)
	e.ropts.Password = "wrong"
	if _, code := e.run(nil); code != Aborted {
		t.Fatalf("wrong FTP password: exit %d, want 2", code)
	}
	if got := snapshot(t, e.ftp.Root); len(got) != 0 {
		t.Fatalf("a refused login wrote %v", got)
	}

	s := newSFTPEnv(t)
	s.tree(5, 1)
	s.ropts.KnownHostsFile = filepath.Join(t.TempDir(), "empty_known_hosts")
	os.WriteFile(s.ropts.KnownHostsFile, nil, 0o600)
	sum, code := s.run(nil)
	if code != Aborted {
		t.Fatalf("unknown host key: exit %d, want 2 (%+v)", code, sum)
	}
	if _, err := os.Stat(s.disk); !os.IsNotExist(err) {
		t.Fatalf("an untrusted server was written to: %v", err)
	}
}

// killer is a Progress that kills the server once, after n items, and
// brings it back a little later.
type killer struct {
	n       atomic.Int64
	after   int64
	kill    func() error
	restart func() error
	wg      sync.WaitGroup
	t       *testing.T
}

func (k *killer) Planned(int64, int64) {}
func (k *killer) Failed(string, error) {}
func (k *killer) Phase(string)         {}
func (k *killer) Done(string, int64) {
	if k.n.Add(1) != k.after {
		return
	}
	if err := k.kill(); err != nil {
		k.t.Errorf("kill: %v", err)
	}
	k.wg.Add(1)
	go func() {
		defer k.wg.Done()
		time.Sleep(700 * time.Millisecond)
		if err := k.restart(); err != nil {
			k.t.Errorf("restart: %v", err)
		}
	}()
}

// TestServerKilledMidRun: the server dies (SIGKILL, every session) in the
// middle of a mirror and comes back 0.7 s later; ferry reconnects and
// finishes with every file in place and nothing half-written.
func TestServerKilledMidRun(t *testing.T) {
	for _, mk := range []func(*testing.T) *env{newFTPEnv, newSFTPEnv} {
		e := mk(t)
		t.Run(e.name, func(t *testing.T) {
			e.t = t
			e.tree(600, 6)
			k := &killer{after: 150, t: t}
			if e.ftp != nil {
				k.kill, k.restart = e.ftp.Kill, e.ftp.Restart
			} else {
				k.kill, k.restart = e.ssh.Kill, e.ssh.Restart
			}
			sum, code := e.run(func(o *Options) { o.Progress = k })
			k.wg.Wait()
			if code != Complete || sum.Failed != 0 {
				t.Fatalf("exit %d, %+v\n%s", code, sum, e.logs)
			}
			if k.n.Load() < 150 {
				t.Fatalf("the kill never happened")
			}
			// A session killed mid-upload leaves its temporary file; the
			// pass records it and removes it once the server is back.
			e.sameTree()
			t.Logf("%s: %d transferred, log: %d lines", e.name, sum.Transferred, strings.Count(e.logs.String(), "\n"))
		})
	}
}

// TestMoveExcludeChecksum covers the flags that shape what is sent and what
// is left behind, on the local backend.
func TestMoveExcludeChecksum(t *testing.T) {
	e := newFileEnv(t)
	e.tree(40, 4)
	e.write(filepath.Join(e.src, "build", "out.o"), 10)
	e.write(filepath.Join(e.src, "notes.tmp"), 10)
	sum := e.mustRun(func(o *Options) { o.Excludes = []string{"/build/", "*.tmp"} })
	if sum.Transferred != 40 {
		t.Fatalf("with excludes: %+v", sum)
	}
	if _, err := os.Stat(filepath.Join(e.disk, "build")); !os.IsNotExist(err) {
		t.Fatalf("excluded directory was mirrored: %v", err)
	}

	// Same size, same mtime, different bytes: only --checksum notices.
	p := filepath.Join(e.src, "d00", "s0", "f00000.txt")
	fi, _ := os.Stat(p)
	b, _ := os.ReadFile(p)
	b[0] ^= 0xff
	os.WriteFile(p, b, 0o644)
	os.Chtimes(p, fi.ModTime(), fi.ModTime())
	excl := func(o *Options) { o.Excludes = []string{"/build/", "*.tmp"} }
	if sum := e.mustRun(excl); sum.Transferred != 0 {
		t.Fatalf("size+mtime comparison sent %d files", sum.Transferred)
	}
	if sum := e.mustRun(func(o *Options) { excl(o); o.Checksum = true }); sum.Transferred != 1 {
		t.Fatalf("--checksum: %+v", sum)
	}

	// --move removes each local file once it is verified on the remote.
	moved := filepath.Join(e.src, "d01", "archive.bin")
	e.write(moved, 5000)
	sum = e.mustRun(func(o *Options) { excl(o); o.Move = true })
	if _, err := os.Stat(moved); !os.IsNotExist(err) {
		t.Fatalf("--move kept the local file: %v", err)
	}
	if got, err := os.ReadFile(filepath.Join(e.disk, "d01", "archive.bin")); err != nil || len(got) != 5000 {
		t.Fatalf("--move: remote copy %d bytes, %v", len(got), err)
	}
	if sum.Transferred != 1 {
		t.Fatalf("--move run: %+v", sum)
	}
}

// TestDryRunChangesNothing: the plan is printed; neither the remote nor
// the registry changes.
func TestDryRunChangesNothing(t *testing.T) {
	e := newFileEnv(t)
	e.tree(10, 2)
	var out strings.Builder
	sum, code := e.run(func(o *Options) { o.DryRun = true; o.DryRunOut = &out })
	if code != Complete || sum.Plan.Uploads != 10 {
		t.Fatalf("dry run: exit %d, %+v", code, sum.Plan)
	}
	if strings.Count(out.String(), "upload ") != 10 {
		t.Fatalf("dry-run output:\n%s", out.String())
	}
	if got := snapshot(t, e.disk); len(got) != 0 {
		t.Fatalf("dry run wrote %v", got)
	}
	if sum := e.mustRun(nil); sum.Transferred != 10 {
		t.Fatalf("after a dry run the real run sent %d, want all 10", sum.Transferred)
	}
}

// TestPhasesShareConnections: the connection that checked the target and
// the pool's connections carry over between phases instead of logging in
// again — a no-op run logs in once, and a run with deletions no more often
// than it has workers.
func TestPhasesShareConnections(t *testing.T) {
	fs := mem.New()
	e := baseEnv(t, "mem")
	e.target = &remote.Target{Scheme: "mem", Path: "/site"}
	e.open = fs.Open
	e.tree(40, 4)
	e.mustRun(nil)
	opens := func() int { return fs.Calls()["open"] }
	before := opens()
	if sum := e.mustRun(nil); sum.Transferred != 0 {
		t.Fatalf("no-op: %+v", sum)
	}
	if n := opens() - before; n != 1 {
		t.Fatalf("a no-op run logged in %d times, want 1", n)
	}
	for _, p := range []string{"d00/s0/f00000.txt", "d01/s1/f00001.txt", "d02/s2/f00002.txt"} {
		os.Remove(filepath.Join(e.src, filepath.FromSlash(p)))
	}
	e.write(filepath.Join(e.src, "new.txt"), 10)
	before = opens()
	sum := e.mustRun(func(o *Options) { o.Delete = true })
	if sum.Deleted != 3 || sum.Transferred != 1 {
		t.Fatalf("deletes: %+v", sum)
	}
	// Without sharing: the target check, up to 4 upload workers and up
	// to 4 delete workers (9). With it: one per worker at most, plus the
	// target check when the pool did not start from it.
	if n := opens() - before; n > 5 {
		t.Fatalf("a run with uploads and deletions logged in %d times with 4 workers", n)
	}
}
