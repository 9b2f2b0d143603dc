package gitstage

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// neutralConfig is an empty global git configuration: the tests check
// what ferry writes, not what the machine's ~/.gitconfig says (one test
// brings a hostile one on purpose).
var neutralConfig string

func TestMain(m *testing.M) {
	f, err := os.CreateTemp("", "gitstage-gitconfig-")
	if err != nil {
		panic(err)
	}
	f.Close()
	neutralConfig = f.Name()
	os.Setenv("GIT_CONFIG_GLOBAL", neutralConfig)
	os.Setenv("GIT_CONFIG_NOSYSTEM", "1")
	code := m.Run()
	os.Remove(neutralConfig)
	os.Exit(code)
}

// testEnv is the environment of the tests' own git commands: the
// neutral configuration, an identity, nothing else of git's.
func testEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GIT_") {
			env = append(env, kv)
		}
	}
	return append(env, "GIT_CONFIG_GLOBAL="+neutralConfig, "GIT_CONFIG_NOSYSTEM=1", "LC_ALL=C",
		"GIT_AUTHOR_NAME=Other", "GIT_AUTHOR_EMAIL=other@example.org",
		"GIT_COMMITTER_NAME=Other", "GIT_COMMITTER_EMAIL=other@example.org")
}

// gitTry runs the tests' own git in dir ("" = none); the output loses its
// trailing newlines.
func gitTry(dir, stdin string, args ...string) (string, error) {
	out, err := gitRaw(dir, stdin, args...)
	return strings.TrimRight(out, "\n"), err
}

// gitRaw is gitTry with the output as git wrote it.
func gitRaw(dir, stdin string, args ...string) (string, error) {
	if dir != "" {
		args = append([]string{"-C", dir}, args...)
	}
	// A repository that a push over SSH wrote belongs to the server's
	// account, not to the test.
	args = append([]string{"-c", "safe.directory=*"}, args...)
	cmd := exec.Command("git", args...)
	cmd.Env = testEnv()
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("git %s: %v: %s", strings.Join(args, " "), err, errb.String())
	}
	return out.String(), nil
}

func gitT(t testing.TB, dir string, args ...string) string {
	t.Helper()
	out, err := gitTry(dir, "", args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// fsckAtEnd checks the repository with git fsck --strict when the test
// ends (dangling objects are fine: a blob shipped but not committed is
// one).
func fsckAtEnd(t *testing.T, dir string) {
	t.Cleanup(func() {
		if out, err := gitTry(dir, "", "fsck", "--strict", "--no-progress"); err != nil {
			t.Errorf("fsck --strict %s: %v\n%s", dir, err, out)
		}
	})
}

// newTarget makes a bare repository to push to, branch main, checked by
// fsck at the end.
func newTarget(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "target.git")
	gitT(t, "", "init", "-q", "--bare", "--initial-branch=main", dir)
	fsckAtEnd(t, dir)
	return dir
}

// openT opens a clone of repository in a fresh state directory, with
// retries that do not wait.
func openT(t *testing.T, repository string, mod func(*Options)) *Repo {
	t.Helper()
	o := Options{Repository: repository, Author: Author{Name: "ferry", Email: "ferry@example.org"}}
	if mod != nil {
		mod(&o)
	}
	r, err := Open(context.Background(), filepath.Join(t.TempDir(), "state", "git"), o)
	if err != nil {
		t.Fatal(err)
	}
	fsckAtEnd(t, r.Dir())
	r.retry.base, r.retry.max = time.Millisecond, 4*time.Millisecond
	return r
}

// blobT writes content as a blob through the package's writer.
func blobT(t testing.TB, r *Repo, content string) string {
	t.Helper()
	b, err := r.NewBlob(int64(len(content)))
	if err != nil {
		t.Fatal(err)
	}
	b.Write([]byte(content))
	oid, err := b.Close()
	if err != nil {
		t.Fatal(err)
	}
	return oid
}

// files is a tree as "path" → "mode content", from git ls-tree.
func files(t *testing.T, dir, rev string) map[string]string {
	t.Helper()
	m := map[string]string{}
	out := gitT(t, dir, "ls-tree", "-r", "-z", rev)
	for _, rec := range strings.Split(out, "\x00") {
		if rec == "" {
			continue
		}
		meta, path, _ := strings.Cut(rec, "\t")
		f := strings.Fields(meta)
		content, err := gitRaw(dir, "", "cat-file", "blob", f[2])
		if err != nil {
			t.Fatal(err)
		}
		m[path] = f[0] + " " + content
	}
	return m
}

func sameFiles(t *testing.T, got, want map[string]string) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("tree has %d files, want %d:\n got %q\nwant %q", len(got), len(want), got, want)
		return
	}
	for p, w := range want {
		if got[p] != w {
			t.Errorf("%s: got %q, want %q (tree %q)", p, got[p], w, got)
		}
	}
}

