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
// failure fails the test.
func Git(t testing.TB, dir string, args ...string) string {
	t.Helper()
	if dir != "" {
		args = append([]string{"-C", dir}, args...)
	}
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
