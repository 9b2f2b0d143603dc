package main

import (
	"os/exec"
	"strings"
	"testing"
)

// layerRules say which of ferry's packages a package may never depend on,
// directly or through another package: the arrows of the data flow point
// one way (DESIGN.md, "How data flows"). Backends know nothing of the
// stages; the queue and the registry know no stage; no stage knows the
// configuration file, the command line or the daemon. The vocabulary of a
// path (entry) sits below them all.
var layerRules = []struct {
	pkgs   []string // the rule's subjects; a trailing "/..." takes the subtree
	banned []string // what they may not depend on
	why    string
	// direct limits the rule to the subjects' own imports: the planner
	// still reaches remote through the scanner, which lists the remote
	// for it, but it must not speak to a connection itself.
	direct bool
}{
	{
		pkgs:   []string{"ferry/entry"},
		banned: []string{"ferry/..."},
		why:    "entry is the vocabulary every stage shares; it stays a leaf so that naming a path costs no dependency",
	},
	{
		pkgs:   []string{"ferry/planner"},
		banned: []string{"ferry/remote/..."},
		why:    "the planner settles what the scanner listed; it never holds a connection, and the names it needs live in entry",
		direct: true,
	},
	{
		pkgs:   []string{"ferry/remote/..."},
		banned: []string{"ferry/watcher", "ferry/scanner", "ferry/planner", "ferry/queue", "ferry/transfer", "ferry/registry", "ferry/mirror", "ferry/daemon", "ferry/control", "ferry/config", "ferry/cli", "ferry/schedule", "ferry/bench"},
		why:    "a backend speaks one protocol; it knows nothing of the stages that drive it",
	},
	{
		pkgs:   []string{"ferry/queue", "ferry/registry", "ferry/schedule", "ferry/watcher"},
		banned: []string{"ferry/scanner", "ferry/planner", "ferry/transfer", "ferry/gitstage", "ferry/mirror", "ferry/daemon", "ferry/control", "ferry/config", "ferry/cli", "ferry/bench", "ferry/remote/..."},
		why:    "the queue, the registry, the schedule and the watcher serve the stages; they import none",
	},
	{
		pkgs:   []string{"ferry/scanner", "ferry/planner", "ferry/transfer", "ferry/mirror"},
		banned: []string{"ferry/daemon", "ferry/control", "ferry/config", "ferry/cli", "ferry/bench"},
		why:    "a stage is configured with typed options; it never reads the configuration file, the command line or the daemon",
	},
	{
		pkgs:   []string{"ferry/scanner", "ferry/planner", "ferry/transfer", "ferry/mirror"},
		banned: []string{"ferry/remote/ftp", "ferry/remote/sftp", "ferry/remote/file", "ferry/remote/mem"},
		why:    "stages reach a backend through remote's interfaces only",
	},
	{
		pkgs:   []string{"ferry/config"},
		banned: []string{"ferry/..."},
		why:    "config only decodes the file; the stages' own checks come from its caller (cli)",
	},
	{
		pkgs:   []string{"ferry/planner"},
		banned: []string{"ferry/registry"},
		why:    "the planner decides; it reads and writes the registry through its Recorded and Sink interfaces only",
	},
	{
		pkgs:   []string{"ferry/transfer"},
		banned: []string{"ferry/registry", "ferry/mirror", "ferry/gitstage"},
		why:    "transfer ships one item and records it through its Recorder; the registry behind it can change without touching the workers",
	},
	{
		pkgs:   []string{"ferry/planner"},
		banned: []string{"ferry/transfer"},
		why:    "the planner decides and transfer carries out; never the reverse",
	},
	{
		pkgs:   []string{"ferry/gitstage"},
		banned: []string{"ferry/..."},
		why:    "the Git stage speaks to git and to the interfaces it owns; the session wires it to the registry and the workers",
	},
	{
		pkgs:   []string{"ferry/daemon", "ferry/control"},
		banned: []string{"ferry/cli", "ferry/bench", "ferry/config"},
		why:    "the daemon is started by the command line with typed options, never the other way, and never reads the config file",
	},
}

func match(pattern, pkg string) bool {
	if sub, ok := strings.CutSuffix(pattern, "/..."); ok {
		return pkg == sub || strings.HasPrefix(pkg, sub+"/")
	}
	return pkg == pattern
}

// TestLayers fails when a package depends on one its layer must not know.
func TestLayers(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", "{{.ImportPath}}|{{join .Imports \" \"}}|{{join .Deps \" \"}}", "ferry/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	deps, imports := map[string][]string{}, map[string][]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Split(line, "|")
		if len(f) != 3 {
			t.Fatalf("go list: unexpected line %q", line)
		}
		imports[f[0]] = strings.Fields(f[1])
		deps[f[0]] = strings.Fields(f[2])
	}
	if len(deps) < 20 {
		t.Fatalf("go list named %d packages; the check would prove nothing", len(deps))
	}
	checked := 0
	for _, r := range layerRules {
		for pkg, ds := range deps {
			if r.direct {
				ds = imports[pkg]
			}
			subject := false
			for _, p := range r.pkgs {
				subject = subject || match(p, pkg)
			}
			if !subject {
				continue
			}
			checked++
			for _, d := range ds {
				for _, b := range r.banned {
					if match(b, d) {
						t.Errorf("%s depends on %s: %s", pkg, d, r.why)
					}
				}
			}
		}
	}
	if checked < 12 {
		t.Fatalf("the rules matched %d packages; a rule names a package that no longer exists", checked)
	}
}

// TestLayerRulesMatch: the matcher the check relies on.
func TestLayerRulesMatch(t *testing.T) {
	for _, tc := range []struct {
		pattern, pkg string
		want         bool
	}{
		{"ferry/remote/...", "ferry/remote", true},
		{"ferry/remote/...", "ferry/remote/ftp", true},
		{"ferry/remote/...", "ferry/remotex", false},
		{"ferry/queue", "ferry/queue", true},
		{"ferry/queue", "ferry/queue/sub", false},
	} {
		if got := match(tc.pattern, tc.pkg); got != tc.want {
			t.Errorf("match(%q, %q) = %v, want %v", tc.pattern, tc.pkg, got, tc.want)
		}
	}
}
