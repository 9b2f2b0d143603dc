package main

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"ferry/internal/testrig"
)

// ftpsRun is one vsftpd with explicit TLS, reached the way a careful user
// would: the password in a file, the server's CA given with --tls-ca-file.
type ftpsRun struct {
	srv     *testrig.FTPServer
	pwFile  string
	state   string
	uploads int // vsftpd's count of completed uploads after the last run
}

func newFTPSRun(t *testing.T) *ftpsRun {
	t.Helper()
	srv := testrig.FTP(t, testrig.FTPOptions{TLS: true})
	pw := filepath.Join(t.TempDir(), "password")
	if err := os.WriteFile(pw, []byte(srv.Password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return &ftpsRun{srv: srv, pwFile: pw, state: t.TempDir()}
}

// run runs ferry --once to /dir on the server with the given flags and
// returns the result and how many uploads vsftpd logged during it.
func (f *ftpsRun) run(t *testing.T, src, dir string, flags ...string) (result, int) {
	t.Helper()
	args := append([]string{"--once", "--state", f.state, "--password-file", f.pwFile, "--tls-ca-file", f.srv.CAFile}, flags...)
	r := ferry(t, []string{"FERRY_PASSWORD="}, nil, append(args, src, f.srv.URL(dir))...)
	n, err := f.srv.Uploads()
	if err != nil {
		t.Fatal(err)
	}
	sent := n - f.uploads
	f.uploads = n
	return r, sent
}

// TestFlagsEndToEnd runs each user-facing flag against a real server and
// checks the server's disk and its transfer log, not only ferry's summary.
// Every run here also proves --password-file (FERRY_PASSWORD is empty)
// and --tls-ca-file (the certificate is the rig's own CA).
func TestFlagsEndToEnd(t *testing.T) {
	f := newFTPSRun(t)

	t.Run("tls-ca-file and password-file are needed", func(t *testing.T) {
		src := t.TempDir()
		writeTree(t, src, 2, 1)
		r := ferry(t, []string{"FERRY_PASSWORD="}, nil, "--once", "--state", t.TempDir(), "--password-file", f.pwFile, src, f.srv.URL("/untrusted"))
		if r.code != 2 || !strings.Contains(r.stderr, "certificate") {
			t.Fatalf("without --tls-ca-file: exit %d, stderr %q; want 2 naming the certificate", r.code, r.stderr)
		}
		bad := filepath.Join(t.TempDir(), "password")
		writeFile(t, bad, "not-the-password\n")
		r = ferry(t, []string{"FERRY_PASSWORD="}, nil, "--once", "--state", t.TempDir(), "--password-file", bad, "--tls-ca-file", f.srv.CAFile, src, f.srv.URL("/wrongpw"))
		if r.code != 2 || !strings.Contains(r.stderr, "Login incorrect") {
			t.Fatalf("a wrong --password-file: exit %d, stderr %q; want 2 with the server's refusal", r.code, r.stderr)
		}
		for _, d := range []string{"untrusted", "wrongpw"} {
			if _, err := os.Stat(filepath.Join(f.srv.Root, d)); !os.IsNotExist(err) {
				t.Fatalf("a refused run made /%s: %v", d, err)
			}
		}
	})

	t.Run("dry-run", func(t *testing.T) {
		src := t.TempDir()
		writeTree(t, src, 12, 3)
		r, sent := f.run(t, src, "/dry", "--dry-run")
		if r.code != 0 || sent != 0 || !strings.Contains(r.stdout, "dry run: 12 to upload") {
			t.Fatalf("--dry-run: exit %d, %d uploads logged, stdout %q", r.code, sent, r.stdout)
		}
		if _, err := os.Stat(filepath.Join(f.srv.Root, "dry")); !os.IsNotExist(err) {
			t.Fatalf("--dry-run made the target: %v", err)
		}
		// Nothing was recorded either: the real run sends all 12.
		r, sent = f.run(t, src, "/dry", "--progress")
		if r.code != 0 || sent != 12 {
			t.Fatalf("after --dry-run, the real run: exit %d, %d uploads logged, want 12\n%s%s", r.code, sent, r.stdout, r.stderr)
		}
		sameTree(t, src, filepath.Join(f.srv.Root, "dry"))
	})

	t.Run("exclude", func(t *testing.T) {
		src := t.TempDir()
		writeTree(t, src, 6, 2)
		writeFile(t, filepath.Join(src, "debug.log"), "noise")
		writeFile(t, filepath.Join(src, "dir00", "trace.log"), "noise")
		writeFile(t, filepath.Join(src, "cache", "blob"), "cached")
		r, sent := f.run(t, src, "/excl", "--exclude", "*.log", "--exclude", "cache/")
		if r.code != 0 || sent != 6 {
			t.Fatalf("--exclude: exit %d, %d uploads logged, want the 6 kept files\n%s%s", r.code, sent, r.stdout, r.stderr)
		}
		for _, p := range []string{"debug.log", "dir00/trace.log", "cache"} {
			if _, err := os.Stat(filepath.Join(f.srv.Root, "excl", p)); !os.IsNotExist(err) {
				t.Errorf("excluded %s is on the remote: %v", p, err)
			}
		}
		for _, p := range []string{"debug.log", "dir00/trace.log", "cache/blob"} {
			os.Remove(filepath.Join(src, p))
		}
		sameTree(t, src, filepath.Join(f.srv.Root, "excl"))
	})

	t.Run("checksum", func(t *testing.T) {
		src := t.TempDir()
		writeFile(t, filepath.Join(src, "a.txt"), "first version")
		writeFile(t, filepath.Join(src, "b.txt"), "unchanged")
		if r, sent := f.run(t, src, "/sum"); r.code != 0 || sent != 2 {
			t.Fatalf("first run: exit %d, %d uploads\n%s%s", r.code, sent, r.stdout, r.stderr)
		}
		// Same size, same mtime, other bytes: only --checksum sees it.
		p := filepath.Join(src, "a.txt")
		fi, _ := os.Stat(p)
		writeFile(t, p, "other version")
		if err := os.Chtimes(p, fi.ModTime(), fi.ModTime()); err != nil {
			t.Fatal(err)
		}
		if r, sent := f.run(t, src, "/sum"); r.code != 0 || sent != 0 {
			t.Fatalf("without --checksum a same-size same-mtime edit is not seen, yet: exit %d, %d uploads", r.code, sent)
		}
		r, sent := f.run(t, src, "/sum", "--checksum")
		if r.code != 0 || sent != 1 {
			t.Fatalf("--checksum: exit %d, %d uploads logged, want 1\n%s%s", r.code, sent, r.stdout, r.stderr)
		}
		sameTree(t, src, filepath.Join(f.srv.Root, "sum"))
	})

	t.Run("move", func(t *testing.T) {
		src, keep := t.TempDir(), t.TempDir()
		writeTree(t, src, 8, 2)
		writeTree(t, keep, 8, 2) // the same seed: the same files
		r, sent := f.run(t, src, "/moved", "--move")
		if r.code != 0 || sent != 8 {
			t.Fatalf("--move: exit %d, %d uploads logged\n%s%s", r.code, sent, r.stdout, r.stderr)
		}
		sameTree(t, keep, filepath.Join(f.srv.Root, "moved"))
		if left := files(t, src); len(left) != 0 {
			t.Fatalf("--move left %d local files after verifying them on the remote", len(left))
		}
	})

	t.Run("links", func(t *testing.T) {
		src := t.TempDir()
		writeFile(t, filepath.Join(src, "real.txt"), "the target")
		if err := os.Symlink("real.txt", filepath.Join(src, "alias.txt")); err != nil {
			t.Fatal(err)
		}
		r, sent := f.run(t, src, "/links")
		if r.code != 0 || sent != 1 || !strings.Contains(r.stdout, "skipped 1 symbolic links") {
			t.Fatalf("links skipped by default: exit %d, %d uploads\n%s%s", r.code, sent, r.stdout, r.stderr)
		}
		if _, err := os.Lstat(filepath.Join(f.srv.Root, "links", "alias.txt")); !os.IsNotExist(err) {
			t.Fatalf("a skipped link is on the remote: %v", err)
		}
		r, sent = f.run(t, src, "/links", "--links", "follow")
		if r.code != 0 || sent != 1 {
			t.Fatalf("--links follow: exit %d, %d uploads logged, want the link's file\n%s%s", r.code, sent, r.stdout, r.stderr)
		}
		got, err := os.ReadFile(filepath.Join(f.srv.Root, "links", "alias.txt"))
		if err != nil || string(got) != "the target" {
			t.Fatalf("--links follow: the remote alias.txt is %q (%v), want the linked file's bytes", got, err)
		}
	})
}

// TestTimeoutFlag: a server that accepts and never answers is given up on
// after --timeout, not after the 30 s default.
func TestTimeoutFlag(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	held := make(chan net.Conn, 16)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				close(held)
				return
			}
			held <- c // silent: no greeting, ever
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		for c := range held {
			c.Close()
		}
	})
	src := t.TempDir()
	writeTree(t, src, 2, 1)
	began := time.Now()
	r := ferry(t, []string{"FERRY_PASSWORD=x"}, nil, "--once", "--state", t.TempDir(), "--timeout", "1s", src, "ftp://u@"+ln.Addr().String()+"/x")
	took := time.Since(began)
	if r.code != 2 || !strings.Contains(r.stderr, ln.Addr().String()) {
		t.Fatalf("a silent server: exit %d, stderr %q; want 2 naming the server", r.code, r.stderr)
	}
	// The default would wait 30 s per call; 1 s (and a few retries of
	// the dial) must end well before that.
	if took > 25*time.Second {
		t.Fatalf("--timeout 1s: gave up after %v", took)
	}
}

