package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"ferry/internal/syncbuf"
)

// DatasetLive is the live-latency case: files saved under a running daemon
// (`ferry --config`), timed from the save until the complete file is on the
// server's disk under its name, once with the daemon idle and once while
// its first scan ships the small dataset (10,000 files) beside them.
const DatasetLive = "live"

// The live cases.
const (
	LiveIdle = "idle"
	LiveBulk = "bulk"
)

// LiveResult is one live case on one server.
type LiveResult struct {
	Server     string  `json:"server"`
	Case       string  `json:"case"`
	Saves      int     `json:"saves"`
	P50MS      float64 `json:"p50_ms"`
	P99MS      float64 `json:"p99_ms"`
	MaxMS      float64 `json:"max_ms"`
	BulkFiles  int64   `json:"bulk_files,omitempty"` // bulk: the files the scan shipped meanwhile
	BulkS      float64 `json:"bulk_s,omitempty"`     // bulk: how long that scan took
	PeakRSSMiB float64 `json:"peak_rss_mib"`
	Error      string  `json:"error,omitempty"`
	Log        string  `json:"log"`
}

// runLive measures both live cases on every server.
func (r *runner) runLive(ctx context.Context) error {
	small, err := ensureDataset(filepath.Join(r.o.WorkDir, "datasets"), DatasetSmall, r.o.Quick, r.o.Seed, r.logf)
	if err != nil {
		return err
	}
	for _, s := range r.sites {
		for _, c := range []string{LiveIdle, LiveBulk} {
			res := r.liveCase(ctx, s, c, small)
			r.rep.Live = append(r.rep.Live, res)
			status := "ok"
			if res.Error != "" {
				status = "FAILED: " + res.Error
			}
			r.logf("live/%s %s: %d saves, p50 %.0f ms, p99 %.0f ms, max %.0f ms, %s", s.name, c, res.Saves, res.P50MS, res.P99MS, res.MaxMS, status)
			if err := ctx.Err(); err != nil {
				return err
			}
		}
	}
	return nil
}

