package gitstage

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"
)

// MinGitVersion is the oldest git the stage runs with: fetch
// --no-write-fetch-head and init --object-format arrived in 2.29/2.30.
const MinGitVersion = "2.30"

// Error is a git command that failed: which one, and what it said.
type Error struct {
	Args   []string // the subcommand and its arguments
	Stderr string   // trimmed
	Err    error    // the exit status, or why git could not run
}

func (e *Error) Error() string {
	sub := "git"
	if len(e.Args) > 0 {
		sub = "git " + e.Args[0]
	}
	if e.Stderr != "" {
		return sub + ": " + e.Stderr
	}
	return sub + ": " + e.Err.Error()
}

func (e *Error) Unwrap() error { return e.Err }

// exitCode is the exit status of a git that ran, -1 otherwise.
func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	return -1
}

// overrides are the user's configuration keys that would change what ferry
// writes or make its commands fail or block; they are set on every command
// line, which wins over every configuration file. Credentials, transports,
// proxies, url rewrites and SSH settings are left to the user.
var overrides = []string{
	// A signed push needs a key and may wait on a pinentry (commit-tree
	// gets --no-gpg-sign, which wins over commit.gpgSign).
	"push.gpgSign=false",
	// No encoding header: the messages are UTF-8.
	"i18n.commitEncoding=UTF-8",
	// The clone has no tags and no submodules; a push sends the branch.
	"push.followTags=false",
	"push.recurseSubmodules=no",
	// A background gc could prune blobs shipped but not yet committed;
	// see Maintain.
	"gc.auto=0",
	"maintenance.auto=false",
	// Refuse the .git look-alikes that fsck --strict refuses.
	"core.protectHFS=true",
	"core.protectNTFS=true",
	// With no terminal and no askpass program a missing credential fails
	// at once; credential.interactive (git >= 2.46) tells helpers too.
	"core.askPass=",
	"credential.interactive=false",
}

// environ is the environment git runs in: the process's, without the GIT_*
// variables that could point git at another repository, index or object
// directory, change how refs and objects are read, or prompt. Those that
// select a transport, a proxy, a certificate or a configuration file stay.
func environ(extra ...string) []string {
	keep := []string{
		"GIT_SSH=", "GIT_SSH_COMMAND=", "GIT_SSH_VARIANT=", "GIT_SSL_", "GIT_HTTP_",
		"GIT_PROXY_", "GIT_CURL_", "GIT_CONFIG_GLOBAL=", "GIT_CONFIG_SYSTEM=",
		"GIT_CONFIG_NOSYSTEM=", "GIT_EXEC_PATH=", "GIT_ALLOW_PROTOCOL=", "GIT_PROTOCOL_FROM_USER=",
	}
	var env []string
	for _, kv := range os.Environ() {
		switch {
		case strings.HasPrefix(kv, "GIT_"):
			ok := false
			for _, k := range keep {
				if strings.HasPrefix(kv, k) {
					ok = true
					break
				}
			}
			if !ok {
				continue
			}
		case strings.HasPrefix(kv, "SSH_ASKPASS="), strings.HasPrefix(kv, "SSH_ASKPASS_REQUIRE="),
			strings.HasPrefix(kv, "LC_ALL="), strings.HasPrefix(kv, "LANGUAGE="):
			continue
		}
		env = append(env, kv)
	}
	env = append(env,
		"LC_ALL=C",                  // messages are parsed and quoted: keep them in English
		"GIT_TERMINAL_PROMPT=0",     // never ask for a user name or password on a terminal
		"SSH_ASKPASS_REQUIRE=never", // nor through an askpass program
		"GIT_LITERAL_PATHSPECS=1",   // a path is a path, never a pattern
		"GIT_NO_REPLACE_OBJECTS=1",  // commit what the objects are
	)
	return append(env, extra...)
}

// runOpts are a command's inputs beyond its arguments.
type runOpts struct {
	stdin  io.Reader
	env    []string  // added to environ()
	gitDir string    // "" = none (init, version)
	config []string  // more -c settings, after (and so over) the overrides
	stderr *string   // when set, receives what git said even when it succeeded
	stdout io.Writer // when set, stdout goes there and run returns nil
}

