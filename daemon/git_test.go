package daemon

import (
	"context"
	"errors"
	"ferry/internal/testrig"
	"log/slog"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"ferry/control"
	"ferry/gitstage"
	"ferry/internal/syncbuf"
	"ferry/mirror"
	"ferry/remote"
	"ferry/remote/file"
)

// fileJob is a watched job of src to a file:// target under dir.
func fileJob(t *testing.T, name, src, dir string, g gitstage.Options) Job {
	t.Helper()
	target, err := remote.ParseURL("file://" + filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, name), 0o755); err != nil {
		t.Fatal(err)
	}
	return Job{Name: name, Watch: true, Tuning: Tuning{SettleDelay: 50 * time.Millisecond, MaxDelay: time.Second, ScanInterval: time.Hour},
		Options: mirror.Options{Source: src, Target: target, Open: file.Open, StateDir: filepath.Join(dir, "state"), Job: name, Workers: 2, Git: g}}
}

// gitOf waits until the job's status shows a Git stage that ok accepts.
func gitOf(t *testing.T, d *Daemon, job string, what string, ok func(control.GitStatus) bool) control.GitStatus {
	t.Helper()
	var last *control.GitStatus
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		for _, j := range d.Status(context.Background()).Jobs {
			if j.Name == job && j.Git != nil {
				if last = j.Git; ok(*last) {
					return *last
				}
			}
		}
	}
	t.Fatalf("job %s: no Git stage with %s after 30 s; the last status: %+v", job, what, last)
	return control.GitStatus{}
}

// gathered scrapes the daemon's metrics as the endpoint serves them and
// returns the Git stage's, by "name{job}".
func gathered(t *testing.T, d *Daemon) map[string]float64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(collector{d})
	rec := httptest.NewRecorder()
	promhttp.HandlerFor(reg, promhttp.HandlerOpts{}).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	out := map[string]float64{}
	for _, m := range regexp.MustCompile(`(?m)^(ferry_git_\w+)\{job="(\w+)"\} (\S+)$`).FindAllStringSubmatch(rec.Body.String(), -1) {
		v, err := strconv.ParseFloat(m[3], 64)
		if err != nil {
			t.Fatal(err)
		}
		out[m[1]+"{"+m[2]+"}"] = v
	}
	return out
}

