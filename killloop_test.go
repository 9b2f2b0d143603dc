package main

import (
	"bufio"
	"bytes"
	"database/sql"
	"fmt"
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

	"ferry/internal/testrig"
	"ferry/remote"
)

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
		if remote.IsTemp(base) {
			// .ferry-tmp-<12 hex>-<final name>
			base = base[len(remote.TempPrefix)+13:]
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

// TestKillLoop kills ferry with SIGKILL at random moments of a mirror of
// 3,000 files (12,000 without the race detector) to vsftpd (20 to 1,220 ms in), 20 times, then lets a last run finish. The remote
// must then equal the source byte for byte with no temporary file left, and
// no file that the registry had verified may ever have been sent again.
func TestKillLoop(t *testing.T) {
	// Enough files that most kills land in a running mirror: without the
	// race detector ferry is several times faster.
	files, kills := 3000, 20
	if !raceEnabled {
		files = 12000
	}
	srv := testrig.FTP(t, testrig.FTPOptions{})
	src := t.TempDir()
	writeTree(t, src, files, 30)
	state := t.TempDir()
	args := []string{"--once", "--state", state, "--workers", "4", src, srv.URL("/mirror")}
	env := []string{"FERRY_TEST_MAIN=1", "FERRY_PASSWORD=" + srv.Password}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 9))

	var logLines, resent, inFlightLost, killedMidRun int
	for k := 0; k < kills; k++ {
		before := verified(t, state)
		cmd := exec.Command(os.Args[0], args...)
		cmd.Env = append(os.Environ(), env...)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		// Up to 1.2 s: under the race detector a run needs a few hundred
		// milliseconds before its first upload, and the kills must land
		// in the uploads as well as in the start-up and the scan.
		delay := time.Duration(20+rng.IntN(1200)) * time.Millisecond
		select {
		case err := <-done:
			t.Logf("kill %d: run finished before the kill (%v)", k, err)
		case <-time.After(delay):
			cmd.Process.Signal(syscall.SIGKILL)
			<-done
			killedMidRun++
		}
		var ups []string
		ups, logLines = uploadsSince(t, srv.XferLog, logLines)
		for _, p := range ups {
			if before[p] {
				resent++
				t.Errorf("kill %d: %s was verified in the registry and sent again", k, p)
			}
		}
		after := verified(t, state)
		inFlightLost += len(ups) - (len(after) - len(before))
		t.Logf("kill %d after %v: %d uploads, registry verified %d → %d", k, delay, len(ups), len(before), len(after))
	}
	before := verified(t, state)
	r := ferry(t, []string{"FERRY_PASSWORD=" + srv.Password}, nil, args...)
	if r.code != 0 {
		t.Fatalf("final run: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	ups, _ := uploadsSince(t, srv.XferLog, logLines)
	for _, p := range ups {
		if before[p] {
			resent++
			t.Errorf("final run: %s was verified and sent again", p)
		}
	}
	t.Logf("%d kills mid-run; final run: %s", killedMidRun, strings.TrimSpace(r.stdout))
	t.Logf("verified files sent twice: %d; uploads not recorded before a kill (re-checked, not re-sent unless lost): %d", resent, inFlightLost)

	// The remote equals the source, byte for byte, and holds nothing else.
	mirror := filepath.Join(srv.Root, "mirror")
	n := 0
	err := filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		want, _ := os.ReadFile(p)
		got, err := os.ReadFile(filepath.Join(mirror, rel))
		if err != nil || !bytes.Equal(got, want) {
			return fmt.Errorf("%s differs on the remote: %v", rel, err)
		}
		n++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	extra := 0
	filepath.WalkDir(mirror, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && p != filepath.Join(mirror, testrig.DefaultMarker) {
			if remote.IsTemp(d.Name()) {
				t.Errorf("temporary file left: %s", p)
			}
			extra++
		}
		return nil
	})
	if n != files || extra != files {
		t.Fatalf("remote holds %d files, source %d, matched %d", extra, files, n)
	}
	if killedMidRun < kills/2 {
		t.Fatalf("only %d of %d kills landed mid-run: the loop did not test crashes", killedMidRun, kills)
	}
}
