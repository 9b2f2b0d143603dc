package main

import (
	"ferry/internal/testrig"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// blockingGit returns a PATH under which git stops at its first op (words
// of its command line: "--batch" for the object reader, "update-ref
// refs/heads/main" for the move of the branch, "push"): it writes its pid to marker and waits until a file
// named marker+".go" exists (then runs), so that the test can kill ferry at
// exactly that instant, or change something before letting it go on.
// Every other git command runs the real git.
func blockingGit(t *testing.T, op string) (path, marker string) {
	t.Helper()
	real, err := exec.LookPath("git")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	marker = filepath.Join(dir, "blocked")
	script := fmt.Sprintf(`#!/bin/sh
case " $* " in *" %s "*)
	if [ ! -e %q ]; then
		echo $$ > %q.tmp && mv %q.tmp %q
		while [ ! -e %q.go ]; do sleep 0.05; done
	fi
esac
exec %q "$@"
`, op, marker, marker, marker, marker, marker, real)
	if err := os.WriteFile(filepath.Join(dir, "git"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if b, err := os.ReadFile(marker); err == nil {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})
	return dir + string(os.PathListSeparator) + os.Getenv("PATH"), marker
}

func gitIn(t *testing.T, dir string, args ...string) string {
	t.Helper()
	return testrig.Git(t, dir, args...)
}

// TestGitKilled: ferry killed with SIGKILL between shipping and committing
// (as the stage starts its object reader), between writing a batch's
// commit and moving the branch to it (update-ref), and between committing
// and pushing; the next run completes the stage.
// Each path is in the history exactly once, each batch is one commit, and
// the repository passes fsck --strict.
func TestGitKilled(t *testing.T) {
	for _, op := range []string{"--batch", "update-ref refs/heads/main", "push"} {
		t.Run(op, func(t *testing.T) {
			src, state, remote := t.TempDir(), t.TempDir(), t.TempDir()
			writeTree(t, src, 7, 2)
			repo := filepath.Join(t.TempDir(), "site.git")
			gitIn(t, filepath.Dir(repo), "init", "-q", "--bare", "-b", "main", repo)
			args := []string{"--once", "--state", state, "--git-repository", repo, "--git-batch-files", "3", src, "file://" + remote}
			path, marker := blockingGit(t, op)
			r := startFerry(t, []string{"PATH=" + path}, args...)
			waitFile(t, marker, r)
			r.cmd.Process.Kill()
			<-r.done
			if out, err := exec.Command("git", "-C", repo, "rev-parse", "--verify", "-q", "main").CombinedOutput(); err == nil {
				t.Fatalf("the repository has a commit before the restart: %s", out)
			}
			res := ferry(t, nil, nil, args...)
			if res.code != 0 {
				t.Fatalf("the run after the kill: exit %d\n%s%s", res.code, res.stdout, res.stderr)
			}
			for _, l := range strings.Split(res.stdout+res.stderr, "\n") {
				if strings.Contains(l, "git") {
					t.Logf("the run after the kill: %s", strings.TrimSpace(l))
				}
			}
			if n := gitIn(t, repo, "rev-list", "--count", "main"); n != "3" {
				t.Fatalf("%s commits for 7 files in batches of 3, want 3:\n%s", n, gitIn(t, repo, "log", "--stat", "main"))
			}
			var paths []string
			for _, l := range strings.Split(gitIn(t, repo, "log", "--format=", "--name-only", "main"), "\n") {
				if l != "" {
					paths = append(paths, l)
				}
			}
			sort.Strings(paths)
			for i := 1; i < len(paths); i++ {
				if paths[i] == paths[i-1] {
					t.Fatalf("%s is in the history twice: %v", paths[i], paths)
				}
			}
			if len(paths) != 7 {
				t.Fatalf("the history holds %d paths, want 7: %v", len(paths), paths)
			}
			for _, p := range paths {
				want, _ := os.ReadFile(filepath.Join(src, p))
				if got := gitIn(t, repo, "cat-file", "-s", "main:"+p); got != strconv.Itoa(len(want)) {
					t.Fatalf("%s: %s bytes committed, the file has %d", p, got, len(want))
				}
			}
			gitIn(t, repo, "fsck", "--strict", "--no-dangling")
			clones, _ := filepath.Glob(filepath.Join(state, "git", "*.git"))
			if len(clones) != 1 {
				t.Fatalf("ferry's clones: %v", clones)
			}
			gitIn(t, clones[0], "fsck", "--strict")
		})
	}
}

// waitFile waits until ferry's git reaches the blocked op.
func waitFile(t *testing.T, marker string, r *running) {
	t.Helper()
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(marker); err == nil {
			return
		}
		select {
		case err := <-r.done:
			t.Fatalf("ferry ended before git reached the blocked command: %v\n%s%s", err, r.out.String(), r.errb.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("git never reached the blocked command:\n%s%s", r.out.String(), r.errb.String())
		}
	}
}

// TestGitCommitsShippedBytes: a file saved again after it was shipped and
// before the commit is committed with the bytes that were shipped, not the
// new ones; the next run ships the new bytes and commits them apart.
func TestGitCommitsShippedBytes(t *testing.T) {
	src, state, remote := t.TempDir(), t.TempDir(), t.TempDir()
	page := filepath.Join(src, "index.html")
	os.WriteFile(page, []byte("shipped version\n"), 0o644)
	repo := filepath.Join(t.TempDir(), "site.git")
	gitIn(t, filepath.Dir(repo), "init", "-q", "--bare", "-b", "main", repo)
	args := []string{"--once", "--state", state, "--git-repository", repo, src, "file://" + remote}
	path, marker := blockingGit(t, "update-ref refs/heads/main")
	r := startFerry(t, []string{"PATH=" + path}, args...)
	waitFile(t, marker, r)
	os.WriteFile(page, []byte("saved again before the commit\n"), 0o644)
	os.Chtimes(page, time.Now().Add(time.Minute), time.Now().Add(time.Minute))
	os.WriteFile(marker+".go", nil, 0o644)
	if err := <-r.done; err != nil {
		t.Fatalf("ferry: %v\n%s%s", err, r.out.String(), r.errb.String())
	}
	if got := gitIn(t, repo, "show", "main:index.html"); got != "shipped version" {
		t.Fatalf("the commit holds %q, not the bytes shipped\n%s%s", got, r.out.String(), r.errb.String())
	}
	if res := ferry(t, nil, nil, args...); res.code != 0 {
		t.Fatalf("second run: exit %d\n%s%s", res.code, res.stdout, res.stderr)
	}
	if got := gitIn(t, repo, "show", "main:index.html"); got != "saved again before the commit" {
		t.Fatalf("after the next run the commit holds %q", got)
	}
	if n := gitIn(t, repo, "rev-list", "--count", "main"); n != "2" {
		t.Fatalf("%s commits, want 2 (the shipped bytes, then the new ones)", n)
	}
	if b, _ := os.ReadFile(filepath.Join(remote, "index.html")); string(b) != "saved again before the commit\n" {
		t.Fatalf("the remote holds %q", b)
	}
}
