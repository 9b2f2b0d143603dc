package bench

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"ferry/internal/testrig"
)

// The tools compared, as named on the command line.
const (
	ToolFerry  = "ferry"
	ToolRclone = "rclone"
	ToolLftp   = "lftp"
)

// toolFloor is the raw protocol floor (ferry bench floor, package floor): the
// same libraries as ferry, the fewest commands per file; it runs beside the
// tools in every initial mirror except the large files'.
const (
	toolFloor  = "floor"
	floorLabel = "floor (raw protocol)"
)

// AllTools lists the tools compared; the raw single-stream uploaders (curl,
// OpenSSH's sftp) are not chosen but run whenever the large dataset does.
var AllTools = []string{ToolFerry, ToolRclone, ToolLftp}

// ToolFerryGit is ferry with its Git stage on: the same command as the
// ferry row plus --git-repository, a bare repository of its own. It is not
// a peer but the price of a ferry feature, so it runs only when named
// (--tools ferry,ferry-git) and its ratio is its time over plain ferry's.
const (
	ToolFerryGit  = "ferry-git"
	ferryGitLabel = "ferry + git"
)

// OptionalTools are the --tools names that run only when asked for.
var OptionalTools = []string{ToolFerryGit}

// The servers, as named on the command line.
const (
	ServerVsftpd  = "vsftpd"
	ServerOpenSSH = "openssh"
	serverFile    = "file" // file:// target of the memory case
)

// AllServers lists the loopback servers the bench starts.
var AllServers = []string{ServerVsftpd, ServerOpenSSH}

// site is one server as the tools see it: where to connect, how to log in,
// and where its files land on this machine's disk.
type site struct {
	name                 string // ServerVsftpd, ServerOpenSSH or serverFile
	host                 string
	port                 int
	user, password       string
	root                 string // on-disk directory that remote paths start from
	identity, knownHosts string // SFTP
	pubKey, hostKeySHA   string // SFTP, for curl
	netrc                string // FTP, for curl
	ftp                  *testrig.FTPServer
	ssh                  *testrig.SSHServer
	acct                 *testrig.Account
}

// sftp tells whether the site speaks SFTP.
func (s *site) sftp() bool { return s.ssh != nil }

// disk is where rel (slash-separated, relative to the site) is on disk.
func (s *site) disk(rel string) string { return filepath.Join(s.root, filepath.FromSlash(rel)) }

// remotePath is rel as a path in the protocol: vsftpd chroots into root, so
// FTP paths start at "/"; sshd does not chroot, so SFTP paths are absolute.
func (s *site) remotePath(rel string) string {
	if s.sftp() || s.name == serverFile {
		return path.Join(filepath.ToSlash(s.root), rel)
	}
	return "/" + rel
}

// ferryURL is ferry's TARGET for rel.
func (s *site) ferryURL(rel string) string {
	switch {
	case s.ftp != nil:
		return s.ftp.URL("/" + rel)
	case s.ssh != nil:
		return s.ssh.URL(rel)
	}
	return "file://" + s.remotePath(rel)
}

// job is one mirror to run: a source tree to a tool's directory on a site.
type job struct {
	src     string
	site    *site
	rel     string // the tool's own remote directory, relative to the site
	workers int
	state   string   // ferry's state directory
	delete  bool     // the deletes case: ask for deletion where a tool needs asking
	dryRun  bool     // plan only (ferry and rclone)
	files   []string // the raw uploaders' files, absolute, in order
	gitRepo string   // ferry's --git-repository, a local bare repository; "" = no Git stage
	// gitCommits is how many commits the run must add to gitRepo's main:
	// one per started batch of the files it ships or deletes.
	gitCommits int64
}

// ferryCommand is `ferry --once` as a user would run it, with --json so the
// bench can read what ferry says it transferred.
func ferryCommand(bin string, j job) invocation {
	argv := []string{bin, "--once", "--json", "--workers", strconv.Itoa(j.workers), "--state", j.state}
	if j.delete {
		argv = append(argv, "--delete")
	}
	if j.dryRun {
		argv = append(argv, "--dry-run")
	}
	if j.gitRepo != "" {
		argv = append(argv, "--git-repository", j.gitRepo)
	}
	return ferryArgs(argv, j)
}

// floorCommand is `ferry bench floor`, with ferry's connection count.
func floorCommand(bin string, j job) invocation {
	return ferryArgs([]string{bin, "bench", "floor", "--workers", strconv.Itoa(j.workers)}, j)
}

// ferryArgs ends a ferry command line: the site's credentials (key files
// as flags, the FTP password in the environment), SRC and URL.
func ferryArgs(argv []string, j job) invocation {
	if j.site.sftp() {
		argv = append(argv, "--identity-file", j.site.identity, "--known-hosts", j.site.knownHosts)
	}
	inv := invocation{argv: append(argv, j.src, j.site.ferryURL(j.rel))}
	if j.site.ftp != nil {
		inv.env = []string{"FERRY_PASSWORD=" + j.site.password}
	}
	return inv
}

