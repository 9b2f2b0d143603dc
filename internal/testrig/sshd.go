package testrig

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// SSHOptions selects how an sshd instance is configured.
type SSHOptions struct {
	Root string // "" = fresh temp dir owned by the account; otherwise chowned (recursively) to it
	// SFTPLogLevel, when set ("INFO"), serves SFTP with the sftp-server
	// program at that log level, its log appended to SFTPLog: one line per
	// open, close and rename, so a test can count what reached the server.
	// (internal-sftp logs only to syslog or to the client's stderr.)
	SFTPLogLevel string
	// Exec lets a session run the command it asks for in the account's
	// login shell, as a Git host over SSH does (git push runs
	// git-receive-pack there, git fetch git-upload-pack), instead of
	// forcing SFTP on every session; the sftp subsystem still starts in
	// Root. It cannot be combined with SFTPLogLevel.
	Exec bool
}

// SSHServer is a running (or killed, awaiting Restart) OpenSSH sshd that
// only offers SFTP, unless SSHOptions.Exec lets sessions run commands.
type SSHServer struct {
	Host               string
	Port               int
	User, Password     string
	Root               string // directory sftp sessions start in (ForceCommand internal-sftp -d Root); absolute paths still reach the filesystem
	IdentityFile       string // unencrypted OpenSSH-format ed25519 private key accepted for User
	KnownHostsFile     string // a known_hosts file containing exactly this server's host key as [127.0.0.1]:PORT
	SFTPLog            string // sftp-server's log when SSHOptions.SFTPLogLevel is set, else ""
	HostKeyFingerprint string // ssh.FingerprintSHA256 of the host key

	daemon
	cfgPath string
	logPath string
	hostKey ssh.PublicKey
	bin     string
	// sftpCommand is what ForceCommand runs: internal-sftp, or sftp-server
	// with its log when SSHOptions.SFTPLogLevel is set.
	sftpCommand string
	exec        bool // SSHOptions.Exec: no ForceCommand
}

// StartSSH starts sshd and returns once a password login and the sftp
// subsystem work through it. The caller must call Stop.
func StartSSH(opts SSHOptions) (*SSHServer, error) {
	if err := checkRoot(); err != nil {
		return nil, err
	}
	bin, err := findBinary("sshd", "openssh-server")
	if err != nil {
		return nil, err
	}
	acct, err := EnsureAccount()
	if err != nil {
		return nil, err
	}
	// sshd's privilege separation refuses to run without this directory.
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
		return nil, fmt.Errorf("testrig: %w", err)
	}
	dir, err := os.MkdirTemp("", "ferry-sshd-")
	if err != nil {
		return nil, fmt.Errorf("testrig: %w", err)
	}
	s := &SSHServer{
		Host: Host, User: acct.Name, Password: acct.Password,
		IdentityFile:   filepath.Join(dir, "id_ed25519"),
		KnownHostsFile: filepath.Join(dir, "known_hosts"),
		daemon:         daemon{dir: dir},
		cfgPath:        filepath.Join(dir, "sshd_config"),
		logPath:        filepath.Join(dir, "sshd.log"),
		bin:            bin,
	}
	if err := s.prepare(opts, acct); err != nil {
		_ = s.Stop()
		return nil, err
	}
	// Absolute binary path: sshd re-executes itself for every connection.
	s.proc = &process{argv: []string{bin, "-D", "-e", "-f", s.cfgPath}, logPath: s.logPath}
	err = s.startLoop(s.configure, s.launch)
	if err != nil {
		_ = s.Stop()
		return nil, err
	}
	return s, nil
}

// SSH starts sshd for a test and stops it at Cleanup. It fails the test (or
// skips it when FERRY_ALLOW_SKIP=1) if the server cannot start.
func SSH(t testing.TB, opts SSHOptions) *SSHServer {
	t.Helper()
	s, err := StartSSH(opts)
	if err != nil {
		failOrSkip(t, err)
		return nil
	}
	stopAtCleanup(t, "sshd", s.Stop, s.logPath)
	return s
}

