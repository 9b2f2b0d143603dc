package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"ferry/entry"
	"ferry/internal/syncbuf"
	"ferry/internal/testrig"
)

// daemonProc is a running `ferry --config`.
type daemonProc struct {
	cmd  *exec.Cmd
	log  *syncbuf.Buffer
	done chan error
	code int
}

// startDaemon runs ferry --config cfg and waits until it is ready and its
// first scan is done.
func startDaemon(t *testing.T, cfg string, env []string) *daemonProc {
	t.Helper()
	d := launchDaemon(t, cfg, env)
	d.waitLog(t, `msg="scan done" job=`, 120*time.Second)
	return d
}

// launchDaemon runs ferry --config cfg and waits until it watches.
func launchDaemon(t *testing.T, cfg string, env []string) *daemonProc {
	t.Helper()
	d := spawnDaemon(t, cfg, env)
	d.waitLog(t, `msg=ready`, 120*time.Second)
	return d
}

// spawnDaemon runs ferry --config cfg without waiting for any line: the
// caller knows what its log format says when it is ready.
func spawnDaemon(t *testing.T, cfg string, env []string) *daemonProc {
	t.Helper()
	d := &daemonProc{log: &syncbuf.Buffer{}, done: make(chan error, 1), code: -1}
	d.cmd = exec.Command(os.Args[0], "--config", cfg)
	d.cmd.Env = append(os.Environ(), append([]string{"FERRY_TEST_MAIN=1", "SSH_AUTH_SOCK="}, env...)...)
	d.cmd.Stdout, d.cmd.Stderr = d.log, d.log
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.done <- d.cmd.Wait() }()
	t.Cleanup(func() {
		if d.code == -1 {
			d.cmd.Process.Kill()
			<-d.done
		}
		if t.Failed() {
			t.Logf("daemon log:\n%s", d.log)
		}
	})
	return d
}

// waitLog waits for a line containing s.
func (d *daemonProc) waitLog(t *testing.T, s string, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !strings.Contains(d.log.String(), s) {
		select {
		case err := <-d.done:
			d.code = exitCode(err)
			t.Fatalf("daemon exited (%v) before logging %q:\n%s", err, s, d.log)
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %q in the daemon's log after %v:\n%s", s, limit, d.log)
		}
	}
}

// logCount counts the lines of the daemon's log that contain s.
func (d *daemonProc) logCount(s string) int {
	return strings.Count(d.log.String(), s)
}

// waitLogN waits until at least n lines contain s.
func (d *daemonProc) waitLogN(t *testing.T, s string, n int, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for d.logCount(s) < n {
		select {
		case err := <-d.done:
			d.code = exitCode(err)
			t.Fatalf("daemon exited (%v) before logging %q %d times:\n%s", err, s, n, d.log)
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("%q is in the daemon's log %d times after %v, want %d:\n%s", s, d.logCount(s), limit, n, d.log)
		}
	}
}

// stop sends SIGTERM and returns the exit code.
func (d *daemonProc) stop(t *testing.T, limit time.Duration) int {
	t.Helper()
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-d.done:
		d.code = exitCode(err)
	case <-time.After(limit):
		t.Fatalf("daemon still running %v after SIGTERM", limit)
	}
	return d.code
}

func exitCode(err error) int {
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	if err != nil {
		return -2
	}
	return 0
}

// liveServer is one of the real servers a daemon test runs against.
type liveServer struct {
	name    string
	target  string   // URL of the remote "mirror" directory
	keys    string   // extra job keys (credentials)
	env     []string // environment (password)
	disk    string   // where the mirror lands on this machine's disk
	xferLog string   // vsftpd's upload log, "" for OpenSSH
}

func liveServers(t *testing.T) []liveServer {
	ftp := testrig.FTP(t, testrig.FTPOptions{})
	ssh := testrig.SSH(t, testrig.SSHOptions{})
	return []liveServer{
		{name: "vsftpd", target: ftp.URL("/mirror"), env: []string{"FERRY_PASSWORD=" + ftp.Password},
			disk: filepath.Join(ftp.Root, "mirror"), xferLog: ftp.XferLog},
		{name: "openssh", target: ssh.URL("mirror"),
			keys: fmt.Sprintf("identity_file = %q\nknown_hosts = %q\n", ssh.IdentityFile, ssh.KnownHostsFile),
			disk: filepath.Join(ssh.Root, "mirror")},
	}
}

