package testrig

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// process is one server binary that the rig may start several times (Kill
// then Restart) with the same argv and log file.
type process struct {
	argv    []string
	logPath string // stdout and stderr, appended across restarts

	mu  sync.Mutex
	cur *run
}

// run is one incarnation; done is closed once Wait has reaped it, after which
// its pid may belong to someone else and must not be signalled.
type run struct {
	cmd     *exec.Cmd
	done    chan struct{}
	waitErr error
}

func (r *run) exited() bool {
	select {
	case <-r.done:
		return true
	default:
		return false
	}
}

// start launches a new incarnation. Its own process group keeps terminal
// signals aimed at `go test` from reaching it before the rig's cleanup runs.
// Callers run on an ordinary goroutine: Pdeathsig fires when the forking OS
// thread exits, which Go only does for a goroutine that dies locked to it.
func (p *process) start() (*run, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cur != nil && !p.cur.exited() {
		return nil, errors.New("testrig: server is already running")
	}
	logf, err := os.OpenFile(p.logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("testrig: %w", err)
	}
	defer logf.Close() // the child holds its own descriptor
	cmd := exec.Command(p.argv[0], p.argv[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C"}
	// Pdeathsig: if the test binary is killed (go test -timeout, ^C), the
	// master must not linger holding the port; vsftpd sessions follow their
	// master, sshd sessions end with their clients, which die with us.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("testrig: start %s: %w", p.argv[0], err)
	}
	r := &run{cmd: cmd, done: make(chan struct{})}
	go func() {
		r.waitErr = cmd.Wait()
		close(r.done)
	}()
	p.cur = r
	return r, nil
}

// kill SIGKILLs the current incarnation and every process descending from
// it, then waits until the master is reaped. Killing is the point: tests use
// it to simulate a server crash, and a polite shutdown would flush state.
func (p *process) kill() error {
	p.mu.Lock()
	r := p.cur
	p.mu.Unlock()
	if r == nil {
		return nil
	}
	killTree(r)
	select {
	case <-r.done:
		return nil
	case <-time.After(10 * time.Second):
		return fmt.Errorf("testrig: %s (pid %d) did not die within 10s of SIGKILL", p.argv[0], r.cmd.Process.Pid)
	}
}

// killTree freezes before it kills: a stopped process cannot fork a new
// session or be reparented away from us while /proc is being scanned. It
// returns once every victim is dead (a zombie at most, which holds no
// sockets or files), so callers can rely on connections being reset.
func killTree(r *run) {
	root := r.cmd.Process.Pid
	masterAlive := !r.exited()
	if masterAlive {
		// Process.Signal goes through a pidfd, so it cannot hit a reused pid.
		_ = r.cmd.Process.Signal(syscall.SIGSTOP)
	}
	stopped := map[int]procStat{}
	for round := 0; round < 100; round++ {
		procs := scanProcs()
		fresh := 0
		for _, pid := range family(procs, root, masterAlive) {
			if _, ok := stopped[pid]; !ok {
				_ = syscall.Kill(pid, syscall.SIGSTOP)
				stopped[pid] = procs[pid]
				fresh++
			}
		}
		if fresh == 0 {
			break
		}
	}
	for pid := range stopped {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	_ = r.cmd.Process.Kill()

	deadline := time.Now().Add(5 * time.Second)
	for len(stopped) > 0 && time.Now().Before(deadline) {
		procs := scanProcs()
		for pid, was := range stopped {
			// Zombies count as dead; init reaps them once their parents are
			// gone. A different start time means the pid was reused.
			if now, ok := procs[pid]; !ok || now.state == 'Z' || now.start != was.start {
				delete(stopped, pid)
			}
		}
		if len(stopped) > 0 {
			time.Sleep(2 * time.Millisecond)
		}
	}
}

// family lists the processes that belong to the server rooted at pid root:
// its descendants, found through parent links because both vsftpd and sshd
// put each session in a new session/process group (setsid), and, as a safety
// net for helpers that did not, the members of the master's process group.
func family(procs map[int]procStat, root int, masterAlive bool) []int {
	// Once the master is reaped its pid may be reused: a live process with
	// that number is a stranger, and so are its children and its group.
	// (The master's own orphans were reparented, so no children are lost.)
	_, strangerHasPid := procs[root]
	useGroup := masterAlive || !strangerHasPid
	children := map[int][]int{}
	var queue []int
	for pid, st := range procs {
		children[st.ppid] = append(children[st.ppid], pid)
		if useGroup && st.pgid == root && pid != root {
			queue = append(queue, pid)
		}
	}
	if masterAlive {
		queue = append(queue, children[root]...)
	}
	seen := map[int]bool{}
	var out []int
	for len(queue) > 0 {
		pid := queue[0]
		queue = queue[1:]
		if seen[pid] || pid == root {
			continue
		}
		seen[pid] = true
		out = append(out, pid)
		queue = append(queue, children[pid]...)
	}
	return out
}

type procStat struct {
	state      byte
	ppid, pgid int
	start      uint64 // clock ticks after boot; tells a reused pid apart
}

// scanProcs reads the parent and group of every process; entries that vanish
// mid-scan are simply skipped.
func scanProcs() map[int]procStat {
	out := map[int]procStat{}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return out
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		data, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// The command name may contain spaces and parentheses; the fields
		// after the last ')' are "state ppid pgrp ..." with the start time
		// 20th (field 22 of proc(5)).
		i := bytes.LastIndexByte(data, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(data[i+1:]))
		if len(f) < 20 || len(f[0]) != 1 {
			continue
		}
		ppid, err1 := strconv.Atoi(f[1])
		pgid, err2 := strconv.Atoi(f[2])
		start, err3 := strconv.ParseUint(f[19], 10, 64)
		if err1 != nil || err2 != nil || err3 != nil {
			continue
		}
		out[pid] = procStat{state: f[0][0], ppid: ppid, pgid: pgid, start: start}
	}
	return out
}

// waitSessionsGone waits until the master has no child processes left, i.e.
// every session (including the rig's own readiness probe) has been reaped and
// uncounted; otherwise a max_per_ip=1 test could be refused by the probe.
func waitSessionsGone(r *run, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		if r.exited() || len(family(scanProcs(), r.cmd.Process.Pid, true)) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("testrig: sessions of pid %d still alive after %v", r.cmd.Process.Pid, timeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// logTail returns the end of a log file for error messages: the reason a
// server refused to start is nearly always in its last lines.
func logTail(path string, max int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	if len(data) > max {
		data = data[len(data)-max:]
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			data = data[i+1:]
		}
	}
	s := strings.TrimSpace(string(data))
	if s == "" {
		return "(log is empty)"
	}
	return s
}