// TestFlagsGit: the --git flags of `ferry --once` are judged as the keys
// of [job.git] are: a refused one is exit 2 naming the flag, with nothing
// made; accepted ones let the mirror run.
func TestFlagsGit(t *testing.T) {
	dir := t.TempDir()
	src, dst, state := filepath.Join(dir, "src"), filepath.Join(dir, "dst"), filepath.Join(dir, "state")
	writeTree(t, src, 3, 1)
	bare := filepath.Join(dir, "site.git")
	gitIn(t, dir, "init", "-q", "--bare", "-b", "main", bare)
	for _, tc := range []struct {
		flags []string
		want  string
	}{
		{[]string{"--git-branch", "dev"}, "ferry: --git-branch: is set but git.repository is not"},
		{[]string{"--git-push=false"}, "ferry: --git-push: is set but git.repository is not"},
		{[]string{"--git-repository", bare, "--git-branch", "a b"}, `ferry: --git-branch: "a b" is not a valid branch name`},
		{[]string{"--git-repository", bare, "--git-batch-delay", "-1"}, "ferry: --git-batch-delay: -1s: want a positive duration"},
		{[]string{"--git-repository", "gopher://127.0.0.1/x"}, `ferry: --git-repository: gopher://127.0.0.1/x: scheme "gopher"`},
	} {
		r := ferry(t, nil, nil, append(append([]string{"--once", "--state", state}, tc.flags...), src, "file://"+dst)...)
		if r.code != 2 || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%q: exit %d, stderr %q; want 2 and %q", tc.flags, r.code, r.stderr, tc.want)
		}
		for _, p := range []string{dst, state} {
			if _, err := os.Stat(p); !os.IsNotExist(err) {
				t.Fatalf("%q: a refused run made %s (%v)", tc.flags, p, err)
			}
		}
	}
	r := ferry(t, nil, nil, "--once", "--state", state, "--git-repository", bare, "--git-branch", "publish", "--git-batch-files", "5",
		"--git-batch-delay", "1m", "--git-author", "Ops <ops@example.com>", "--git-message", "{{.Job}}", "--git-push=false",
		"--git-path-prefix", "www", src, "file://"+dst)
	if r.code != 0 {
		t.Fatalf("every --git flag, good values: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	sameTree(t, src, dst)
	// Push off: the commit is in ferry's clone, on the branch asked for,
	// with the message and the author given, under the prefix.
	clones, _ := filepath.Glob(filepath.Join(state, "git", "*.git"))
	if len(clones) != 1 {
		t.Fatalf("ferry's clones: %v", clones)
	}
	if got := gitIn(t, clones[0], "log", "-1", "--format=%an <%ae>|%s", "publish"); !strings.HasPrefix(got, "Ops <ops@example.com>|") {
		t.Fatalf("the commit: %q", got)
	}
	if files := gitIn(t, clones[0], "ls-tree", "-r", "--name-only", "publish"); !strings.HasPrefix(files, "www/") || strings.Count(files, "\n") != 2 {
		t.Fatalf("the commit's tree:\n%s", files)
	}
	if _, err := exec.Command("git", "-C", bare, "rev-parse", "--verify", "-q", "publish").Output(); err == nil {
		t.Fatal("--git-push=false pushed")
	}
}