func writeConfig(t *testing.T, dir string, srv liveServer, extra string) string {
	t.Helper()
	cfg := filepath.Join(dir, "ferry.toml")
	writeFile(t, cfg, fmt.Sprintf("state_dir = %q\ndrain_timeout = \"20s\"\n[[job]]\nname = \"live\"\nsource = %q\ntarget = %q\n%sdelete = true\n%s",
		filepath.Join(dir, "state"), filepath.Join(dir, "src"), srv.target, srv.keys, extra))
	return cfg
}

// arrival polls the server's disk until rel holds want; a file visible
// under its final name with other content is a half-written file.
func arrival(t *testing.T, disk, rel string, want []byte, limit time.Duration) time.Duration {
	t.Helper()
	began := time.Now()
	p := filepath.Join(disk, filepath.FromSlash(rel))
	for time.Since(began) < limit {
		got, err := os.ReadFile(p)
		if err == nil {
			if bytes.Equal(got, want) {
				return time.Since(began)
			}
			if len(got) < len(want) && bytes.HasPrefix(want, got) && len(got) > 0 {
				t.Fatalf("%s is visible half-written (%d of %d bytes)", rel, len(got), len(want))
			}
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("%s did not arrive within %v", rel, limit)
	return 0
}

func gone(t *testing.T, disk, rel string, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		if _, err := os.Stat(filepath.Join(disk, filepath.FromSlash(rel))); os.IsNotExist(err) {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("%s is still on the remote after %v", rel, limit)
}

func noTemps(t *testing.T, disk string) {
	t.Helper()
	err := filepath.WalkDir(disk, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if entry.IsTemp(d.Name()) {
			t.Errorf("temporary file left: %s", p)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("walk %s: %v", disk, err)
	}
}

func percentile(ds []time.Duration, p float64) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(len(s)-1, int(p*float64(len(s))))]
}

// TestDaemonLive runs the daemon against vsftpd and OpenSSH: saved files
// arrive (renamed into place, never half-written), an edit storm is
// coalesced, a move is a rename on the remote, a deletion follows, and
// SIGTERM stops it cleanly.
func TestDaemonLive(t *testing.T) {
	for _, srv := range liveServers(t) {
		t.Run(srv.name, func(t *testing.T) {
			dir := t.TempDir()
			src := filepath.Join(dir, "src")
			writeTree(t, src, 40, 4)
			d := startDaemon(t, writeConfig(t, dir, srv, ""), srv.env)
			sameTree(t, src, srv.disk)

			// Saves: half written in place, half written aside and renamed
			// over (as editors do).
			var lat []time.Duration
			for i := range 20 {
				rel := fmt.Sprintf("saved/file%02d.txt", i)
				body := bytes.Repeat([]byte(fmt.Sprintf("save %d\n", i)), 100+i*50)
				began := time.Now()
				if i%2 == 0 {
					writeFile(t, filepath.Join(src, rel), string(body))
				} else {
					tmp := filepath.Join(src, "saved", fmt.Sprintf(".file%02d.txt.swp", i))
					writeFile(t, tmp, string(body))
					if err := os.Rename(tmp, filepath.Join(src, rel)); err != nil {
						t.Fatal(err)
					}
				}
				arrival(t, srv.disk, rel, body, 30*time.Second)
				lat = append(lat, time.Since(began))
			}
			t.Logf("%s: save-to-visible over %d saves: p50 %v, max %v", srv.name, len(lat), percentile(lat, 0.5), percentile(lat, 1))
			gone(t, srv.disk, "saved/.file01.txt.swp", 10*time.Second) // never shipped, or deleted with its name

			// Edit storm: 1,000 rapid writes of one file.
			var skip int
			if srv.xferLog != "" {
				_, skip = uploadsSince(t, srv.xferLog, 0)
			}
			hot := filepath.Join(src, "hot.txt")
			var last []byte
			for i := range 1000 {
				last = []byte(fmt.Sprintf("edit %04d\n", i))
				if err := os.WriteFile(hot, last, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			arrival(t, srv.disk, "hot.txt", last, 30*time.Second)
			if srv.xferLog != "" {
				time.Sleep(300 * time.Millisecond) // an upload still in flight would show now
				ups, _ := uploadsSince(t, srv.xferLog, skip)
				n := 0
				for _, u := range ups {
					if u == "hot.txt" {
						n++
					}
				}
				t.Logf("%s: 1000 edits of one file, %d uploads", srv.name, n)
				if n < 1 || n > 50 {
					t.Errorf("1000 edits gave %d uploads, want far fewer than the edits", n)
				}
			}

			// A move is a rename on the remote: no bytes sent again.
			if srv.xferLog != "" {
				_, skip = uploadsSince(t, srv.xferLog, 0)
			}
			want, err := os.ReadFile(filepath.Join(src, "dir00", "file00000.dat"))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(filepath.Join(src, "dir00", "file00000.dat"), filepath.Join(src, "dir00", "renamed.dat")); err != nil {
				t.Fatal(err)
			}
			arrival(t, srv.disk, "dir00/renamed.dat", want, 30*time.Second)
			gone(t, srv.disk, "dir00/file00000.dat", 10*time.Second)
			if srv.xferLog != "" {
				ups, _ := uploadsSince(t, srv.xferLog, skip)
				if slices.Contains(ups, "dir00/renamed.dat") {
					t.Errorf("the moved file was uploaded again, not renamed")
				}
			}

			// A deletion follows (delete = true).
			if err := os.Remove(filepath.Join(src, "dir01", "file00001.dat")); err != nil {
				t.Fatal(err)
			}
			gone(t, srv.disk, "dir01/file00001.dat", 10*time.Second)

			if code := d.stop(t, 30*time.Second); code != 0 {
				t.Fatalf("SIGTERM: exit %d", code)
			}
			if !strings.Contains(d.log.String(), `msg=drained`) {
				t.Errorf("no drain in the log")
			}
			noTemps(t, srv.disk)
		})
	}
}

// waitTemp waits until a temporary file is on the remote: an upload is in
// flight.
func waitTemp(t *testing.T, disk string, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		found := false
		filepath.WalkDir(disk, func(p string, d os.DirEntry, err error) error {
			if err == nil && entry.IsTemp(d.Name()) {
				found = true
			}
			return nil
		})
		if found {
			return
		}
		time.Sleep(2 * time.Millisecond)
	}
	t.Fatalf("no upload started within %v", limit)
}

// TestDaemonDrain: SIGTERM in the middle of a transfer. With a short drain
// timeout the transfer is abandoned cleanly (nothing under the final name,
// no temporary file) and the next start sends it; with a long one it
// finishes before the daemon exits.
func TestDaemonDrain(t *testing.T) {
	big := bytes.Repeat([]byte("0123456789abcdef"), 256<<10) // 4 MiB: 4 s at 1M/s
	for _, srv := range liveServers(t) {
		t.Run(srv.name+"/abandon", func(t *testing.T) {
			dir := t.TempDir()
			writeFile(t, filepath.Join(dir, "src", "small.txt"), "x")
			cfg := writeConfig(t, dir, srv, "bwlimit = \"1M\"\n")
			body, _ := os.ReadFile(cfg)
			writeFile(t, cfg, strings.Replace(string(body), `drain_timeout = "20s"`, `drain_timeout = "300ms"`, 1))
			d := startDaemon(t, cfg, srv.env)
			writeFile(t, filepath.Join(dir, "src", "big.bin"), string(big))
			waitTemp(t, srv.disk, 30*time.Second)
			began := time.Now()
			if code := d.stop(t, 30*time.Second); code != 0 {
				t.Fatalf("SIGTERM: exit %d", code)
			}
			t.Logf("%s: stopped %v after SIGTERM with a transfer abandoned", srv.name, time.Since(began).Round(time.Millisecond))
			if !strings.Contains(d.log.String(), "drain timeout") {
				t.Errorf("the log does not say the transfer was abandoned")
			}
			if _, err := os.Stat(filepath.Join(srv.disk, "big.bin")); !os.IsNotExist(err) {
				t.Fatalf("big.bin is on the remote after an abandoned transfer (%v)", err)
			}
			noTemps(t, srv.disk)

			// The next start completes it.
			writeFile(t, cfg, strings.Replace(string(body), "bwlimit = \"1M\"\n", "", 1))
			d = startDaemon(t, cfg, srv.env)
			arrival(t, srv.disk, "big.bin", big, 60*time.Second)
			if code := d.stop(t, 30*time.Second); code != 0 {
				t.Fatalf("second SIGTERM: exit %d", code)
			}
			noTemps(t, srv.disk)
		})
	}
	t.Run("finish", func(t *testing.T) {
		srv := liveServers(t)[0]
		dir := t.TempDir()
		writeFile(t, filepath.Join(dir, "src", "small.txt"), "x")
		d := startDaemon(t, writeConfig(t, dir, srv, "bwlimit = \"2M\"\n"), srv.env)
		writeFile(t, filepath.Join(dir, "src", "big.bin"), string(big))
		waitTemp(t, srv.disk, 30*time.Second)
		began := time.Now()
		if code := d.stop(t, 30*time.Second); code != 0 {
			t.Fatalf("SIGTERM: exit %d", code)
		}
		t.Logf("drain took %v (the transfer in flight finished)", time.Since(began).Round(time.Millisecond))
		got, err := os.ReadFile(filepath.Join(srv.disk, "big.bin"))
		if err != nil || !bytes.Equal(got, big) {
			t.Fatalf("the transfer in flight did not finish during the drain (%v, %d bytes)", err, len(got))
		}
		noTemps(t, srv.disk)
	})
}

// TestDaemonBurst: 10,000 files created in a burst under a running daemon
// are all shipped.
func TestDaemonBurst(t *testing.T) {
	srv := liveServers(t)[1] // OpenSSH: the burst's size, not the protocol, is the point
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "src", "seed.txt"), "x")
	d := startDaemon(t, writeConfig(t, dir, srv, ""), srv.env)
	began := time.Now()
	writeTree(t, filepath.Join(dir, "src", "burst"), 10000, 100)
	created := time.Since(began)
	deadline := time.Now().Add(5 * time.Minute)
	for arrived(t, filepath.Join(srv.disk, "burst")) < 10000 {
		if time.Now().After(deadline) {
			t.Fatalf("%d of 10000 files shipped after 5 minutes", arrived(t, filepath.Join(srv.disk, "burst")))
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("10000 files created in %v, all on the remote %v after the first", created.Round(time.Millisecond), time.Since(began).Round(time.Millisecond))
	if code := d.stop(t, 30*time.Second); code != 0 {
		t.Fatalf("SIGTERM: exit %d", code)
	}
	// Byte for byte, and nothing else.
	err := filepath.WalkDir(filepath.Join(dir, "src"), func(p string, de os.DirEntry, err error) error {
		if err != nil || de.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(filepath.Join(dir, "src"), p)
		want, _ := os.ReadFile(p)
		got, err := os.ReadFile(filepath.Join(srv.disk, rel))
		if err != nil || !bytes.Equal(got, want) {
			return fmt.Errorf("%s differs on the remote: %v", rel, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	noTemps(t, srv.disk)
}

// TestDaemonLiveFirst: while the first scan ships a big tree, saved files
// still arrive at once: live work goes ahead of bulk work.
func TestDaemonLiveFirst(t *testing.T) {
	srv := liveServers(t)[0]
	dir := t.TempDir()
	const bulk = 3000
	writeTree(t, filepath.Join(dir, "src", "bulk"), bulk, 30)
	// The bulk work is held to about 6 s by the bandwidth limit, however
	// fast or loaded the machine, so every live save below is made while
	// it runs; the live lane must get each one through ahead of it.
	cfg := writeConfig(t, dir, srv, "workers = 2\nbwlimit = \"4M\"\n")
	d := launchDaemon(t, cfg, srv.env)
	// Status shows the scan and its progress while it runs.
	type scanStatus struct {
		Running      bool
		PlannedFiles int64 `json:"planned_files"`
		DoneFiles    int64 `json:"done_files"`
	}
	var seen scanStatus
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		r := ferry(t, nil, nil, "status", "--json", "--config", cfg)
		var st struct{ Jobs []struct{ Scan scanStatus } }
		if err := json.Unmarshal([]byte(r.stdout), &st); err != nil || len(st.Jobs) != 1 {
			t.Fatalf("status: %v\n%s%s", err, r.stdout, r.stderr)
		}
		if seen = st.Jobs[0].Scan; seen.Running && seen.PlannedFiles > 0 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !seen.Running || seen.PlannedFiles == 0 || seen.DoneFiles >= bulk {
		t.Errorf("status during the first scan: %+v, want it running with work planned and not all done", seen)
	}
	var lat []time.Duration
	var during int
	for i := range 10 {
		rel := fmt.Sprintf("live%02d.txt", i)
		body := []byte(fmt.Sprintf("live save %d\n", i))
		began := time.Now()
		writeFile(t, filepath.Join(dir, "src", rel), string(body))
		arrival(t, srv.disk, rel, body, 30*time.Second)
		lat = append(lat, time.Since(began))
		if n := arrived(t, filepath.Join(srv.disk, "bulk")); n < bulk {
			during++
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("live saves during the bulk scan: %d of 10 arrived while it ran; p50 %v, max %v", during, percentile(lat, 0.5), percentile(lat, 1))
	if during != 10 {
		t.Errorf("only %d of 10 live saves arrived while the bulk scan ran: live work did not go first", during)
	}
	d.waitLog(t, `msg="scan done" job=`, 5*time.Minute)
	sameTree(t, filepath.Join(dir, "src"), srv.disk)
	if code := d.stop(t, 30*time.Second); code != 0 {
		t.Fatalf("SIGTERM: exit %d", code)
	}
}

// TestDaemonControl steers a running daemon through its socket with the
// ferry status|pause|resume|sync commands.
func TestDaemonControl(t *testing.T) {
	srv := liveServers(t)[0]
	dir := t.TempDir()
	writeTree(t, filepath.Join(dir, "src"), 10, 2)
	cfg := writeConfig(t, dir, srv, "")
	body, _ := os.ReadFile(cfg)
	writeFile(t, cfg, "metrics_listen = \"127.0.0.1:0\"\n"+string(body))
	d := startDaemon(t, cfg, srv.env)
	sock := filepath.Join(dir, "state", "ferry.sock")

	// Prometheus metrics, on the port the log gives.
	m := regexp.MustCompile(`msg=metrics url=(http://\S+)`).FindStringSubmatch(d.log.String())
	if m == nil {
		t.Fatalf("no metrics URL in the log")
	}
	resp, err := http.Get(m[1])
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`ferry_files_transferred_total{job="live"} 10`, `ferry_job_state{job="live",state="idle"} 1`,
		`ferry_queue_items{class="live",job="live"} 0`, `ferry_workers_target{job="live"} 4`} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("metrics lack %q:\n%s", want, metrics)
		}
	}
	if fi, err := os.Stat(sock); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("control socket: %v, mode %v; want owner-only", err, fi.Mode())
	}

	r := ferry(t, nil, nil, "status", "--config", cfg)
	if r.code != 0 || !strings.Contains(r.stdout, "live") || !strings.Contains(r.stdout, "idle") {
		t.Fatalf("status: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r = ferry(t, nil, nil, "pause", "--config", cfg); r.code != 0 {
		t.Fatalf("pause: exit %d: %s", r.code, r.stderr)
	}
	writeFile(t, filepath.Join(dir, "src", "while-paused.txt"), "waits")
	// The save is queued (the watcher settled it) and held there: status
	// says so, and after a while it is still not on the remote.
	var st struct {
		Jobs []struct {
			State string
			Queue struct{ Live int }
		}
	}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		r = ferry(t, nil, nil, "status", "--json", "--state", filepath.Join(dir, "state"), "--job", "live")
		if err := json.Unmarshal([]byte(r.stdout), &st); err != nil || len(st.Jobs) != 1 {
			t.Fatalf("status --json: %v\n%s", err, r.stdout)
		}
		if st.Jobs[0].State == "paused" && st.Jobs[0].Queue.Live == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("paused status: %+v, want paused with 1 live item waiting", st.Jobs[0])
		}
	}
	time.Sleep(500 * time.Millisecond) // long enough for a paused queue to leak the item
	if _, err := os.Stat(filepath.Join(srv.disk, "while-paused.txt")); err == nil {
		t.Fatal("a file was shipped while the job was paused")
	}
	if r = ferry(t, nil, nil, "resume", "--config", cfg); r.code != 0 {
		t.Fatalf("resume: exit %d: %s", r.code, r.stderr)
	}
	arrival(t, srv.disk, "while-paused.txt", []byte("waits"), 10*time.Second)

	// sync now: drift the watcher cannot see (a file removed on the
	// remote by someone else) is repaired by the full scan sync asks for.
	os.Remove(filepath.Join(srv.disk, "dir00", "file00000.dat"))
	if r = ferry(t, nil, nil, "sync", "--config", cfg); r.code != 0 {
		t.Fatalf("sync: exit %d: %s", r.code, r.stderr)
	}
	want, _ := os.ReadFile(filepath.Join(dir, "src", "dir00", "file00000.dat"))
	arrival(t, srv.disk, "dir00/file00000.dat", want, 30*time.Second)

	if r = ferry(t, nil, nil, "pause", "--config", cfg, "--job", "nope"); r.code != 2 || !strings.Contains(r.stderr, `no such job: "nope"`) {
		t.Errorf("unknown job: exit %d, %q", r.code, r.stderr)
	}
	if code := d.stop(t, 30*time.Second); code != 0 {
		t.Fatalf("SIGTERM: exit %d", code)
	}
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Errorf("the socket outlived the daemon: %v", err)
	}
	if r = ferry(t, nil, nil, "status", "--config", cfg); r.code != 2 || !strings.Contains(r.stderr, "no ferry daemon is running") {
		t.Errorf("status without a daemon: exit %d, %q", r.code, r.stderr)
	}
}

// TestDaemonSystemdNotify plays systemd: the daemon says READY once it
// watches, pets the watchdog with a STATUS line, and says STOPPING when
// SIGTERM starts the drain.
func TestDaemonSystemdNotify(t *testing.T) {
	dir := t.TempDir()
	sockPath := filepath.Join(dir, "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sockPath, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	msgs := make(chan string, 100)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, _, err := conn.ReadFromUnix(buf)
			if err != nil {
				close(msgs)
				return
			}
			msgs <- string(buf[:n])
		}
	}()
	writeFile(t, filepath.Join(dir, "src", "a.txt"), "a")
	cfg := filepath.Join(dir, "ferry.toml")
	writeFile(t, cfg, fmt.Sprintf("state_dir = %q\n[[job]]\nname = \"n\"\nsource = %q\ntarget = \"file://%s\"\n",
		filepath.Join(dir, "state"), filepath.Join(dir, "src"), filepath.Join(dir, "dst")))
	d := startDaemon(t, cfg, []string{"NOTIFY_SOCKET=" + sockPath, "WATCHDOG_USEC=600000"})
	want := map[string]bool{"READY=1": false, "WATCHDOG=1": false, "STATUS=n: idle": false}
	deadline := time.After(10 * time.Second)
	for !want["READY=1"] || !want["WATCHDOG=1"] || !want["STATUS=n: idle"] {
		select {
		case m := <-msgs:
			for k := range want {
				if strings.Contains(m, k) {
					want[k] = true
				}
			}
		case <-deadline:
			t.Fatalf("notifications seen: %v", want)
		}
	}
	if code := d.stop(t, 30*time.Second); code != 0 {
		t.Fatalf("SIGTERM: exit %d", code)
	}
	for {
		select {
		case m := <-msgs:
			if strings.Contains(m, "STOPPING=1") {
				return
			}
		case <-time.After(5 * time.Second):
			t.Fatal("no STOPPING=1 after SIGTERM")
		}
	}
}

// TestDaemonReload: SIGHUP re-reads the config: a changed worker count
// resizes the pool in place, a new job starts, a changed job restarts
// without sending again what is in sync, and a broken config is refused
// while the daemon goes on.
func TestDaemonReload(t *testing.T) {
	srv := liveServers(t)[0]
	dir := t.TempDir()
	writeTree(t, filepath.Join(dir, "src"), 30, 3)
	cfg := writeConfig(t, dir, srv, "workers = 1\n")
	base, _ := os.ReadFile(cfg)
	d := startDaemon(t, cfg, srv.env)
	status := func() map[string]int {
		r := ferry(t, nil, nil, "status", "--json", "--config", cfg)
		var st struct {
			Jobs []struct {
				Name          string
				WorkersTarget int `json:"workers_target"`
			}
		}
		if err := json.Unmarshal([]byte(r.stdout), &st); err != nil {
			t.Fatalf("status: %v\n%s%s", err, r.stdout, r.stderr)
		}
		out := map[string]int{}
		for _, j := range st.Jobs {
			out[j.Name] = j.WorkersTarget
		}
		return out
	}
	if got := status(); got["live"] != 1 {
		t.Fatalf("workers before the reload: %v", got)
	}
	_, skip := uploadsSince(t, srv.xferLog, 0)

	// More workers and a second job.
	other := filepath.Join(dir, "other-copy")
	writeFile(t, filepath.Join(dir, "other", "o.txt"), "other job")
	writeFile(t, cfg, strings.Replace(string(base), "workers = 1\n", "workers = 3\n", 1)+
		fmt.Sprintf("\n[[job]]\nname = \"other\"\nsource = %q\ntarget = \"file://%s\"\n", filepath.Join(dir, "other"), other))
	d.cmd.Process.Signal(syscall.SIGHUP)
	d.waitLog(t, "msg=reloaded", 10*time.Second)
	d.waitLog(t, `msg="workers resized" job=live from=1 to=3`, 10*time.Second)
	arrival(t, other, "o.txt", []byte("other job"), 30*time.Second)
	if got := status(); got["live"] != 3 || got["other"] != 4 {
		t.Errorf("workers after the reload: %v, want live 3 and other 4", got)
	}

	// A broken config is refused; the daemon goes on.
	writeFile(t, cfg, string(base)+"workerz = 2\n")
	d.cmd.Process.Signal(syscall.SIGHUP)
	d.waitLog(t, "reload refused", 10*time.Second)
	if !strings.Contains(d.log.String(), "workerz: unknown key") {
		t.Errorf("the refusal does not name the key")
	}
	writeFile(t, filepath.Join(dir, "src", "after-refusal.txt"), "still live")
	arrival(t, srv.disk, "after-refusal.txt", []byte("still live"), 30*time.Second)

	// A changed policy restarts the job; what is in sync is not sent again.
	scans := d.logCount(`msg="scan done" job=live`)
	writeFile(t, cfg, strings.Replace(string(base), "workers = 1\n", "workers = 2\nexclude = [\"*.tmp\"]\n", 1))
	d.cmd.Process.Signal(syscall.SIGHUP)
	d.waitLog(t, `msg="job changed in the config: restarting it" job=live`, 10*time.Second)
	d.waitLog(t, `msg="job removed from the config: stopping it" job=other`, 10*time.Second)
	// The restarted job's first scan is over: what it would re-send is
	// in the server's log by now.
	d.waitLogN(t, `msg="scan done" job=live`, scans+1, 60*time.Second)
	writeFile(t, filepath.Join(dir, "src", "after-restart.txt"), "restarted")
	arrival(t, srv.disk, "after-restart.txt", []byte("restarted"), 30*time.Second)
	ups, _ := uploadsSince(t, srv.xferLog, skip)
	for _, u := range ups {
		if u != "after-refusal.txt" && u != "after-restart.txt" {
			t.Errorf("the reloads sent %s again", u)
		}
	}
	if code := d.stop(t, 30*time.Second); code != 0 {
		t.Fatalf("SIGTERM: exit %d", code)
	}
}

// TestDaemonProtectedHours: inside protected hours the bulk work of a scan
// waits while live saves go through (protected_live); when the hours are
// lifted (a reload), the bulk work is done.
func TestDaemonProtectedHours(t *testing.T) {
	srv := liveServers(t)[1]
	dir := t.TempDir()
	writeTree(t, filepath.Join(dir, "src", "bulk"), 20, 2)
	cfg := writeConfig(t, dir, srv, "protected_hours = [\"00:00-24:00\"]\n")
	d := launchDaemon(t, cfg, srv.env)
	d.waitLog(t, "protected hours: bulk work paused", 10*time.Second)
	writeFile(t, filepath.Join(dir, "src", "live.txt"), "goes through")
	arrival(t, srv.disk, "live.txt", []byte("goes through"), 30*time.Second)
	time.Sleep(300 * time.Millisecond)
	if n := arrived(t, filepath.Join(srv.disk, "bulk")); n != 0 {
		t.Fatalf("%d bulk files were shipped inside protected hours", n)
	}
	r := ferry(t, nil, nil, "status", "--config", cfg)
	if !strings.Contains(r.stdout, "(protected hours)") {
		t.Errorf("status does not show the protected hours:\n%s", r.stdout)
	}
	body, _ := os.ReadFile(cfg)
	writeFile(t, cfg, strings.Replace(string(body), "protected_hours = [\"00:00-24:00\"]\n", "", 1))
	d.cmd.Process.Signal(syscall.SIGHUP)
	d.waitLog(t, "protected hours over: bulk work resumes", 10*time.Second)
	d.waitLog(t, `msg="scan done"`, 60*time.Second)
	if n := countFiles(t, filepath.Join(srv.disk, "bulk")); n != 20 {
		t.Fatalf("after the protected hours: %d of 20 bulk files", n)
	}
	if code := d.stop(t, 30*time.Second); code != 0 {
		t.Fatalf("SIGTERM: exit %d", code)
	}
}

// TestDaemonServerDown: the server is killed under a running daemon; saves
// made while it is down arrive once it is back, without restarting ferry.
func TestDaemonServerDown(t *testing.T) {
	ftp := testrig.FTP(t, testrig.FTPOptions{})
	srv := liveServer{name: "vsftpd", target: ftp.URL("/mirror"), env: []string{"FERRY_PASSWORD=" + ftp.Password},
		disk: filepath.Join(ftp.Root, "mirror"), xferLog: ftp.XferLog}
	dir := t.TempDir()
	writeTree(t, filepath.Join(dir, "src"), 5, 1)
	d := startDaemon(t, writeConfig(t, dir, srv, ""), srv.env)
	if err := ftp.Kill(); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "src", "while-down.txt"), "written while the server was down")
	time.Sleep(1500 * time.Millisecond)
	if err := ftp.Restart(); err != nil {
		t.Fatal(err)
	}
	arrival(t, srv.disk, "while-down.txt", []byte("written while the server was down"), 90*time.Second)
	writeFile(t, filepath.Join(dir, "src", "after.txt"), "after the outage")
	arrival(t, srv.disk, "after.txt", []byte("after the outage"), 30*time.Second)
	if code := d.stop(t, 30*time.Second); code != 0 {
		t.Fatalf("SIGTERM: exit %d", code)
	}
	noTemps(t, srv.disk)
}

