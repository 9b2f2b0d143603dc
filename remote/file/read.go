package file

import (
	"context"
	"os"

	"ferry/remote"
)

var _ remote.Reader = (*Conn)(nil)

// ReadSmall reads a small file.
func (c *Conn) ReadSmall(ctx context.Context, p string, limit int64) ([]byte, error) {
	a, err := c.abs("read", p)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(a)
	if err != nil {
		return nil, mapErr("read", p, err)
	}
	defer f.Close()
	b, err := remote.ReadLimited(remote.ContextReader(ctx, f), limit)
	if err != nil {
		return nil, mapErr("read", p, err)
	}
	return b, nil
}
