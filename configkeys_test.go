package main

import (
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"ferry/entry"
	"ferry/internal/testrig"
)

// keyRig is the pair of servers the config-key cases share: vsftpd with
// explicit TLS (every FTPS job reads its password from password_file and
// trusts the rig's CA through tls_ca_file, FERRY_PASSWORD being empty) and
// OpenSSH whose sftp-server logs every file it writes. Each case mirrors to
// its own directory of them, so the cases run side by side and read their
// own uploads out of the shared logs.
type keyRig struct {
	ftp    *testrig.FTPServer
	ssh    *testrig.SSHServer
	pwFile string

	mu    sync.Mutex // the cases run in parallel
	names map[string]bool
}

func newKeyRig(t *testing.T) *keyRig {
	k := &keyRig{
		ftp:   testrig.FTP(t, testrig.FTPOptions{TLS: true}),
		ssh:   testrig.SSH(t, testrig.SSHOptions{SFTPLogLevel: "INFO"}),
		names: map[string]bool{},
	}
	k.pwFile = filepath.Join(t.TempDir(), "password")
	if err := os.WriteFile(k.pwFile, []byte(k.ftp.Password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return k
}

// keyJob is one [[job]] of a case: its source, where it lands on the
// server's disk, and the uploads the server logged for it.
type keyJob struct {
	name   string
	dir    string // the case's directory: config file, state, sources
	src    string
	disk   string
	target string
	creds  string // the job's credential keys
	log    uploadLog
}

// ftps is a job to vsftpd under /name.
func (k *keyRig) ftps(t *testing.T, dir, name string) *keyJob {
	t.Helper()
	k.claim(t, name)
	return &keyJob{name: name, dir: dir, src: filepath.Join(dir, name), disk: filepath.Join(k.ftp.Root, name),
		target: k.ftp.URL("/" + name), creds: fmt.Sprintf("password_file = %q\ntls_ca_file = %q\n", k.pwFile, k.ftp.CAFile),
		log: uploadLog{file: k.ftp.XferLog, re: vsftpdUpload, prefix: "/" + name + "/"}}
}

// sftp is a job to OpenSSH under Root/name.
func (k *keyRig) sftp(t *testing.T, dir, name string) *keyJob {
	t.Helper()
	k.claim(t, name)
	return &keyJob{name: name, dir: dir, src: filepath.Join(dir, name), disk: filepath.Join(k.ssh.Root, name),
		target: k.ssh.URL(name), creds: fmt.Sprintf("identity_file = %q\nknown_hosts = %q\n", k.ssh.IdentityFile, k.ssh.KnownHostsFile),
		log: uploadLog{file: k.ssh.SFTPLog, re: sftpUpload, prefix: k.ssh.Root + "/" + name + "/"}}
}

// claim keeps two cases from mirroring into one remote directory, which
// would mix their uploads in the logs.
func (k *keyRig) claim(t *testing.T, name string) {
	t.Helper()
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.names[name] {
		t.Fatalf("two cases use the remote directory %q", name)
	}
	k.names[name] = true
}

// table is the job's [[job]] table with the keys under test.
func (j *keyJob) table(keys string) string {
	return fmt.Sprintf("\n[[job]]\nname = %q\nsource = %q\ntarget = %q\n%s%s", j.name, j.src, j.target, j.creds, keys)
}

// writeKeysConfig writes dir/ferry.toml: the state in dir, the globals,
// then the tables.
func writeKeysConfig(t *testing.T, dir, globals string, tables ...string) string {
	t.Helper()
	cfg := filepath.Join(dir, "ferry.toml")
	writeFile(t, cfg, fmt.Sprintf("state_dir = %q\ndrain_timeout = \"20s\"\n%s%s", filepath.Join(dir, "state"), globals, strings.Join(tables, "")))
	return cfg
}

// once runs `ferry --once --config` with the job alone and the given keys.
func (j *keyJob) once(t *testing.T, keys string, env ...string) result {
	t.Helper()
	cfg := writeKeysConfig(t, j.dir, "", j.table(keys))
	return ferry(t, append([]string{"FERRY_PASSWORD="}, env...), nil, "--once", "--config", cfg)
}

// uploadLog reads, out of a server's log, the uploads under one directory
// of its tree, by the final name each temporary name stood for.
type uploadLog struct {
	file   string
	re     *regexp.Regexp // one completed upload; group 1 is the server's path
	prefix string
	seen   int
}

// since returns the uploads logged since the last call.
func (u *uploadLog) since(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(u.file)
	if err != nil {
		t.Fatal(err)
	}
	var all []string
	for line := range strings.Lines(string(b)) {
		if !strings.HasSuffix(line, "\n") {
			break // being written: read next time
		}
		m := u.re.FindStringSubmatch(strings.TrimRight(line, "\r\n"))
		if m == nil {
			continue
		}
		rel, ok := strings.CutPrefix(m[1], u.prefix)
		if !ok {
			continue // another case's
		}
		dir, base := path.Split(rel)
		if !entry.IsTemp(base) {
			continue // a read (sftp-server logs every close), not an upload
		}
		final := dir + base[len(entry.TempPrefix)+13:] // .ferry-tmp-<12 hex>-<name>
		if final != testrig.DefaultMarker {
			all = append(all, final)
		}
	}
	out := all[min(u.seen, len(all)):]
	u.seen = len(all)
	return out
}

// sent fails unless the server logged exactly these uploads for the job
// since the last look (each once: an upload logged twice is a file sent
// twice).
func (j *keyJob) sent(t *testing.T, what string, want ...string) {
	t.Helper()
	got := j.log.since(t)
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("%s: the server logged the uploads %q, want %q", what, got, want)
	}
}

// remoteIs fails unless the job's directory on the server's disk holds
// exactly want (ferry's marker aside), byte for byte.
func (j *keyJob) remoteIs(t *testing.T, what string, want map[string]string) {
	t.Helper()
	got := files(t, j.disk)
	delete(got, testrig.DefaultMarker)
	var diffs []string
	for p, b := range want {
		if g, ok := got[p]; !ok {
			diffs = append(diffs, "missing: "+p)
		} else if string(g) != b {
			diffs = append(diffs, fmt.Sprintf("%s holds %q, want %q", p, g, b))
		}
	}
	for p := range got {
		if _, ok := want[p]; !ok {
			diffs = append(diffs, "unexpected: "+p)
		}
	}
	if len(diffs) > 0 {
		slices.Sort(diffs)
		t.Fatalf("%s: the remote %s:\n%s", what, j.disk, strings.Join(diffs, "\n"))
	}
}

// absent fails if the job's remote directory exists: a refused run must
// not even make it.
func (j *keyJob) absent(t *testing.T, what string) {
	t.Helper()
	if _, err := os.Stat(j.disk); !os.IsNotExist(err) {
		t.Fatalf("%s: the run made %s (%v)", what, j.disk, err)
	}
}

func mustOK(t *testing.T, what string, r result) {
	t.Helper()
	if r.code != 0 {
		t.Fatalf("%s: exit %d\n%s%s", what, r.code, r.stdout, r.stderr)
	}
}

// TestConfigKeys runs each job key of config.example.toml that no other
// end-to-end test sets through a config file against a real server, and
// checks what the key did on the server's disk and in its transfer log,
// not only ferry's summary. Keys a --once pass reads run `ferry --once
// --config`; the live-mode keys run the daemon. Every FTPS case also
// proves password_file and tls_ca_file, every SFTP case identity_file and
// known_hosts.
func TestConfigKeys(t *testing.T) {
	k := newKeyRig(t)
	for _, c := range []struct {
		name string
		run  func(*testing.T, *keyRig)
	}{
		{"exclude", keyExclude},
		{"delete_excluded", keyDeleteExcluded},
		{"max_delete", keyMaxDelete},
		{"move", keyMove},
		{"checksum", keyChecksum},
		{"conflict", keyConflict},
		{"links", keyLinks},
		{"check_remote", keyCheckRemote},
		{"known_hosts", keyKnownHosts},
		{"tls_ca_file,password_file", keyTLSPassword},
		{"bwlimit", keyBwLimit},
		{"server_patience,timeout", keyPatienceTimeout},
		{"log_format", keyLogFormat},
		{"watch,scan_interval", keyWatchScan},
		{"settle_delay", keySettleDelay},
		{"max_delay", keyMaxDelay},
		{"protected_live", keyProtectedLive},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			c.run(t, k)
		})
	}
}

