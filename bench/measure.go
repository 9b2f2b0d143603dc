package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Sample is one timed run of one tool.
type Sample struct {
	Rep       int     `json:"rep"`
	WallS     float64 `json:"wall_s"`
	MaxRSSKiB int64   `json:"max_rss_kib"` // the child's ru_maxrss (and its reaped helpers'); -1 unknown
	ExitCode  int     `json:"exit_code"`
	OK        bool    `json:"ok"`              // exited 0 and the remote tree matched the source
	Error     string  `json:"error,omitempty"` // why it is not OK
	// Uploads is the number of files the server logged as uploaded during
	// the run (vsftpd only; -1 when the server cannot count).
	Uploads int64 `json:"uploads"`
	// Transferred is what ferry's --json summary says it sent (-1 for
	// other tools).
	Transferred int64  `json:"transferred"`
	Log         string `json:"log,omitempty"` // the run's output, kept in the work directory
	// Commits is what a run of ferry with its Git stage added to the
	// repository's branch (nil for the other rows).
	Commits *int64 `json:"commits,omitempty"`
}

// invocation is one child process to run: argv plus extra environment.
type invocation struct {
	argv   []string
	env    []string // added to the bench's own environment
	secret string   // a password that appears in argv, hidden when shown
}

// String renders the command line for logs and the report, with the
// password replaced so that results files can be published.
func (inv invocation) String() string {
	s := strings.Join(inv.argv, " ")
	if inv.secret != "" {
		s = strings.ReplaceAll(s, inv.secret, "***")
	}
	return s
}

// maxLogBytes bounds each run's log file: rclone prints one line per file on
// vsftpd ("SetModTime is not supported") and a dry run prints its whole plan.
const maxLogBytes = 1 << 20

// runChild runs inv, timing it from start to exit, and reads the child's
// peak RSS from the kernel's rusage. stdout and stderr go to logPath (capped);
// the returned tail holds the end of stdout for parsing ferry's --json.
//
// With timeBin (GNU time) set, the child runs under it and the peak RSS is
// the one time reports. That matters: Go starts children with vfork, so the
// mm a child execs from is the bench's own, and Linux carries that mm's
// high-water mark into the child's ru_maxrss. Without time, every tool would
// seem to use at least as much memory as the bench itself. time fork()s the
// tool from its own small process, and its %M is the tool's alone.
func runChild(ctx context.Context, inv invocation, logPath string, timeout time.Duration, timeBin string) (Sample, []byte) {
	s := Sample{Uploads: -1, Transferred: -1, Log: logPath}
	logf, err := os.Create(logPath)
	if err != nil {
		s.Error = fmt.Sprintf("create log: %v", err)
		s.ExitCode = -1
		return s, nil
	}
	defer logf.Close()
	fmt.Fprintf(logf, "$ %s\n", inv)
	capped := &cappedWriter{w: logf, left: maxLogBytes}
	out := &tailBuffer{max: 256 << 10}
	errTail := &tailBuffer{max: 4 << 10}

	argv := inv.argv
	rssFile := ""
	if timeBin != "" {
		rssFile = logPath + ".rss"
		argv = append([]string{timeBin, "-q", "-f", "%M", "-o", rssFile, "--"}, argv...)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), inv.env...)
	cmd.Stdout = io.MultiWriter(capped, out)
	cmd.Stderr = io.MultiWriter(capped, errTail)
	// A process group, so that a timeout also ends lftp's ssh helper.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second

	start := time.Now()
	err = cmd.Run()
	s.WallS = time.Since(start).Seconds()
	if ps := cmd.ProcessState; ps != nil {
		if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
			s.MaxRSSKiB = ru.Maxrss // KiB on Linux
		}
		s.ExitCode = ps.ExitCode()
	} else {
		s.ExitCode = -1
	}
	if rssFile != "" {
		s.MaxRSSKiB = -1
		if b, err := os.ReadFile(rssFile); err == nil {
			f := strings.Fields(string(b))
			if len(f) > 0 {
				if kib, err := strconv.ParseInt(f[len(f)-1], 10, 64); err == nil {
					s.MaxRSSKiB = kib
				}
			}
		}
		os.Remove(rssFile)
	}
	switch {
	case ctx.Err() == context.DeadlineExceeded:
		s.Error = fmt.Sprintf("timed out after %v", timeout)
	case err != nil:
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			s.Error = fmt.Sprintf("exit status %d: %s", s.ExitCode, lastLines(errTail.Bytes(), out.Bytes(), 3))
		} else {
			s.Error = fmt.Sprintf("run %s: %v", filepath.Base(inv.argv[0]), err)
		}
	default:
		s.OK = true
	}
	fmt.Fprintf(logf, "\n# exit %d, %.3f s, max RSS %d KiB\n", s.ExitCode, s.WallS, s.MaxRSSKiB)
	return s, out.Bytes()
}

// lastLines picks the last few non-empty lines of stderr (or stdout when
// stderr is empty), which is where every tool says why it failed.
func lastLines(stderr, stdout []byte, n int) string {
	b := stderr
	if len(bytes.TrimSpace(b)) == 0 {
		b = stdout
	}
	var lines []string
	for _, l := range strings.Split(string(b), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	if len(lines) == 0 {
		return "(no output)"
	}
	return strings.Join(lines, " | ")
}

// cappedWriter writes up to left bytes and then swallows the rest, noting
// once that it did.
type cappedWriter struct {
	w    io.Writer
	left int
	cut  bool
}

func (c *cappedWriter) Write(p []byte) (int, error) {
	if c.left <= 0 {
		if !c.cut {
			c.cut = true
			_, _ = io.WriteString(c.w, "\n[... output cut ...]\n")
		}
		return len(p), nil
	}
	q := p
	if len(q) > c.left {
		q = q[:c.left]
	}
	c.left -= len(q)
	if _, err := c.w.Write(q); err != nil {
		return 0, err
	}
	return len(p), nil
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	max int
	buf []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.buf = append(t.buf, p...)
	if len(t.buf) > 2*t.max {
		t.buf = append(t.buf[:0], t.buf[len(t.buf)-t.max:]...)
	}
	return len(p), nil
}

// Bytes returns the kept tail.
func (t *tailBuffer) Bytes() []byte {
	if len(t.buf) > t.max {
		return t.buf[len(t.buf)-t.max:]
	}
	return t.buf
}

// Spread is a median with its range.
type Spread struct {
	Median float64 `json:"median"`
	Min    float64 `json:"min"`
	Max    float64 `json:"max"`
	N      int     `json:"n"`
}

// spread summarises xs; N is 0 when xs is empty.
func spread(xs []float64) Spread {
	if len(xs) == 0 {
		return Spread{}
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	m := s[len(s)/2]
	if len(s)%2 == 0 {
		m = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return Spread{Median: m, Min: s[0], Max: s[len(s)-1], N: len(s)}
}
