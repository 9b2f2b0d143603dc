package testrig

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/textproto"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jlaffaye/ftp"
	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

func dialFTP(t *testing.T, s *FTPServer, extra ...ftp.DialOption) *ftp.ServerConn {
	t.Helper()
	opts := append([]ftp.DialOption{ftp.DialWithTimeout(10 * time.Second), ftp.DialWithWritingMDTM(true)}, extra...)
	if s.TLS {
		ca, err := os.ReadFile(s.CAFile)
		if err != nil {
			t.Fatal(err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(ca) {
			t.Fatal("CAFile holds no certificate")
		}
		opts = append(opts, ftp.DialWithExplicitTLS(&tls.Config{
			RootCAs: pool, ServerName: s.Host,
			VerifyConnection: func(cs tls.ConnectionState) error {
				t.Logf("TLS %s %s", tls.VersionName(cs.Version), tls.CipherSuiteName(cs.CipherSuite))
				return nil
			},
		}))
	}
	c, err := ftp.Dial(s.Addr(), opts...)
	if err != nil {
		t.Fatalf("dial %s: %v", s.Addr(), err)
	}
	if err := c.Login(s.User, s.Password); err != nil {
		t.Fatalf("login: %v", err)
	}
	return c
}

func testFTPStore(t *testing.T, tlsOn bool) {
	t.Parallel()
	s := FTP(t, FTPOptions{TLS: tlsOn})
	c := dialFTP(t, s)
	defer c.Quit()

	name := "dir ü/hello wörld.txt"
	if err := c.MakeDir("dir ü"); err != nil {
		t.Fatal(err)
	}
	if err := c.Stor(name, strings.NewReader("hello")); err != nil {
		t.Fatalf("STOR: %v", err)
	}
	want := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
	if err := c.SetTime(name, want); err != nil {
		t.Fatalf("MDTM write: %v", err)
	}
	onDisk := filepath.Join(s.Root, filepath.FromSlash(name))
	fi, err := os.Stat(onDisk)
	if err != nil {
		t.Fatal(err)
	}
	if !fi.ModTime().Equal(want) {
		t.Errorf("mtime on disk %v, want %v", fi.ModTime().UTC(), want)
	}
	if got, _ := os.ReadFile(onDisk); string(got) != "hello" {
		t.Errorf("content %q", got)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); !ok || int(st.Uid) != mustAccount(t).UID {
		t.Errorf("file not owned by the account: %+v", fi.Sys())
	}
	if n, err := s.Uploads(); err != nil || n != 1 {
		t.Errorf("Uploads() = %d, %v; want 1", n, err)
	}
	scheme := map[bool]string{false: "ftp", true: "ftps"}[tlsOn]
	if u, want := s.URL(name), scheme+"://ferrytest@"+s.Addr()+"/dir%20%C3%BC/hello%20w%C3%B6rld.txt"; u != want {
		t.Errorf("URL = %q, want %q", u, want)
	}
}

func TestFTPPlain(t *testing.T) { testFTPStore(t, false) }
func TestFTPTLS(t *testing.T)   { testFTPStore(t, true) }

func mustAccount(t *testing.T) Account {
	a, err := EnsureAccount()
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestFTPKillRestart(t *testing.T) {
	t.Parallel()
	// A caller-given root under t.TempDir() (0700 parents) with a file
	// prepared as root: the rig must make both usable by the account.
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, "pre.txt"), []byte("pre"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := FTP(t, FTPOptions{Root: root})
	c := dialFTP(t, s)
	if r, err := c.Retr("pre.txt"); err != nil {
		t.Errorf("RETR of a file prepared by root: %v", err)
	} else {
		r.Close()
	}
	master := s.proc.cur.cmd.Process.Pid
	sessions := family(scanProcs(), master, true)
	if len(sessions) == 0 {
		t.Fatal("no session processes found under the vsftpd master")
	}
	if err := s.Kill(); err != nil {
		t.Fatal(err)
	}
	for _, pid := range sessions {
		if alive(pid) {
			t.Errorf("session pid %d survived Kill", pid)
		}
	}
	if err := c.NoOp(); err == nil {
		t.Error("NOOP succeeded on a killed server")
	}
	if err := s.Kill(); err != nil { // idempotent
		t.Fatal(err)
	}
	if err := s.Restart(); err != nil {
		t.Fatal(err)
	}
	c2 := dialFTP(t, s)
	if err := c2.Stor("after.txt", strings.NewReader("x")); err != nil {
		t.Fatal(err)
	}
	c2.Quit()
}

// alive treats zombies as dead: they hold no sockets and no files.
func alive(pid int) bool {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(data, ')')
	return i >= 0 && len(data) > i+2 && data[i+2] != 'Z'
}

func TestFTPMaxPerIP(t *testing.T) {
	t.Parallel()
	s := FTP(t, FTPOptions{MaxPerIP: 1})
	c := dialFTP(t, s)
	defer c.Quit()
	_, err := ftp.Dial(s.Addr(), ftp.DialWithTimeout(5*time.Second))
	var te *textproto.Error
	if !errors.As(err, &te) || te.Code != 421 {
		t.Fatalf("second connection: %v, want a 421 reply", err)
	}
	t.Logf("second connection refused with: %d %s", te.Code, te.Msg)
}

func sshConfig(t *testing.T, s *SSHServer, auth ssh.AuthMethod, knownHostsFile string) *ssh.ClientConfig {
	t.Helper()
	cb, err := knownhosts.New(knownHostsFile)
	if err != nil {
		t.Fatal(err)
	}
	return &ssh.ClientConfig{User: s.User, Auth: []ssh.AuthMethod{auth}, HostKeyCallback: cb, Timeout: 10 * time.Second}
}

func keyAuth(t *testing.T, s *SSHServer) ssh.AuthMethod {
	t.Helper()
	pem, err := os.ReadFile(s.IdentityFile)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.ParsePrivateKey(pem)
	if err != nil {
		t.Fatal(err)
	}
	return ssh.PublicKeys(signer)
}

func TestSSH(t *testing.T) {
	t.Parallel()
	s := SSH(t, SSHOptions{})
	for _, tc := range []struct {
		name string
		auth ssh.AuthMethod
	}{{"key", keyAuth(t, s)}, {"password", ssh.Password(s.Password)}} {
		t.Run(tc.name, func(t *testing.T) {
			var gotKey ssh.PublicKey
			cfg := sshConfig(t, s, tc.auth, s.KnownHostsFile)
			inner := cfg.HostKeyCallback
			cfg.HostKeyCallback = func(h string, r net.Addr, k ssh.PublicKey) error {
				gotKey = k
				return inner(h, r, k)
			}
			conn, err := ssh.Dial("tcp", s.Addr(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if fp := ssh.FingerprintSHA256(gotKey); fp != s.HostKeyFingerprint {
				t.Errorf("host key %s, HostKeyFingerprint %s", fp, s.HostKeyFingerprint)
			}
			sc, err := sftp.NewClient(conn)
			if err != nil {
				t.Fatal(err)
			}
			defer sc.Close()
			if wd, err := sc.Getwd(); err != nil || wd != s.Root {
				t.Errorf("Getwd = %q, %v; want %q", wd, err, s.Root)
			}
			f, err := sc.Create(filepath.Join(s.Root, tc.name+".txt"))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := io.WriteString(f, "sftp "+tc.name); err != nil {
				t.Fatal(err)
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
			if got, _ := os.ReadFile(filepath.Join(s.Root, tc.name+".txt")); string(got) != "sftp "+tc.name {
				t.Errorf("on disk: %q", got)
			}
		})
	}
	if u, want := s.URL("a b/c"), "sftp://ferrytest@"+s.Addr()+s.Root+"/a%20b/c"; u != want {
		t.Errorf("URL = %q, want %q", u, want)
	}
}

// TestSSHExec: with Exec, a session runs its command in the account's
// login shell (a plain server's sessions all run SFTP), SFTP still starts
// in Root, and git reaches a repository there through GitSSHCommand.
func TestSSHExec(t *testing.T) {
	t.Parallel()
	for _, run := range []bool{false, true} {
		s := SSH(t, SSHOptions{Exec: run})
		conn, err := ssh.Dial("tcp", s.Addr(), sshConfig(t, s, keyAuth(t, s), s.KnownHostsFile))
		if err != nil {
			t.Fatal(err)
		}
		sess, err := conn.NewSession()
		if err != nil {
			t.Fatal(err)
		}
		out, err := sess.CombinedOutput("id -un; command -v git-receive-pack")
		sess.Close()
		if want := s.User + "\n/usr/bin/git-receive-pack\n"; run != (err == nil && string(out) == want) {
			t.Errorf("Exec %v: the command said %q (%v)", run, out, err)
		}
		sc, err := sftp.NewClient(conn)
		if err != nil {
			t.Fatal(err)
		}
		if wd, err := sc.Getwd(); err != nil || wd != s.Root {
			t.Errorf("Exec %v: Getwd = %q, %v; want %q", run, wd, err, s.Root)
		}
		sc.Close()
		conn.Close()
	}
	s := SSH(t, SSHOptions{Exec: true})
	dir := s.BareRepo(t, "r.git")
	wrong, err := s.WrongKnownHosts(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, known := range []string{s.KnownHostsFile, wrong} {
		git := exec.Command("git", "ls-remote", s.GitURL("r.git"))
		git.Env = append(os.Environ(), "GIT_SSH_COMMAND="+s.GitSSHCommand(s.IdentityFile, known))
		out, err := git.CombinedOutput()
		if (known == wrong) != (err != nil) {
			t.Errorf("ls-remote of %s over SSH, known hosts %s: %v\n%s", dir, known, err, out)
		}
	}
	if s, err := StartSSH(SSHOptions{Exec: true, SFTPLogLevel: "INFO"}); err == nil {
		s.Stop()
		t.Error("Exec with SFTPLogLevel started")
	}
}

func TestSSHWrongKnownHostsAndRestart(t *testing.T) {
	t.Parallel()
	s := SSH(t, SSHOptions{Root: t.TempDir()})
	wrong, err := s.WrongKnownHosts(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	_, err = ssh.Dial("tcp", s.Addr(), sshConfig(t, s, ssh.Password(s.Password), wrong))
	var ke *knownhosts.KeyError
	if !errors.As(err, &ke) || len(ke.Want) == 0 {
		t.Fatalf("dial with wrong known_hosts: %v, want a key mismatch", err)
	}
	t.Logf("mismatch error: %v", err)

	conn, err := ssh.Dial("tcp", s.Addr(), sshConfig(t, s, ssh.Password(s.Password), s.KnownHostsFile))
	if err != nil {
		t.Fatal(err)
	}
	sc, err := sftp.NewClient(conn)
	if err != nil {
		t.Fatal(err)
	}
	if wd, err := sc.Getwd(); err != nil || wd != s.Root {
		t.Errorf("Getwd = %q, %v; want %q", wd, err, s.Root)
	}
	if err := s.Kill(); err != nil {
		t.Fatal(err)
	}
	if _, err := sc.Getwd(); err == nil {
		t.Error("sftp still answers after Kill")
	}
	sc.Close()
	conn.Close()
	if err := s.Restart(); err != nil {
		t.Fatal(err)
	}
	conn, err = ssh.Dial("tcp", s.Addr(), sshConfig(t, s, keyAuth(t, s), s.KnownHostsFile))
	if err != nil {
		t.Fatalf("after restart (same host key expected): %v", err)
	}
	conn.Close()
}

func TestSmallDisk(t *testing.T) {
	t.Parallel()
	dir := SmallDisk(t, 1<<20)
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	free := int64(st.Bavail) * st.Bsize
	if free < 1<<20*9/10 || free > 1<<20*11/10 {
		t.Errorf("free space %d, want about 1 MiB", free)
	}
}

// TestDiskFull records what each server says when the remote disk fills up,
// which the transfer code has to recognise.
func TestDiskFull(t *testing.T) {
	t.Parallel()
	payload := bytes.Repeat([]byte("x"), 2<<20)
	t.Run("ftp", func(t *testing.T) {
		t.Parallel()
		s := FTP(t, FTPOptions{Root: SmallDisk(t, 1<<20)})
		c := dialFTP(t, s)
		defer c.Quit()
		err := c.Stor("big.bin", bytes.NewReader(payload))
		if err == nil {
			t.Fatal("2 MiB STOR into a 1 MiB disk succeeded")
		}
		var te *textproto.Error
		if !errors.As(err, &te) {
			t.Errorf("STOR error %v carries no FTP reply", err)
		} else {
			t.Logf("STOR on a full disk: reply %d %q (error %q)", te.Code, te.Msg, err)
		}
		if n, _ := s.Uploads(); n != 0 {
			t.Errorf("Uploads() = %d after a failed upload", n)
		}
		if fi, err := os.Stat(filepath.Join(s.Root, "big.bin")); err == nil {
			t.Logf("partial file left behind: %d bytes", fi.Size())
		}
		for _, line := range strings.Split(logTail(s.XferLog, 1000), "\n") {
			if strings.Contains(line, "UPLOAD") {
				t.Logf("xferlog: %s", line)
			}
		}
		if err := c.NoOp(); err != nil {
			t.Errorf("control connection unusable after the failed STOR: %v", err)
		}
	})
	t.Run("sftp", func(t *testing.T) {
		t.Parallel()
		s := SSH(t, SSHOptions{Root: SmallDisk(t, 1<<20)})
		conn, err := ssh.Dial("tcp", s.Addr(), sshConfig(t, s, keyAuth(t, s), s.KnownHostsFile))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		sc, err := sftp.NewClient(conn)
		if err != nil {
			t.Fatal(err)
		}
		defer sc.Close()
		f, err := sc.Create("big.bin")
		if err != nil {
			t.Fatal(err)
		}
		_, werr := f.Write(payload)
		cerr := f.Close()
		if werr == nil && cerr == nil {
			t.Fatal("2 MiB SFTP write into a 1 MiB disk succeeded")
		}
		t.Logf("SFTP write on a full disk: write %T: %v; close: %v", werr, werr, cerr)
	})
}