// TestGitStage runs a daemon of two jobs, one with a Git stage to a bare
// repository (a batch delay of an hour and room for a thousand files, so
// nothing is committed unless asked) and one without: status and the
// metrics show what waits, GitSync commits and pushes it now, and names
// the jobs it cannot ask.
func TestGitStage(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Fatal("git is not installed: scripts/test installs it (the Git stage needs it)")
	}
	dir := t.TempDir()
	repo := filepath.Join(dir, "site.git")
	testrig.Git(t, dir, "init", "-q", "--bare", "-b", "main", repo)
	src := filepath.Join(dir, "src")
	for _, f := range []string{"index.html", "a/b.txt"} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(src, f)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(src, f), []byte("first "+f), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	g := gitstage.Options{Repository: repo, Branch: "main", BatchFiles: 1000, BatchDelay: time.Hour, Push: true,
		Author: gitstage.Author{Name: "ferry", Email: "ferry@test"}, Message: gitstage.DefaultMessage, PathPrefix: "www"}
	plainSrc := filepath.Join(dir, "plain-src")
	if err := os.MkdirAll(plainSrc, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(plainSrc, "x"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	logs := &syncbuf.Buffer{}
	d, err := New(Options{Jobs: []Job{fileJob(t, "site", src, dir, g), fileJob(t, "plain", plainSrc, dir, gitstage.Options{})},
		Log: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("daemon log:\n%s", logs)
		}
	})
	if _, err := d.GitSync("site"); !errors.Is(err, control.ErrNoGit) || !strings.Contains(err.Error(), "not open") {
		t.Errorf("GitSync before the job's session opened: %v", err)
	}
	ready := make(chan struct{})
	d.SetReady(func() { close(ready) })
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx, context.Background()) }()
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("daemon: %v", err)
		}
	}()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("the daemon stopped: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("the daemon is not ready after 60 s")
	}

	// The first scan ships both files; they wait for the batch.
	gitOf(t, d, "site", "2 files waiting", func(g control.GitStatus) bool { return g.Waiting == 2 })
	for _, j := range d.Status(context.Background()).Jobs {
		if j.Name == "plain" && j.Git != nil {
			t.Errorf("the job without a Git stage shows one: %+v", *j.Git)
		}
	}
	m := gathered(t, d)
	if m["ferry_git_waiting_files{site}"] != 2 || m["ferry_git_commits_total{site}"] != 0 || m["ferry_git_stopped{site}"] != 0 {
		t.Errorf("metrics with 2 files waiting: %v", m)
	}
	for k := range m {
		if strings.HasSuffix(k, "{plain}") {
			t.Errorf("the job without a Git stage has %s", k)
		}
	}
	if out := testrig.Git(t, repo, "rev-list", "--all"); out != "" {
		t.Fatalf("committed before the batch was due: %s", out)
	}

	// The button: commit and push now, an hour before the batch is due.
	if _, err := d.GitSync("plain"); !errors.Is(err, control.ErrNoGit) || err.Error() != `job "plain" has no Git stage` {
		t.Errorf("GitSync of the job without a stage: %v", err)
	}
	if _, err := d.GitSync("nope"); !errors.Is(err, control.ErrNoJob) {
		t.Errorf("GitSync of an unknown job: %v", err)
	}
	if asked, err := d.GitSync("site"); err != nil || !slices.Equal(asked, []string{"site"}) {
		t.Fatalf("GitSync(site): %v, %v", asked, err)
	}
	st := gitOf(t, d, "site", "a commit pushed", func(g control.GitStatus) bool { return g.Commits == 1 && g.Pushes == 1 })
	if tip := testrig.Git(t, repo, "rev-parse", "main"); tip != st.LastCommit || st.LastCommitAt.IsZero() || st.LastPushAt.IsZero() ||
		st.Unpushed != 0 || st.Error != "" || st.Stopped || st.Branch != "main" || !st.Push {
		t.Errorf("the repository's main is %s; status says %+v", tip, st)
	}
	if files := testrig.Git(t, repo, "ls-tree", "-r", "--name-only", "main"); files != "www/a/b.txt\nwww/index.html" {
		t.Errorf("the commit holds\n%s", files)
	}
	m = gathered(t, d)
	if m["ferry_git_commits_total{site}"] != 1 || m["ferry_git_pushes_total{site}"] != 1 || m["ferry_git_unpushed_batches{site}"] != 0 ||
		m["ferry_git_last_commit_timestamp_seconds{site}"] != float64(st.LastCommitAt.UnixNano())/1e9 {
		t.Errorf("metrics after the commit: %v", m)
	}

	// A save ships live, and every job's button commits it.
	if err := os.WriteFile(filepath.Join(src, "index.html"), []byte("second"), 0o644); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if b, _ := os.ReadFile(filepath.Join(dir, "site", "index.html")); string(b) == "second" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the save did not arrive within 30 s")
		}
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if asked, err := d.GitSync(""); err != nil || !slices.Equal(asked, []string{"site"}) {
			t.Fatalf("GitSync(every job): %v, %v", asked, err)
		}
		// The save is committed once the registry has it as shipped; until
		// then the button finds nothing to commit.
		if testrig.Git(t, repo, "show", "main:www/index.html") == "second" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the save is not committed 30 s after it arrived:\n%s", testrig.Git(t, repo, "log", "--stat", "main"))
		}
	}
	gitOf(t, d, "site", "the second commit pushed", func(g control.GitStatus) bool { return g.Commits == 2 && g.Pushes == 2 })
	if n := testrig.Git(t, repo, "rev-list", "--count", "main"); n != "2" {
		t.Errorf("%s commits in the repository, want 2", n)
	}
	testrig.Git(t, repo, "fsck", "--strict", "--no-dangling")
}

