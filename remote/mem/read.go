package mem

import (
	"context"
	"fmt"

	"ferry/remote"
)

var _ remote.Reader = (*conn)(nil)

// ReadSmall returns a copy of the file at p; it counts as a "read" call.
func (c *conn) ReadSmall(ctx context.Context, p string, limit int64) ([]byte, error) {
	k, err := c.enter(ctx, "read", p)
	if err != nil {
		return nil, err
	}
	m := c.fs
	m.mu.Lock()
	defer m.mu.Unlock()
	n := m.walk(k)
	if n == nil {
		return nil, notExist("read", p)
	}
	if n.dir {
		return nil, remote.Errorf(remote.KindOther, "read", p, errIsDir)
	}
	if int64(len(n.data)) > limit {
		return nil, remote.Errorf(remote.KindOther, "read", p, fmt.Errorf("%w (more than %d bytes)", remote.ErrTooLarge, limit))
	}
	return append([]byte{}, n.data...), nil
}
