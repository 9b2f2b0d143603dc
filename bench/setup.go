package bench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"ferry/internal/testrig"
)

// Machine describes the host the numbers come from.
type Machine struct {
	Host      string  `json:"host"`
	CPUs      int     `json:"cpus"`
	CPUModel  string  `json:"cpu_model"`
	MemoryGiB float64 `json:"memory_gib"`
	Kernel    string  `json:"kernel"`
	OS        string  `json:"os"`
}

// Version is one program's version line.
type Version struct {
	Program string `json:"program"`
	Version string `json:"version"`
}

// machineInfo reads the host's description from /proc and /etc.
func machineInfo() Machine {
	m := Machine{CPUs: runtime.NumCPU(), CPUModel: "unknown", OS: runtime.GOOS}
	m.Host, _ = os.Hostname()
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "MemTotal:" {
				kib, _ := strconv.ParseFloat(f[1], 64)
				m.MemoryGiB = kib / (1 << 20)
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/etc/os-release"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "PRETTY_NAME="); ok {
				m.OS = strings.Trim(v, `"`)
			}
		}
	}
	return m
}

// programs maps each external program the bench may run to its Debian
// package, for the install step.
var programs = []struct{ name, pkg string }{
	{"time", "time"},
	{"rclone", "rclone"},
	{"lftp", "lftp"},
	{"curl", "curl"},
	{"sftp", "openssh-client"},
	{"ssh", "openssh-client"},
	{"vsftpd", "vsftpd"},
	{"sshd", "openssh-server"},
	{"git", "git"},
}

