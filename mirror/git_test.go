package mirror

import (
	"ferry/internal/testrig"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"ferry/gitstage"
)

// TestOnceCommitsShipped: a --once run commits what it shipped, in batches
// of batch_files, pushes them, and records its last commit; a run that
// ships nothing commits nothing; changes and deletions become one commit.
func TestOnceCommitsShipped(t *testing.T) {
	for _, mk := range backends(t) {
		e := mk(t)
		t.Run(e.name, func(t *testing.T) {
			repo := testrig.BareRepo(t)
			e.write(filepath.Join(e.src, "index.html"), 100)
			e.tree(6, 2)
			git := func(o *Options) {
				o.Delete = true
				o.Git = gitstage.Options{Repository: repo, Branch: "main", BatchFiles: 3, BatchDelay: 1e9, Push: true,
					Author: gitstage.Author{Name: "ferry", Email: "ferry@test"}, Message: gitstage.DefaultMessage, PathPrefix: "www"}
			}
			sum := e.mustRun(git)
			if len(sum.GitCommits) != 3 || sum.GitError != "" {
				t.Fatalf("7 files in batches of 3: commits %v, error %q", sum.GitCommits, sum.GitError)
			}
			if tip := testrig.Git(t, repo, "rev-parse", "main"); tip != sum.GitCommits[2] {
				t.Fatalf("the repository's main is %s, the run's last commit %s", tip, sum.GitCommits[2])
			}
			files := strings.Fields(testrig.Git(t, repo, "ls-tree", "-r", "--name-only", "main"))
			if len(files) != 7 || files[0] != "www/d00/s0/f00000.txt" {
				t.Fatalf("the tree holds %v", files)
			}
			for _, f := range files {
				want, _ := os.ReadFile(filepath.Join(e.src, strings.TrimPrefix(f, "www/")))
				if got := testrig.Git(t, repo, "show", "main:"+f); got != strings.TrimSpace(string(want)) {
					t.Fatalf("%s: the commit holds other bytes than the file", f)
				}
			}
			if sum := e.mustRun(git); len(sum.GitCommits) != 0 {
				t.Fatalf("a run that shipped nothing committed %v", sum.GitCommits)
			}
			e.write(filepath.Join(e.src, "index.html"), 200)
			os.Remove(filepath.Join(e.src, "d00", "s0", "f00000.txt"))
			sum = e.mustRun(git)
			if len(sum.GitCommits) != 1 {
				t.Fatalf("one change and one deletion: commits %v", sum.GitCommits)
			}
			msg := testrig.Git(t, repo, "log", "-1", "--format=%B", "main")
			if !strings.Contains(msg, "M index.html") || !strings.Contains(msg, "D d00/s0/f00000.txt") || !strings.Contains(msg, "1 changed, 1 deleted") {
				t.Fatalf("commit message:\n%s", msg)
			}
			if n := testrig.Git(t, repo, "rev-list", "--count", "main"); n != "4" {
				t.Fatalf("%s commits in the repository, want 4", n)
			}
		})
	}
}

// TestGitStageOnExistingMirror: a Git stage added to a job that mirrored
// without one commits the whole tree at its next run, from the local bytes
// proven against the remote, without sending anything; so does a first
// run that finds the files already on the remote (adopted, not sent).
func TestGitStageOnExistingMirror(t *testing.T) {
	for _, mk := range backends(t) {
		e := mk(t)
		t.Run(e.name, func(t *testing.T) {
			e.tree(5, 2)
			e.mustRun(nil)
			repo := testrig.BareRepo(t)
			git := func(o *Options) {
				o.Git = gitstage.Options{Repository: repo, Branch: "main", BatchFiles: 100, BatchDelay: 1e9, Push: true,
					Author: gitstage.Author{Name: "ferry", Email: "ferry@test"}, Message: gitstage.DefaultMessage}
			}
			uploads := func() int { // what vsftpd's transfer log counts; -1 elsewhere
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
			sum := e.mustRun(git)
			if got := uploads(); got != before && got-before != 1 { // the marker's new token, nothing else
				t.Fatalf("vsftpd received %d uploads when the stage was added, want at most the marker", got-before)
			}
			if sum.Transferred != 0 || sum.Adopted != 5 || len(sum.GitCommits) != 1 {
				t.Fatalf("stage added: transferred %d, adopted %d, commits %v, plan %+v\n%s", sum.Transferred, sum.Adopted, sum.GitCommits, sum.Plan, e.logs)
			}
			if files := strings.Fields(testrig.Git(t, repo, "ls-tree", "-r", "--name-only", "main")); len(files) != 5 {
				t.Fatalf("the tree holds %v", files)
			}
			if sum := e.mustRun(git); sum.Adopted != 0 || len(sum.GitCommits) != 0 {
				t.Fatalf("the next run: adopted %d, commits %v", sum.Adopted, sum.GitCommits)
			}
			// A new state directory: nothing recorded, the files found on
			// the remote by the listing (taken over: the marker names the
			// first registry).
			e.state = t.TempDir()
			repo2 := testrig.BareRepo(t)
			sum = e.mustRun(func(o *Options) { git(o); o.Git.Repository, o.Takeover = repo2, true })
			if sum.Transferred != 0 || len(sum.GitCommits) != 1 {
				t.Fatalf("a fresh registry over a full remote: transferred %d, adopted %d (+%d planned), commits %v", sum.Transferred, sum.Adopted, sum.Plan.Adopted, sum.GitCommits)
			}
			if files := strings.Fields(testrig.Git(t, repo2, "ls-tree", "-r", "--name-only", "main")); len(files) != 5 {
				t.Fatalf("the second repository's tree holds %v", files)
			}
		})
	}
}

// TestGitRepositoryUnreachable: a Git stage whose repository cannot be
// reached mirrors anyway and says so (exit 1, the error in the summary);
// the first run that reaches it commits what was shipped meanwhile,
// without sending anything again.
func TestGitRepositoryUnreachable(t *testing.T) {
	e := newFileEnv(t)
	e.tree(4, 2)
	repo := filepath.Join(t.TempDir(), "later.git")
	git := func(o *Options) {
		o.Git = gitstage.Options{Repository: repo, Branch: "main", BatchFiles: 100, BatchDelay: 1e9, Push: true,
			Author: gitstage.Author{Name: "ferry", Email: "ferry@test"}, Message: gitstage.DefaultMessage}
	}
	sum, code := e.run(git)
	if code != Partial || sum.Transferred != 4 || !strings.Contains(sum.GitError, repo) {
		t.Fatalf("repository missing: outcome %v, transferred %d, git error %q\n%s", code, sum.Transferred, sum.GitError, e.logs)
	}
	e.sameTree()
	testrig.Git(t, "", "init", "-q", "--bare", "-b", "main", repo)
	sum = e.mustRun(git)
	if sum.Transferred != 0 || len(sum.GitCommits) != 1 {
		t.Fatalf("repository there: transferred %d, commits %v", sum.Transferred, sum.GitCommits)
	}
	if files := strings.Fields(testrig.Git(t, repo, "ls-tree", "-r", "--name-only", "main")); len(files) != 4 {
		t.Fatalf("the tree holds %v", files)
	}
}