// run runs git with the overrides and returns its standard output. Git
// runs in its own session: no controlling terminal, so ssh cannot ask for
// a passphrase either, and cancelling ctx kills git and its children (ssh,
// remote helpers) as one process group.
func run(ctx context.Context, o runOpts, args ...string) ([]byte, error) {
	full := make([]string, 0, 2*len(overrides)+len(args)+4)
	if o.gitDir != "" {
		// The clone's own hooks directory, which ferry creates
		// empty: a global core.hooksPath (a pre-push linter, a
		// reference-transaction logger) must not run inside a daemon
		// on every commit. The target repository's own hooks still
		// run, on its side.
		full = append(full, "--git-dir="+o.gitDir, "-c", "core.hooksPath="+o.gitDir+"/hooks")
	}
	for _, kv := range overrides {
		full = append(full, "-c", kv)
	}
	for _, kv := range o.config {
		full = append(full, "-c", kv)
	}
	full = append(full, args...)
	cmd := exec.CommandContext(ctx, "git", full...)
	cmd.Env = environ(o.env...)
	if o.gitDir != "" {
		cmd.Dir = o.gitDir
	}
	cmd.Stdin = o.stdin
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	if o.stdout != nil {
		cmd.Stdout = o.stdout
	}
	cmd.Stderr = &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	if o.stderr != nil {
		*o.stderr = stderr.String()
	}
	if err != nil {
		if ctx.Err() != nil {
			return stdout.Bytes(), fmt.Errorf("git %s: %w", args[0], ctx.Err())
		}
		return stdout.Bytes(), &Error{Args: args, Stderr: trimStderr(stderr.String()), Err: err}
	}
	return stdout.Bytes(), nil
}

// trimStderr keeps what git said in one line, without its progress
// chatter, and at most a few hundred bytes. A progress meter redraws its
// line after a bare '\r', and only what it drew last is kept; but ssh ends
// each of its lines with "\r\n", and those lines are what says why a
// repository could not be reached (and whether trying again can help).
func trimStderr(s string) string {
	var lines []string
	for _, l := range strings.Split(s, "\n") {
		l = strings.TrimRight(l, "\r")
		if i := strings.LastIndexByte(l, '\r'); i >= 0 {
			l = l[i+1:]
		}
		l = strings.TrimSpace(l)
		if l == "" || l == "remote:" || strings.HasPrefix(l, "hint:") {
			continue
		}
		lines = append(lines, l)
	}
	out := strings.Join(lines, "; ")
	// Both ends: git and ssh say what went wrong last ("Host key
	// verification failed.", "fatal: ..."), after a banner that can fill
	// the first few hundred bytes on its own (a changed host key).
	const head, tail = 200, 400
	if len(out) > head+tail {
		h, t := head, len(out)-tail
		for h > 0 && !utf8.RuneStart(out[h]) {
			h--
		}
		for t < len(out) && !utf8.RuneStart(out[t]) {
			t++
		}
		out = out[:h] + " … " + out[t:]
	}
	return out
}

// checkGitVersion fails clearly when git is missing or older than
// MinGitVersion.
func checkGitVersion(ctx context.Context) error {
	out, err := run(ctx, runOpts{}, "version")
	if err != nil {
		if errors.Is(err, exec.ErrNotFound) {
			return fmt.Errorf("the Git stage needs the git command (>= %s): %w", MinGitVersion, exec.ErrNotFound)
		}
		return err
	}
	v := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(string(out)), "git version "))
	if !versionAtLeast(v, MinGitVersion) {
		return fmt.Errorf("the Git stage needs git >= %s, found %q", MinGitVersion, v)
	}
	return nil
}

// versionAtLeast compares dotted version numbers ("2.39.5", "2.30"),
// ignoring a non-numeric tail ("2.39.5.windows.1").
func versionAtLeast(have, want string) bool {
	h, w := strings.Split(have, "."), strings.Split(want, ".")
	for i := range w {
		wn, _ := strconv.Atoi(w[i])
		hn := 0
		if i < len(h) {
			var err error
			if hn, err = strconv.Atoi(h[i]); err != nil {
				return false
			}
		}
		if hn != wn {
			return hn > wn
		}
	}
	return true
}

// isLocalPath reports whether git reads a repository argument as a path
// on this machine, by git's own rule: no "://" and no colon before the
// first slash (which would make it host:path, for ssh).
func isLocalPath(repo string) bool {
	if strings.Contains(repo, "://") {
		return false
	}
	colon := strings.IndexByte(repo, ':')
	slash := strings.IndexByte(repo, '/')
	return colon < 0 || (slash >= 0 && slash < colon)
}

// redact hides the password of a URL that carries one, for messages.
func redact(repo string) string {
	u, err := url.Parse(repo)
	if err != nil || u.User == nil {
		return repo
	}
	if _, ok := u.User.Password(); !ok {
		return repo
	}
	return u.Redacted()
}

// secretOf is the password in a repository URL, "" if none, so that it
// can be scrubbed from what git printed.
func secretOf(repo string) string {
	u, err := url.Parse(repo)
	if err != nil || u.User == nil {
		return ""
	}
	p, _ := u.User.Password()
	return p
}
