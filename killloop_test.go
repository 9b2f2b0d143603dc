package main

import (
	"bufio"
	"bytes"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"ferry/entry"
	"ferry/internal/testrig"
)

// killTarget is a real server the kill loop mirrors to, with the log in
// which it records every file it received.
type killTarget struct {
	name   string
	args   []string // the target and its credentials, as flags
	target string   // the same for a config file: the target's URL
	keys   string   // and the job's credential keys
	env    []string
	disk   string // the mirror's directory on this machine's disk
	log    string
	upload *regexp.Regexp // one completed upload; group 1 is the server's path
	prefix string         // the mirror's root in those paths
	idle   func(time.Duration) error

	tail    *bufio.Reader // the log, read as it grows
	partial string        // the start of a line not yet complete
}

// vsftpd logs `OK UPLOAD: Client "127.0.0.1", "/mirror/d/.ferry-tmp-…-f", N bytes` per STOR.
var vsftpdUpload = regexp.MustCompile(`\] OK UPLOAD: Client "[^"]+", "([^"]+)", \d+ bytes`)

// sftp-server logs `close "/root/mirror/d/.ferry-tmp-…-f" bytes read 0 written N`
// when a file it wrote is closed; at the end of a session it logs the
// handles still open as "forced close", which are cut-off uploads.
var sftpUpload = regexp.MustCompile(`^close "([^"]+)" bytes read \d+ written \d+$`)

func killTargets(t *testing.T) []killTarget {
	ftp := testrig.FTP(t, testrig.FTPOptions{})
	ssh := testrig.SSH(t, testrig.SSHOptions{SFTPLogLevel: "INFO"})
	return []killTarget{
		{name: "vsftpd", args: []string{ftp.URL("/mirror")}, target: ftp.URL("/mirror"), env: []string{"FERRY_PASSWORD=" + ftp.Password},
			disk: filepath.Join(ftp.Root, "mirror"), log: ftp.XferLog, upload: vsftpdUpload, prefix: "/mirror/", idle: ftp.WaitSessionsGone},
		{name: "openssh", args: []string{"--identity-file", ssh.IdentityFile, "--known-hosts", ssh.KnownHostsFile, ssh.URL("mirror")},
			target: ssh.URL("mirror"), keys: fmt.Sprintf("identity_file = %q\nknown_hosts = %q\n", ssh.IdentityFile, ssh.KnownHostsFile),
			disk: filepath.Join(ssh.Root, "mirror"), log: ssh.SFTPLog, upload: sftpUpload, prefix: ssh.Root + "/mirror/", idle: ssh.WaitSessionsGone},
	}
}

// next returns the final paths (relative to the mirror root) of the
// uploads the server logged since the last call. ferry always writes to a
// temporary name in the file's directory, so each logged path is mapped
// back to the name it was renamed to (or would have been, had the run
// lived).
func (k *killTarget) next(t *testing.T) []string {
	t.Helper()
	if k.tail == nil {
		f, err := os.Open(k.log)
		if os.IsNotExist(err) {
			return nil // nothing logged yet
		}
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		k.tail = bufio.NewReader(f)
	}
	var out []string
	for {
		chunk, err := k.tail.ReadString('\n')
		k.partial += chunk
		if err == io.EOF {
			return out // a line being written is read next time
		}
		if err != nil {
			t.Fatal(err)
		}
		line := strings.TrimRight(k.partial, "\r\n") // sftp-server ends its lines with CRLF
		k.partial = ""
		m := k.upload.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		rel, ok := strings.CutPrefix(m[1], k.prefix)
		if !ok {
			t.Fatalf("%s logged an upload outside the mirror: %s", k.name, line)
		}
		dir, base := path.Split(rel)
		if !entry.IsTemp(base) {
			t.Fatalf("%s logged an upload to a final name, not a temporary one: %s", k.name, line)
		}
		// .ferry-tmp-<12 hex>-<final name>
		final := dir + base[len(entry.TempPrefix)+13:]
		if final == testrig.DefaultMarker {
			continue // ferry's marker, written at the end of a run: not a mirrored file
		}
		out = append(out, final)
	}
}

