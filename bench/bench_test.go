package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"ferry/internal/testrig"
)

// ferryBin is the ferry executable TestMain builds: the harness measures a
// real binary as a child process, never the test binary itself.
var ferryBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "ferry-bench-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	ferryBin = filepath.Join(dir, "ferry")
	out, err := exec.Command("go", "build", "-o", ferryBin, "ferry").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "go build -o %s ferry: %v\n%s", ferryBin, err, out)
		os.RemoveAll(dir)
		os.Exit(2)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type testLog struct{ t *testing.T }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// TestHarnessQuick runs the whole harness on tiny datasets against both
// servers and checks what it wrote: a row per case and tool, each with a
// successful run. It checks that the harness works, never any timing.
func TestHarnessQuick(t *testing.T) {
	if os.Geteuid() != 0 {
		msg := "the benchmark starts vsftpd and sshd and must run as root"
		if testrig.Required() {
			t.Fatalf("%s (set FERRY_ALLOW_SKIP=1 to skip on a machine where you cannot be root)", msg)
		}
		t.Skip(msg + "; FERRY_ALLOW_SKIP=1")
	}
	tools := []string{ToolFerry}
	for _, peer := range []string{ToolRclone, ToolLftp} {
		if lookPath(peer) != "" {
			tools = append(tools, peer)
		}
	}
	out := t.TempDir()
	o := Options{
		Quick: true, Datasets: []string{DatasetSmall, DatasetDeep, DatasetLarge, DatasetLive, DatasetMillion},
		Servers: AllServers, Tools: tools, OutDir: out, WorkDir: t.TempDir(), NoInstall: true,
		FerryBin: ferryBin, Seed: 7, Timeout: 2 * time.Minute, Log: testLog{t},
	}
	rep, err := Run(context.Background(), o)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if n := rep.Failures(); n > 0 {
		t.Errorf("%d runs failed", n)
	}

	md, err := os.ReadFile(filepath.Join(out, LatestMarkdown))
	if err != nil {
		t.Fatal(err)
	}
	js, err := os.ReadFile(filepath.Join(out, LatestJSON))
	if err != nil {
		t.Fatal(err)
	}
	var got Report
	if err := json.Unmarshal(js, &got); err != nil {
		t.Fatalf("latest.json: %v", err)
	}
	wantGroups := 3*len(AllServers) + 1 // small, deep, large per server; million on file://
	if len(got.Groups) != wantGroups {
		t.Fatalf("latest.json has %d groups, want %d", len(got.Groups), wantGroups)
	}
	for _, g := range got.Groups {
		var cases []string
		for _, c := range g.Cases {
			cases = append(cases, c.Case)
			for _, r := range c.Rows {
				where := fmt.Sprintf("%s/%s %s %s", g.Dataset.Name, g.Server, c.Case, r.Tool)
				if len(r.Samples) != 1 {
					t.Errorf("%s: %d samples, want 1", where, len(r.Samples))
					continue
				}
				if s := r.Samples[0]; !s.OK || s.WallS <= 0 || s.MaxRSSKiB <= 0 {
					t.Errorf("%s: sample %+v, want a successful run with a wall time and an RSS", where, s)
				}
				if !strings.Contains(string(md), fmt.Sprintf("| %s | %s | ", c.Case, r.Tool)) {
					t.Errorf("%s: no row in latest.md", where)
				}
				if c.Case != CaseLoopback && c.Case != CaseDryRun && r.Kind != "find" && !hasRow(c, ToolFerry) {
					t.Errorf("%s: case has no ferry row", where)
				}
			}
		}
		want := []string{CaseInitial, CaseNoop, CaseChanged, CaseDeletes}
		switch g.Dataset.Name {
		case DatasetLarge:
			want = append(want, CaseLoopback)
		case DatasetMillion:
			want = []string{CaseDryRun, CaseInitial, CaseNoop}
		}
		if strings.Join(cases, ",") != strings.Join(want, ",") {
			t.Errorf("%s/%s: cases %v, want %v", g.Dataset.Name, g.Server, cases, want)
		}
		for _, c := range g.Cases {
			var names []string
			for _, r := range c.Rows {
				names = append(names, r.Tool)
			}
			want := tools
			switch g.Dataset.Name {
			case DatasetMillion: // lftp has no file:// mirror to compare
				want = slices.DeleteFunc(slices.Clone(tools), func(s string) bool { return s == ToolLftp })
			case DatasetLarge: // its limit is the raw stream of the loopback case
			default: // the raw protocol floor runs beside the tools
				want = append(slices.Clone(tools), floorLabel)
			}
			if c.Case == CaseInitial && strings.Join(names, ",") != strings.Join(want, ",") {
				t.Errorf("%s/%s initial: rows %v, want one per tool %v", g.Dataset.Name, g.Server, names, want)
			}
		}
	}
	if len(got.Live) != 2*len(AllServers) {
		t.Errorf("latest.json has %d live results, want %d", len(got.Live), 2*len(AllServers))
	}
	for _, l := range got.Live {
		if l.Error != "" || l.Saves == 0 || l.P50MS <= 0 || l.P99MS < l.P50MS {
			t.Errorf("live %s/%s: %+v", l.Server, l.Case, l)
		}
	}
	for _, want := range []string{"## Flags each tool got, and why", "## Goals", "| program | version |", "vsftpd", "### live latency"} {
		if !strings.Contains(string(md), want) {
			t.Errorf("latest.md lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("latest.md:\n%s", md)
	}
}

func hasRow(c *CaseResult, tool string) bool { return c.row(tool) != nil }

// TestDatasetsDeterministic checks that a seed fixes the tree and another
// seed changes it.
func TestDatasetsDeterministic(t *testing.T) {
	list := func(seed uint64) string {
		var b strings.Builder
		r := rand.New(rand.NewPCG(seed, hashName(DatasetWeb)))
		if err := layout(DatasetWeb, false, r, func(rel string, size int64) error {
			fmt.Fprintf(&b, "%s %d\n", rel, size)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return b.String()
	}
	if a, b := list(1), list(1); a != b {
		t.Error("the same seed gave two different layouts")
	}
	if list(1) == list(2) {
		t.Error("two seeds gave the same layout")
	}
	n := 0
	r := rand.New(rand.NewPCG(1, 1))
	if err := layout(DatasetSmall, false, r, func(rel string, size int64) error {
		n++
		if size < 1024 || size > 16384 {
			t.Errorf("%s: %d bytes, want 1-16 KiB", rel, size)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if n != 10000 {
		t.Errorf("small has %d files, want 10,000", n)
	}
}

// TestCompareTrees checks that a leftover temporary file, a missing file
// and a short file all fail the check.
func TestCompareTrees(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	write := func(dir, rel, data string) {
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(src, "a/b.txt", "hello")
	write(src, "c.txt", "x")
	write(dst, "a/b.txt", "hello")
	write(dst, "c.txt", "x")
	if err := compareTrees(src, dst); err != nil {
		t.Fatalf("identical trees: %v", err)
	}
	write(dst, "a/.ferry-tmp-1-b.txt", "hel")
	if err := compareTrees(src, dst); err == nil || !strings.Contains(err.Error(), "extra") {
		t.Errorf("leftover temporary file: got %v", err)
	}
	os.Remove(filepath.Join(dst, "a/.ferry-tmp-1-b.txt"))
	write(dst, "c.txt", "")
	if err := compareTrees(src, dst); err == nil || !strings.Contains(err.Error(), "wrong size") {
		t.Errorf("short file: got %v", err)
	}
	os.Remove(filepath.Join(dst, "c.txt"))
	if err := compareTrees(src, dst); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("missing file: got %v", err)
	}
}

func TestSpread(t *testing.T) {
	s := spread([]float64{3, 1, 2, 10})
	if s.Median != 2.5 || s.Min != 1 || s.Max != 10 || s.N != 4 {
		t.Errorf("spread = %+v", s)
	}
	if s := spread(nil); s.N != 0 {
		t.Errorf("spread(nil) = %+v", s)
	}
}

// TestBrokenToolIsMarked runs the file:// memory case (no servers, no root)
// with a "ferry" that exits 0 without copying anything and one that fails:
// neither may be timed as a success.
func TestBrokenToolIsMarked(t *testing.T) {
	dir := t.TempDir()
	lazy := filepath.Join(dir, "lazy-ferry")
	if err := os.WriteFile(lazy, []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ bin, want string }{{lazy, "verify: "}, {"/bin/false", "exit status 1"}} {
		out := t.TempDir()
		rep, err := Run(context.Background(), Options{Quick: true, Datasets: []string{DatasetMillion},
			Tools: []string{ToolFerry}, OutDir: out, WorkDir: t.TempDir(), NoInstall: true, FerryBin: c.bin})
		if err != nil {
			t.Fatalf("%s: Run: %v", c.bin, err)
		}
		initial := rep.group(DatasetMillion, "file://").caseResult(CaseInitial).row(ToolFerry)
		if initial == nil || len(initial.Samples) != 1 {
			t.Fatalf("%s: initial row %+v", c.bin, initial)
		}
		if s := initial.Samples[0]; s.OK || !strings.Contains(s.Error, c.want) {
			t.Errorf("%s: initial sample %+v, want a failure with %q", c.bin, s, c.want)
		}
		if initial.WallS.N != 0 || initial.Failed != 1 {
			t.Errorf("%s: a failed run was timed: %+v", c.bin, initial)
		}
		md, err := os.ReadFile(filepath.Join(out, LatestMarkdown))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(md), "| initial | ferry | failed |") || !strings.Contains(string(md), "**FAILED 1/1**") {
			t.Errorf("%s: latest.md does not mark the failure:\n%s", c.bin, md)
		}
	}
}

// TestFerryGitCommand checks that the ferry + git row runs the ferry row's
// command plus --git-repository, and only when --tools names it.
func TestFerryGitCommand(t *testing.T) {
	s := &site{name: serverFile, root: "/srv"}
	j := job{src: "/src", site: s, rel: "small/ferry-git", workers: 4, state: "/state"}
	plain := ferryCommand("/bin/ferry", j).argv
	j.gitRepo = "/work/run/git/small-vsftpd/ferry-git.git"
	withGit := ferryCommand("/bin/ferry", j).argv
	want := slices.Concat(plain[:len(plain)-2], []string{"--git-repository", j.gitRepo}, plain[len(plain)-2:])
	if !slices.Equal(withGit, want) {
		t.Errorf("ferry + git runs\n  %q\nwant\n  %q", withGit, want)
	}

	o := Options{FerryBin: "/bin/ferry"}
	if err := o.normalize(); err != nil || slices.Contains(o.Tools, ToolFerryGit) {
		t.Errorf("default tools %v (%v): ferry-git must be asked for", o.Tools, err)
	}
	o = Options{FerryBin: "/bin/ferry", Tools: []string{ToolFerry, ToolFerryGit}}
	if err := o.normalize(); err != nil {
		t.Fatalf("--tools ferry,ferry-git: %v", err)
	}
	r := &runner{o: o}
	ents := r.peers()
	if len(ents) != 2 || ents[1].label != ferryGitLabel || ents[1].kind != ToolFerry || !ents[1].git || ents[0].git {
		t.Errorf("entrants %+v, want ferry and %s (kind ferry, with the stage)", ents, ferryGitLabel)
	}
	note := func(tools []string) bool {
		return slices.ContainsFunc(flagNotes(4, tools), func(n string) bool { return strings.Contains(n, "--git-repository") })
	}
	if !note(o.Tools) || note(AllTools) {
		t.Error("the flag notes must explain ferry + git exactly when it runs")
	}

}

// TestCheckGitRepo checks the repository check of a ferry + git run: the
// commits a run must make, and that a wrong commit count, a tree that is
// not the source's and an object fsck rejects each fail it.
func TestCheckGitRepo(t *testing.T) {
	for n, want := range map[int64]int64{0: 0, 1: 1, 30: 1, 100: 1, 101: 2, 10000: 100} {
		if got := gitCommitsFor(n); got != want {
			t.Errorf("gitCommitsFor(%d) = %d, want %d", n, got, want)
		}
	}
	bin := lookPath("git")
	if bin == "" {
		t.Fatal("git is not installed: scripts/test installs it (the Git stage needs it)")
	}
	ctx := context.Background()
	dir := t.TempDir()
	repo, work, src := filepath.Join(dir, "repo.git"), filepath.Join(dir, "work"), filepath.Join(dir, "src")
	run := func(args ...string) {
		t.Helper()
		if _, err := git(ctx, bin, append([]string{"-c", "user.name=t", "-c", "user.email=t@example.com"}, args...)...); err != nil {
			t.Fatal(err)
		}
	}
	write := func(root, rel, data string) {
		t.Helper()
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := initGitRepo(ctx, bin, repo); err != nil {
		t.Fatal(err)
	}
	if n, err := gitCommitCount(ctx, bin, repo); n != 0 || err != nil {
		t.Fatalf("a new repository: %d commits, %v", n, err)
	}
	run("init", "-q", "-b", gitBranch, work)
	for i, f := range []struct{ rel, data string }{{"a/b.txt", "hello"}, {"c.txt", "x"}} {
		write(work, f.rel, f.data)
		write(src, f.rel, f.data)
		run("-C", work, "add", "-A")
		run("-C", work, "commit", "-q", "-m", fmt.Sprint(i))
	}
	run("-C", work, "push", "-q", repo, gitBranch)

	if n, err := checkGitRepo(ctx, bin, repo, src, 2); n != 2 || err != nil {
		t.Fatalf("a good repository: %d commits, %v", n, err)
	}
	if _, err := checkGitRepo(ctx, bin, repo, src, 1); err == nil || !strings.Contains(err.Error(), "2 commits, want 1") {
		t.Errorf("one commit too many: got %v", err)
	}
	write(src, "a/new.txt", "new")
	if _, err := checkGitRepo(ctx, bin, repo, src, 2); err == nil || !strings.Contains(err.Error(), "1 missing") {
		t.Errorf("a file shipped and not committed: got %v", err)
	}
	os.Remove(filepath.Join(src, "a/new.txt"))
	write(src, "c.txt", "longer")
	if _, err := checkGitRepo(ctx, bin, repo, src, 2); err == nil || !strings.Contains(err.Error(), "wrong size") {
		t.Errorf("a file committed with other bytes: got %v", err)
	}
	write(src, "c.txt", "x")
	cmd := gitCmd(ctx, bin, "-C", repo, "hash-object", "-w", "--literally", "-t", "commit", "--stdin")
	cmd.Stdin = strings.NewReader("tree nonsense\n\nbroken\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("write a bad object: %v: %s", err, out)
	}
	if _, err := checkGitRepo(ctx, bin, repo, src, 2); err == nil || !strings.Contains(err.Error(), "fsck") {
		t.Errorf("a corrupt object: got %v", err)
	}
}

// TestFerryGitQuick runs ferry and ferry + git on the tiny small dataset
// against vsftpd: every case has both rows, each ferry + git run passed the
// repository check with the commits its case makes, and its ratio is taken
// against plain ferry.
func TestFerryGitQuick(t *testing.T) {
	if os.Geteuid() != 0 {
		msg := "the benchmark starts vsftpd and must run as root"
		if testrig.Required() {
			t.Fatalf("%s (set FERRY_ALLOW_SKIP=1 to skip on a machine where you cannot be root)", msg)
		}
		t.Skip(msg + "; FERRY_ALLOW_SKIP=1")
	}
	if lookPath("git") == "" {
		t.Fatal("git is not installed: scripts/test installs it (the Git stage needs it)")
	}
	out := t.TempDir()
	rep, err := Run(context.Background(), Options{Quick: true, Datasets: []string{DatasetSmall},
		Servers: []string{ServerVsftpd}, Tools: []string{ToolFerryGit, ToolFerry}, OutDir: out, WorkDir: t.TempDir(),
		NoInstall: true, FerryBin: ferryBin, Seed: 7, Timeout: 2 * time.Minute, Log: testLog{t}})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if n := rep.Failures(); n > 0 {
		t.Errorf("%d runs failed", n)
	}
	md, err := os.ReadFile(filepath.Join(out, LatestMarkdown))
	if err != nil {
		t.Fatal(err)
	}
	g := rep.group(DatasetSmall, ServerVsftpd)
	for _, c := range []struct {
		name    string
		commits int64
	}{{CaseInitial, 1}, {CaseNoop, 0}, {CaseChanged, 1}, {CaseDeletes, 1}} {
		cr := g.caseResult(c.name)
		ferry, withGit := cr.row(ToolFerry), cr.row(ferryGitLabel)
		if ferry == nil || withGit == nil {
			t.Errorf("%s: rows ferry %v, %s %v", c.name, ferry != nil, ferryGitLabel, withGit != nil)
			continue
		}
		if len(withGit.Samples) != 1 || !withGit.Samples[0].OK {
			t.Errorf("%s: %s samples %+v, want one that passed", c.name, ferryGitLabel, withGit.Samples)
			continue
		}
		if s := withGit.Samples[0]; s.Commits == nil || *s.Commits != c.commits {
			t.Errorf("%s: %s made %v commits, want %d", c.name, ferryGitLabel, s.Commits, c.commits)
		}
		if ferry.Samples[0].Commits != nil {
			t.Errorf("%s: plain ferry has a commit count", c.name)
		}
		if ferry.FerrySpeedup != nil || withGit.FerrySpeedup == nil {
			t.Errorf("%s: the ratio must be ferry + git's time over plain ferry's (ferry %v, ferry + git %v)",
				c.name, ferry.FerrySpeedup, withGit.FerrySpeedup)
		}
		if !strings.Contains(string(md), fmt.Sprintf("| %s | %s | ", c.name, ferryGitLabel)) {
			t.Errorf("%s: no %s row in latest.md", c.name, ferryGitLabel)
		}
	}
	if !strings.Contains(string(md), "--tools ferry-git,ferry") || !strings.Contains(string(md), "`git fsck --strict`") {
		t.Errorf("latest.md does not say how ferry + git ran and was checked")
	}
	if t.Failed() {
		t.Logf("latest.md:\n%s", md)
	}
}