// exclude: the excluded files are neither sent nor on the server.
func keyExclude(t *testing.T, k *keyRig) {
	j := k.ftps(t, t.TempDir(), "exclude")
	want := map[string]string{"index.html": "home", "dir/page.html": "page", "dir/app.js": "js"}
	for p, b := range want {
		writeFile(t, filepath.Join(j.src, p), b)
	}
	writeFile(t, filepath.Join(j.src, "debug.log"), "noise")
	writeFile(t, filepath.Join(j.src, "dir", "trace.log"), "noise")
	writeFile(t, filepath.Join(j.src, "cache", "blob"), "cached")
	mustOK(t, "exclude", j.once(t, `exclude = ["*.log", "cache/"]`+"\n"))
	j.sent(t, "exclude", "index.html", "dir/page.html", "dir/app.js")
	j.remoteIs(t, "exclude", want)
	if _, err := os.Stat(filepath.Join(j.disk, "cache")); !os.IsNotExist(err) {
		t.Fatalf("the excluded directory cache/ is on the server (%v)", err)
	}
}

// delete_excluded: with delete, an excluded remote file is left alone,
// and deleted only once delete_excluded is on; without delete the key is
// refused.
func keyDeleteExcluded(t *testing.T, k *keyRig) {
	j := k.sftp(t, t.TempDir(), "delete-excluded")
	writeFile(t, filepath.Join(j.src, "a.txt"), "a")
	writeFile(t, filepath.Join(j.src, "b.txt"), "b")
	writeFile(t, filepath.Join(j.src, "mine.log"), "local log")
	keys := "exclude = [\"*.log\"]\ndelete = true\ncheck_remote = true\n"
	mustOK(t, "first run", j.once(t, keys))
	j.sent(t, "first run", "a.txt", "b.txt")

	// Someone else's files on the server: one the excludes match, one not.
	acct, err := testrig.EnsureAccount()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"theirs.log", "stray.txt"} {
		writeFile(t, filepath.Join(j.disk, p), "theirs")
		if err := acct.Chown(filepath.Join(j.disk, p)); err != nil {
			t.Fatal(err)
		}
	}
	r := j.once(t, "exclude = [\"*.log\"]\ndelete_excluded = true\n")
	if r.code != 2 || !strings.Contains(r.stderr, `job "delete-excluded": delete_excluded: is on but delete is not`) {
		t.Fatalf("delete_excluded without delete: exit %d, stderr %q; want 2 naming the key", r.code, r.stderr)
	}
	mustOK(t, "delete without delete_excluded", j.once(t, keys))
	j.sent(t, "delete without delete_excluded")
	j.remoteIs(t, "delete without delete_excluded", map[string]string{"a.txt": "a", "b.txt": "b", "theirs.log": "theirs"})

	mustOK(t, "delete_excluded", j.once(t, keys+"delete_excluded = true\n"))
	j.sent(t, "delete_excluded")
	j.remoteIs(t, "delete_excluded", map[string]string{"a.txt": "a", "b.txt": "b"})
}