// complete returns the source files that the remote holds, under their
// final names, byte for byte.
func complete(t *testing.T, src, disk string) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		got, err := os.ReadFile(filepath.Join(disk, rel))
		if os.IsNotExist(err) {
			return nil
		}
		if err != nil {
			return err
		}
		want, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if bytes.Equal(got, want) {
			out[filepath.ToSlash(rel)] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// uploadLine is vsftpd's log of one completed STOR.
var uploadLine = regexp.MustCompile(`OK UPLOAD: Client "[^"]+", "([^"]+)"`)

// uploadsSince returns the final paths (relative to the mirror root) of the
// uploads logged after line skip, and the new line count.
func uploadsSince(t *testing.T, log string, skip int) ([]string, int) {
	t.Helper()
	b, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	lines := 0
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		lines++
		if lines <= skip {
			continue
		}
		m := uploadLine.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		dir, base := path.Split(strings.TrimPrefix(m[1], "/mirror/"))
		if entry.IsTemp(base) {
			// .ferry-tmp-<12 hex>-<final name>
			base = base[len(entry.TempPrefix)+13:]
		}
		out = append(out, dir+base)
	}
	return out, lines
}

// verified reads the registry: the paths recorded as done.
func verified(t *testing.T, state string) map[string]bool {
	t.Helper()
	out, err := readVerified(state)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// readVerified reads the done paths; it may race a running ferry (which is
// creating the schema, say), so callers that poll retry on error.
func readVerified(state string) (map[string]bool, error) {
	out := map[string]bool{}
	if _, err := os.Stat(filepath.Join(state, "ferry.db")); os.IsNotExist(err) {
		return out, nil // killed before the registry was created
	}
	db, err := sql.Open("sqlite", "file:"+filepath.Join(state, "ferry.db")+"?mode=ro&_pragma=busy_timeout(5000)")
	if err != nil {
		return nil, err
	}
	defer db.Close()
	rows, err := db.Query(`SELECT dir, name FROM entry WHERE state = 3 AND is_dir = 0`)
	if err != nil {
		if strings.Contains(err.Error(), "no such table") {
			return out, nil
		}
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var dir, name string
		if err := rows.Scan(&dir, &name); err != nil {
			return nil, err
		}
		out[path.Join(dir, name)] = true
	}
	return out, rows.Err()
}

// TestKillLoop kills `ferry --once` with SIGKILL 20 times per server in a
// mirror of 1,500 files (3,000 without the race detector), on vsftpd and
// on OpenSSH, then lets a last run finish. Most kills land once the run has uploaded a random number of
// files (read from the server's log, so a loaded machine moves the kill,
// not what it hits), some at a random moment of the start-up and the scan.
// It counts what the server received, from the server's own log:
//   - a file the remote held complete under its final name when a run
//     began is never uploaded again: a killed run loses at most the files
//     in flight (the next run's stat, or its listing, adopts the rest, even
//     those the registry had not recorded yet);
//   - every file of the source was uploaded at least once, and the last
//     run logged as many uploads as it reports, so the log's parser sees
//     what the server saw;
//   - the last run's outcomes (transferred, adopted, unchanged, touched)
//     add up to the number of files: no path is settled twice;
//   - after each kill, every file the registry calls done is complete on
//     the remote, and at the end the remote equals the source, with no
//     temporary file left.
func TestKillLoop(t *testing.T) {
	files, kills := 1500, 20
	if !raceEnabled {
		files = 3000 // ferry is several times faster: a larger tree, same time
	}
	src := t.TempDir()
	writeTree(t, src, files, 30)
	for _, k := range killTargets(t) {
		t.Run(k.name, func(t *testing.T) { killLoop(t, &k, src, files, kills) })
	}
}

func killLoop(t *testing.T, k *killTarget, src string, files, kills int) {
	state := t.TempDir()
	args := append([]string{"--once", "--json", "--state", state, "--workers", "4", src}, k.args...)
	env := append([]string{"FERRY_TEST_MAIN=1", "SSH_AUTH_SOCK="}, k.env...)
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 9))

	seen := map[string]bool{} // every path the server logged an upload for
	var resent, lost, midUpload int
	// account counts the uploads of files that were complete on the
	// remote when the run began.
	account := func(run string, ups []string, was map[string]bool) {
		t.Helper()
		for _, p := range ups {
			seen[p] = true
			if was[p] {
				resent++
				t.Errorf("%s: %s was complete on the remote when the run began and was uploaded again", run, p)
			}
		}
	}
	for i := 0; i < kills; i++ {
		was := complete(t, src, k.disk)
		cmd := exec.Command(os.Args[0], args...)
		cmd.Env = append(os.Environ(), env...)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		// One kill in four at a random moment of the first 400 ms (the
		// start-up, the recovery, the scan); the others once the run has
		// uploaded n files, n up to the share of one kill, plus up to
		// 20 ms so that the kill falls anywhere in a file's commands.
		var startup <-chan time.Time
		n := 1 + rng.IntN(files/kills)
		if i%4 == 0 {
			startup = time.After(time.Duration(rng.IntN(400)) * time.Millisecond)
			n = files + 1
		}
		tick := time.NewTicker(5 * time.Millisecond)
		deadline := time.After(2 * time.Minute)
		var ups []string
		what := ""
	wait:
		for {
			select {
			case err := <-done:
				what = fmt.Sprintf("finished before the kill (%v)", err)
				break wait
			case <-startup:
				what = "killed in the start-up"
			case <-tick.C:
				if ups = append(ups, k.next(t)...); len(ups) < n {
					continue
				}
				time.Sleep(time.Duration(rng.IntN(20)) * time.Millisecond)
				what = fmt.Sprintf("killed after %d uploads", len(ups))
				midUpload++
			case <-deadline:
				t.Fatalf("kill %d: fewer than %d uploads after 2 minutes:\n%s", i, n, out.String())
			}
			cmd.Process.Signal(syscall.SIGKILL)
			<-done
			break
		}
		tick.Stop()
		// A killed client's sessions log what they got as they notice the
		// closed connections: wait for them before reading the rest.
		if err := k.idle(30 * time.Second); err != nil {
			t.Fatal(err)
		}
		ups = append(ups, k.next(t)...)
		account(fmt.Sprintf("kill %d", i), ups, was)
		now := complete(t, src, k.disk)
		for p := range verified(t, state) {
			if !now[p] {
				t.Errorf("kill %d: the registry says %s is done, the remote does not hold it", i, p)
			}
		}
		lost += len(ups) - (len(now) - len(was)) // sent, not complete under the final name
		t.Logf("kill %d %s: %d uploads logged, complete on the remote %d → %d", i, what, len(ups), len(was), len(now))
	}

	was := complete(t, src, k.disk)
	r := ferry(t, k.env, nil, args...)
	if r.code != 0 {
		t.Fatalf("final run: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if err := k.idle(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	ups := k.next(t)
	account("final run", ups, was)
	var sum struct{ Transferred, Adopted, Unchanged, Touched, Failed int64 }
	if err := json.Unmarshal([]byte(r.stdout), &sum); err != nil {
		t.Fatalf("final run's summary: %v\n%s", err, r.stdout)
	}
	t.Logf("%s: %d kills, %d of them mid-upload; final run: %+v, %d uploads logged", k.name, kills, midUpload, sum, len(ups))
	t.Logf("%s: complete files uploaded again: %d; uploads cut off by a kill (sent again): %d", k.name, resent, lost)

	if outcomes := sum.Transferred + sum.Adopted + sum.Unchanged + sum.Touched; outcomes != int64(files) {
		t.Errorf("final run settled %d outcomes for %d files: some paths were handled twice (or not at all)", outcomes, files)
	}
	if int64(len(ups)) != sum.Transferred {
		t.Errorf("the server logged %d uploads in the final run, ferry reports %d transferred: the log's parser misses uploads", len(ups), sum.Transferred)
	}
	if len(seen) != files {
		t.Errorf("the server's log names %d distinct files uploaded over all runs, the source has %d: the log's parser misses uploads", len(seen), files)
	}

	// The remote equals the source, byte for byte, and holds nothing else.
	if got := complete(t, src, k.disk); len(got) != files {
		t.Errorf("the remote holds %d of the %d files byte for byte", len(got), files)
	}
	extra := 0
	err := filepath.WalkDir(k.disk, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || p == filepath.Join(k.disk, testrig.DefaultMarker) {
			return err // the marker is ferry's bookkeeping, not a mirrored file
		}
		if entry.IsTemp(d.Name()) {
			t.Errorf("temporary file left: %s", p)
		}
		extra++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if extra != files {
		t.Errorf("the remote holds %d files, the source %d", extra, files)
	}
	if midUpload < kills/2 {
		t.Fatalf("only %d of %d kills landed in the uploads: the loop did not test crashes", midUpload, kills)
	}
}
