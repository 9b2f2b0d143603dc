package testrig

import (
	"errors"
	"os"
	"sync"
	"time"
)

// daemon is the lifecycle shared by both servers: a rig directory, a port
// block and a process that can be killed and relaunched on the same port.
type daemon struct {
	dir   string
	ports *portBlock
	proc  *process

	mu      sync.Mutex
	stopped bool
}

// startLoop reserves ports, lets configure write the port-dependent files and
// launches; it moves to a new block only when the bind itself lost a race.
func (d *daemon) startLoop(configure func(port int) error, launch func() error) error {
	var err error
	for attempt := 0; ; attempt++ {
		if d.ports, err = reservePorts(); err != nil {
			return err
		}
		if err = configure(d.ports.listenPort()); err != nil {
			return err
		}
		if err = launch(); err == nil || !errors.Is(err, errPortBusy) || attempt == 4 {
			return err
		}
		d.ports.release()
	}
}

func (d *daemon) kill() error {
	if d.proc == nil {
		return nil
	}
	return d.proc.kill()
}

func (d *daemon) restart(launch func() error) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.stopped {
		return errors.New("testrig: Restart after Stop")
	}
	if err := d.kill(); err != nil {
		return err
	}
	return launch()
}

func (d *daemon) stop() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.stopped {
		return nil
	}
	d.stopped = true
	err := d.kill()
	d.ports.release()
	if d.dir != "" {
		if rerr := os.RemoveAll(d.dir); rerr != nil && err == nil {
			err = rerr
		}
	}
	return err
}

// WaitSessionsGone waits until the server has no session left: once a
// client is killed, its sessions notice the closed connections, log what
// they received and exit, so a test that reads the server's log after this
// sees everything the dead client sent.
func (d *daemon) WaitSessionsGone(timeout time.Duration) error {
	if d.proc == nil {
		return errors.New("testrig: server not started")
	}
	d.proc.mu.Lock()
	r := d.proc.cur
	d.proc.mu.Unlock()
	if r == nil {
		return errors.New("testrig: server not started")
	}
	return waitSessionsGone(r, timeout)
}
