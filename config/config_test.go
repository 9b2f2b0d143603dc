package config

import (
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestExampleMatchesDefaults: config.example.toml sets every key ferry
// knows, each to its real default, so the file documents what ferry does.
func TestExampleMatchesDefaults(t *testing.T) {
	const path = "../config.example.toml"
	src, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := Parse(path, src, nil)
	if err != nil {
		t.Fatalf("the example does not load: %v", err)
	}
	if cfg.Globals != GlobalDefaults() {
		t.Errorf("example globals %+v, defaults %+v", cfg.Globals, GlobalDefaults())
	}
	if len(cfg.Jobs) != 1 {
		t.Fatalf("example has %d jobs, want 1", len(cfg.Jobs))
	}
	got := cfg.Jobs[0]
	got.Name, got.Source, got.Target = "", "", ""
	if want := Defaults(); !reflect.DeepEqual(got, want) {
		t.Errorf("example job differs from Defaults():\n got %+v\nwant %+v", got, want)
	}
	lines := keyLines(src)
	for _, f := range tomlKeys(reflect.TypeFor[Globals]()) {
		if lines[f] == 0 {
			t.Errorf("global key %s is not in the example", f)
		}
	}
	for _, f := range tomlKeys(reflect.TypeFor[Job]()) {
		if lines["job.0."+f] == 0 {
			t.Errorf("job key %s is not in the example", f)
		}
	}
	for _, f := range tomlKeys(reflect.TypeFor[Git]()) {
		if lines["job.0.git."+f] == 0 {
			t.Errorf("key %s of [job.git] is not in the example", f)
		}
	}
}

func tomlKeys(t reflect.Type) []string {
	var out []string
	for i := range t.NumField() {
		if tag := t.Field(i).Tag.Get("toml"); tag != "" && tag != "-" {
			out = append(out, tag)
		}
	}
	return out
}

const good = `
state_dir = "state"
[[job]]
name = "site"
source = "www"
target = "sftp://deploy@127.0.0.1:2222/srv/www"
workers = 8
exclude = ["*.tmp",
  "cache/",
]
settle_delay = "20ms"
protected_hours = ["Mon-Fri 08:00-18:00"]

[[job]]
name = "archive"
source = "/data/archive"
target = "ftp://u@127.0.0.1/archive"
delete = true
max_delete = "5%"
`

func TestParseGood(t *testing.T) {
	cfg, err := Parse("/etc/ferry/ferry.toml", []byte(good), nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.StateDir != "/etc/ferry/state" {
		t.Errorf("state_dir %q, want it relative to the file", cfg.StateDir)
	}
	site, arch := cfg.Jobs[0], cfg.Jobs[1]
	if site.Source != "/etc/ferry/www" || site.Workers != 8 || site.SettleDelay.Duration != 20*time.Millisecond ||
		len(site.Exclude) != 2 || site.Conflict != "keep-both" || !site.Watch {
		t.Errorf("site job %+v", site)
	}
	if arch.Workers != 4 || !arch.Delete || arch.MaxDelete != "5%" || arch.SettleDelay.Duration != 50*time.Millisecond {
		t.Errorf("archive job %+v: defaults not applied per job", arch)
	}
}

// TestBadConfig: every kind of mistake names the file, the line and the key.
func TestBadConfig(t *testing.T) {
	job := "[[job]]\nname = \"site\"\nsource = \"/src\"\ntarget = \"sftp://u@127.0.0.1/x\"\n"
	job2 := strings.Replace(job, "site", "other", 1)
	for _, tc := range []struct {
		name, src string
		line      int
		key, msg  string
	}{
		{"unknown global key", "stat_dir = \"/x\"\n" + job, 1, "stat_dir", "unknown key"},
		{"unknown job key", job + "workerz = 3\n", 5, `job "site": workerz`, "unknown key"},
		{"unknown key in the second job", job + job2 + "delete = true\nbwlimt = \"1M\"\n", 10, `job "other": bwlimt`, "unknown key"},
		{"wrong type", job + "workers = \"four\"\n", 5, `job "site": workers`, "type string"},
		{"bad duration", job + "settle_delay = \"soon\"\n", 5, `job "site": settle_delay`, "soon"},
		{"out of range", job + "workers = 0\n", 5, `job "site": workers`, "want 1 to 256"},
		{"missing name", "[[job]]\nsource = \"/s\"\ntarget = \"file:///x\"\n", 1, "job[1].name", "missing"},
		{"missing target", "[[job]]\nname = \"a\"\nsource = \"/s\"\n", 1, `job "a": target`, "missing"},
		{"duplicate name", job + "\n" + job, 7, `job "site": name`, "already the name of job 1 (line 2)"},
		{"max_delay below settle_delay", job + "settle_delay = \"2s\"\nmax_delay = \"1s\"\n", 6, `job "site": max_delay`, "shorter than settle_delay"},
		{"bad log format", "log_format = \"xml\"\n" + job, 1, "log_format", "text or json"},
		{"syntax error", job + "workers = = 3\n", 5, "", ""},
		{"unknown key in [job.git]", job + "[job.git]\nrepository = \"r.git\"\nbrnach = \"dev\"\n", 7, `job "site": git.brnach`, "unknown key"},
		{"unknown key in the second job's [job.git]", job + "[job.git]\nrepository = \"r.git\"\n" + job2 + "[job.git]\nrepositori = \"r.git\"\n", 12, `job "other": git.repositori`, "unknown key"},
		{"unknown key in an inline git table", job + "git = {repository = \"r.git\", bogus = 1}\n", 5, `job "site": git.bogus`, "unknown key"},
		{"unknown table under [job.git]", job + "[job.git]\nrepository = \"r.git\"\n[job.git.extra]\n", 7, `job "site": git.extra`, "unknown key"},
		{"git wrong type", job + "[job.git]\nrepository = \"r.git\"\nbatch_files = \"ten\"\n", 7, `job "site": git.batch_files`, "type string"},
		{"git not a table", job + "git = true\n", 5, `job "site": git`, "expected table"},
		{"git bad duration", job + "[job.git]\nrepository = \"r.git\"\nbatch_delay = \"later\"\n", 7, `job "site": git.batch_delay`, `want a duration`},
		{"git batch_files 0", job + "[job.git]\nrepository = \"r.git\"\nbatch_files = 0\n", 7, `job "site": git.batch_files`, "0: want 1 or more"},
		{"git batch_delay 0", job + "[job.git]\nrepository = \"r.git\"\nbatch_delay = \"0s\"\n", 7, `job "site": git.batch_delay`, "0s: want a positive duration"},
		{"git batch_delay negative", job + "[job.git]\nrepository = \"r.git\"\nbatch_delay = \"-1m\"\n", 7, `job "site": git.batch_delay`, "-1m0s: want a positive duration"},
		{"no job", "state_dir = \"/x\"\n", 0, "", "no [[job]] table"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("ferry.toml", []byte(tc.src), nil)
			if err == nil {
				t.Fatal("accepted")
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error %v (%T) is not a config.Error", err, err)
			}
			if e.File != "ferry.toml" || e.Line != tc.line || (tc.key != "" && e.Key != tc.key) || !strings.Contains(e.Error(), tc.msg) {
				t.Errorf("got %q (line %d, key %q), want line %d, key %q, message containing %q", e.Error(), e.Line, e.Key, tc.line, tc.key, tc.msg)
			}
		})
	}
}

// TestGitTable: the [job.git] table of each job, written as a table, as
// dotted keys or inline, keeps the defaults of the keys it leaves out; a
// local repository is relative to the config file and a URL is left as
// written.
func TestGitTable(t *testing.T) {
	src := `
[[job]]
name = "a"
source = "/s"
target = "file:///a"
[job.git]
repository = "repos/site.git"
branch = "publish"
batch_files = 10
batch_delay = "90s"
author = "Deploy Bot <deploy@example.com>"
message = "{{.Job}}"
push = false
path_prefix = "www"

[[job]]
name = "b"
source = "/s"
target = "file:///b"
git.repository = "git@127.0.0.1:site.git"

[[job]]
name = "c"
source = "/s"
target = "file:///c"
git = {repository = "https://127.0.0.1/site.git", branch = "x"}

[[job]]
name = "off"
source = "/s"
target = "file:///off"
`
	cfg, err := Parse("/etc/ferry/ferry.toml", []byte(src), nil)
	if err != nil {
		t.Fatal(err)
	}
	d := Defaults().Git
	for i, want := range []Git{
		{Repository: "/etc/ferry/repos/site.git", Branch: "publish", BatchFiles: 10, BatchDelay: Duration{90 * time.Second},
			Author: "Deploy Bot <deploy@example.com>", Message: "{{.Job}}", Push: false, PathPrefix: "www"},
		{Repository: "git@127.0.0.1:site.git", Branch: d.Branch, BatchFiles: d.BatchFiles, BatchDelay: d.BatchDelay, Message: d.Message, Push: true},
		{Repository: "https://127.0.0.1/site.git", Branch: "x", BatchFiles: d.BatchFiles, BatchDelay: d.BatchDelay, Message: d.Message, Push: true},
		d,
	} {
		if got := cfg.Jobs[i].Git; got != want {
			t.Errorf("job %s: git\n got %+v\nwant %+v", cfg.Jobs[i].Name, got, want)
		}
	}
	if d.Repository != "" || d.Branch != "main" || d.BatchFiles != 100 || d.BatchDelay.Duration != 10*time.Minute || !d.Push ||
		d.Author != "" || d.PathPrefix != "" || d.Message != DefaultGitMessage {
		t.Errorf("git defaults %+v", d)
	}
}

// TestGitKeySetWithoutRepository: a [job.git] key given a value of its own
// while repository is empty would be ignored, so it is refused, at its
// line; the table written out with its defaults is simply off.
func TestGitKeySetWithoutRepository(t *testing.T) {
	job := "[[job]]\nname = \"site\"\nsource = \"/src\"\ntarget = \"file:///x\"\n[job.git]\n"
	for _, kv := range []string{`branch = "dev"`, `batch_files = 5`, `batch_delay = "1m"`, `author = "A <a@b>"`,
		`message = "x"`, `push = false`, `path_prefix = "www"`} {
		key, _, _ := strings.Cut(kv, " ")
		t.Run(key, func(t *testing.T) {
			_, err := Parse("ferry.toml", []byte(job+"repository = \"\"\n"+kv+"\n"), nil)
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("got %v, want a config.Error", err)
			}
			want := `ferry.toml:7: job "site": git.` + key + `: is set but git.repository is not`
			if err.Error() != want {
				t.Errorf("got %q, want %q", err, want)
			}
		})
	}
	defaults := `repository = ""
branch = "main"
batch_files = 100
batch_delay = "10m"
author = ""
message = "` + strings.ReplaceAll(DefaultGitMessage, "\n", `\n`) + `"
push = true
path_prefix = ""
`
	cfg, err := Parse("ferry.toml", []byte(job+defaults), nil)
	if err != nil {
		t.Fatalf("the table written out with its defaults: %v", err)
	}
	if cfg.Jobs[0].Git != Defaults().Git {
		t.Errorf("git %+v, want the defaults", cfg.Jobs[0].Git)
	}
}