// TestDaemonRefusals: a second daemon on the same state directory and a
// metrics address that cannot be listened on are exit 2 with the reason,
// and the first daemon goes on untouched.
func TestDaemonRefusals(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "src", "a.txt"), "a")
	dst := filepath.Join(dir, "dst")
	cfg := filepath.Join(dir, "ferry.toml")
	writeFile(t, cfg, fmt.Sprintf("state_dir = %q\n[[job]]\nname = \"r\"\nsource = %q\ntarget = \"file://%s\"\n",
		filepath.Join(dir, "state"), filepath.Join(dir, "src"), dst))
	d := startDaemon(t, cfg, nil)
	r := ferry(t, nil, nil, "--config", cfg)
	if r.code != 2 || !strings.Contains(r.stderr, "another ferry daemon answers") {
		t.Errorf("second daemon: exit %d, %q", r.code, r.stderr)
	}
	bad := filepath.Join(dir, "bad.toml")
	body, _ := os.ReadFile(cfg)
	writeFile(t, bad, "metrics_listen = \"127.0.0.1:notaport\"\n"+strings.Replace(string(body), "state\"", "state2\"", 1))
	r = ferry(t, nil, nil, "--config", bad)
	if r.code != 2 || !strings.Contains(r.stderr, "metrics_listen 127.0.0.1:notaport") {
		t.Errorf("bad metrics address: exit %d, %q", r.code, r.stderr)
	}
	writeFile(t, filepath.Join(dir, "src", "b.txt"), "still served")
	arrival(t, dst, "b.txt", []byte("still served"), 10*time.Second)
	if code := d.stop(t, 30*time.Second); code != 0 {
		t.Fatalf("SIGTERM: exit %d", code)
	}
}