// max_delete: a pass planning more deletions than the key allows (as a
// count or a share) exits 3 and deletes nothing; within it, it deletes.
func keyMaxDelete(t *testing.T, k *keyRig) {
	j := k.ftps(t, t.TempDir(), "max-delete")
	want := map[string]string{}
	for i := range 10 {
		p := fmt.Sprintf("d%d/f%02d.txt", i%2, i)
		want[p] = fmt.Sprintf("file %d", i)
		writeFile(t, filepath.Join(j.src, p), want[p])
	}
	mustOK(t, "first run", j.once(t, "delete = true\nmax_delete = \"2\"\n"))
	j.sent(t, "first run", slices.Collect(maps.Keys(want))...)
	for _, p := range []string{"d0/f00.txt", "d1/f01.txt", "d0/f02.txt"} {
		if err := os.Remove(filepath.Join(j.src, p)); err != nil {
			t.Fatal(err)
		}
	}
	for _, limit := range []string{"2", "20%"} {
		r := j.once(t, fmt.Sprintf("delete = true\nmax_delete = %q\n", limit))
		if r.code != 3 || !strings.Contains(r.stderr, "3 deletions planned") || !strings.Contains(r.stderr, "nothing was deleted") ||
			!strings.Contains(r.stderr, "max_delete in the config") {
			t.Fatalf("3 deletions with max_delete %q: exit %d, stderr %q; want 3 and the refusal", limit, r.code, r.stderr)
		}
		j.remoteIs(t, "max_delete "+limit, want)
	}
	mustOK(t, "max_delete 50%", j.once(t, "delete = true\nmax_delete = \"50%\"\n"))
	j.sent(t, "max_delete 50%")
	sameTree(t, j.src, j.disk)
}

// move: each local file is removed once it is on the server, and only
// then.
func keyMove(t *testing.T, k *keyRig) {
	j := k.sftp(t, t.TempDir(), "move")
	keep := t.TempDir()
	writeTree(t, j.src, 8, 2)
	writeTree(t, keep, 8, 2) // the same seed: the same files
	mustOK(t, "move", j.once(t, "move = true\n"))
	j.sent(t, "move", slices.Collect(maps.Keys(files(t, keep)))...)
	sameTree(t, keep, j.disk)
	if left := files(t, j.src); len(left) != 0 {
		t.Fatalf("move left %d local files after they were verified on the server", len(left))
	}
}

// checksum: a same-size, same-mtime edit is sent again only with it.
func keyChecksum(t *testing.T, k *keyRig) {
	j := k.ftps(t, t.TempDir(), "checksum")
	writeFile(t, filepath.Join(j.src, "a.txt"), "first version")
	writeFile(t, filepath.Join(j.src, "b.txt"), "unchanged")
	mustOK(t, "first run", j.once(t, ""))
	j.sent(t, "first run", "a.txt", "b.txt")
	p := filepath.Join(j.src, "a.txt")
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, p, "other version")
	if err := os.Chtimes(p, fi.ModTime(), fi.ModTime()); err != nil {
		t.Fatal(err)
	}
	mustOK(t, "checksum = false", j.once(t, "checksum = false\n"))
	j.sent(t, "without checksum the edit is not seen, yet")
	mustOK(t, "checksum = true", j.once(t, "checksum = true\n"))
	j.sent(t, "checksum = true", "a.txt")
	j.remoteIs(t, "checksum = true", map[string]string{"a.txt": "other version", "b.txt": "unchanged"})
}

