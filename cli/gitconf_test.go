package cli

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"ferry/config"
	"ferry/gitstage"
	"ferry/remote"
)

// bareRepo makes what a bare repository holds for checkLocalRepository
// (HEAD and objects/), without needing git.
func bareRepo(t *testing.T, dir string) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(dir, "objects"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "HEAD"), []byte("ref: refs/heads/main\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// gitJob is a config file whose [job.git] table opens on line 5, its
// repository on line 6 and the key under test on line 7.
func gitJob(repo, kv string) string {
	return fmt.Sprintf("[[job]]\nname = \"site\"\nsource = \"/src\"\ntarget = \"file:///dst\"\n[job.git]\nrepository = %q\n%s\n", repo, kv)
}

// TestGitChecks: every value of the [job.git] table the stage would
// refuse is a config error at its file, line and key; the values it takes
// pass.
func TestGitChecks(t *testing.T) {
	dir := t.TempDir()
	bare := bareRepo(t, filepath.Join(dir, "site.git"))
	work := filepath.Join(dir, "work")
	if err := os.MkdirAll(filepath.Join(work, ".git"), 0o755); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty")
	if err := os.Mkdir(empty, 0o755); err != nil {
		t.Fatal(err)
	}
	headOnly := filepath.Join(dir, "head-only") // a HEAD but no objects/
	if err := os.Mkdir(headOnly, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(headOnly, "HEAD"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	cfgFile := filepath.Join(dir, "ferry.toml")
	good := []struct{ repo, kv string }{
		{bare, ""}, {"site.git", ""}, {work, ""}, {"file://" + bare, ""},
		{"git@127.0.0.1:site.git", ""}, {"127.0.0.1:srv/site.git", ""}, {"git@[::1]:site.git", ""}, {"[::1]:site.git", ""},
		{"ssh://git@127.0.0.1:2222/srv/site.git", ""}, {"https://127.0.0.1/site.git", ""}, {"HTTP://127.0.0.1/site.git", ""},
		{"git://127.0.0.1/site.git", ""},
		{bare, `branch = "release/2024"`}, {bare, `branch = "feature-x"`}, {bare, `branch = "ünïcode"`}, {bare, `branch = "a.b_c"`},
		{bare, `author = "Deploy Bot <deploy@example.com>"`}, {bare, `author = "  x  <y>  "`}, {bare, `author = ""`},
		{bare, `message = "{{.Job}}: {{.Files}} files"`}, {bare, `message = "deploy"`},
		{bare, `message = "{{range .List}}{{.}}{{end}}{{if .More}}+{{.More}}{{end}}"`},
		{bare, `path_prefix = "site"`}, {bare, `path_prefix = "public/www"`}, {bare, `path_prefix = ".well-known"`},
		{bare, `path_prefix = ""`},
		{bare, "batch_files = 1\nbatch_delay = \"1s\"\npush = false"},
	}
	for _, tc := range good {
		if _, err := config.Parse(cfgFile, []byte(gitJob(tc.repo, tc.kv)), checkJob); err != nil {
			t.Errorf("repository %q, %s: %v", tc.repo, tc.kv, err)
		}
	}
	for _, tc := range []struct {
		name, repo, kv string
		line           int
		key, msg       string
	}{
		{"repository missing", filepath.Join(dir, "nope.git"), "", 6, "repository", filepath.Join(dir, "nope.git") + " does not exist: create it (git init --bare"},
		{"repository relative and missing", "nope.git", "", 6, "repository", filepath.Join(dir, "nope.git") + " does not exist"},
		{"repository a file", file, "", 6, "repository", file + " is not a directory"},
		{"repository not a repository", empty, "", 6, "repository", empty + " is not a Git repository"},
		{"repository with HEAD but no objects", headOnly, "", 6, "repository", headOnly + " is not a Git repository"},
		{"repository scheme", "gopher://127.0.0.1/site.git", "", 6, "repository", `scheme "gopher": want a local path, a URL with scheme ssh, https, http, git or file, or user@host:path`},
		{"repository no host", "https:///site.git", "", 6, "repository", "no host"},
		{"repository no path", "ssh://git@127.0.0.1", "", 6, "repository", "no repository path after the host"},
		{"repository scp no host", "git@:site.git", "", 6, "repository", "want a local path"},
		{"repository scp no path", "git@127.0.0.1:", "", 6, "repository", "want a local path"},
		{"repository scp no user", "@127.0.0.1:site.git", "", 6, "repository", "no user before '@'"},
		{"repository scp ipv6", "git@[::1:site.git", "", 6, "repository", "[addr]:path"},
		{"repository file URL missing", "file://" + filepath.Join(dir, "nope.git"), "", 6, "repository", "does not exist"},
		{"repository file URL on a host", "file://127.0.0.1" + bare, "", 6, "repository", "a path on this machine"},
		{"repository bad URL, password hidden", "https://u:secret@127.0.0.1:port/x", "", 6, "repository", "u:xxxxx@127.0.0.1:port"},
		{"repository control character", "https://127.0.0.1/a\nb", "", 6, "repository", "control character"},

		{"branch empty", bare, `branch = ""`, 7, "branch", `"" is not a valid branch name: empty`},
		{"branch HEAD", bare, `branch = "HEAD"`, 7, "branch", "HEAD names the current commit"},
		{"branch dash", bare, `branch = "-x"`, 7, "branch", "starts with '-'"},
		{"branch full ref", bare, `branch = "refs/heads/main"`, 7, "branch", "short name"},
		{"branch @", bare, `branch = "@"`, 7, "branch", "'@' alone"},
		{"branch dot end", bare, `branch = "a."`, 7, "branch", "ends with '.'"},
		{"branch dot dot", bare, `branch = "a..b"`, 7, "branch", "'..'"},
		{"branch @{", bare, `branch = "a@{1}"`, 7, "branch", "'@{'"},
		{"branch space", bare, `branch = "a b"`, 7, "branch", `contains ' '`},
		{"branch tilde", bare, `branch = "a~1"`, 7, "branch", `contains '~'`},
		{"branch caret", bare, `branch = "a^"`, 7, "branch", `contains '^'`},
		{"branch colon", bare, `branch = "a:b"`, 7, "branch", `contains ':'`},
		{"branch question", bare, `branch = "a?"`, 7, "branch", `contains '?'`},
		{"branch star", bare, `branch = "a*"`, 7, "branch", `contains '*'`},
		{"branch bracket", bare, `branch = "a[b"`, 7, "branch", `contains '['`},
		{"branch backslash", bare, `branch = 'a\b'`, 7, "branch", `contains '\\'`},
		{"branch control", bare, `branch = "a\u0001"`, 7, "branch", "control character"},
		{"branch DEL", bare, `branch = "a\u007f"`, 7, "branch", "control character"},
		{"branch leading slash", bare, `branch = "/a"`, 7, "branch", "empty part"},
		{"branch trailing slash", bare, `branch = "a/"`, 7, "branch", "empty part"},
		{"branch double slash", bare, `branch = "a//b"`, 7, "branch", "empty part"},
		{"branch dot part", bare, `branch = "a/.b"`, 7, "branch", `part ".b" starts with '.'`},
		{"branch dot start", bare, `branch = ".a"`, 7, "branch", `part ".a" starts with '.'`},
		{"branch lock", bare, `branch = "a.lock"`, 7, "branch", `part "a.lock" ends with .lock`},
		{"branch lock inside", bare, `branch = "a/b.lock/c"`, 7, "branch", `part "b.lock" ends with .lock`},

		{"author no email", bare, `author = "Jane"`, 7, "author", `"Jane": want "Name <email>"`},
		{"author bare email", bare, `author = "Jane jane@example.com"`, 7, "author", `want "Name <email>"`},
		{"author no name", bare, `author = "<jane@example.com>"`, 7, "author", "no name before <email>"},
		{"author empty email", bare, `author = "Jane <>"`, 7, "author", "no email between < and >"},
		{"author space in email", bare, `author = "Jane <jane @example.com>"`, 7, "author", `want "Name <email>"`},
		{"author unclosed", bare, `author = "Jane <jane@example.com"`, 7, "author", `want "Name <email>"`},
		{"author two emails", bare, `author = "Jane <a@b> <c@d>"`, 7, "author", `want "Name <email>"`},
		{"author newline", bare, `author = "Ja\nne <a@b>"`, 7, "author", `want "Name <email>"`},

		{"message syntax", bare, `message = "{{.Job"`, 7, "message", "unclosed action"},
		{"message unknown function", bare, `message = "{{nope .Job}}"`, 7, "message", `function "nope" not defined`},
		{"message unknown field", bare, `message = "{{.Jobs}}"`, 7, "message", "can't evaluate field Jobs"},
		{"message unknown field when more", bare, `message = "x{{if .More}}{{.Rest}}{{end}}"`, 7, "message", "can't evaluate field Rest"},
		{"message unknown field when all listed", bare, `message = "x{{if not .More}}{{.Rest}}{{end}}"`, 7, "message", "can't evaluate field Rest"},
		{"message empty", bare, `message = ""`, 7, "message", "empty message"},
		{"message blank", bare, `message = "{{/* nothing */}}  \n"`, 7, "message", "empty message"},

		{"path_prefix absolute", bare, `path_prefix = "/site"`, 7, "path_prefix", "relative to its root"},
		{"path_prefix dot dot", bare, `path_prefix = "../site"`, 7, "path_prefix", "climbs out"},
		{"path_prefix dot dot inside", bare, `path_prefix = "a/../b"`, 7, "path_prefix", "climbs out"},
		{"path_prefix .git", bare, `path_prefix = "a/.git/b"`, 7, "path_prefix", "writes into .git"},
		{"path_prefix .GIT", bare, `path_prefix = ".GIT"`, 7, "path_prefix", "writes into .git"},
		{"path_prefix trailing slash", bare, `path_prefix = "site/"`, 7, "path_prefix", `"site/" is not clean: write "site"`},
		{"path_prefix dot slash", bare, `path_prefix = "./site"`, 7, "path_prefix", `write "site"`},
		{"path_prefix double slash", bare, `path_prefix = "a//b"`, 7, "path_prefix", `write "a/b"`},
		{"path_prefix dot", bare, `path_prefix = "."`, 7, "path_prefix", `write "" for the repository's root`},
		{"path_prefix NUL", bare, `path_prefix = "a\u0000b"`, 7, "path_prefix", "NUL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := config.Parse(cfgFile, []byte(gitJob(tc.repo, tc.kv)), checkJob)
			var e *config.Error
			if !errors.As(err, &e) {
				t.Fatalf("got %v, want a config.Error", err)
			}
			if e.File != cfgFile || e.Line != tc.line || e.Key != `job "site": git.`+tc.key || !strings.Contains(e.Error(), tc.msg) {
				t.Errorf("got %q (line %d, key %q), want line %d, key git.%s, message containing %q", e.Error(), e.Line, e.Key, tc.line, tc.key, tc.msg)
			}
			if strings.Contains(err.Error(), "secret") {
				t.Errorf("the error shows the password: %v", err)
			}
		})
	}
}

// TestBranchLikeGit: checkBranch agrees with `git check-ref-format
// --branch`, but for two names git takes and ferry refuses as likely
// mistakes: a full ref name (refs/heads/x would become
// refs/heads/refs/heads/x) and "@", which Git's revision syntax reads as
// HEAD.
func TestBranchLikeGit(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Fatal("git is not installed: scripts/test installs it (the Git stage needs it)")
	}
	dir := t.TempDir() // not a repository: @{-1} has nothing to expand
	for _, name := range []string{
		"main", "release/2024", "a.b", "ünï", "a-b", "a_b", "a+b", "a=b", "a@b", "a{b}", "a'b", `a"b`, "a,b", "a;b", "a#b",
		"", "HEAD", "-x", "x-", "@", "@{-1}", "a@{b", "a.", "a..b", ".a", "a/.b", "a.lock", "a/b.lock/c", "a.lock/b",
		"a b", "a~", "a^", "a:b", "a?", "a*", "a[b", `a\b`, "a\x01", "a\x7f", "a\tb", "/a", "a/", "a//b", "a/./b",
		"lock", ".lock", "a/.lock", "a.lo", "HEAD/x", "x/HEAD", "@/x", "x/@", "refs/heads/main", "refs",
	} {
		cmd := exec.Command("git", "check-ref-format", "--branch", name)
		cmd.Dir = dir
		gitOK := cmd.Run() == nil
		if name == "@" || name == "refs/heads/main" {
			gitOK = false
		}
		err := checkBranch(name)
		if gitOK != (err == nil) {
			t.Errorf("branch %q: git accepts: %v; ferry: %v", name, gitOK, err)
		}
	}
}

// TestGitDefaults: config's defaults for [job.git] are the stage's own.
func TestGitDefaults(t *testing.T) {
	d := config.Defaults().Git
	if d.Branch != gitstage.DefaultBranch || d.BatchFiles != gitstage.DefaultBatchFiles ||
		d.BatchDelay.Duration != gitstage.DefaultBatchDelay || d.Message != gitstage.DefaultMessage {
		t.Errorf("config's git defaults %+v differ from gitstage's", d)
	}
	if d.Repository != "" || !d.Push {
		t.Errorf("config's git defaults %+v: want off, and push on once a repository is set", d)
	}
	if err := checkMessage(gitstage.DefaultMessage); err != nil {
		t.Errorf("the default message: %v", err)
	}
}

// testApp is an App whose only backend is a stand-in for file://, enough
// to build options.
func testApp(stderr io.Writer) *App {
	return &App{
		Openers: map[string]remote.Opener{"file": func(context.Context, *remote.Target, remote.Options) (remote.Conn, error) {
			return nil, errors.New("not in this test")
		}},
		Stdout: io.Discard, Stderr: stderr, Getenv: func(string) string { return "" },
	}
}

// loadWithFlags loads cfg as `ferry --once --config cfg FLAGS` would and
// returns the typed Git options of its only job, and what was warned.
func loadWithFlags(t *testing.T, cfg string, flags ...string) (gitstage.Options, string, error) {
	t.Helper()
	var stderr bytes.Buffer
	fs, f := newOnceFlags(io.Discard)
	if _, err := parseInterspersed(fs, append([]string{"--once", "--config", cfg}, flags...)); err != nil {
		t.Fatalf("flags %q: %v", flags, err)
	}
	f.set = map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { f.set[fl.Name] = true })
	_, jobs, err := testApp(&stderr).loadJobs(f)
	if err != nil {
		return gitstage.Options{}, stderr.String(), err
	}
	if len(jobs) != 1 {
		t.Fatalf("%d jobs", len(jobs))
	}
	return jobs[0].Options.Git, stderr.String(), nil
}