// liveCase runs one daemon and times the saves.
func (r *runner) liveCase(ctx context.Context, s *site, c string, small *dataset) LiveResult {
	res := LiveResult{Server: s.name, Case: c}
	base := filepath.Join(r.work, "live-"+s.name+"-"+c)
	src, state := filepath.Join(base, "src"), r.statePath(DatasetLive, s.name, c)
	rel := "live/" + c
	if err := errors.Join(os.RemoveAll(base), os.RemoveAll(state)); err != nil {
		res.Error = err.Error()
		return res
	}
	if c == LiveBulk {
		// The quick variant's 30 files would be shipped before a save
		// could be made beside them: ten copies make a bulk that lasts.
		copies := []string{"bulk"}
		if r.o.Quick {
			copies = nil
			for i := range 10 {
				copies = append(copies, fmt.Sprintf("bulk/%d", i))
			}
		}
		for _, d := range copies {
			if err := cloneTree(small.Dir, filepath.Join(src, d)); err != nil {
				res.Error = fmt.Sprintf("copy the bulk tree: %v", err)
				return res
			}
		}
	} else if err := os.MkdirAll(src, 0o755); err != nil {
		res.Error = err.Error()
		return res
	}
	if err := os.RemoveAll(s.disk(rel)); err != nil {
		res.Error = err.Error()
		return res
	}
	if err := r.mkdirOwned(s, rel); err != nil {
		res.Error = err.Error()
		return res
	}
	defer os.RemoveAll(s.disk(rel))
	cfg := filepath.Join(base, "ferry.toml")
	keys := ""
	if s.sftp() {
		keys = fmt.Sprintf("identity_file = %q\nknown_hosts = %q\n", s.identity, s.knownHosts)
	}
	body := fmt.Sprintf("state_dir = %q\n[[job]]\nname = \"live\"\nsource = %q\ntarget = %q\nworkers = %d\n%s",
		state, src, s.ferryURL(rel), r.o.Workers, keys)
	if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
		res.Error = err.Error()
		return res
	}

	res.Log = filepath.Join(r.rep.LogDir, fmt.Sprintf("live-%s-%s.log", s.name, c))
	logf, err := os.Create(res.Log)
	if err != nil {
		res.Error = err.Error()
		return res
	}
	defer logf.Close()
	buf := &syncbuf.Buffer{}
	argv := []string{r.bins[ToolFerry], "--config", cfg}
	rssFile := res.Log + ".rss"
	if t := r.bins["time"]; t != "" {
		argv = append([]string{t, "-q", "-f", "%M", "-o", rssFile, "--"}, argv...)
	}
	fmt.Fprintf(logf, "$ %s\n", strings.Join(argv, " "))
	syscall.Sync()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = os.Environ()
	if s.ftp != nil {
		cmd.Env = append(cmd.Env, "FERRY_PASSWORD="+s.password)
	}
	cmd.Stdout, cmd.Stderr = logf, &teeWriter{logf, buf}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		res.Error = err.Error()
		return res
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		// The daemon, not GNU time around it: time would die of SIGTERM
		// without writing the peak RSS, and leave the daemon running.
		syscall.Kill(daemonPID(cmd.Process.Pid, r.bins["time"] != ""), syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(60 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	}
	defer stop()
	wait := func(s string, limit time.Duration) error {
		deadline := time.Now().Add(limit)
		for !buf.Contains(s) {
			if time.Now().After(deadline) {
				return fmt.Errorf("no %q from the daemon within %v", s, limit)
			}
			select {
			case err := <-done:
				stopped = true
				return fmt.Errorf("the daemon exited (%v) before %q", err, s)
			case <-time.After(5 * time.Millisecond):
			}
		}
		return nil
	}
	first := `msg="scan done"`
	if c == LiveBulk {
		first = "msg=ready"
	}
	if err := wait(first, 2*time.Minute); err != nil {
		res.Error = err.Error()
		return res
	}

	saves := 100
	if r.o.Quick {
		saves = 10
	}
	rng := rand.New(rand.NewPCG(r.o.Seed, hashName(s.name+c)))
	var lat []float64
	began := time.Now()
	for i := 0; i < saves; i++ {
		if c == LiveBulk && buf.Contains(`msg="scan done"`) {
			break // only saves made while the bulk ran count
		}
		name := fmt.Sprintf("save-%03d.html", i)
		content := make([]byte, 1024+rng.IntN(8<<10))
		for j := range content {
			content[j] = byte('a' + rng.IntN(26))
		}
		t0 := time.Now()
		if err := os.WriteFile(filepath.Join(src, name), content, 0o644); err != nil {
			res.Error = err.Error()
			return res
		}
		if err := waitFile(ctx, s.disk(rel+"/"+name), content, 30*time.Second); err != nil {
			res.Error = fmt.Sprintf("save %d: %v", i, err)
			return res
		}
		lat = append(lat, float64(time.Since(t0).Microseconds())/1000)
		time.Sleep(time.Duration(20+rng.IntN(30)) * time.Millisecond)
	}
	if c == LiveBulk {
		if err := wait(`msg="scan done"`, 10*time.Minute); err != nil {
			res.Error = err.Error()
			return res
		}
		res.BulkS = time.Since(began).Seconds()
		n, _, _ := countTree(filepath.Join(src, "bulk"))
		res.BulkFiles = n
	}
	stop()
	if b, err := os.ReadFile(rssFile); err == nil {
		if f := strings.Fields(string(b)); len(f) > 0 {
			if kib, err := strconv.ParseFloat(f[len(f)-1], 64); err == nil {
				res.PeakRSSMiB = kib / 1024
			}
		}
		os.Remove(rssFile)
	}
	res.Saves = len(lat)
	if len(lat) == 0 {
		res.Error = "no save was made while the bulk scan ran (it ended first)"
		return res
	}
	slices.Sort(lat)
	res.P50MS, res.P99MS, res.MaxMS = quantile(lat, 0.5), quantile(lat, 0.99), lat[len(lat)-1]
	return res
}

// quantile of sorted xs, nearest rank.
func quantile(xs []float64, q float64) float64 {
	i := int(q*float64(len(xs))+0.5) - 1
	return xs[min(max(i, 0), len(xs)-1)]
}

// waitFile polls p until it holds want; a shorter prefix of want under the
// final name would be a half-written file, which ferry must never show.
func waitFile(ctx context.Context, p string, want []byte, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		if got, err := os.ReadFile(p); err == nil {
			if bytes.Equal(got, want) {
				return nil
			}
			if len(got) > 0 && len(got) < len(want) && bytes.HasPrefix(want, got) {
				return fmt.Errorf("%s visible half-written (%d of %d bytes)", p, len(got), len(want))
			}
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		time.Sleep(500 * time.Microsecond)
	}
	return fmt.Errorf("%s did not arrive within %v", p, limit)
}

type teeWriter struct {
	a, b interface{ Write([]byte) (int, error) }
}

func (t *teeWriter) Write(p []byte) (int, error) {
	if _, err := t.a.Write(p); err != nil {
		return 0, err
	}
	return t.b.Write(p)
}

// daemonPID is the ferry process: pid itself, or the child GNU time (pid)
// started. Failing to find it, the whole process group is named.
func daemonPID(pid int, underTime bool) int {
	if !underTime {
		return pid
	}
	for range 100 {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
		if err != nil {
			break
		}
		if f := strings.Fields(string(b)); len(f) > 0 {
			if c, err := strconv.Atoi(f[0]); err == nil {
				return c
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	return -pid
}
