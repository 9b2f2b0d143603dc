package mirror

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"ferry/gitstage"
	"ferry/internal/testrig"
)

// modes maps each file of the repository's main to its mode, from git
// ls-tree.
func modes(t *testing.T, repo string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, l := range strings.Split(testrig.Git(t, repo, "ls-tree", "-r", "main"), "\n") {
		meta, p, _ := strings.Cut(l, "\t")
		out[p] = strings.Fields(meta)[0]
	}
	return out
}

// TestGitCommitsExecBit: a file with an execute bit when it shipped is
// committed as 100755, any other as 100644; a file made executable and
// edited is 100755 in the next commit, and one made not executable and
// edited 100644. Files adopted on the remote (a stage added to a mirror,
// nothing sent) get the bit their read saw too.
func TestGitCommitsExecBit(t *testing.T) {
	for _, mk := range []func(*testing.T) *env{newFileEnv, newFTPEnv} {
		e := mk(t)
		t.Run(e.name, func(t *testing.T) {
			repo := testrig.BareRepo(t)
			git := func(o *Options) {
				o.Git = gitstage.Options{Repository: repo, Branch: "main", BatchFiles: 100, BatchDelay: 1e9, Push: true,
					Author: gitstage.Author{Name: "ferry", Email: "ferry@test"}, Message: gitstage.DefaultMessage}
			}
			write := func(rel string, size int, mode os.FileMode) {
				t.Helper()
				p := filepath.Join(e.src, filepath.FromSlash(rel))
				e.write(p, size)
				if err := os.Chmod(p, mode); err != nil {
					t.Fatal(err)
				}
			}
			write("bin/run.sh", 100, 0o755)
			write("bin/group.sh", 110, 0o654) // the group's bit alone
			write("bin/edit.sh", 120, 0o644)
			write("bin/drop.sh", 130, 0o755)
			write("index.html", 140, 0o644)
			sum := e.mustRun(git)
			if len(sum.GitCommits) != 1 {
				t.Fatalf("commits %v, error %q", sum.GitCommits, sum.GitError)
			}
			want := map[string]string{"bin/run.sh": "100755", "bin/group.sh": "100755", "bin/edit.sh": "100644", "bin/drop.sh": "100755", "index.html": "100644"}
			if got := modes(t, repo); !reflect.DeepEqual(got, want) {
				t.Fatalf("the first commit's modes %v, want %v", got, want)
			}

			// chmod +x and edited; chmod -x and edited.
			write("bin/edit.sh", 121, 0o755)
			write("bin/drop.sh", 131, 0o644)
			sum = e.mustRun(git)
			if len(sum.GitCommits) != 1 {
				t.Fatalf("two files changed: commits %v, error %q", sum.GitCommits, sum.GitError)
			}
			want["bin/edit.sh"], want["bin/drop.sh"] = "100755", "100644"
			if got := modes(t, repo); !reflect.DeepEqual(got, want) {
				t.Fatalf("after chmod and edit, the modes %v, want %v", got, want)
			}
			if msg := testrig.Git(t, repo, "log", "-1", "--format=%B", "main"); !strings.Contains(msg, "2 files (0 added, 2 changed, 0 deleted)") {
				t.Fatalf("the second commit:\n%s", msg)
			}

			// A fresh registry over the full remote: every file adopted,
			// none sent, each committed with its bit from the read that
			// proved it.
			e.state = t.TempDir()
			repo2 := testrig.BareRepo(t)
			sum = e.mustRun(func(o *Options) { git(o); o.Git.Repository, o.Takeover = repo2, true })
			if sum.Transferred != 0 || len(sum.GitCommits) != 1 {
				t.Fatalf("a fresh registry over a full remote: transferred %d, commits %v, error %q", sum.Transferred, sum.GitCommits, sum.GitError)
			}
			if got := modes(t, repo2); !reflect.DeepEqual(got, want) {
				t.Fatalf("adopted: the modes %v, want %v", got, want)
			}
			for _, r := range []string{repo, repo2} {
				testrig.Git(t, r, "fsck", "--strict", "--no-dangling")
			}
		})
	}
}