// TestGitOptions: the keys of [job.git] become the mirror's typed
// gitstage.Options, a flag given overrides its key, and a stage left off
// is the zero value.
func TestGitOptions(t *testing.T) {
	dir := t.TempDir()
	bare := bareRepo(t, filepath.Join(dir, "site.git"))
	other := bareRepo(t, filepath.Join(dir, "other.git"))
	cfg := filepath.Join(dir, "ferry.toml")
	write := func(s string) {
		t.Helper()
		if err := os.WriteFile(cfg, []byte("state_dir = \"state\"\n[[job]]\nname = \"site\"\nsource = \"src\"\ntarget = \"file:///dst\"\n"+s), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	write("")
	if g, _, err := loadWithFlags(t, cfg); err != nil || g != (gitstage.Options{}) || g.Enabled() {
		t.Errorf("no [job.git]: %+v, %v; want the zero value (off)", g, err)
	}

	write(`[job.git]
repository = "site.git"
branch = "publish"
batch_files = 10
batch_delay = "90s"
author = "Deploy Bot <deploy@example.com>"
message = "{{.Job}}"
push = false
path_prefix = "www"
`)
	keys := gitstage.Options{Repository: bare, Branch: "publish", BatchFiles: 10, BatchDelay: 90 * time.Second,
		Author: gitstage.Author{Name: "Deploy Bot", Email: "deploy@example.com"}, Message: "{{.Job}}", Push: false, PathPrefix: "www"}
	if g, _, err := loadWithFlags(t, cfg); err != nil || g != keys {
		t.Errorf("the keys:\n got %+v (%v)\nwant %+v", g, err, keys)
	}
	flags := gitstage.Options{Repository: other, Branch: "live", BatchFiles: 7, BatchDelay: 30 * time.Second,
		Author: gitstage.Author{Name: "Ops", Email: "ops@example.com"}, Message: "m {{.Files}}", Push: true, PathPrefix: "a/b"}
	g, _, err := loadWithFlags(t, cfg, "--git-repository", other, "--git-branch", "live", "--git-batch-files", "7",
		"--git-batch-delay", "30", "--git-author", "Ops <ops@example.com>", "--git-message", "m {{.Files}}", "--git-push",
		"--git-path-prefix", "a/b")
	if err != nil || g != flags {
		t.Errorf("the flags over the keys:\n got %+v (%v)\nwant %+v", g, err, flags)
	}
	// One flag overrides its key alone.
	one := keys
	one.BatchDelay = 2 * time.Minute
	if g, _, err := loadWithFlags(t, cfg, "--git-batch-delay", "2m"); err != nil || g != one {
		t.Errorf("--git-batch-delay 2m alone:\n got %+v (%v)\nwant %+v", g, err, one)
	}
	// A flag is judged like its key, and named as a flag.
	if _, _, err := loadWithFlags(t, cfg, "--git-branch", "a..b"); err == nil || !strings.Contains(err.Error(), `--git-branch: "a..b" is not a valid branch name`) {
		t.Errorf("--git-branch a..b: %v", err)
	}

	write("[job.git]\nrepository = \"site.git\"\n")
	host, _ := os.Hostname()
	defaults := gitstage.Options{Repository: bare, Branch: gitstage.DefaultBranch, BatchFiles: gitstage.DefaultBatchFiles,
		BatchDelay: gitstage.DefaultBatchDelay, Author: gitstage.Author{Name: "ferry", Email: "ferry@" + host},
		Message: gitstage.DefaultMessage, Push: true}
	if g, _, err := loadWithFlags(t, cfg); err != nil || g != defaults {
		t.Errorf("repository alone:\n got %+v (%v)\nwant %+v", g, err, defaults)
	}
	if g, _, err := loadWithFlags(t, cfg, "--git-push=false"); err != nil || g.Push {
		t.Errorf("--git-push=false: push %v (%v)", g.Push, err)
	}

	// A relative --git-repository is relative to the working directory
	// (the config's own is relative to the config file).
	t.Chdir(dir)
	if g, _, err := loadWithFlags(t, cfg, "--git-repository", "other.git"); err != nil || g.Repository != other {
		t.Errorf("--git-repository other.git from %s: %q (%v), want %q", dir, g.Repository, err, other)
	}

	// The repository from a flag alone turns the stage on.
	write("")
	if g, _, err := loadWithFlags(t, cfg, "--git-repository", bare, "--git-push=false"); err != nil || g.Repository != bare || g.Push {
		t.Errorf("--git-repository with no [job.git]: %+v (%v)", g, err)
	}
	if _, _, err := loadWithFlags(t, cfg, "--git-push=false"); err == nil || !strings.Contains(err.Error(), "--git-push: is set but git.repository is not") {
		t.Errorf("--git-push=false without a repository: %v", err)
	}
}

// TestGitPasswordWarned: a password in the repository's URL works but is
// warned about, as one in the target's URL is, and never shown.
func TestGitPasswordWarned(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "ferry.toml")
	for _, tc := range []struct {
		repo string
		warn bool
	}{
		{"https://deploy:s3cret@127.0.0.1/site.git", true},
		{"http://deploy:s3cret@127.0.0.1/site.git", true},
		{"https://deploy@127.0.0.1/site.git", false},
		{"git@127.0.0.1:site.git", false},
	} {
		src := "[[job]]\nname = \"site\"\nsource = \"/src\"\ntarget = \"file:///dst\"\n[job.git]\nrepository = \"" + tc.repo + "\"\n"
		if err := os.WriteFile(cfg, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		g, warned, err := loadWithFlags(t, cfg)
		if err != nil || g.Repository != tc.repo {
			t.Errorf("%s: repository %q, %v", tc.repo, g.Repository, err)
		}
		if got := strings.Contains(warned, "warning: git.repository https://deploy:xxxxx@") ||
			strings.Contains(warned, "warning: git.repository http://deploy:xxxxx@"); got != tc.warn {
			t.Errorf("%s: warned %q, want a warning: %v", tc.repo, warned, tc.warn)
		}
		if strings.Contains(warned, "s3cret") {
			t.Errorf("%s: the warning shows the password: %q", tc.repo, warned)
		}
	}
}

// TestGitFlagsOnce: `ferry --once` judges the --git flags as the config
// judges the keys, before anything runs.
func TestGitFlagsOnce(t *testing.T) {
	dir := t.TempDir()
	bare := bareRepo(t, filepath.Join(dir, "site.git"))
	src, dst := filepath.Join(dir, "src"), filepath.Join(dir, "dst")
	for _, tc := range []struct {
		flags []string
		want  string
	}{
		{[]string{"--git-branch", "dev"}, "--git-branch: is set but git.repository is not"},
		{[]string{"--git-push=false"}, "--git-push: is set but git.repository is not"},
		{[]string{"--git-repository", bare, "--git-batch-files", "0"}, "--git-batch-files: 0: want 1 or more"},
		{[]string{"--git-repository", bare, "--git-batch-delay", "0"}, "--git-batch-delay: 0s: want a positive duration"},
		{[]string{"--git-repository", bare, "--git-author", "nobody"}, `--git-author: "nobody": want "Name <email>"`},
		{[]string{"--git-repository", bare, "--git-message", "{{.Nope}}"}, "--git-message: template: message:1:2: executing"},
		{[]string{"--git-repository", bare, "--git-path-prefix", "../x"}, "--git-path-prefix: \"../x\" climbs out"},
		{[]string{"--git-repository", filepath.Join(dir, "nope")}, "--git-repository: " + filepath.Join(dir, "nope") + " does not exist"},
	} {
		var stderr bytes.Buffer
		a := testApp(&stderr)
		args := append(append([]string{"--once", "--state", filepath.Join(dir, "state")}, tc.flags...), src, "file://"+dst)
		if code := a.Run(context.Background(), args); code != exitUsage || !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("%q: exit %d, stderr %q; want %d and %q", tc.flags, code, stderr.String(), exitUsage, tc.want)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "state")); !os.IsNotExist(err) {
		t.Errorf("a refused run made its state directory (%v)", err)
	}
}