// TestGitStageUnreachable: a job whose repository cannot be reached when
// its clone is to be made mirrors anyway; status shows the stage stopped,
// with the error.
func TestGitStageUnreachable(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "index.html"), []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	g := gitstage.Options{Repository: "git://127.0.0.1:1/nowhere.git", Branch: "main", BatchFiles: 100, BatchDelay: time.Hour, Push: true,
		Author: gitstage.Author{Name: "ferry", Email: "ferry@test"}, Message: gitstage.DefaultMessage}
	logs := &syncbuf.Buffer{}
	d, err := New(Options{Jobs: []Job{fileJob(t, "site", src, dir, g)}, Log: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx, context.Background()) }()
	defer func() {
		stop()
		<-done
		if t.Failed() {
			t.Logf("daemon log:\n%s", logs)
		}
	}()
	gs := gitOf(t, d, "site", "the repository's error", func(s control.GitStatus) bool { return s.Stopped && s.Error != "" })
	if !strings.Contains(gs.Error, "127.0.0.1:1") {
		t.Fatalf("the status's error does not name the repository: %q", gs.Error)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if b, err := os.ReadFile(filepath.Join(dir, "site", "index.html")); err == nil && string(b) == "hello" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the job did not mirror without its Git stage")
		}
	}
}

// TestGitStageOpensLate: a job whose repository does not exist yet when
// its session opens mirrors without the stage, status showing the error
// while the session tries again; once the repository exists the stage
// opens, and the files shipped without it (no bytes kept) are committed
// with the bytes the remote holds, in one batch.
func TestGitStageOpensLate(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	files := map[string]string{"index.html": "<p>home</p>", "a/b.txt": "bee", "a/c/d.css": "p{}"}
	for f, body := range files {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(src, f)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(src, f), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	repo := filepath.Join(dir, "later.git")
	// A batch is due at 3 files: the three shipped without the stage.
	g := gitstage.Options{Repository: repo, Branch: "main", BatchFiles: 3, BatchDelay: time.Hour, Push: true,
		Author: gitstage.Author{Name: "ferry", Email: "ferry@test"}, Message: gitstage.DefaultMessage}
	logs := &syncbuf.Buffer{}
	d, err := New(Options{Jobs: []Job{fileJob(t, "site", src, dir, g)}, Log: slog.New(slog.NewTextHandler(logs, nil)),
		GitRetry: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx, context.Background()) }()
	defer func() {
		stop()
		<-done
		if t.Failed() {
			t.Logf("daemon log:\n%s", logs)
		}
	}()
	for f, body := range files {
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			if b, err := os.ReadFile(filepath.Join(dir, "site", filepath.FromSlash(f))); err == nil && string(b) == body {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s was not mirrored without the Git stage", f)
			}
		}
	}
	// The session tries again, and status keeps the error meanwhile.
	for deadline := time.Now().Add(30 * time.Second); strings.Count(logs.String(), "mirroring without it, trying again") < 2; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no second attempt at opening the stage within 30 s")
		}
	}
	gs := gitOf(t, d, "site", "the repository's error", func(s control.GitStatus) bool { return s.Stopped && s.Error != "" })
	if !strings.Contains(gs.Error, repo) || gs.Commits != 0 {
		t.Fatalf("while the repository is missing, status says %+v", gs)
	}
	if _, err := d.GitSync("site"); !errors.Is(err, control.ErrNoGit) || !strings.Contains(err.Error(), repo) {
		t.Errorf("GitSync while the stage could not be opened: %v", err)
	}

	testrig.Git(t, dir, "init", "-q", "--bare", "-b", "main", repo)
	st := gitOf(t, d, "site", "the files shipped without it committed and pushed", func(s control.GitStatus) bool { return s.Commits == 1 && s.Pushes == 1 })
	if st.Error != "" || st.Stopped || st.Unpushed != 0 {
		t.Errorf("once the stage opened, status says %+v", st)
	}
	if tip := testrig.Git(t, repo, "rev-parse", "main"); tip != st.LastCommit {
		t.Errorf("the repository's main is %s; status says %s", tip, st.LastCommit)
	}
	if n := testrig.Git(t, repo, "rev-list", "--count", "main"); n != "1" {
		t.Errorf("%s commits, want 1", n)
	}
	if got := testrig.Git(t, repo, "ls-tree", "-r", "--name-only", "main"); got != "a/b.txt\na/c/d.css\nindex.html" {
		t.Errorf("the commit holds\n%s", got)
	}
	for f, body := range files {
		if got := testrig.Git(t, repo, "show", "main:"+f); got != body {
			t.Errorf("%s committed as %q, want %q", f, got, body)
		}
	}
	if !logs.Contains("git: stage opened") {
		t.Error("the log does not say the stage opened")
	}
	testrig.Git(t, repo, "fsck", "--strict", "--no-dangling")
}