func TestLocalRepository(t *testing.T) {
	for s, want := range map[string]bool{
		"site.git": true, "/srv/git/site.git": true, "../site.git": true, "~/site.git": true, "./a:b": true,
		"dir/a://b": true, "": true,
		"git@host:site.git": false, "host:site.git": false, "ssh://git@host/site.git": false,
		"https://host/site.git": false, "file:///srv/site.git": false, "git+ssh://h/x": false,
	} {
		if got := LocalRepository(s); got != want {
			t.Errorf("LocalRepository(%q) = %v, want %v", s, got, want)
		}
	}
}

// TestBadConfigReportsAll: every mistake config judges itself is reported
// at once (cli's TestBadConfigReportsAll adds those of its Checker).
func TestBadConfigReportsAll(t *testing.T) {
	src := "[[job]]\nname = \"a\"\nsource = \"/s\"\ntarget = \"file:///x\"\nworkers = 0\ntimeout = \"0s\"\nfoo = 1\n"
	_, err := Parse("f.toml", []byte(src), nil)
	if err == nil {
		t.Fatal("accepted")
	}
	for _, want := range []string{"f.toml:5: ", "f.toml:6: ", "f.toml:7: "} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

func TestKeyLines(t *testing.T) {
	src := `# comment
a = 1
"quoted key" = 2
long = """
x = not a key
"""
list = [
  "[not a table]",
  1,
]
[[job]]
name = "x" # comment
sub.key = 3
[job.git]
branch = "main"
[[job]]
name = "y"
[other]
k = 'v'
`
	want := map[string]int{
		"a": 2, "quoted key": 3, "long": 4, "list": 7, "job.0": 11, "job.0.name": 12, "job.0.sub.key": 13,
		"job.0.git": 14, "job.0.git.branch": 15, "job.1": 16, "job.1.name": 17, "other": 18, "other.k": 19,
	}
	got := keyLines([]byte(src))
	if !reflect.DeepEqual(got, want) {
		t.Errorf("keyLines:\n got %v\nwant %v", got, want)
	}
}

func FuzzParse(f *testing.F) {
	f.Add(good)
	f.Add("[[job]]\nname = \"a\"\nsource = \"/s\"\ntarget = \"file:///x\"\n")
	f.Add("a = \"\"\"\n[[job]]\n")
	f.Add("[[job]]\nname = \"a\"\nsource = \"/s\"\ntarget = \"file:///x\"\n[job.git]\nrepository = \"r.git\"\nbatch_files = 3\nbatch_delay = \"1m\"\n[[job]]\nname = \"b\"\nsource = \"/s\"\ntarget = \"file:///y\"\ngit = {branch = \"x\"}\n")
	f.Fuzz(func(t *testing.T, src string) {
		cfg, err := Parse("fuzz.toml", []byte(src), nil)
		if err != nil {
			return
		}
		if len(cfg.Jobs) == 0 {
			t.Fatal("a config without jobs was accepted")
		}
		for _, j := range cfg.Jobs {
			if j.Name == "" || j.Source == "" || j.Target == "" || j.Workers < 1 {
				t.Fatalf("accepted an incomplete job %+v", j)
			}
			if g := j.Git; g.Repository == "" && g != Defaults().Git || g.BatchFiles < 1 || g.BatchDelay.Duration <= 0 {
				t.Fatalf("accepted a bad [job.git] %+v", g)
			}
		}
	})
}