// rcloneCommand is `rclone sync` to an on-the-fly remote (no config file
// entry). Its FTP connection cap must exceed the larger of transfers and
// checkers by one when checks come first, or rclone can deadlock (its docs).
func rcloneCommand(bin, conf, obscured string, j job) invocation {
	n := strconv.Itoa(j.workers)
	argv := []string{bin, "--config", conf, "sync", j.src}
	switch {
	case j.site.ftp != nil:
		argv = append(argv, ":ftp:"+strings.TrimPrefix(j.site.remotePath(j.rel), "/"),
			"--ftp-host", j.site.host, "--ftp-port", strconv.Itoa(j.site.port),
			"--ftp-user", j.site.user, "--ftp-pass", obscured,
			"--ftp-concurrency", strconv.Itoa(j.workers+1))
	case j.site.ssh != nil:
		argv = append(argv, ":sftp:"+j.site.remotePath(j.rel),
			"--sftp-host", j.site.host, "--sftp-port", strconv.Itoa(j.site.port),
			"--sftp-user", j.site.user, "--sftp-key-file", j.site.identity,
			"--sftp-known-hosts-file", j.site.knownHosts, "--sftp-shell-type", "none")
	default:
		argv = append(argv, j.site.remotePath(j.rel))
	}
	argv = append(argv, "--transfers", n, "--checkers", n, "--check-first")
	if j.dryRun {
		argv = append(argv, "--dry-run")
	}
	return invocation{argv: argv, secret: obscured}
}

// lftpCommand is `lftp mirror -R` in one lftp process that exits with the
// mirror's status (cmd:fail-exit).
func lftpCommand(bin string, j job) invocation {
	mirror := fmt.Sprintf("mirror -R --parallel=%d --no-perms", j.workers)
	if j.delete {
		mirror += " --delete"
	}
	if j.dryRun {
		mirror += " --dry-run"
	}
	mirror += fmt.Sprintf(" %s %s", lftpQuote(j.src), lftpQuote(j.site.remotePath(j.rel)))
	set := "set cmd:fail-exit yes; set net:max-retries 2; set net:reconnect-interval-base 1; "
	if j.site.sftp() {
		ssh := fmt.Sprintf("ssh -a -x -i %s -o UserKnownHostsFile=%s -o StrictHostKeyChecking=yes -o BatchMode=yes",
			j.site.identity, j.site.knownHosts)
		script := set + "set sftp:connect-program " + lftpQuote(ssh) + "; " + mirror + "; quit"
		return invocation{argv: []string{bin, "-u", j.site.user + ",", "-e", script,
			fmt.Sprintf("sftp://%s:%d", j.site.host, j.site.port)}}
	}
	script := set + "set ftp:ssl-allow no; " + mirror + "; quit"
	return invocation{argv: []string{bin, "-u", j.site.user + "," + j.site.password, "-p", strconv.Itoa(j.site.port),
		"-e", script, j.site.host}, secret: j.site.password}
}

// lftpQuote quotes one word for lftp's command parser.
func lftpQuote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// curlCommand uploads files one after another over one connection: the
// loopback limit for FTP (and, through libssh2, a second one for SFTP).
func curlCommand(bin string, files []string, j job) invocation {
	argv := []string{bin, "-sS", "--ftp-create-dirs", "-T", "{" + strings.Join(files, ",") + "}"}
	dir := j.site.remotePath(j.rel) + "/"
	if j.site.sftp() {
		argv = append(argv, "--key", j.site.identity, "--pubkey", j.site.pubKey,
			"--hostpubsha256", j.site.hostKeySHA,
			fmt.Sprintf("sftp://%s@%s:%d%s", j.site.user, j.site.host, j.site.port, dir))
	} else {
		argv = append(argv, "--netrc-file", j.site.netrc,
			fmt.Sprintf("ftp://%s@%s:%d%s", j.site.user, j.site.host, j.site.port, dir))
	}
	return invocation{argv: argv}
}

// sftpCommand is OpenSSH's sftp putting the files one after another, the
// single-stream limit of the SFTP server; the batch file is written here.
func sftpCommand(bin, batch string, files []string, j job) (invocation, error) {
	var b strings.Builder
	for _, f := range files {
		fmt.Fprintf(&b, "put %s %s\n", sftpQuote(f), sftpQuote(path.Join(j.site.remotePath(j.rel), filepath.Base(f))))
	}
	if err := os.WriteFile(batch, []byte(b.String()), 0o600); err != nil {
		return invocation{}, fmt.Errorf("sftp batch file: %w", err)
	}
	return invocation{argv: []string{bin, "-q", "-b", batch, "-i", j.site.identity,
		"-o", "UserKnownHostsFile=" + j.site.knownHosts, "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes",
		"-P", strconv.Itoa(j.site.port), j.site.user + "@" + j.site.host}}, nil
}

