package testrig

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Git runs git in dir ("" = the working directory) without the machine's
// or the user's git configuration, and returns its trimmed output; a
// failure fails the test. It reads repositories of any owner: one that a
// push over SSH wrote belongs to the rig's account, not to the test.
func Git(t testing.TB, dir string, args ...string) string {
	t.Helper()
	if dir != "" {
		args = append([]string{"-C", dir}, args...)
	}
	args = append([]string{"-c", "safe.directory=*"}, args...)
	cmd := exec.Command("git", args...)
	cmd.Env = append(os.Environ(), "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

// BareRepo makes an empty bare repository (branch main) in a temporary
// directory, and checks it with git fsck --strict when a test that did not
// fail ends.
func BareRepo(t testing.TB) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "site.git")
	Git(t, "", "init", "-q", "--bare", "-b", "main", dir)
	t.Cleanup(func() {
		if !t.Failed() {
			Git(t, dir, "fsck", "--strict", "--no-dangling")
		}
	})
	return dir
}

// BareRepo makes an empty bare repository (branch main) at name under the
// server's Root, owned by the account its sessions run as, so that a push
// over SSH (git-receive-pack, as the account) can write it; a test that
// did not fail ends with git fsck --strict on it. The server must have
// been started with SSHOptions.Exec.
func (s *SSHServer) BareRepo(t testing.TB, name string) string {
	t.Helper()
	if !s.exec {
		t.Fatal("testrig: a repository served over SSH needs SSHOptions.Exec")
	}
	dir := filepath.Join(s.Root, name)
	Git(t, "", "init", "-q", "--bare", "-b", "main", dir)
	acct, err := EnsureAccount()
	if err != nil {
		t.Fatal(err)
	}
	if err := acct.Chown(dir); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if !t.Failed() {
			Git(t, dir, "fsck", "--strict", "--no-dangling")
		}
	})
	return dir
}