// conflict: a file changed on the server by someone else since ferry
// wrote it is kept aside, overwritten or left alone, per the key.
func keyConflict(t *testing.T, k *keyRig) {
	const theirs, ours = "edited on the server by someone else", "our new local version"
	for _, policy := range []string{"keep-both", "overwrite", "skip"} {
		j := k.sftp(t, t.TempDir(), "conflict-"+policy)
		writeFile(t, filepath.Join(j.src, "page.html"), "first version")
		writeFile(t, filepath.Join(j.src, "other.html"), "other")
		keys := fmt.Sprintf("conflict = %q\n", policy)
		mustOK(t, policy+": first run", j.once(t, keys))
		j.sent(t, policy+": first run", "page.html", "other.html")
		if err := os.WriteFile(filepath.Join(j.disk, "page.html"), []byte(theirs), 0o644); err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(j.src, "page.html"), ours)
		r := j.once(t, keys)
		copies, _ := filepath.Glob(filepath.Join(j.disk, "page.ferry-conflict-*.html"))
		switch policy {
		case "keep-both":
			mustOK(t, policy, r)
			j.sent(t, policy, "page.html")
			if len(copies) != 1 {
				t.Fatalf("keep-both: conflict copies %q, want 1", copies)
			}
			j.remoteIs(t, policy, map[string]string{"page.html": ours, "other.html": "other", strings.TrimPrefix(copies[0], j.disk+"/"): theirs})
		case "overwrite":
			mustOK(t, policy, r)
			j.sent(t, policy, "page.html")
			j.remoteIs(t, policy, map[string]string{"page.html": ours, "other.html": "other"})
		case "skip":
			if r.code != 1 || !strings.Contains(r.stdout, "failed: page.html") {
				t.Fatalf("skip: exit %d, stdout %q; want 1 listing page.html", r.code, r.stdout)
			}
			j.sent(t, policy)
			j.remoteIs(t, policy, map[string]string{"page.html": theirs, "other.html": "other"})
		}
		if !strings.Contains(r.stdout, "1 conflicts") {
			t.Errorf("%s: the summary does not count the conflict:\n%s", policy, r.stdout)
		}
	}
}

// links: skipped by default; "follow" sends what a link points to, and a
// link back up the tree is not followed round.
func keyLinks(t *testing.T, k *keyRig) {
	j := k.ftps(t, t.TempDir(), "links")
	writeFile(t, filepath.Join(j.src, "real.txt"), "the target")
	writeFile(t, filepath.Join(j.src, "sub", "inner.txt"), "inner")
	if err := os.Symlink("real.txt", filepath.Join(j.src, "alias.txt")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("..", filepath.Join(j.src, "sub", "up")); err != nil {
		t.Fatal(err)
	}
	r := j.once(t, "")
	mustOK(t, "links skipped by default", r)
	if !strings.Contains(r.stdout, "skipped 2 symbolic links") {
		t.Errorf("the default run does not count the 2 links it skipped:\n%s", r.stdout)
	}
	j.sent(t, "links skipped by default", "real.txt", "sub/inner.txt")
	j.remoteIs(t, "links skipped by default", map[string]string{"real.txt": "the target", "sub/inner.txt": "inner"})

	mustOK(t, `links = "follow"`, j.once(t, "links = \"follow\"\n"))
	j.sent(t, `links = "follow"`, "alias.txt")
	j.remoteIs(t, `links = "follow"`, map[string]string{"real.txt": "the target", "sub/inner.txt": "inner", "alias.txt": "the target"})
}

// check_remote: a file removed on the server behind ferry's back is
// restored by a pass with the key, not by one without it (the marker is
// still there, so the registry is trusted).
func keyCheckRemote(t *testing.T, k *keyRig) {
	j := k.sftp(t, t.TempDir(), "check-remote")
	writeTree(t, j.src, 6, 2)
	mustOK(t, "first run", j.once(t, ""))
	j.sent(t, "first run", slices.Collect(maps.Keys(files(t, j.src)))...)
	if err := os.Remove(filepath.Join(j.disk, "dir00", "file00000.dat")); err != nil {
		t.Fatal(err)
	}
	mustOK(t, "check_remote = false", j.once(t, "check_remote = false\n"))
	j.sent(t, "check_remote = false")
	if _, err := os.Stat(filepath.Join(j.disk, "dir00", "file00000.dat")); !os.IsNotExist(err) {
		t.Fatalf("a pass without check_remote restored the file (%v): the case proves nothing", err)
	}
	mustOK(t, "check_remote = true", j.once(t, "check_remote = true\n"))
	j.sent(t, "check_remote = true", "dir00/file00000.dat")
	sameTree(t, j.src, j.disk)
}

// known_hosts: a changed key, an unknown one and the default file (absent
// from $HOME) are refused with exit 2 and nothing sent; the right file,
// named relative to the config file, lets the run through.
func keyKnownHosts(t *testing.T, k *keyRig) {
	dir := t.TempDir()
	j := k.sftp(t, dir, "known-hosts")
	writeFile(t, filepath.Join(j.src, "a.txt"), "a")
	wrong, err := k.ssh.WrongKnownHosts(dir)
	if err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty_known_hosts")
	writeFile(t, empty, "")
	home := t.TempDir()
	withKey := fmt.Sprintf("identity_file = %q\n", k.ssh.IdentityFile)
	for _, tc := range []struct {
		name, keys string
		env        []string
		want       string
	}{
		{"changed key", fmt.Sprintf("known_hosts = %q\n", wrong), nil, "HOST KEY CHANGED"},
		{"unknown key", fmt.Sprintf("known_hosts = %q\n", empty), nil, "unknown host key"},
		{"default file", "", []string{"HOME=" + home}, filepath.Join(home, ".ssh", "known_hosts") + " does not exist"},
	} {
		j.creds = withKey
		r := j.once(t, tc.keys, tc.env...)
		if r.code != 2 || !strings.Contains(r.stderr, tc.want) {
			t.Fatalf("%s: exit %d, stderr %q; want 2 and %q", tc.name, r.code, r.stderr, tc.want)
		}
		j.absent(t, tc.name)
		j.sent(t, tc.name)
	}
	good, err := os.ReadFile(k.ssh.KnownHostsFile)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "hosts"), string(good))
	mustOK(t, "the right known_hosts", j.once(t, "known_hosts = \"hosts\"\n"))
	j.sent(t, "the right known_hosts", "a.txt")
	j.remoteIs(t, "the right known_hosts", map[string]string{"a.txt": "a"})
}

