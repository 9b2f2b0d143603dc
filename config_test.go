package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"ferry/internal/testrig"
)

// TestConfigOnce: `ferry --once --config FILE` runs one pass of each job
// (here one to vsftpd and one to file://), --job picks one, and a flag
// overrides a key of every job.
func TestConfigOnce(t *testing.T) {
	srv := testrig.FTP(t, testrig.FTPOptions{})
	dir := t.TempDir()
	srcA, srcB, dstB := filepath.Join(dir, "a"), filepath.Join(dir, "b"), filepath.Join(dir, "b-copy")
	writeTree(t, srcA, 20, 3)
	writeTree(t, srcB, 10, 2)
	pwFile := filepath.Join(dir, "password")
	if err := os.WriteFile(pwFile, []byte(srv.Password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "ferry.toml")
	writeFile(t, cfg, `state_dir = "state"

[[job]]
name = "to-ftp"
source = "a"
target = "`+srv.URL("/site")+`"
password_file = "password"
workers = 2

[[job]]
name = "to-dir"
source = "b"
target = "file://`+dstB+`"
`)
	r := ferry(t, nil, nil, "--once", "--config", cfg, "--job", "to-dir")
	if r.code != 0 {
		t.Fatalf("--job to-dir: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	sameTree(t, srcB, dstB)
	if _, err := os.Stat(filepath.Join(srv.Root, "site")); !os.IsNotExist(err) {
		t.Fatalf("--job to-dir also ran to-ftp (its target exists: %v)", err)
	}
	r = ferry(t, nil, nil, "--once", "--config", cfg, "--json")
	if r.code != 0 {
		t.Fatalf("all jobs: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	sameTree(t, srcA, filepath.Join(srv.Root, "site"))
	if !strings.Contains(r.stdout, `"job": "to-ftp"`) || !strings.Contains(r.stdout, `"job": "to-dir"`) {
		t.Errorf("--json output does not name both jobs:\n%s", r.stdout)
	}
	if _, err := os.Stat(filepath.Join(dir, "state")); err != nil {
		t.Errorf("state_dir relative to the config file: %v", err)
	}
	// A flag overrides the key in every job: --delete removes the extra file.
	writeFile(t, filepath.Join(dstB, "extra.txt"), "x")
	r = ferry(t, nil, nil, "--once", "--config", cfg, "--job", "to-dir", "--delete", "--check-remote")
	if r.code != 0 {
		t.Fatalf("--delete override: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if _, err := os.Stat(filepath.Join(dstB, "extra.txt")); !os.IsNotExist(err) {
		t.Errorf("--delete given with --config did not apply: %v", err)
	}
}

// TestConfigErrors: a bad config file is exit 2 with the file, line and
// key, and nothing is created or sent.
func TestConfigErrors(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	writeTree(t, src, 3, 1)
	dst := filepath.Join(dir, "dst")
	head := "state_dir = \"state\"\n[[job]]\nname = \"site\"\nsource = \"src\"\ntarget = \"file://" + dst + "\"\n"
	for _, tc := range []struct {
		name, body, want string
	}{
		{"unknown key", "workerz = 3\n", `ferry.toml:6: job "site": workerz: unknown key`},
		{"bad value", "conflict = \"mine\"\n", `ferry.toml:6: job "site": conflict: conflict policy "mine"`},
		{"bad type", "workers = \"four\"\n", `ferry.toml:6: job "site": workers: incompatible types`},
		{"bad duration", "max_delay = \"later\"\n", `ferry.toml:6: job "site": max_delay: want a duration`},
		{"syntax", "delete = yes\n", `ferry.toml:6: `},
		{"unknown git key", "[job.git]\nrepository = \"repo.git\"\nbrnach = \"dev\"\n", `ferry.toml:8: job "site": git.brnach: unknown key`},
		{"git key without repository", "[job.git]\nbranch = \"dev\"\n", `ferry.toml:7: job "site": git.branch: is set but git.repository is not`},
		{"git repository missing", "[job.git]\nrepository = \"repo.git\"\n", `ferry.toml:7: job "site": git.repository: ` + filepath.Join(dir, "repo.git") + " does not exist"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := filepath.Join(dir, "ferry.toml")
			writeFile(t, cfg, head+tc.body)
			r := ferry(t, nil, nil, "--once", "--config", cfg)
			if r.code != 2 || !strings.Contains(r.stderr, tc.want) {
				t.Fatalf("exit %d, stderr %q; want 2 and %q", r.code, r.stderr, tc.want)
			}
			for _, p := range []string{dst, filepath.Join(dir, "state")} {
				if _, err := os.Stat(p); !os.IsNotExist(err) {
					t.Errorf("%s exists after a refused config", p)
				}
			}
		})
	}
	r := ferry(t, nil, nil, "--once", "--config", filepath.Join(dir, "missing.toml"))
	if r.code != 2 || !strings.Contains(r.stderr, "missing.toml") {
		t.Errorf("missing config: exit %d, stderr %q", r.code, r.stderr)
	}
	writeFile(t, filepath.Join(dir, "ok.toml"), head)
	r = ferry(t, nil, nil, "--once", "--config", filepath.Join(dir, "ok.toml"), "--job", "nope")
	if r.code != 2 || !strings.Contains(r.stderr, `has no job "nope" (it has: site)`) {
		t.Errorf("unknown --job: exit %d, stderr %q", r.code, r.stderr)
	}
}

func writeFile(t *testing.T, p, s string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

func countFiles(t *testing.T, root string) int {
	t.Helper()
	fs := files(t, root)
	delete(fs, testrig.DefaultMarker) // ferry's bookkeeping, not a mirrored file
	return len(fs)
}

// TestDemo runs `ferry demo` as a newcomer would: it must end in sync, with
// the live part showing each save arrive.
func TestDemo(t *testing.T) {
	dir := t.TempDir()
	r := ferry(t, nil, nil, "demo", "--files", "40", "--dir", dir)
	if r.code != 0 {
		t.Fatalf("demo: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{"transferred 40 files", "nothing to transfer", "transferred 1 files", "JOB"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("demo output lacks %q:\n%s", want, r.stdout)
		}
	}
	if n := strings.Count(r.stdout, "later, complete"); n != 3 {
		t.Errorf("demo showed %d live saves arriving, want 3:\n%s", n, r.stdout)
	}
	got, err := os.ReadFile(filepath.Join(dir, "remote", "docs", "guide", "live.html"))
	if err != nil || !strings.Contains(string(got), "live edit 3") {
		t.Errorf("the last live save is not on the remote: %v %q", err, got)
	}

	// The Git stage: a commit for each run that shipped, one for the
	// live saves (the button), each said in the output and in the
	// repository under site/, with the saves' last version.
	logs := regexp.MustCompile(`(?m)^ *git log: ([0-9a-f]{7,}) (.*)$`).FindAllStringSubmatch(r.stdout, -1)
	want := []string{"ferry demo: 40 files (40 added, 0 changed, 0 deleted)", "ferry demo: 1 file (0 added, 1 changed, 0 deleted)",
		"ferry demo: 1 file (1 added, 0 changed, 0 deleted)"}
	if len(logs) != len(want) {
		t.Fatalf("demo output shows %d commits, want %d:\n%s", len(logs), len(want), r.stdout)
	}
	repo := filepath.Join(dir, "site.git")
	history := demoGit(t, repo, "log", "--format=%h %s", "main")
	for i, l := range logs {
		if l[2] != want[i] {
			t.Errorf("commit %d: %q, want %q", i, l[2], want[i])
		}
		if !strings.Contains(history, l[1]+" "+l[2]) {
			t.Errorf("the demo says it committed %s %q; the repository has:\n%s", l[1], l[2], history)
		}
	}
	if n := strings.Count(history, "\n") + 1; n != len(want) {
		t.Errorf("%d commits in the repository, want %d:\n%s", n, len(want), history)
	}
	if got := demoGit(t, repo, "show", "main:site/docs/guide/live.html"); !strings.Contains(got, "live edit 3") {
		t.Errorf("the repository holds the live save as %q", got)
	}
	if !regexp.MustCompile(`(?m)^  git: 0 waiting, last commit ` + logs[2][1] + `\w* \(\d+s ago\), pushed \d+s ago, 0 unpushed$`).MatchString(r.stdout) {
		t.Errorf("the demo's status lacks the stage's line with the last commit %s:\n%s", logs[2][1], r.stdout)
	}
	demoGit(t, repo, "fsck", "--strict", "--no-dangling")
}

// TestDemoWithoutGit: the demo needs no setup; without git it says it
// skips the Git stage, in one line, and runs the rest.
func TestDemoWithoutGit(t *testing.T) {
	dir := t.TempDir()
	r := ferry(t, []string{"PATH=" + t.TempDir()}, nil, "demo", "--files", "10", "--dir", dir)
	if r.code != 0 {
		t.Fatalf("demo without git: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if n := strings.Count(r.stdout, "git"); n != 1 || !strings.Contains(r.stdout, "(git is not installed: the demo skips the Git stage)") {
		t.Errorf("demo without git says git %d times, want once, skipping the stage:\n%s", n, r.stdout)
	}
	if _, err := os.Stat(filepath.Join(dir, "site.git")); !os.IsNotExist(err) {
		t.Errorf("a repository without git: %v", err)
	}
}

// demoGit runs git on the demo's repository and returns its trimmed output.
func demoGit(t *testing.T, repo string, args ...string) string {
	t.Helper()
	out, err := exec.Command("git", append([]string{"-C", repo}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}
