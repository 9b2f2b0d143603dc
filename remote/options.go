package remote

import (
	"fmt"
	"os"
	"path"
	"strings"
	"time"
)

// Options are the per-job settings a backend needs besides the URL. They are
// plain values: main and the config layer fill them, backends only read them.
type Options struct {
	// Password is the resolved password (see ResolvePassword).
	Password string
	// IdentityFile is an SSH private key; without it the SSH agent
	// (SSH_AUTH_SOCK) and then the password are tried.
	IdentityFile string
	// KnownHostsFile lists trusted SSH host keys; default ~/.ssh/known_hosts.
	KnownHostsFile string
	// CAFile is a PEM bundle of certificate authorities trusted for FTPS
	// in addition to the system's (for self-signed hosting certificates).
	CAFile string
	// Timeout bounds dialing and any single wait for the server; 0 means 30s.
	Timeout time.Duration
	// Warnf reports things the user should fix but that do not stop the run.
	Warnf func(format string, args ...any)
}

// DefaultTimeout applies when Options.Timeout is zero.
const DefaultTimeout = 30 * time.Second

// IOTimeout returns the timeout to apply.
func (o Options) IOTimeout() time.Duration {
	if o.Timeout > 0 {
		return o.Timeout
	}
	return DefaultTimeout
}

// Warn calls Warnf when it is set.
func (o Options) Warn(format string, args ...any) {
	if o.Warnf != nil {
		o.Warnf(format, args...)
	}
}

// PasswordEnv is the environment variable a password is read from.
const PasswordEnv = "FERRY_PASSWORD"

// ResolvePassword picks the password for t: FERRY_PASSWORD first, then the
// first line of passwordFile, then a password written in the URL (which
// works but is warned about, since it shows in process lists and shell
// history). getenv is os.Getenv outside tests.
func ResolvePassword(t *Target, passwordFile string, getenv func(string) string, warnf func(string, ...any)) (string, error) {
	if v := getenv(PasswordEnv); v != "" {
		return v, nil
	}
	if passwordFile != "" {
		fi, err := os.Stat(passwordFile)
		if err != nil {
			return "", fmt.Errorf("password_file %s: %w", passwordFile, err)
		}
		if fi.Mode().Perm()&0o077 != 0 && warnf != nil {
			warnf("password_file %s is readable by other users (mode %v); chmod 600 it", passwordFile, fi.Mode().Perm())
		}
		b, err := os.ReadFile(passwordFile)
		if err != nil {
			return "", fmt.Errorf("password_file %s: %w", passwordFile, err)
		}
		line, _, _ := strings.Cut(string(b), "\n")
		return strings.TrimSuffix(line, "\r"), nil
	}
	if t.Password != "" && warnf != nil {
		warnf("the password is written in the target URL, where process lists and shell history show it; use %s or password_file instead", PasswordEnv)
	}
	return t.Password, nil
}

// Join resolves a path relative to the target root into the path the server
// is given. root is the target's path; rel is cleaned and may not escape it.
func Join(root, rel string) (string, error) {
	if rel == "" || rel == "." {
		return root, nil
	}
	if strings.HasPrefix(rel, "/") || strings.ContainsRune(rel, 0) {
		return "", fmt.Errorf("path %q: must be relative to the target root", rel)
	}
	c := path.Clean(rel)
	if c == ".." || strings.HasPrefix(c, "../") {
		return "", fmt.Errorf("path %q: escapes the target root", rel)
	}
	if root == "" {
		return c, nil
	}
	return path.Join(root, c), nil
}
