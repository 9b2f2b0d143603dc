// Package testrig owns starting and stopping the real FTP and SSH servers
// that the test suites and the benchmark use, on 127.0.0.1 only.
//
// The servers are the distribution's vsftpd and OpenSSH sshd, run as root in
// the foreground with configs, keys and logs in a private temporary
// directory, so that tests exercise real protocol quirks rather than a mock.
// Every constructor comes in two forms: StartFTP, StartSSH and NewSmallDisk
// return an error and leave stopping to the caller (the benchmark), while
// FTP, SSH and SmallDisk take a testing.TB and register the stop with
// t.Cleanup.
package testrig

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// Host is the only address the rig listens on: the machines are shared, and
// nothing outside them should ever reach a test server.
const Host = "127.0.0.1"

// ErrUnavailable marks errors caused by the machine rather than by the code
// under test (not root, server binary missing), so callers can tell a broken
// environment from a broken rig.
var ErrUnavailable = errors.New("testrig: servers cannot run here")

// Required reports whether a missing server binary, a non-root user or any
// other reason a server cannot start must fail the test rather than skip it.
// It is true unless FERRY_ALLOW_SKIP=1 is set (CI never sets it).
func Required() bool {
	return os.Getenv("FERRY_ALLOW_SKIP") != "1"
}

// unavailable builds an ErrUnavailable with the reason and the remedy, since
// whoever reads it is usually a developer on a fresh machine.
func unavailable(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrUnavailable, fmt.Sprintf(format, args...))
}

// failOrSkip is the one place that decides between t.Skip and t.Fatal, so
// that every helper honours FERRY_ALLOW_SKIP the same way.
func failOrSkip(t testing.TB, err error) {
	t.Helper()
	if !Required() {
		t.Skipf("skipping, FERRY_ALLOW_SKIP=1 and %v", err)
	}
	t.Fatalf("%v\n(the real servers are mandatory for this suite; "+
		"set FERRY_ALLOW_SKIP=1 only to skip them on a local machine)", err)
}

// checkRoot is a precondition of everything here: the servers bind as root,
// switch to the test account, chroot and mount.
func checkRoot() error {
	if os.Geteuid() != 0 {
		return unavailable("the test servers must be started as root (euid is %d); "+
			"run the tests as root, e.g. through ./scripts/test in the CI container", os.Geteuid())
	}
	return nil
}

// findBinary prefers the Debian location because sbin is often missing from
// a non-login PATH, and falls back to PATH for other layouts.
func findBinary(name, debPackage string) (string, error) {
	for _, p := range []string{"/usr/sbin/" + name, "/sbin/" + name} {
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
			return p, nil
		}
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	return "", unavailable("%s is not installed; install the Debian package %q "+
		"(./scripts/test installs it: apt-get install -y %s)", name, debPackage, debPackage)
}

// readyTimeout bounds how long a server may take to come up; both normally
// take a few milliseconds, so hitting it means something is wrong.
const readyTimeout = 10 * time.Second

// waitReady dials addr until something listens, then lets probe talk to it.
// It gives up early if the server process exits, which is how a bind
// failure or a config error shows up.
func waitReady(r *run, addr string, probe func(net.Conn) error) error {
	deadline := time.Now().Add(readyTimeout)
	for {
		if r.exited() {
			return fmt.Errorf("server exited: %v", r.waitErr)
		}
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			_ = conn.SetDeadline(time.Now().Add(readyTimeout))
			err = probe(conn)
			conn.Close()
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("nothing listening on %s after %v: %v", addr, readyTimeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// escapePath makes p absolute and escapes each segment on its own, so that
// "/" stays a separator while spaces, "%" or "#" in names survive a URL.
func escapePath(p string) string {
	if !strings.HasPrefix(p, "/") {
		p = "/" + p
	}
	segs := strings.Split(p, "/")
	for i, seg := range segs {
		segs[i] = url.PathEscape(seg)
	}
	return strings.Join(segs, "/")
}

func logServerLogs(t testing.TB, paths ...string) {
	t.Helper()
	for _, p := range paths {
		t.Logf("--- %s ---\n%s", p, logTail(p, 4000))
	}
}

// stopAtCleanup stops a server when the test ends, printing its logs first
// if the test failed: the server's own account of a failure is usually the
// fastest way to its cause, and stopping deletes it.
func stopAtCleanup(t testing.TB, name string, stop func() error, logs ...string) {
	t.Cleanup(func() {
		if t.Failed() {
			logServerLogs(t, logs...)
		}
		if err := stop(); err != nil {
			t.Errorf("testrig: stopping %s: %v", name, err)
		}
	})
}