// history is the first-parent log of rev in dir: "<commit> <parents> <subject>", newest first.
func history(t *testing.T, dir, rev string) []string {
	t.Helper()
	var h []string
	for _, l := range strings.Split(gitT(t, dir, "log", "--format=%H %P %s", rev), "\n") {
		h = append(h, strings.Join(strings.Fields(l), " "))
	}
	return h
}

// linear fails unless every commit of rev in dir has at most one parent.
func linear(t *testing.T, dir, rev string) {
	t.Helper()
	if merges := gitT(t, dir, "rev-list", "--merges", rev); merges != "" {
		t.Errorf("%s has merges: %s", dir, merges)
	}
}

// pushOther commits files in a working copy of url, on top of its main
// if it has one, and pushes: the other clone that moves the branch.
func pushOther(t *testing.T, url string, files map[string]string, msg string) string {
	t.Helper()
	dir := t.TempDir()
	gitT(t, "", "init", "-q", "--initial-branch=main", dir)
	if _, err := gitTry(dir, "", "fetch", "-q", url, "main"); err == nil {
		gitT(t, dir, "reset", "-q", "--hard", "FETCH_HEAD")
	}
	for p, c := range files {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	gitT(t, dir, "add", "-A")
	gitT(t, dir, "commit", "-q", "-m", msg)
	gitT(t, dir, "push", "-q", url, "HEAD:refs/heads/main")
	return gitT(t, dir, "rev-parse", "HEAD")
}

// freePort is a TCP port on 127.0.0.1 that nothing listens on now.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// daemon is a git daemon serving base on 127.0.0.1:port, pushes enabled.
type daemon struct {
	cmd  *exec.Cmd
	port int
	done chan struct{}
}

// startDaemon starts git daemon and returns once it says it is ready;
// the test's end stops it.
func startDaemon(t *testing.T, base string, port int) *daemon {
	t.Helper()
	// git-daemon itself, not "git daemon": killing the wrapper would
	// leave the daemon running.
	execPath := gitT(t, "", "--exec-path")
	cmd := exec.Command(filepath.Join(execPath, "git-daemon"), "--verbose", "--reuseaddr", "--export-all", "--enable=receive-pack",
		"--base-path="+base, "--listen=127.0.0.1", "--port="+strconv.Itoa(port))
	cmd.Env = testEnv()
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	d := &daemon{cmd: cmd, port: port, done: make(chan struct{})}
	t.Cleanup(d.stop)
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		seen := false
		for sc.Scan() {
			if !seen && strings.Contains(sc.Text(), "Ready to rumble") {
				seen = true
				close(ready)
			}
		}
		if !seen {
			close(ready)
		}
	}()
	go func() { cmd.Wait(); close(d.done) }()
	select {
	case <-ready:
	case <-d.done:
		t.Fatal("git daemon exited before it was ready")
	case <-time.After(30 * time.Second):
		t.Fatal("git daemon did not say it was ready")
	}
	return d
}

func (d *daemon) stop() {
	select {
	case <-d.done:
		return
	default:
	}
	d.cmd.Process.Kill()
	<-d.done
}

// ctxT is a context the test's end cancels.
func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	return ctx
}
