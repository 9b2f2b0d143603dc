package testrig

import (
	"errors"
	"fmt"
	"syscall"
	"time"
)

// freeze SIGSTOPs the server's master and every session process it forked
// (vsftpd's per-session pairs, sshd's per-connection children): their
// sockets stay open and the kernel still accepts connections into the
// listen backlog, but nothing answers — a hung server, not a dead one. The
// master is stopped first so it cannot fork while /proc is scanned. It
// returns the pids stopped, for thaw.
func (d *daemon) freeze() (map[int]procStat, error) {
	d.proc.mu.Lock()
	r := d.proc.cur
	d.proc.mu.Unlock()
	if r == nil || r.exited() {
		return nil, errors.New("testrig: freeze: the server is not running")
	}
	if err := r.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		return nil, fmt.Errorf("testrig: freeze: %w", err)
	}
	stopped := map[int]procStat{}
	for round := 0; round < 100; round++ {
		procs := scanProcs()
		fresh := 0
		for _, pid := range family(procs, r.cmd.Process.Pid, true) {
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
	return stopped, nil
}

// thaw SIGCONTs what freeze stopped, skipping pids that were reused since.
func (d *daemon) thaw(stopped map[int]procStat) error {
	d.proc.mu.Lock()
	r := d.proc.cur
	d.proc.mu.Unlock()
	procs := scanProcs()
	for pid, was := range stopped {
		if now, ok := procs[pid]; ok && now.start == was.start {
			_ = syscall.Kill(pid, syscall.SIGCONT)
		}
	}
	if r != nil && !r.exited() {
		return r.cmd.Process.Signal(syscall.SIGCONT)
	}
	return nil
}

// killSession SIGKILLs one session process (a child of the master) and its
// descendants, as when the server drops one client's session; the master
// and the other sessions go on. It returns the pid killed.
func (d *daemon) killSession() (int, error) {
	d.proc.mu.Lock()
	r := d.proc.cur
	d.proc.mu.Unlock()
	if r == nil || r.exited() {
		return 0, errors.New("testrig: kill session: the server is not running")
	}
	root := r.cmd.Process.Pid
	procs := scanProcs()
	for pid, st := range procs {
		if st.ppid != root || st.state == 'Z' {
			continue
		}
		victims := append([]int{pid}, family(procs, pid, true)...)
		for _, v := range victims {
			_ = syscall.Kill(v, syscall.SIGKILL)
		}
		return pid, nil
	}
	return 0, errors.New("testrig: kill session: no session is open")
}

// Frozen is a server stopped by Freeze; Thaw resumes it.
type Frozen struct {
	d       *daemon
	stopped map[int]procStat
}

// Thaw resumes every process Freeze stopped.
func (f *Frozen) Thaw() error { return f.d.thaw(f.stopped) }

// Settle waits until every session has ended: a resumed session first
// runs what its client sent before it stopped (an upload to a temporary
// name, say), then sees that the client is gone. Call it once no client
// is connected.
func (f *Frozen) Settle(timeout time.Duration) error {
	f.d.proc.mu.Lock()
	r := f.d.proc.cur
	f.d.proc.mu.Unlock()
	if r == nil {
		return nil
	}
	return waitSessionsGone(r, timeout)
}

// Freeze stops vsftpd and all its sessions (SIGSTOP): connections stay
// open and nothing answers, until Thaw.
func (s *FTPServer) Freeze() (*Frozen, error) {
	st, err := s.freeze()
	return &Frozen{d: &s.daemon, stopped: st}, err
}

// KillSession kills one vsftpd session (both of its processes); the
// client sees its control connection drop.
func (s *FTPServer) KillSession() (int, error) { return s.killSession() }

// Freeze stops sshd and every per-connection process (SIGSTOP): connections
// stay open and nothing answers, until Thaw.
func (s *SSHServer) Freeze() (*Frozen, error) {
	st, err := s.freeze()
	return &Frozen{d: &s.daemon, stopped: st}, err
}