func (s *SSHServer) prepare(opts SSHOptions, acct Account) error {
	// 0755: sshd reads authorized_keys as the account, not as root.
	if err := os.Chmod(s.dir, 0o755); err != nil {
		return err
	}
	s.Root = opts.Root
	if s.Root == "" {
		s.Root = filepath.Join(s.dir, "root")
		if err := os.Mkdir(s.Root, 0o755); err != nil {
			return err
		}
	}
	root, err := filepath.Abs(s.Root)
	if err != nil {
		return err
	}
	s.Root = root
	s.sftpCommand = "internal-sftp -d " + root
	s.exec = opts.Exec
	if opts.Exec && opts.SFTPLogLevel != "" {
		return fmt.Errorf("testrig: SSHOptions.Exec and SFTPLogLevel cannot be combined")
	}
	if opts.SFTPLogLevel != "" {
		if err := s.sftpServerLog(opts.SFTPLogLevel, acct); err != nil {
			return err
		}
	}
	// ForceCommand's "-d DIR" must stay unquoted (sshd hands quotes to
	// internal-sftp literally) and expands '%' tokens, so such roots cannot
	// be expressed.
	if strings.ContainsAny(root, " \t\"'\\%\n\r") {
		return fmt.Errorf("testrig: SSH root %q cannot be written to an sshd_config", root)
	}
	if err := acct.Chown(root); err != nil {
		return fmt.Errorf("testrig: chown SSH root: %w", err)
	}
	if err := makeReachable(root); err != nil {
		return fmt.Errorf("testrig: SSH root: %w", err)
	}
	host, err := newSSHKey(filepath.Join(s.dir, "host_ed25519"), "ferry testrig host")
	if err != nil {
		return fmt.Errorf("testrig: host key: %w", err)
	}
	s.hostKey = host.pub
	s.HostKeyFingerprint = ssh.FingerprintSHA256(host.pub)
	client, err := newSSHKey(s.IdentityFile, acct.Name+"@ferry-testrig")
	if err != nil {
		return fmt.Errorf("testrig: client key: %w", err)
	}
	return os.WriteFile(filepath.Join(s.dir, "authorized_keys"), ssh.MarshalAuthorizedKey(client.pub), 0o644)
}

// configure writes the files that depend on the port, then has sshd check
// its config so that a syntax error is reported as such, not as a timeout.
func (s *SSHServer) configure(port int) error {
	s.Port = port
	line := knownhosts.Line([]string{knownhosts.Normalize(s.Addr())}, s.hostKey) + "\n"
	if err := os.WriteFile(s.KnownHostsFile, []byte(line), 0o644); err != nil {
		return err
	}
	q := func(p string) string { return `"` + p + `"` }
	cfg := []string{
		"Port " + strconv.Itoa(port),
		"ListenAddress " + Host,
		"AddressFamily inet",
		"HostKey " + q(filepath.Join(s.dir, "host_ed25519")),
		"PidFile none",
		"UsePAM no", // password checked against /etc/shadow directly
		"StrictModes no",
		"AuthorizedKeysFile " + q(filepath.Join(s.dir, "authorized_keys")),
		"PasswordAuthentication yes",
		"KbdInteractiveAuthentication no",
		"PubkeyAuthentication yes",
		"PermitEmptyPasswords no",
		"PermitRootLogin no",
		"AllowUsers " + s.User,
		"UseDNS no",
		"PrintMotd no",
		"PermitTTY no",
		"X11Forwarding no",
		"AllowTcpForwarding no",
		"AllowAgentForwarding no",
		// Parallel transfer tests open many connections at once; the
		// default 10:30:100 would randomly drop some during key exchange.
		"MaxStartups 100:30:200",
		"MaxSessions 100",
		"LogLevel VERBOSE",
	}
	// Unquoted on purpose: sshd passes quotes through to -d literally.
	// With Exec, a session's command runs in the account's login shell.
	if s.exec {
		cfg = append(cfg, "Subsystem sftp "+s.sftpCommand)
	} else {
		cfg = append(cfg, "Subsystem sftp internal-sftp", "ForceCommand "+s.sftpCommand)
	}
	if err := os.WriteFile(s.cfgPath, []byte(strings.Join(cfg, "\n")+"\n"), 0o600); err != nil {
		return err
	}
	if out, err := exec.Command(s.bin, "-t", "-f", s.cfgPath).CombinedOutput(); err != nil {
		return fmt.Errorf("testrig: sshd -t -f %s: %v: %s", s.cfgPath, err, bytes.TrimSpace(out))
	}
	return nil
}

// sftpServerLog has sessions run the sftp-server program (through the
// account's shell, as sshd runs any ForceCommand but internal-sftp) with
// its log on stderr, appended to SFTPLog; the file belongs to the account,
// which the sessions run as.
func (s *SSHServer) sftpServerLog(level string, acct Account) error {
	bin := ""
	for _, p := range []string{"/usr/lib/openssh/sftp-server", "/usr/libexec/openssh/sftp-server", "/usr/libexec/sftp-server"} {
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
			bin = p
			break
		}
	}
	if bin == "" {
		return unavailable("sftp-server is not installed; install the Debian package %q", "openssh-sftp-server")
	}
	if strings.ContainsAny(level, " \t\"'\\%\n\r") {
		return fmt.Errorf("testrig: SFTP log level %q", level)
	}
	s.SFTPLog = filepath.Join(s.dir, "sftp-server.log")
	if err := os.WriteFile(s.SFTPLog, nil, 0o644); err != nil {
		return err
	}
	if err := acct.Chown(s.SFTPLog); err != nil {
		return fmt.Errorf("testrig: chown %s: %w", s.SFTPLog, err)
	}
	// The root and the rig directory hold none of the characters the
	// shell or sshd's '%' expansion would read (prepare checks the root;
	// os.MkdirTemp names the other).
	s.sftpCommand = "exec " + bin + " -e -l " + level + " -d " + s.Root + " 2>>" + s.SFTPLog
	return nil
}

