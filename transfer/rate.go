package transfer

import (
	"sync"
	"time"
)

// rateMeter keeps a running estimate of one connection's upload rate,
// from files big enough for the rate to show through the round trips.
type rateMeter struct {
	mu  sync.Mutex
	bps float64 // bytes per second; 0 = not measured yet
}

func (m *rateMeter) note(size int64, took time.Duration) {
	if size < 256<<10 || took <= 0 {
		return
	}
	v := float64(size) / took.Seconds()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.bps == 0 {
		m.bps = v
	} else {
		m.bps = 0.8*m.bps + 0.2*v
	}
}

func (m *rateMeter) get() float64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.bps
}