// TestDaemonRetryFailed: a file the server refuses fails (after its
// retries) and shows in status; once the cause is fixed, `ferry sync
// --retry-failed` ships it.
func TestDaemonRetryFailed(t *testing.T) {
	srv := liveServers(t)[0]
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "src", "ok.txt"), "ok")
	cfg := writeConfig(t, dir, srv, "")
	d := startDaemon(t, cfg, srv.env)
	// A remote directory the server account cannot write into.
	locked := filepath.Join(srv.disk, "locked")
	if err := os.Mkdir(locked, 0o555); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "src", "locked", "f.txt"), "refused at first")
	failed := func() int64 {
		r := ferry(t, nil, nil, "status", "--json", "--config", cfg)
		var st struct {
			Jobs []struct {
				FailedFiles int64 `json:"failed_files"`
			}
		}
		if err := json.Unmarshal([]byte(r.stdout), &st); err != nil || len(st.Jobs) != 1 {
			t.Fatalf("status: %v\n%s%s", err, r.stdout, r.stderr)
		}
		return st.Jobs[0].FailedFiles
	}
	deadline := time.Now().Add(60 * time.Second)
	for failed() != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("the refused upload never showed as failed")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if _, err := os.Stat(filepath.Join(locked, "f.txt")); !os.IsNotExist(err) {
		t.Fatalf("f.txt is on the remote though the directory refused it (%v)", err)
	}
	if err := os.Chmod(locked, 0o777); err != nil {
		t.Fatal(err)
	}
	r := ferry(t, nil, nil, "sync", "--retry-failed", "--config", cfg)
	if r.code != 0 || !strings.Contains(r.stdout, "1 failed files are pending again") {
		t.Fatalf("sync --retry-failed: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	arrival(t, srv.disk, "locked/f.txt", []byte("refused at first"), 30*time.Second)
	if n := failed(); n != 0 {
		t.Errorf("%d files still failed after the retry", n)
	}
	if code := d.stop(t, 30*time.Second); code != 0 {
		t.Fatalf("SIGTERM: exit %d", code)
	}
	noTemps(t, srv.disk)
}
