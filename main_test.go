package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"ferry/internal/syncbuf"
	"ferry/internal/testrig"
)

// The test binary doubles as the ferry binary: run with FERRY_TEST_MAIN=1
// it is ferry, so the end-to-end tests run the real command (signals, exit
// codes, kill -9) without a separate build step.
func TestMain(m *testing.M) {
	if os.Getenv("FERRY_TEST_MAIN") == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

type result struct {
	code           int
	stdout, stderr string
}

// ferry runs the command with args; mut may adjust the exec.Cmd.
func ferry(t *testing.T, env []string, mut func(*exec.Cmd), args ...string) result {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), append([]string{"FERRY_TEST_MAIN=1", "SSH_AUTH_SOCK="}, env...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if mut != nil {
		mut(cmd)
	}
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return result{code, out.String(), errb.String()}
}

func writeTree(t *testing.T, root string, n, dirs int) {
	t.Helper()
	rng := rand.New(rand.NewPCG(3, uint64(n)))
	for i := 0; i < n; i++ {
		p := filepath.Join(root, fmt.Sprintf("dir%02d", i%dirs), fmt.Sprintf("file%05d.dat", i))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		b := make([]byte, 1+rng.IntN(16<<10))
		for j := range b {
			b[j] = byte(rng.IntN(256))
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestExitCodes(t *testing.T) {
	src := t.TempDir()
	writeTree(t, src, 3, 1)
	state := t.TempDir()
	dst := t.TempDir()
	tests := []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"no args", nil, 2, "--once"},
		{"one positional", []string{"--once", src}, 2, "SOURCE and TARGET"},
		{"bad url", []string{"--once", src, "http://example.com/x"}, 2, `unknown scheme "http"`},
		{"bad flag value", []string{"--once", "--conflict", "maybe", src, "file://" + dst}, 2, "keep-both"},
		{"bad max-delete", []string{"--once", "--max-delete", "ten", src, "file://" + dst}, 2, "max-delete"},
		{"missing source", []string{"--once", "--state", state, filepath.Join(src, "nope"), "file://" + dst}, 2, "nope"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := ferry(t, nil, nil, tc.args...)
			if r.code != tc.code || !strings.Contains(r.stderr, tc.msg) {
				t.Fatalf("exit %d (want %d), stderr %q (want it to mention %q)", r.code, tc.code, r.stderr, tc.msg)
			}
			if _, err := os.Stat(filepath.Join(dst, "dir00")); !os.IsNotExist(err) {
				t.Fatalf("a refused run wrote to the target: %v", err)
			}
		})
	}
	// The successes: exit 0 means the copy is exact, and flags are read
	// after the positionals too (--json there changes the output).
	r := ferry(t, nil, nil, "--once", "--state", state, src, "file://"+dst)
	if r.code != 0 || !strings.Contains(r.stdout, "transferred 3 files") {
		t.Fatalf("ok: exit %d\nstdout %s\nstderr %s", r.code, r.stdout, r.stderr)
	}
	sameTree(t, src, dst)
	r = ferry(t, nil, nil, "--once", src, "file://"+dst, "--state", state, "--json")
	var sum struct {
		Transferred, Unchanged int
		ExitCode               int `json:"exit_code"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &sum); err != nil || r.code != 0 {
		t.Fatalf("flags after positionals: exit %d, stdout not the --json summary (%v):\n%s%s", r.code, err, r.stdout, r.stderr)
	}
	if sum.Transferred != 0 || sum.Unchanged != 3 || sum.ExitCode != 0 {
		t.Fatalf("flags after positionals: the re-run did not find the 3 files in sync (--state not read?): %+v", sum)
	}
}

func TestWrongPasswordExit2(t *testing.T) {
	srv := testrig.FTP(t, testrig.FTPOptions{})
	src := t.TempDir()
	writeTree(t, src, 5, 1)
	r := ferry(t, []string{"FERRY_PASSWORD=wrong"}, nil, "--once", "--state", t.TempDir(), src, srv.URL("/m"))
	if r.code != 2 || !strings.Contains(r.stderr, "Login incorrect") {
		t.Fatalf("wrong password: exit %d, stderr %q", r.code, r.stderr)
	}
	if ents, _ := os.ReadDir(srv.Root); len(ents) != 0 {
		t.Fatalf("a refused login wrote %v", ents)
	}
}

// TestUnreadableFile runs ferry as an unprivileged account (root reads
// everything) over a tree with one file it cannot read: exit 1, the file
// listed with the reason, everything else mirrored.
func TestUnreadableFile(t *testing.T) {
	acct, err := testrig.EnsureAccount()
	if err != nil {
		t.Fatal(err)
	}
	base, err := os.MkdirTemp("", "ferry-unreadable-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	os.Chmod(base, 0o755)
	src, dst, state := filepath.Join(base, "src"), filepath.Join(base, "dst"), filepath.Join(base, "state")
	writeTree(t, src, 20, 2)
	secret := filepath.Join(src, "dir00", "secret.key")
	os.WriteFile(secret, []byte("top secret"), 0o600) // root-owned: the account cannot read it
	for _, d := range []string{dst, state} {
		os.MkdirAll(d, 0o755)
		if err := acct.Chown(d); err != nil {
			t.Fatal(err)
		}
	}
	// The test binary sits in a directory only root can enter: copy it.
	bin := filepath.Join(base, "ferry")
	self, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, self, 0o755); err != nil {
		t.Fatal(err)
	}
	asAccount := func(c *exec.Cmd) {
		c.Path, c.Args[0] = bin, bin
		c.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(acct.UID), Gid: uint32(acct.GID)}}
		c.Env = append(c.Env, "HOME="+state)
	}
	r := ferry(t, nil, asAccount, "--once", "--state", state, src, "file://"+dst)
	if r.code != 1 {
		t.Fatalf("exit %d, want 1\nstdout %s\nstderr %s", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stdout, "failed: dir00/secret.key") || !strings.Contains(r.stdout, "permission denied") {
		t.Fatalf("the unreadable file is not listed with its reason:\n%s", r.stdout)
	}
	if n := countFiles(t, dst); n != 20 {
		t.Fatalf("%d files mirrored, want the 20 readable ones", countFiles(t, dst))
	}
	if _, err := os.Stat(filepath.Join(dst, "dir00", "secret.key")); !os.IsNotExist(err) {
		t.Fatalf("the unreadable file exists on the remote: %v", err)
	}
}

// TestInterruptSavesRegistry: SIGINT mid-run exits 130 and the next run
// completes without re-sending what the first one verified.
func TestInterruptSavesRegistry(t *testing.T) {
	srv := testrig.SSH(t, testrig.SSHOptions{})
	src := t.TempDir()
	writeTree(t, src, 1500, 10)
	state := t.TempDir()
	common := []string{"--once", "--state", state, "--identity-file", srv.IdentityFile, "--known-hosts", srv.KnownHostsFile, src, srv.URL("m")}
	// Slowed down so that the signal lands mid-run.
	cmd := exec.Command(os.Args[0], append(common, "--bwlimit", "2M")...)
	cmd.Env = append(os.Environ(), "FERRY_TEST_MAIN=1", "SSH_AUTH_SOCK=")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Interrupt once some files are recorded as done, however slow the
	// machine is today.
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if done, err := readVerified(state); err == nil && len(done) >= 50 {
			break // an error is ferry holding the database: look again
		}
		if time.Now().After(deadline) {
			t.Fatalf("no progress in 60 s:\n%s", out.String())
		}
	}
	cmd.Process.Signal(syscall.SIGINT)
	err := cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 130 {
		t.Fatalf("after SIGINT: %v\n%s", err, out.String())
	}
	// What the interrupted run verified is on the server under its final
	// name; a file sent again would come back under a new inode (temporary
	// name, then rename).
	done, err := readVerified(state)
	if err != nil {
		t.Fatal(err)
	}
	disk := filepath.Join(srv.Root, "m")
	before := inodes(t, disk)
	for p := range done {
		if _, ok := before[p]; !ok {
			t.Fatalf("%s is recorded as verified but is not on the server", p)
		}
	}
	r := ferry(t, nil, nil, append(common, "--json")...)
	if r.code != 0 {
		t.Fatalf("resume: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	var sum struct{ Transferred, Adopted, Unchanged int }
	if err := json.Unmarshal([]byte(r.stdout), &sum); err != nil {
		t.Fatalf("resume: %v\n%s", err, r.stdout)
	}
	if got := sum.Transferred + sum.Adopted + sum.Unchanged; got != 1500 || sum.Unchanged < len(done) {
		t.Fatalf("resume: %+v: want outcomes for the 1500 files, %d of them unchanged", sum, len(done))
	}
	after := inodes(t, disk)
	resent := 0
	for p := range done {
		if after[p] != before[p] {
			resent++
		}
	}
	if resent > 0 {
		t.Fatalf("%d of the %d files verified before SIGINT were sent again", resent, len(done))
	}
	sameTree(t, src, disk)
}

// running is a ferry started in the background: what it prints, and done,
// which receives Wait's error once it exits.
type running struct {
	cmd       *exec.Cmd
	out, errb syncbuf.Buffer
	done      chan error
}

// startFerry starts ferry with args and env as ferry() runs it, without
// waiting; it is killed at the end of the test if it is still running.
func startFerry(t *testing.T, env []string, args ...string) *running {
	t.Helper()
	r := &running{cmd: exec.Command(os.Args[0], args...), done: make(chan error, 1)}
	r.cmd.Env = append(os.Environ(), append([]string{"FERRY_TEST_MAIN=1", "SSH_AUTH_SOCK="}, env...)...)
	r.cmd.Stdout, r.cmd.Stderr = &r.out, &r.errb
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { r.done <- r.cmd.Wait() }()
	t.Cleanup(func() {
		if r.cmd.ProcessState == nil {
			r.cmd.Process.Kill()
			<-r.done
		}
	})
	return r
}