// tls_ca_file and password_file: without the CA the server's certificate
// is refused, with a wrong or missing password file the login fails; both
// exit 2 having made nothing. Both files named relative to the config
// file let the run through.
func keyTLSPassword(t *testing.T, k *keyRig) {
	dir := t.TempDir()
	j := k.ftps(t, dir, "tls-password")
	writeFile(t, filepath.Join(j.src, "a.txt"), "a")
	ca, err := os.ReadFile(k.ftp.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "ca.pem"), string(ca))
	bad := filepath.Join(dir, "bad-password")
	writeFile(t, bad, "not-the-password\n")
	os.Chmod(bad, 0o600)
	if err := os.WriteFile(filepath.Join(dir, "password"), []byte(k.ftp.Password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, creds, want string }{
		{"no tls_ca_file", "password_file = \"password\"\n", "certificate"},
		{"wrong password_file", "password_file = \"bad-password\"\ntls_ca_file = \"ca.pem\"\n", "Login incorrect"},
		{"missing password_file", "password_file = \"nope\"\ntls_ca_file = \"ca.pem\"\n", "password_file " + filepath.Join(dir, "nope")},
	} {
		j.creds = tc.creds
		r := j.once(t, "")
		if r.code != 2 || !strings.Contains(r.stderr, tc.want) {
			t.Fatalf("%s: exit %d, stderr %q; want 2 and %q", tc.name, r.code, r.stderr, tc.want)
		}
		j.absent(t, tc.name)
		j.sent(t, tc.name)
	}
	j.creds = "password_file = \"password\"\ntls_ca_file = \"ca.pem\"\n"
	mustOK(t, "relative tls_ca_file and password_file", j.once(t, ""))
	j.sent(t, "relative tls_ca_file and password_file", "a.txt")
	j.remoteIs(t, "relative tls_ca_file and password_file", map[string]string{"a.txt": "a"})
}

// bwlimit: 1 MiB reaches the server at about 256 KiB/s, by the server's
// own measure; a value that is not a rate is refused.
func keyBwLimit(t *testing.T, k *keyRig) {
	j := k.ftps(t, t.TempDir(), "bwlimit")
	body := make([]byte, 1<<20)
	rng := rand.New(rand.NewPCG(7, 7))
	for i := range body {
		body[i] = byte(rng.IntN(256))
	}
	writeFile(t, filepath.Join(j.src, "big.bin"), string(body))
	r := j.once(t, "bwlimit = \"fast\"\n")
	if r.code != 2 || !strings.Contains(r.stderr, `job "bwlimit": bwlimit: bwlimit "fast"`) {
		t.Fatalf("bwlimit = \"fast\": exit %d, stderr %q; want 2 naming the key", r.code, r.stderr)
	}
	j.absent(t, "a bad bwlimit")
	mustOK(t, "bwlimit 256K", j.once(t, "bwlimit = \"256K\"\n"))
	j.sent(t, "bwlimit 256K", "big.bin")
	j.remoteIs(t, "bwlimit 256K", map[string]string{"big.bin": string(body)})
	// The server's own measure of the upload: 1 MiB in no less than 3 s
	// is at most 342 KiB/s; unlimited, loopback is many times that.
	b, err := os.ReadFile(k.ftp.XferLog)
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`OK UPLOAD: Client "[^"]+", "/bwlimit/[^"]*big\.bin", 1048576 bytes, ([0-9.]+)Kbyte/sec`).FindSubmatch(b)
	if m == nil {
		t.Fatalf("vsftpd logged no upload of big.bin with its rate")
	}
	rate, err := strconv.ParseFloat(string(m[1]), 64)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("bwlimit 256K: vsftpd received big.bin at %.1f KiB/s", rate)
	if rate > 400 {
		t.Fatalf("bwlimit 256K: vsftpd received 1 MiB at %.1f KiB/s", rate)
	}
}

