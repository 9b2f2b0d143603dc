package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"ferry/internal/ftpfake"
	"ferry/mirror"
)

// storFaults starts an FTP server inside the test process that ends the
// session under every fifth STOR of a mirrored file (never the marker's),
// in turn with vsftpd's "500 OOPS", a 421 and a drop in the middle of the
// data. Each fault costs exactly one session, under one item.
func storFaults(t *testing.T) (srv *ftpfake.Server, disk string) {
	t.Helper()
	root := t.TempDir()
	kinds := []ftpfake.Fault{ftpfake.Oops, ftpfake.Closing, ftpfake.DropInData}
	var stors atomic.Int64
	srv, err := ftpfake.Start(ftpfake.Options{Root: root, Fault: func(c ftpfake.Command) ftpfake.Fault {
		if c.Verb != "STOR" || strings.Contains(c.Arg, mirror.DefaultMarker) {
			return ftpfake.NoFault
		}
		if n := stors.Add(1); n%5 == 0 {
			return kinds[(n/5)%int64(len(kinds))]
		}
		return ftpfake.NoFault
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv, filepath.Join(root, "mirror")
}

func injected(srv *ftpfake.Server) (n int64) {
	for _, c := range srv.Injected() {
		n += int64(c)
	}
	return n
}

// TestOnceReportsSessionsLost: `ferry --once` against a server that ends
// sessions under uploads exits 0 with every file in place and says how
// many sessions it lost and redialed, one per fault.
func TestOnceReportsSessionsLost(t *testing.T) {
	srv, disk := storFaults(t)
	src := filepath.Join(t.TempDir(), "src")
	writeTree(t, src, 60, 3)
	r := ferry(t, []string{"FERRY_PASSWORD=" + ftpfake.Password}, nil, "--once", "--workers", "4", "--state", t.TempDir(), src, srv.URL("/mirror"))
	if r.code != 0 {
		t.Fatalf("exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	want := injected(srv)
	if want < 10 || !strings.Contains(r.stdout, fmt.Sprintf("sessions lost and redialed: %d\n", want)) {
		t.Fatalf("%d faults made; the summary does not count them:\n%s", want, r.stdout)
	}
	if n := sameAsSource(t, src, disk); n != 60 {
		t.Fatalf("%d of 60 files on the server", n)
	}
	noTemps(t, disk)
}

// TestDaemonReportsSessionsLost: the daemon's first scan ships a tree to a
// server that ends sessions under uploads; the lost sessions show in the
// metrics (ferry_sessions_lost_total) and in status, one per fault.
func TestDaemonReportsSessionsLost(t *testing.T) {
	srv, disk := storFaults(t)
	dir := t.TempDir()
	writeTree(t, filepath.Join(dir, "src"), 60, 3)
	cfg := writeConfig(t, dir, liveServer{target: srv.URL("/mirror")}, "")
	body, _ := os.ReadFile(cfg)
	writeFile(t, cfg, "metrics_listen = \"127.0.0.1:0\"\n"+string(body))
	d := startDaemon(t, cfg, []string{"FERRY_PASSWORD=" + ftpfake.Password})
	if n := sameAsSource(t, filepath.Join(dir, "src"), disk); n != 60 {
		t.Fatalf("%d of 60 files on the server after the first scan", n)
	}
	want := injected(srv)
	if want < 10 {
		t.Fatalf("only %d faults made", want)
	}

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
	got := regexp.MustCompile(`(?m)^ferry_sessions_lost_total\{job="live"\} (\d+)$`).FindSubmatch(metrics)
	if got == nil || string(got[1]) != strconv.FormatInt(want, 10) {
		t.Errorf("%d faults made; the metrics say:\n%s", want, regexp.MustCompile(`(?m)^ferry_sessions_lost.*$`).Find(metrics))
	}

	r := ferry(t, nil, nil, "status", "--json", "--config", cfg)
	var st struct {
		Jobs []struct {
			Totals struct {
				SessionsLost int64 `json:"sessions_lost"`
				Failed       int64 `json:"failed"`
			} `json:"totals"`
		} `json:"jobs"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil || len(st.Jobs) != 1 {
		t.Fatalf("status: %v\n%s%s", err, r.stdout, r.stderr)
	}
	if tot := st.Jobs[0].Totals; tot.SessionsLost != want || tot.Failed != 0 {
		t.Errorf("status totals %+v after %d faults; want them all counted, nothing failed", tot, want)
	}
	if code := d.stop(t, 30*time.Second); code != 0 {
		t.Fatalf("SIGTERM: exit %d", code)
	}
	noTemps(t, disk)
}
