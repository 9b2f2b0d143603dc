package main

import (
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

// blockingGit returns a PATH under which git stops at its first op
// (commit-tree, push): it writes its pid to marker and sleeps, so that the
// test can kill ferry at exactly that instant. Every other git command runs
// the real git.
func blockingGit(t *testing.T, op string) (path, marker string) {
	t.Helper()
	real, err := exec.LookPath("git")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	marker = filepath.Join(dir, "blocked")
	script := fmt.Sprintf(`#!/bin/sh
for a in "$@"; do
	if [ "$a" = %q ] && [ ! -e %q ]; then
		echo $$ > %q.tmp && mv %q.tmp %q
		exec sleep 600
	fi
done
exec %q "$@"
`, op, marker, marker, marker, marker, real)
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
	out, err := exec.Command("git", append([]string{"-C", dir}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

// TestGitKilled: ferry killed with SIGKILL between shipping and committing,
// and between committing and pushing; the next run completes the stage.
// Each path is in the history exactly once, each batch is one commit, and
// the repository passes fsck --strict.
func TestGitKilled(t *testing.T) {
	for _, op := range []string{"commit-tree", "push"} {
		t.Run(op, func(t *testing.T) {
			src, state, remote := t.TempDir(), t.TempDir(), t.TempDir()
			writeTree(t, src, 7, 2)
			repo := filepath.Join(t.TempDir(), "site.git")
			gitIn(t, filepath.Dir(repo), "init", "-q", "--bare", "-b", "main", repo)
			args := []string{"--once", "--state", state, "--git-repository", repo, "--git-batch-files", "3", src, "file://" + remote}
			path, marker := blockingGit(t, op)
			r := startFerry(t, []string{"PATH=" + path}, args...)
			for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(20 * time.Millisecond) {
				if _, err := os.Stat(marker); err == nil {
					break
				}
				select {
				case err := <-r.done:
					t.Fatalf("ferry ended before git's %s: %v\n%s%s", op, err, r.out.String(), r.errb.String())
				default:
				}
				if time.Now().After(deadline) {
					t.Fatalf("git's %s never ran:\n%s%s", op, r.out.String(), r.errb.String())
				}
			}
			r.cmd.Process.Kill()
			<-r.done
			if out, err := exec.Command("git", "-C", repo, "rev-parse", "--verify", "-q", "main").CombinedOutput(); err == nil {
				t.Fatalf("the repository has a commit before the restart: %s", out)
			}
			res := ferry(t, nil, nil, args...)
			if res.code != 0 {
				t.Fatalf("the run after the kill: exit %d\n%s%s", res.code, res.stdout, res.stderr)
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