// server_patience and timeout, on a vsftpd of the case's own (it is
// stopped under the runs): a pass whose server stops answering mid-run
// gives up after server_patience (the default would be a minute with a
// 1 s timeout), and a pass that finds it stopped gives up after timeout
// (the default would wait 30 s per call). Both exit 2 and leave nothing
// half-written; the next pass, once the server is back, completes.
func keyPatienceTimeout(t *testing.T, _ *keyRig) {
	srv := testrig.FTP(t, testrig.FTPOptions{})
	dir := t.TempDir()
	pw := filepath.Join(dir, "password")
	if err := os.WriteFile(pw, []byte(srv.Password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	j := &keyJob{name: "patience", dir: dir, src: filepath.Join(dir, "src"), disk: filepath.Join(srv.Root, "patience"),
		target: srv.URL("/patience"), creds: fmt.Sprintf("password_file = %q\n", pw),
		log: uploadLog{file: srv.XferLog, re: vsftpdUpload, prefix: "/patience/"}}
	// A first pass lists the empty remote and writes the marker: the
	// stop below lands in uploads, which the patience judges.
	writeFile(t, filepath.Join(j.src, "first.txt"), "first")
	mustOK(t, "first pass", j.once(t, ""))
	writeTree(t, j.src, 200, 4)

	cfg := writeKeysConfig(t, dir, "", j.table("timeout = \"1s\"\nserver_patience = \"3s\"\nbwlimit = \"64K\"\n"))
	run := startFerry(t, []string{"FERRY_PASSWORD="}, "--once", "--config", cfg)
	out, errb, done := &run.out, &run.errb, run.done
	waitFiles(t, j.disk, 5, 60*time.Second, done)
	frozen, err := srv.Freeze()
	if err != nil {
		t.Fatal(err)
	}
	defer frozen.Thaw()
	stopped := time.Now()
	var code int
	select {
	case err := <-done:
		code = exitCode(err)
	case <-time.After(50 * time.Second):
		t.Fatalf("ferry still running 50 s after the server stopped (server_patience 3s; the default is 1m):\n%s", errb.String())
	}
	took := time.Since(stopped)
	t.Logf("server_patience 3s: gave up %v after the server stopped", took.Round(100*time.Millisecond))
	if code != 2 || !strings.Contains(errb.String(), "server "+srv.Addr()+" ") || !strings.Contains(errb.String(), "silent") {
		t.Fatalf("server_patience: exit %d; want 2 naming the silent server\n%s%s", code, out.String(), errb.String())
	}
	sameAsSource(t, j.src, j.disk)

	// Stopped before the pass: the first call waits out the timeout.
	began := time.Now()
	r := j.once(t, "timeout = \"1s\"\n")
	took = time.Since(began)
	t.Logf("timeout 1s: a stopped server was given up on after %v", took.Round(100*time.Millisecond))
	if r.code != 2 || !strings.Contains(r.stderr, srv.Addr()) {
		t.Fatalf("timeout 1s on a stopped server: exit %d, stderr %q; want 2 naming the server", r.code, r.stderr)
	}
	if took > 25*time.Second {
		t.Fatalf("timeout 1s: gave up after %v (the 30 s default?)", took)
	}
	// Back up by a restart, not a thaw: thawed vsftpd sessions can hang
	// on the lock of vsftpd's own log, and every new session behind them.
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	r = j.once(t, "")
	mustOK(t, "after the server came back", r)
	sameTree(t, j.src, j.disk)
	noTemps(t, j.disk)
}

// log_format = "json": every line the daemon writes is a JSON object,
// warnings included (this job's password file is readable by others,
// which ferry warns about).
func keyLogFormat(t *testing.T, k *keyRig) {
	dir := t.TempDir()
	j := k.ftps(t, dir, "log-format")
	lax := filepath.Join(dir, "password")
	writeFile(t, lax, k.ftp.Password+"\n")
	os.Chmod(lax, 0o644)
	j.creds = fmt.Sprintf("password_file = %q\ntls_ca_file = %q\n", lax, k.ftp.CAFile)
	writeFile(t, filepath.Join(j.src, "a.txt"), "a")
	cfg := writeKeysConfig(t, dir, "log_format = \"json\"\n", j.table(""))
	d := spawnDaemon(t, cfg, []string{"FERRY_PASSWORD="})
	d.waitLog(t, `"msg":"scan done"`, 120*time.Second)
	writeFile(t, filepath.Join(j.src, "live.txt"), "live")
	arrival(t, j.disk, "live.txt", []byte("live"), 30*time.Second)
	if code := d.stop(t, 30*time.Second); code != 0 {
		t.Fatalf("SIGTERM: exit %d", code)
	}
	j.sent(t, "log_format json", "a.txt", "live.txt")
	var scanned bool
	for line := range strings.Lines(d.log.String()) {
		var rec struct{ Time, Level, Msg, Job string }
		if err := json.Unmarshal([]byte(line), &rec); err != nil || rec.Time == "" || rec.Level == "" || rec.Msg == "" {
			t.Errorf("log_format = \"json\": a line is not a JSON log record (%v): %q", err, line)
			continue
		}
		scanned = scanned || rec.Msg == "scan done" && rec.Job == j.name
	}
	if !scanned {
		t.Errorf("no \"scan done\" record naming the job in the JSON log")
	}
}

// watch = false: the daemon does not ship a new file by itself when
// scan_interval is 0s (at start only), but a `ferry sync` scan does; with
// scan_interval = "1s" the periodic scan ships it.
func keyWatchScan(t *testing.T, k *keyRig) {
	dir := t.TempDir()
	still, periodic := k.sftp(t, dir, "watch-still"), k.sftp(t, dir, "watch-periodic")
	for _, j := range []*keyJob{still, periodic} {
		writeFile(t, filepath.Join(j.src, "seed.txt"), "seed")
	}
	cfg := writeKeysConfig(t, dir, "",
		still.table("watch = false\nscan_interval = \"0s\"\n"),
		periodic.table("watch = false\nscan_interval = \"1s\"\n"))
	d := launchDaemon(t, cfg, nil)
	for _, j := range []*keyJob{still, periodic} {
		d.waitLog(t, `msg="scan done" job=`+j.name+" ", 120*time.Second)
		arrival(t, j.disk, "seed.txt", []byte("seed"), 30*time.Second)
		j.sent(t, j.name+": the first scan", "seed.txt")
	}
	scans := d.logCount(`msg="scan done" job=watch-periodic `)
	for _, j := range []*keyJob{still, periodic} {
		writeFile(t, filepath.Join(j.src, "new.txt"), "new")
	}
	wrote := time.Now()
	// The periodic scan ships it (and logs once the pass is over).
	arrival(t, periodic.disk, "new.txt", []byte("new"), 30*time.Second)
	d.waitLogN(t, `msg="scan done" job=watch-periodic `, scans+1, 30*time.Second)
	periodic.sent(t, "scan_interval 1s", "new.txt")
	// Meanwhile (a second at least: twenty settle delays) the job that
	// neither watches nor scans again left it alone.
	time.Sleep(time.Until(wrote.Add(time.Second)))
	if _, err := os.Stat(filepath.Join(still.disk, "new.txt")); !os.IsNotExist(err) {
		t.Fatalf("watch = false, scan_interval 0s: new.txt was shipped without a scan (%v)", err)
	}
	still.sent(t, "watch = false before a scan")
	if n := d.logCount(`msg="scan done" job=watch-still `); n != 1 {
		t.Errorf("scan_interval 0s: %d scans logged, want the one at start", n)
	}
	if r := ferry(t, nil, nil, "sync", "--config", cfg, "--job", still.name); r.code != 0 {
		t.Fatalf("sync: exit %d: %s", r.code, r.stderr)
	}
	arrival(t, still.disk, "new.txt", []byte("new"), 30*time.Second)
	still.sent(t, "watch = false, after sync", "new.txt")
	if code := d.stop(t, 30*time.Second); code != 0 {
		t.Fatalf("SIGTERM: exit %d", code)
	}
}

// settle_delay: saves 150 ms apart (three times the default delay) are one
// upload of the last version when the delay is 1.5 s, shipped no sooner
// than that after the last save.
func keySettleDelay(t *testing.T, k *keyRig) {
	dir := t.TempDir()
	j := k.ftps(t, dir, "settle-delay")
	writeFile(t, filepath.Join(j.src, "seed.txt"), "seed")
	d := startDaemon(t, writeKeysConfig(t, dir, "", j.table("settle_delay = \"1500ms\"\nmax_delay = \"20s\"\n")), []string{"FERRY_PASSWORD="})
	arrival(t, j.disk, "seed.txt", []byte("seed"), 30*time.Second)
	j.sent(t, "the first scan", "seed.txt")
	hot := filepath.Join(j.src, "hot.txt")
	var last string
	for i := range 6 {
		if i > 0 {
			time.Sleep(150 * time.Millisecond)
		}
		last = fmt.Sprintf("save %d\n", i)
		if err := os.WriteFile(hot, []byte(last), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	lastSave := time.Now()
	arrival(t, j.disk, "hot.txt", []byte(last), 30*time.Second)
	quiet := time.Since(lastSave)
	t.Logf("settle_delay 1.5s: hot.txt arrived %v after its last save", quiet.Round(10*time.Millisecond))
	if quiet < 1400*time.Millisecond {
		t.Errorf("hot.txt arrived %v after its last save, before settle_delay (1.5 s)", quiet)
	}
	// Anything else shipped for hot.txt would be logged by now: a later
	// save has arrived after it.
	writeFile(t, filepath.Join(j.src, "after.txt"), "after")
	arrival(t, j.disk, "after.txt", []byte("after"), 30*time.Second)
	j.sent(t, "six saves 150 ms apart under settle_delay 1.5s", "hot.txt", "after.txt")
	if code := d.stop(t, 30*time.Second); code != 0 {
		t.Fatalf("SIGTERM: exit %d", code)
	}
}

// max_delay: a file saved every 100 ms never settles (settle_delay 1s),
// yet it is shipped while the saves go on, about max_delay (2 s) after
// the first.
func keyMaxDelay(t *testing.T, k *keyRig) {
	dir := t.TempDir()
	j := k.sftp(t, dir, "max-delay")
	writeFile(t, filepath.Join(j.src, "seed.txt"), "seed")
	d := startDaemon(t, writeKeysConfig(t, dir, "", j.table("settle_delay = \"1s\"\nmax_delay = \"2s\"\n")), nil)
	arrival(t, j.disk, "seed.txt", []byte("seed"), 30*time.Second)
	j.sent(t, "the first scan", "seed.txt")
	// Each version is whole: written aside, then renamed in.
	aside := t.TempDir()
	save := func(i int) {
		tmp := filepath.Join(aside, "hot.txt")
		writeFile(t, tmp, fmt.Sprintf("version %d\n", i))
		if err := os.Rename(tmp, filepath.Join(j.src, "hot.txt")); err != nil {
			t.Fatal(err)
		}
	}
	version := regexp.MustCompile(`^version \d+\n$`)
	began := time.Now()
	var got []byte
	for i := 0; ; i++ {
		save(i)
		if b, err := os.ReadFile(filepath.Join(j.disk, "hot.txt")); err == nil {
			got = b
			break
		}
		if time.Since(began) > 30*time.Second {
			t.Fatalf("a file saved every 100 ms for 30 s never reached the server (max_delay 2s)")
		}
		time.Sleep(100 * time.Millisecond)
	}
	took := time.Since(began)
	t.Logf("max_delay 2s: a file saved every 100 ms arrived %v after its first save", took.Round(10*time.Millisecond))
	if !version.Match(got) {
		t.Fatalf("hot.txt on the server holds %q, not one whole version", got)
	}
	if took < 1500*time.Millisecond {
		t.Errorf("hot.txt arrived %v after its first save, before max_delay (2 s): did it settle?", took)
	}
	if code := d.stop(t, 30*time.Second); code != 0 {
		t.Fatalf("SIGTERM: exit %d", code)
	}
}

// protected_live: inside protected hours a live save goes through when it
// is true and waits when it is false, until the hours are lifted (a
// reload).
func keyProtectedLive(t *testing.T, k *keyRig) {
	dir := t.TempDir()
	open, shut := k.sftp(t, dir, "protected-open"), k.sftp(t, dir, "protected-shut")
	for _, j := range []*keyJob{open, shut} {
		if err := os.MkdirAll(j.src, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	const hours = "protected_hours = [\"00:00-24:00\"]\n"
	cfg := writeKeysConfig(t, dir, "", open.table(hours+"protected_live = true\n"), shut.table(hours+"protected_live = false\n"))
	d := launchDaemon(t, cfg, nil)
	d.waitLog(t, `msg="protected hours: bulk work paused" job=protected-open live_allowed=true`, 30*time.Second)
	d.waitLog(t, `msg="protected hours: bulk work paused" job=protected-shut live_allowed=false`, 30*time.Second)
	for _, j := range []*keyJob{open, shut} {
		writeFile(t, filepath.Join(j.src, "live.txt"), "saved")
	}
	arrival(t, open.disk, "live.txt", []byte("saved"), 30*time.Second)
	open.sent(t, "protected_live = true", "live.txt")
	time.Sleep(300 * time.Millisecond) // six settle delays more for the other job
	if _, err := os.Stat(filepath.Join(shut.disk, "live.txt")); !os.IsNotExist(err) {
		t.Fatalf("protected_live = false: a live save was shipped inside protected hours (%v)", err)
	}
	shut.sent(t, "protected_live = false, inside the hours")
	writeKeysConfig(t, dir, "", open.table(hours+"protected_live = true\n"), shut.table("protected_live = false\n"))
	d.cmd.Process.Signal(syscall.SIGHUP)
	d.waitLog(t, `msg="protected hours over: bulk work resumes" job=protected-shut`, 10*time.Second)
	arrival(t, shut.disk, "live.txt", []byte("saved"), 30*time.Second)
	shut.sent(t, "protected_live = false, the hours lifted", "live.txt")
	if code := d.stop(t, 30*time.Second); code != 0 {
		t.Fatalf("SIGTERM: exit %d", code)
	}
}
