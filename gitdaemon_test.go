package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"ferry/internal/testrig"
)

// gitStatus is a job's Git stage as `ferry status --json` gives it.
type gitStatus struct {
	Waiting      int64     `json:"waiting"`
	LastCommit   string    `json:"last_commit"`
	LastCommitAt time.Time `json:"last_commit_at"`
	Unpushed     int       `json:"unpushed"`
	Commits      int64     `json:"commits"`
	Pushes       int64     `json:"pushes"`
	Error        string    `json:"error"`
	Stopped      bool      `json:"stopped"`
}

// repoGit runs git on a test's repository and returns its trimmed output.
func repoGit(t *testing.T, repo string, args ...string) string {
	t.Helper()
	out, err := exec.Command("git", append([]string{"-C", repo}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

// TestDaemonGitStage steers a daemon's Git stage from the command line: a
// job whose batches are due only after an hour or a thousand files, and a
// job without a stage. `ferry status` (text, --json) and the metrics show
// what waits; `ferry sync --git` commits and pushes it now.
func TestDaemonGitStage(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Fatal("git is not installed: scripts/test installs it (the Git stage needs it)")
	}
	dir := t.TempDir()
	src, disk, repo := filepath.Join(dir, "src"), filepath.Join(dir, "remote"), filepath.Join(dir, "site.git")
	writeTree(t, src, 10, 2)
	writeTree(t, filepath.Join(dir, "plain"), 3, 1)
	for _, d := range []string{disk, filepath.Join(dir, "plain-remote")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	repoGit(t, dir, "init", "-q", "--bare", "-b", "main", repo)
	cfg := writeConfig(t, dir, liveServer{target: "file://" + disk}, fmt.Sprintf(
		"[job.git]\nrepository = %q\nbatch_files = 1000\nbatch_delay = \"1h\"\npath_prefix = \"site\"\n"+
			"[[job]]\nname = \"plain\"\nsource = %q\ntarget = %q\n", repo, filepath.Join(dir, "plain"), "file://"+filepath.Join(dir, "plain-remote")))
	body, _ := os.ReadFile(cfg)
	writeFile(t, cfg, "metrics_listen = \"127.0.0.1:0\"\n"+string(body))
	d := startDaemon(t, cfg, nil)

	status := func() (live *gitStatus, plain json.RawMessage) {
		t.Helper()
		r := ferry(t, nil, nil, "status", "--json", "--config", cfg)
		var st struct {
			Jobs []struct {
				Name string
				Git  json.RawMessage
			}
		}
		if err := json.Unmarshal([]byte(r.stdout), &st); err != nil || len(st.Jobs) != 2 {
			t.Fatalf("status --json: exit %d, %v\n%s%s", r.code, err, r.stdout, r.stderr)
		}
		for _, j := range st.Jobs {
			switch {
			case j.Name == "plain":
				plain = j.Git
			case j.Git != nil:
				live = &gitStatus{}
				if err := json.Unmarshal(j.Git, live); err != nil {
					t.Fatal(err)
				}
			}
		}
		return live, plain
	}
	waitGit := func(what string, ok func(gitStatus) bool) gitStatus {
		t.Helper()
		var last *gitStatus
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			if last, _ = status(); last != nil && ok(*last) {
				return *last
			}
		}
		t.Fatalf("no Git stage with %s in ferry status after 30 s; the last: %+v", what, last)
		return gitStatus{}
	}
	m := regexp.MustCompile(`msg=metrics url=(http://\S+)`).FindStringSubmatch(d.log.String())
	if m == nil {
		t.Fatalf("no metrics URL in the log")
	}
	metrics := func() string {
		t.Helper()
		resp, err := http.Get(m[1])
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}

	// The first scan shipped the tree: it waits for its batch.
	waitGit("10 files waiting", func(g gitStatus) bool { return g.Waiting == 10 })
	if _, plain := status(); plain != nil {
		t.Errorf("the job without a Git stage shows one: %s", plain)
	}
	got := metrics()
	for _, want := range []string{`ferry_git_waiting_files{job="live"} 10`, `ferry_git_commits_total{job="live"} 0`,
		`ferry_git_unpushed_batches{job="live"} 0`, `ferry_git_stopped{job="live"} 0`} {
		if !strings.Contains(got, want) {
			t.Errorf("metrics lack %q:\n%s", want, regexp.MustCompile(`(?m)^ferry_git.*$`).FindAllString(got, -1))
		}
	}
	if strings.Contains(got, `ferry_git_waiting_files{job="plain"}`) {
		t.Error("the job without a Git stage has Git metrics")
	}
	if out, err := exec.Command("git", "-C", repo, "rev-list", "--all").CombinedOutput(); err != nil || len(out) != 0 {
		t.Fatalf("committed before the batch was due: %s %v", out, err)
	}

	// The button, an hour before the batch is due.
	if r := ferry(t, nil, nil, "sync", "--git", "--config", cfg, "--job", "plain"); r.code != 2 || !strings.Contains(r.stderr, `job "plain" has no Git stage`) {
		t.Errorf("sync --git of a job without a stage: exit %d, %q", r.code, r.stderr)
	}
	if r := ferry(t, nil, nil, "sync", "--git", "--config", cfg, "--job", "live"); r.code != 0 || r.stdout != "sync --git: job live\n" {
		t.Fatalf("sync --git: exit %d, %q %q", r.code, r.stdout, r.stderr)
	}
	st := waitGit("the tree committed and pushed", func(g gitStatus) bool { return g.Commits == 1 && g.Pushes == 1 && g.Waiting == 0 })
	if tip := repoGit(t, repo, "rev-parse", "main"); tip != st.LastCommit || st.Unpushed != 0 || st.Error != "" || st.Stopped {
		t.Errorf("the repository's main is %s; status says %+v", tip, st)
	}
	if n := len(strings.Fields(repoGit(t, repo, "ls-tree", "-r", "--name-only", "main", "site/"))); n != 10 {
		t.Errorf("the commit holds %d files under site/, want 10", n)
	}
	r := ferry(t, nil, nil, "status", "--config", cfg)
	if want := "  git: 0 waiting, last commit " + st.LastCommit[:12] + " ("; !strings.Contains(r.stdout, want) {
		t.Errorf("status lacks %q:\n%s", want, r.stdout)
	}
	got = metrics()
	for _, want := range []string{`ferry_git_waiting_files{job="live"} 0`, `ferry_git_commits_total{job="live"} 1`, `ferry_git_pushes_total{job="live"} 1`} {
		if !strings.Contains(got, want) {
			t.Errorf("metrics lack %q:\n%s", want, regexp.MustCompile(`(?m)^ferry_git.*$`).FindAllString(got, -1))
		}
	}

	// A save ships live; the button of every job commits it.
	writeFile(t, filepath.Join(src, "saved.txt"), "saved")
	arrival(t, disk, "saved.txt", []byte("saved"), 30*time.Second)
	for deadline := time.Now().Add(30 * time.Second); ; {
		if r := ferry(t, nil, nil, "sync", "--git", "--config", cfg); r.code != 0 || r.stdout != "sync --git: job live\n" {
			t.Fatalf("sync --git of every job: exit %d, %q %q", r.code, r.stdout, r.stderr)
		}
		// The stage has the save once the registry has it as shipped.
		if out, _ := exec.Command("git", "-C", repo, "show", "main:site/saved.txt").Output(); string(out) == "saved" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the save is not committed 30 s after it arrived:\n%s", repoGit(t, repo, "log", "--stat", "main"))
		}
	}
	waitGit("the save committed and pushed", func(g gitStatus) bool { return g.Commits == 2 && g.Pushes == 2 })
	if code := d.stop(t, 30*time.Second); code != 0 {
		t.Fatalf("SIGTERM: exit %d", code)
	}
	repoGit(t, repo, "fsck", "--strict", "--no-dangling")
}

// gitJobStatus is the Git stage of the job named "live" in `ferry status
// --json`, nil when it has none.
func gitJobStatus(t *testing.T, cfg string) *gitStatus {
	t.Helper()
	r := ferry(t, nil, nil, "status", "--json", "--config", cfg)
	var st struct {
		Jobs []struct {
			Name string
			Git  *gitStatus
		}
	}
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil {
		t.Fatalf("status --json: exit %d, %v\n%s%s", r.code, err, r.stdout, r.stderr)
	}
	for _, j := range st.Jobs {
		if j.Name == "live" {
			return j.Git
		}
	}
	return nil
}

// committed checks that the repository's main is one commit holding
// exactly files (path → bytes).
func committed(t *testing.T, repo string, files map[string]string) {
	t.Helper()
	if n := testrig.Git(t, repo, "rev-list", "--count", "main"); n != "1" {
		t.Fatalf("%s commits on main, want 1:\n%s", n, testrig.Git(t, repo, "log", "--stat", "main"))
	}
	names := strings.Fields(testrig.Git(t, repo, "ls-tree", "-r", "--name-only", "main"))
	if len(names) != len(files) {
		t.Errorf("the commit holds %v, want %d files", names, len(files))
	}
	for f, body := range files {
		if got := testrig.Git(t, repo, "show", "main:"+f); got != body {
			t.Errorf("%s committed as %q, want %q", f, got, body)
		}
	}
}

// TestGitDaemonCommitsOnStop: SIGTERM commits and pushes what the Git
// stage holds once the transfers stopped, though no batch is due (a
// thousand files or an hour): one commit of the three files shipped, the
// last of them just before the signal.
func TestGitDaemonCommitsOnStop(t *testing.T) {
	dir := t.TempDir()
	src, disk := filepath.Join(dir, "src"), filepath.Join(dir, "remote")
	repo := testrig.BareRepo(t)
	files := map[string]string{"index.html": "<p>home</p>", "a/b.txt": "bee", "saved.txt": "saved just before the stop"}
	writeFile(t, filepath.Join(src, "index.html"), files["index.html"])
	writeFile(t, filepath.Join(src, "a/b.txt"), files["a/b.txt"])
	if err := os.MkdirAll(disk, 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := writeConfig(t, dir, liveServer{target: "file://" + disk},
		fmt.Sprintf("[job.git]\nrepository = %q\nbatch_files = 1000\nbatch_delay = \"1h\"\n", repo))
	d := startDaemon(t, cfg, nil)
	// The last file ships live, and the signal follows its arrival at
	// once: its record may still be on its way to the registry.
	writeFile(t, filepath.Join(src, "saved.txt"), files["saved.txt"])
	arrival(t, disk, "saved.txt", []byte(files["saved.txt"]), 30*time.Second)
	if out := testrig.Git(t, repo, "rev-list", "--all"); out != "" {
		t.Fatalf("committed before the stop: %s", out)
	}
	if code := d.stop(t, 60*time.Second); code != 0 {
		t.Fatalf("SIGTERM: exit %d", code)
	}
	committed(t, repo, files)
	if !strings.Contains(d.log.String(), `msg="git: committed what waited before stopping" job=live commits=1`) {
		t.Errorf("the log does not say what the stop committed:\n%s", d.log)
	}
	testrig.Git(t, repo, "fsck", "--strict", "--no-dangling")
}

// TestGitDaemonBatchDelay: with batch_delay = 2s and room for a thousand
// files, the three files a scan shipped are committed on their own, in
// one commit, no sooner than 2 s after the first of them arrived on the
// remote. The commit's time is the stage's clock as status gives it (the
// committer date, to the second, agrees); the arrival is seen within a
// millisecond of the rename, and the tolerance of 250 ms stays far from
// what a commit made at once shows (about 0.4 s: the stage's poll).
func TestGitDaemonBatchDelay(t *testing.T) {
	dir := t.TempDir()
	src, disk := filepath.Join(dir, "src"), filepath.Join(dir, "remote")
	repo := testrig.BareRepo(t)
	files := map[string]string{"index.html": "<p>home</p>", "a/b.txt": "bee", "a/c/d.css": "p{}"}
	for f, body := range files {
		writeFile(t, filepath.Join(src, filepath.FromSlash(f)), body)
	}
	if err := os.MkdirAll(disk, 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := writeConfig(t, dir, liveServer{target: "file://" + disk},
		fmt.Sprintf("[job.git]\nrepository = %q\nbatch_files = 1000\nbatch_delay = \"2s\"\n", repo))
	// The first arrival, watched from before the daemon starts.
	first := make(chan time.Time, 1)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			for f := range files {
				if _, err := os.Stat(filepath.Join(disk, filepath.FromSlash(f))); err == nil {
					first <- time.Now()
					return
				}
			}
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
			}
		}
	}()
	d := startDaemon(t, cfg, nil)
	var shipped time.Time
	select {
	case shipped = <-first:
	case <-time.After(30 * time.Second):
		t.Fatal("no file arrived on the remote")
	}
	var st *gitStatus
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if st = gitJobStatus(t, cfg); st != nil && st.Commits > 0 && st.Pushes > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no commit pushed 30 s after the files shipped; status: %+v", st)
		}
	}
	after := st.LastCommitAt.Sub(shipped)
	if after < 2*time.Second-250*time.Millisecond {
		t.Errorf("committed %v after the first file arrived: before batch_delay (2s)", after)
	}
	t.Logf("committed %v after the first file arrived", after)
	if ct := testrig.Git(t, repo, "log", "-1", "--format=%ct", "main"); ct != fmt.Sprint(st.LastCommitAt.Unix()) {
		t.Errorf("the commit's date is %s, status says %v", ct, st.LastCommitAt)
	}
	if st.Commits != 1 || st.Pushes != 1 || st.LastCommit != testrig.Git(t, repo, "rev-parse", "main") {
		t.Errorf("status says %+v", st)
	}
	committed(t, repo, files)
	if code := d.stop(t, 60*time.Second); code != 0 {
		t.Fatalf("SIGTERM: exit %d", code)
	}
	testrig.Git(t, repo, "fsck", "--strict", "--no-dangling")
}
