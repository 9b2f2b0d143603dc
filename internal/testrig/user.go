package testrig

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// The account is fixed rather than random so that parallel package processes
// share one entry in /etc/passwd instead of piling up users.
const (
	accountName     = "ferrytest"
	accountPassword = "ferry-test-Passw0rd"
	accountShell    = "/bin/bash"
	// accountHome must exist: vsftpd enters the home directory before
	// local_root, and sshd before ForceCommand's -d. It stays empty and
	// root-owned, so a server that somehow fell back to it exposes nothing.
	accountHome = "/var/lib/ferrytest"
)

// Account is the local OS account both servers authenticate.
type Account struct {
	Name, Password string
	UID, GID       int
}

var (
	accountMu    sync.Mutex
	accountReady *Account
)

// EnsureAccount creates (once; guarded by an flock on a file in os.TempDir()
// so that parallel `go test` package processes do not race on /etc/passwd)
// the user "ferrytest" with shell /bin/bash and sets its password with
// chpasswd to a fixed test password. Idempotent.
func EnsureAccount() (Account, error) {
	accountMu.Lock()
	defer accountMu.Unlock()
	if accountReady != nil {
		return *accountReady, nil
	}
	if err := checkRoot(); err != nil {
		return Account{}, err
	}
	// pam_shells (vsftpd) and sshd both refuse a shell missing from /etc/shells.
	if ok, err := fileHasLine("/etc/shells", accountShell); err != nil || !ok {
		return Account{}, unavailable("%s is not listed in /etc/shells (%v); PAM would refuse %s", accountShell, err, accountName)
	}
	// /etc/pam.d/vsftpd denies every user named in /etc/ftpusers.
	if ok, _ := fileHasLine("/etc/ftpusers", accountName); ok {
		return Account{}, unavailable("%s is listed in /etc/ftpusers, so vsftpd's PAM stack refuses it; remove that line", accountName)
	}

	unlock, err := lockFile(filepath.Join(os.TempDir(), "ferry-testrig-account.lock"))
	if err != nil {
		return Account{}, err
	}
	defer unlock()

	acct, found, err := lookupAccount()
	if err != nil {
		return Account{}, err
	}
	if !found {
		out, err := exec.Command("useradd", "-M", "-d", accountHome, "-s", accountShell, accountName).CombinedOutput()
		// Exit status 9 means another process won the race despite the lock
		// (e.g. a different rig version without it); the account is usable.
		var ee *exec.ExitError
		if err != nil && !(errors.As(err, &ee) && ee.ExitCode() == 9) {
			return Account{}, fmt.Errorf("testrig: useradd %s: %v: %s", accountName, err, bytes.TrimSpace(out))
		}
		if acct, found, err = lookupAccount(); err != nil || !found {
			return Account{}, fmt.Errorf("testrig: %s still missing from /etc/passwd after useradd (%v)", accountName, err)
		}
	}
	if acct.shell != accountShell || acct.home != accountHome {
		if out, err := exec.Command("usermod", "-s", accountShell, "-d", accountHome, accountName).CombinedOutput(); err != nil {
			return Account{}, fmt.Errorf("testrig: usermod %s: %v: %s", accountName, err, bytes.TrimSpace(out))
		}
	}
	if err := os.MkdirAll(accountHome, 0o755); err != nil {
		return Account{}, fmt.Errorf("testrig: home of %s: %w", accountName, err)
	}
	// Always reset the password: an account left by an older rig may have
	// another one, and sshd with UsePAM=no needs a real hash in /etc/shadow.
	// SHA-512 with few rounds instead of Debian's default yescrypt, which
	// costs ~100 ms per login and would dominate tests and the benchmark.
	cmd := exec.Command("chpasswd", "-c", "SHA512", "-s", "1000")
	cmd.Stdin = strings.NewReader(accountName + ":" + accountPassword + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		return Account{}, fmt.Errorf("testrig: chpasswd for %s: %v: %s", accountName, err, bytes.TrimSpace(out))
	}
	a := Account{Name: accountName, Password: accountPassword, UID: acct.uid, GID: acct.gid}
	accountReady = &a
	return a, nil
}

// Chown gives path and everything below it to the account, because files a
// test prepares as root must still be overwritable through the servers.
func (a Account) Chown(path string) error {
	return filepath.WalkDir(path, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, a.UID, a.GID)
	})
}

// makeReachable adds search permission for others to the ancestors of dir
// that live under os.TempDir(): t.TempDir() creates 0700 parents, and both
// servers open the root as the account, not as root.
func makeReachable(dir string) error {
	tmp, err := filepath.Abs(os.TempDir())
	if err != nil {
		return err
	}
	for d := filepath.Dir(dir); strings.HasPrefix(d, tmp+string(filepath.Separator)); d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			return err
		}
		if fi.Mode().Perm()&0o001 == 0 {
			if err := os.Chmod(d, fi.Mode().Perm()|0o011); err != nil {
				return err
			}
		}
	}
	return nil
}

type passwdEntry struct {
	uid, gid    int
	home, shell string
}

// lookupAccount reads /etc/passwd directly rather than through os/user so
// that it sees useradd's change immediately, whatever NSS caching is in place.
func lookupAccount() (passwdEntry, bool, error) {
	data, err := os.ReadFile("/etc/passwd")
	if err != nil {
		return passwdEntry{}, false, fmt.Errorf("testrig: %w", err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Split(line, ":")
		if len(f) < 7 || f[0] != accountName {
			continue
		}
		uid, err1 := strconv.Atoi(f[2])
		gid, err2 := strconv.Atoi(f[3])
		if err1 != nil || err2 != nil {
			return passwdEntry{}, false, fmt.Errorf("testrig: malformed /etc/passwd line for %s", accountName)
		}
		return passwdEntry{uid: uid, gid: gid, home: f[5], shell: f[6]}, true, nil
	}
	return passwdEntry{}, false, nil
}

func fileHasLine(path, want string) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if strings.TrimSpace(sc.Text()) == want {
			return true, nil
		}
	}
	return false, sc.Err()
}

// lockFile takes an exclusive flock, which the kernel releases even if the
// holding test process is killed, so a crash never wedges later runs.
func lockFile(path string) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("testrig: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("testrig: flock %s: %w", path, err)
	}
	return func() { f.Close() }, nil
}