func sftpQuote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// flagNotes explains, for the report, the flags each tool got and why they
// are that tool's fastest fair settings at the same connection count.
func flagNotes(workers int, tools []string) []string {
	n := workers
	notes := []string{
		fmt.Sprintf("**ferry**: `ferry --once --json --workers %d --state DIR SRC URL` (`--identity-file`, `--known-hosts` over SFTP; "+
			"password in `FERRY_PASSWORD`). `--workers %d` is its connection count; everything else is the default, "+
			"so every file still goes through a temporary name and a rename. The state directory is new for each "+
			"repetition of an initial mirror and kept for the re-runs. `--delete` only in the deletes case.", n, n),
		fmt.Sprintf("**rclone**: `rclone --config EMPTY sync SRC :ftp:PATH --ftp-host --ftp-port --ftp-user --ftp-pass OBSCURED "+
			"--ftp-concurrency %d --transfers %d --checkers %d --check-first` and over SFTP `:sftp:PATH --sftp-host --sftp-port "+
			"--sftp-user --sftp-key-file --sftp-known-hosts-file --sftp-shell-type none --transfers %d --checkers %d --check-first`. "+
			"`--transfers %d` gives it the same number of parallel uploads as the others. `--check-first` with "+
			"`--checkers %d` keeps listing and uploading from overlapping, so it never holds more than %d connections "+
			"(rclone's FTP docs require the cap to be one more than max(transfers, checkers) with `--check-first`, or it "+
			"can deadlock). `--sftp-shell-type none` skips a shell probe the server (ForceCommand internal-sftp) refuses "+
			"anyway. An empty `--config` keeps the user's own config out. rclone sync deletes by default, so it needs no "+
			"extra flag in the deletes case. It cannot set times on vsftpd (it logs `SetModTime is not supported` per "+
			"file, which is not a failure) and then compares sizes only, so changed files always change size here.",
			n+1, n, n, n, n, n, n, n+1),
		fmt.Sprintf("**lftp**: `lftp -u USER,PASS -p PORT -e \"set cmd:fail-exit yes; set net:max-retries 2; "+
			"set net:reconnect-interval-base 1; set ftp:ssl-allow no; mirror -R --parallel=%d --no-perms SRC PATH; quit\" 127.0.0.1`; "+
			"over SFTP the same mirror with `set sftp:connect-program 'ssh -a -x -i KEY -o UserKnownHostsFile=KH "+
			"-o StrictHostKeyChecking=yes -o BatchMode=yes'` and `sftp://127.0.0.1:PORT`. `--parallel=%d` is its "+
			"connection count. `--no-perms` drops the SITE CHMOD / setstat lftp sends after each file by default, a "+
			"round trip neither ferry nor rclone makes. `ftp:ssl-allow no` because the server is plain FTP "+
			"(no AUTH TLS attempt). `cmd:fail-exit` makes a failed mirror a non-zero exit. lftp uploads straight "+
			"to the final name (no temporary file, so a reader can see half a file), which is less work than "+
			"ferry does. `--delete` only in the deletes case.", n, n),
		fmt.Sprintf("**floor (raw protocol)**: `ferry bench floor --workers %d SRC URL`, the floor DESIGN.md measures ferry "+
			"against: the libraries ferry uses (jlaffaye/ftp, pkg/sftp) sending each file with the fewest commands the "+
			"protocol allows, over the same %d connections — FTP: EPSV + STOR to the final name; SFTP: OPEN, pipelined "+
			"WRITEs, CLOSE, 8 files in flight per connection as ferry — every directory made once up front. No "+
			"temporary name, no rename, no times set, no verification and no state: the gap to ferry is the price "+
			"of those. Initial mirrors only (it has no notion of a re-run).", n, n),
		"**curl** (loopback limit, large files): `curl -sS --ftp-create-dirs -T {FILE1,...} ftp://USER@127.0.0.1:PORT/DIR/` " +
			"(password from a netrc file) sends the files one after another over one connection, no temporary names: " +
			"the raw stream the server can take. Over SFTP curl (libssh2) runs the same way with `--key --pubkey --hostpubsha256`.",
		"**sftp** (loopback limit over SFTP): OpenSSH's `sftp -q -b BATCH -i KEY -o UserKnownHostsFile=KH -P PORT` " +
			"with one `put` per file, one stream; OpenSSH keeps 64 requests of 32 KiB in flight. The limit used " +
			"for the fraction is the faster of curl and sftp in each repetition.",
	}
	if slices.Contains(tools, ToolFerryGit) {
		notes = append(notes, fmt.Sprintf("**%s** (`--tools %s`): ferry's command above plus `--git-repository REPO`, REPO a "+
			"bare repository on this machine's disk (`git init -q --bare -b main`, under the run's work directory), made new "+
			"with the fresh state of every initial mirror and kept for the re-runs. Everything else is the Git stage's "+
			"default: branch main, a commit per %d files shipped (and one for the rest at the end of the run), each pushed. "+
			"It runs in the initial, noop, changed1pct and deletes cases of every dataset but the million files (and not in "+
			"the loopback or live cases). Besides the check every run gets, its repository is checked after each run: "+
			"main gained exactly one commit per started batch of %d of the files the run had to ship or delete (none for the "+
			"no-op), main's tree holds exactly the source's files with the same sizes, and `git fsck --strict` is clean. Its "+
			"ratio column is its time over plain ferry's in the same repetition: what the stage costs.",
			ferryGitLabel, ToolFerryGit, gitBatchFiles, gitBatchFiles))
	}
	return notes
}
