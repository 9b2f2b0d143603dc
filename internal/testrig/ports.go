package testrig

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
)

// Ports are handed out in blocks below the kernel's ephemeral range
// (32768-60999 here): a vsftpd needs a listen port plus a passive range, and
// ports the kernel picks for outgoing connections would keep colliding with
// a passive range placed among them.
const (
	portLow    = 20000
	portHigh   = 32000
	blockWidth = 50 // base is the listen port, base+1 .. base+blockWidth-1 are passive ports
)

// portBlock is a range reserved for one server for as long as it exists. The
// reservation is an flock on a file in os.TempDir(), so parallel package
// processes never hand out the same block; the kernel drops it if the
// process dies.
type portBlock struct {
	base int
	lock *os.File
}

func (b *portBlock) listenPort() int       { return b.base }
func (b *portBlock) pasvRange() (int, int) { return b.base + 1, b.base + blockWidth - 1 }

func (b *portBlock) release() {
	if b != nil && b.lock != nil {
		b.lock.Close()
		b.lock = nil
	}
}

// reservePorts finds a block nobody in this or another rig process holds and
// whose listen port is bindable right now. A foreign program may still take
// it before the server binds; the callers retry on "address in use".
func reservePorts() (*portBlock, error) {
	dir := filepath.Join(os.TempDir(), "ferry-testrig-ports")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("testrig: %w", err)
	}
	n := (portHigh - portLow) / blockWidth
	start := rand.IntN(n)
	for i := 0; i < n; i++ {
		base := portLow + ((start+i)%n)*blockWidth
		f, err := os.OpenFile(filepath.Join(dir, strconv.Itoa(base)+".lock"), os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			return nil, fmt.Errorf("testrig: %w", err)
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			f.Close()
			if errors.Is(err, syscall.EWOULDBLOCK) {
				continue
			}
			return nil, fmt.Errorf("testrig: flock port block %d: %w", base, err)
		}
		ln, err := net.Listen("tcp", net.JoinHostPort(Host, strconv.Itoa(base)))
		if err != nil {
			f.Close()
			continue
		}
		ln.Close()
		return &portBlock{base: base, lock: f}, nil
	}
	return nil, fmt.Errorf("testrig: no free port block in %d-%d on %s", portLow, portHigh, Host)
}