func (s *SSHServer) launch() error {
	r, err := s.proc.start()
	if err != nil {
		return err
	}
	err = waitReady(r, s.Addr(), s.probe)
	if err == nil {
		// Leave no probe session behind to confuse tests counting processes
		// or connections.
		err = waitSessionsGone(r, readyTimeout)
	}
	if err == nil {
		return nil
	}
	_ = s.proc.kill()
	tail := logTail(s.logPath, 3000)
	if strings.Contains(tail, "Address already in use") {
		return fmt.Errorf("%w: sshd could not bind %s", errPortBusy, s.Addr())
	}
	return fmt.Errorf("testrig: sshd on %s did not become ready: %v\n--- %s ---\n%s", s.Addr(), err, s.logPath, tail)
}

// probe logs in with the password and opens the sftp subsystem, which is
// exactly what a client does first.
func (s *SSHServer) probe(conn net.Conn) error {
	cfg := &ssh.ClientConfig{
		User:            s.User,
		Auth:            []ssh.AuthMethod{ssh.Password(s.Password)},
		HostKeyCallback: ssh.FixedHostKey(s.hostKey),
		Timeout:         readyTimeout,
	}
	c, chans, reqs, err := ssh.NewClientConn(conn, s.Addr(), cfg)
	if err != nil {
		return fmt.Errorf("ssh login: %w", err)
	}
	client := ssh.NewClient(c, chans, reqs)
	defer client.Close()
	sess, err := client.NewSession()
	if err != nil {
		return fmt.Errorf("ssh session: %w", err)
	}
	defer sess.Close()
	if err := sess.RequestSubsystem("sftp"); err != nil {
		return fmt.Errorf("sftp subsystem: %w", err)
	}
	return nil
}

// Addr is the server address, "127.0.0.1:port".
func (s *SSHServer) Addr() string { return net.JoinHostPort(s.Host, strconv.Itoa(s.Port)) }

// URL returns "sftp://ferrytest@127.0.0.1:port/abs/path". SFTP paths are
// absolute on the server, so the path is Root joined with p.
func (s *SSHServer) URL(p string) string {
	return "sftp://" + s.User + "@" + s.Addr() + escapePath(path.Join(s.Root, p))
}

// GitURL returns "ssh://ferrytest@127.0.0.1:port/abs/path" for a
// repository at Root joined with p, for a server started with
// SSHOptions.Exec. The path is not escaped: git hands an ssh:// path to
// the remote command as it is written.
func (s *SSHServer) GitURL(p string) string {
	return "ssh://" + s.User + "@" + s.Addr() + path.Join(s.Root, p)
}

// GitSSHCommand is a GIT_SSH_COMMAND that logs in with identity and
// trusts only the host keys in knownHosts, never asking: what a user
// sets to reach a Git host with a key of its own. It reads no ssh
// configuration file, no global known_hosts and no agent's other keys,
// so a machine's own settings cannot make a test pass or fail.
func (s *SSHServer) GitSSHCommand(identity, knownHosts string) string {
	return "ssh -F /dev/null -i " + identity + " -o IdentitiesOnly=yes -o IdentityAgent=none" +
		" -o UserKnownHostsFile=" + knownHosts + " -o GlobalKnownHostsFile=/dev/null" +
		" -o StrictHostKeyChecking=yes -o BatchMode=yes"
}

// Kill SIGKILLs sshd and every session process it forked, like a crash.
func (s *SSHServer) Kill() error { return s.kill() }

// Restart kills any running incarnation and starts sshd again on the same
// port, config and host key, returning once it accepts logins.
func (s *SSHServer) Restart() error { return s.restart(s.launch) }

// Stop kills the server and removes what the rig created; a caller-given
// Root is left in place. It is safe to call more than once.
func (s *SSHServer) Stop() error { return s.stop() }

// WrongKnownHosts writes, into dir, a known_hosts file that names this
// host:port with a different ed25519 key, for "host key changed" tests, and
// returns its path.
func (s *SSHServer) WrongKnownHosts(dir string) (string, error) {
	other, err := newSSHKey("", "")
	if err != nil {
		return "", err
	}
	f, err := os.CreateTemp(dir, "known_hosts_wrong_*")
	if err != nil {
		return "", err
	}
	line := knownhosts.Line([]string{knownhosts.Normalize(s.Addr())}, other.pub) + "\n"
	if _, err := f.WriteString(line); err != nil {
		f.Close()
		return "", err
	}
	return f.Name(), f.Close()
}