// lookPath finds a program on PATH or in the sbin directories a non-login
// PATH often lacks; "" when it is not installed.
func lookPath(name string) string {
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, d := range []string{"/usr/sbin", "/sbin", "/usr/local/bin", "/usr/bin"} {
		p := filepath.Join(d, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0 {
			return p
		}
	}
	return ""
}

// install puts the missing programs in place with apt-get when it may (root,
// not --no-install); what stays missing is reported as "not installed".
func install(ctx context.Context, want []string, noInstall bool, logf func(string, ...any)) []string {
	var missing, pkgs []string
	seen := map[string]bool{}
	for _, p := range programs {
		if !slices.Contains(want, p.name) || lookPath(p.name) != "" {
			continue
		}
		missing = append(missing, p.name)
		if !seen[p.pkg] {
			seen[p.pkg] = true
			pkgs = append(pkgs, p.pkg)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	var notes []string
	switch {
	case noInstall:
		notes = append(notes, fmt.Sprintf("missing and not installed (--no-install): %s", strings.Join(missing, ", ")))
	case os.Geteuid() != 0:
		notes = append(notes, fmt.Sprintf("missing and not installed (not root): %s", strings.Join(missing, ", ")))
	default:
		logf("setup: installing %s (apt-get)", strings.Join(pkgs, " "))
		for _, args := range [][]string{{"update", "-qq"}, append([]string{"install", "-y", "-qq", "--no-install-recommends"}, pkgs...)} {
			cmd := exec.CommandContext(ctx, "apt-get", args...)
			cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
			out, err := cmd.CombinedOutput()
			logf("setup: apt-get %s: %s", strings.Join(args, " "), lastLines(nil, out, 5))
			if err != nil {
				notes = append(notes, fmt.Sprintf("apt-get %s failed: %v", args[0], err))
				break
			}
		}
		notes = append(notes, fmt.Sprintf("installed with apt-get: %s", strings.Join(pkgs, ", ")))
	}
	return notes
}

// versions asks each program for its version; a program that is missing is
// listed as "not installed".
func versions(ctx context.Context, ferryBin string) []Version {
	first := func(argv ...string) string {
		if argv[0] == "" {
			return "not installed"
		}
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput()
		line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
		if err != nil && line == "" {
			return fmt.Sprintf("unknown (%v)", err)
		}
		return strings.TrimSpace(line)
	}
	vs := []Version{
		{"ferry", first(ferryBin, "version")},
		{"rclone", first(lookPath("rclone"), "version")},
		{"lftp", first(lookPath("lftp"), "--version")},
		{"curl", first(lookPath("curl"), "-V")},
		{"OpenSSH", first(lookPath("ssh"), "-V")},
		{"git", first(lookPath("git"), "--version")},
		{"Go (bench)", runtime.Version()},
	}
	// vsftpd -v prints its version to standard input, so hand it a pipe.
	v := "not installed"
	if bin := lookPath("vsftpd"); bin != "" {
		v = first("/bin/sh", "-c", `"$0" -v 0>&1`, bin)
	}
	return append(vs, Version{"vsftpd", v})
}

// curlHasSFTP tells whether curl was built with libssh2.
func curlHasSFTP(ctx context.Context, curl string) bool {
	if curl == "" {
		return false
	}
	out, err := exec.CommandContext(ctx, curl, "-V").Output()
	if err != nil {
		return false
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "Protocols:"); ok {
			return slices.Contains(strings.Fields(rest), "sftp")
		}
	}
	return false
}

// startSites starts the requested loopback servers and describes them for
// the tools; stop stops whatever was started, also after an error.
func startSites(servers []string, dir string) (sites []*site, stop func(), err error) {
	var stops []func() error
	stop = func() {
		for _, s := range stops {
			_ = s()
		}
	}
	if os.Geteuid() != 0 {
		return nil, stop, errors.New("the benchmark starts vsftpd and OpenSSH's sshd on 127.0.0.1 and must run as root " +
			"(it adds a local test account and runs the servers as root); run it as root, e.g. sudo go run . bench, " +
			"or choose only --datasets million, which mirrors to file:// and needs no server")
	}
	acct, err := testrig.EnsureAccount()
	if err != nil {
		return nil, stop, fmt.Errorf("test account: %w", err)
	}
	for _, name := range servers {
		switch name {
		case ServerVsftpd:
			f, err := testrig.StartFTP(testrig.FTPOptions{})
			if err != nil {
				return nil, stop, fmt.Errorf("start vsftpd: %w", err)
			}
			stops = append(stops, f.Stop)
			netrc := filepath.Join(dir, "netrc")
			line := fmt.Sprintf("machine %s login %s password %s\n", f.Host, f.User, f.Password)
			if err := os.WriteFile(netrc, []byte(line), 0o600); err != nil {
				return nil, stop, fmt.Errorf("netrc for curl: %w", err)
			}
			sites = append(sites, &site{name: name, host: f.Host, port: f.Port, user: f.User, password: f.Password,
				root: f.Root, netrc: netrc, ftp: f, acct: &acct})
		case ServerOpenSSH:
			s, err := testrig.StartSSH(testrig.SSHOptions{})
			if err != nil {
				return nil, stop, fmt.Errorf("start sshd: %w", err)
			}
			stops = append(stops, s.Stop)
			pub, err := writePublicKey(s.IdentityFile, filepath.Join(dir, "id.pub"))
			if err != nil {
				return nil, stop, fmt.Errorf("public key for curl: %w", err)
			}
			sites = append(sites, &site{name: name, host: s.Host, port: s.Port, user: s.User, password: s.Password,
				root: s.Root, identity: s.IdentityFile, knownHosts: s.KnownHostsFile, pubKey: pub,
				hostKeySHA: strings.TrimPrefix(s.HostKeyFingerprint, "SHA256:"), ssh: s, acct: &acct})
		default:
			return nil, stop, fmt.Errorf("unknown server %q (have %v)", name, AllServers)
		}
	}
	return sites, stop, nil
}

// writePublicKey derives the OpenSSH public key curl's libssh2 wants.
func writePublicKey(private, out string) (string, error) {
	pem, err := os.ReadFile(private)
	if err != nil {
		return "", err
	}
	signer, err := ssh.ParsePrivateKey(pem)
	if err != nil {
		return "", err
	}
	return out, os.WriteFile(out, ssh.MarshalAuthorizedKey(signer.PublicKey()), 0o644)
}

// rcloneObscure turns the password into the form rclone's --ftp-pass takes.
func rcloneObscure(ctx context.Context, rclone, password string) (string, error) {
	out, err := exec.CommandContext(ctx, rclone, "obscure", password).Output()
	if err != nil {
		return "", fmt.Errorf("rclone obscure: %w", err)
	}
	return strings.TrimSpace(string(out)), nil
}
