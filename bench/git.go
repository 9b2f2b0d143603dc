package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"

	"ferry/config"
)

// gitBranch and gitBatchFiles are the Git stage's defaults, which the
// ferry + git row runs with: the commits a run must make follow from them.
var (
	gitBranch     = config.Defaults().Git.Branch
	gitBatchFiles = int64(config.Defaults().Git.BatchFiles)
)

// gitCommitsFor is how many commits the stage makes for n shipped or
// deleted files: one per batch, the last one possibly short.
func gitCommitsFor(n int64) int64 { return (n + gitBatchFiles - 1) / gitBatchFiles }

// git runs git with args and returns its standard output; the error
// carries what git said on standard error.
func git(ctx context.Context, bin string, args ...string) ([]byte, error) {
	cmd := gitCmd(ctx, bin, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("git %s: %w: %s", strings.Join(args, " "), err, lastLines(stderr.Bytes(), out, 3))
	}
	return out, nil
}

// gitCmd is git with args, the user's and the system's git configuration
// left out, as the user's rclone config is left out of rclone's runs.
func gitCmd(ctx context.Context, bin string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL="+os.DevNull)
	return cmd
}

// initGitRepo makes repo a new, empty bare repository, replacing the one an
// earlier repetition left: every initial mirror starts from nothing.
func initGitRepo(ctx context.Context, bin, repo string) error {
	if err := os.RemoveAll(repo); err != nil {
		return fmt.Errorf("remove the old repository: %w", err)
	}
	_, err := git(ctx, bin, "init", "-q", "--bare", "-b", gitBranch, repo)
	return err
}

// gitCommitCount counts the commits on the branch; 0 while it has none.
func gitCommitCount(ctx context.Context, bin, repo string) (int64, error) {
	err := gitCmd(ctx, bin, "-C", repo, "rev-parse", "--verify", "--quiet", "refs/heads/"+gitBranch).Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.ExitCode() == 1 {
		return 0, nil // no such branch yet
	}
	if err != nil {
		return 0, fmt.Errorf("git rev-parse: %w", err)
	}
	out, err := git(ctx, bin, "-C", repo, "rev-list", "--count", gitBranch)
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64)
}

// gitTree lists the files of the branch's tree with their sizes, sorted by
// path as listTree sorts.
func gitTree(ctx context.Context, bin, repo string) ([]fileEntry, error) {
	out, err := git(ctx, bin, "-C", repo, "ls-tree", "-r", "-l", "-z", gitBranch)
	if err != nil {
		return nil, err
	}
	var files []fileEntry
	for _, rec := range bytes.Split(out, []byte{0}) {
		if len(rec) == 0 {
			continue
		}
		// <mode> SP <type> SP <object> SP+ <size> TAB <path>
		meta, path, ok := bytes.Cut(rec, []byte{'\t'})
		f := strings.Fields(string(meta))
		if !ok || len(f) != 4 {
			return nil, fmt.Errorf("git ls-tree: cannot read %q", rec)
		}
		size, err := strconv.ParseInt(f[3], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("git ls-tree: %s is a %s, not a file", path, f[1])
		}
		files = append(files, fileEntry{string(path), size})
	}
	sort.Slice(files, func(i, j int) bool { return files[i].rel < files[j].rel })
	return files, nil
}

// checkGitRepo is the ferry + git row's check after a run that exited 0:
// the branch has want commits, its tree is src's files with their sizes,
// and git fsck --strict finds nothing wrong. It returns the commit count.
func checkGitRepo(ctx context.Context, bin, repo, src string, want int64) (int64, error) {
	n, err := gitCommitCount(ctx, bin, repo)
	if err != nil {
		return -1, err
	}
	if n != want {
		return n, fmt.Errorf("%s has %d commits, want %d (one per %d files shipped or deleted)", gitBranch, n, want, gitBatchFiles)
	}
	if n > 0 {
		local, err := listTree(src)
		if err != nil {
			return n, fmt.Errorf("list source: %w", err)
		}
		committed, err := gitTree(ctx, bin, repo)
		if err != nil {
			return n, err
		}
		if err := compareLists(gitBranch+"'s tree", local, committed); err != nil {
			return n, err
		}
	}
	if _, err := git(ctx, bin, "-C", repo, "fsck", "--strict", "--no-progress"); err != nil {
		return n, err
	}
	return n, nil
}
