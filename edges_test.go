package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"ferry/internal/testrig"
)

// TestDeleteExcludedFlag: from the command line, --delete with --exclude
// leaves the server's excluded files alone, --delete-excluded removes them,
// and --delete-excluded without --delete is a usage error.
func TestDeleteExcludedFlag(t *testing.T) {
	srv := testrig.FTP(t, testrig.FTPOptions{})
	src, state := t.TempDir(), t.TempDir()
	writeTree(t, src, 3, 1)
	env := []string{"FERRY_PASSWORD=" + srv.Password}
	target := srv.URL("/mirror")
	if r := ferry(t, env, nil, "--once", "--state", state, src, target); r.code != 0 {
		t.Fatalf("first run: exit %d: %s", r.code, r.stderr)
	}
	theirs := filepath.Join(srv.Root, "mirror", "error.log")
	if err := os.WriteFile(theirs, []byte("the server's log"), 0o644); err != nil {
		t.Fatal(err)
	}
	acct, err := testrig.EnsureAccount()
	if err != nil {
		t.Fatal(err)
	}
	if err := acct.Chown(theirs); err != nil {
		t.Fatal(err)
	}
	r := ferry(t, env, nil, "--once", "--state", state, "--check-remote", "--delete", "--max-delete", "0", "--exclude", "*.log", src, target)
	if _, err := os.Stat(theirs); r.code != 0 || err != nil {
		t.Fatalf("--delete --exclude '*.log': exit %d, error.log: %v\n%s", r.code, err, r.stderr)
	}
	r = ferry(t, env, nil, "--once", "--state", state, "--delete-excluded", "--exclude", "*.log", src, target)
	if r.code != 2 || !strings.Contains(r.stderr, "--delete-excluded") {
		t.Fatalf("--delete-excluded without --delete: exit %d, %q", r.code, r.stderr)
	}
	r = ferry(t, env, nil, "--once", "--state", state, "--check-remote", "--delete", "--delete-excluded", "--exclude", "*.log", src, target)
	if _, err := os.Stat(theirs); r.code != 0 || !os.IsNotExist(err) {
		t.Fatalf("--delete --delete-excluded: exit %d, error.log: %v\n%s", r.code, err, r.stderr)
	}
}
