package sftp

import (
	"context"

	"ferry/remote"
)

var _ remote.Reader = (*Conn)(nil)

// ReadSmall reads a small file: open, read, close.
func (c *Conn) ReadSmall(ctx context.Context, p string, limit int64) ([]byte, error) {
	a, err := c.abs("read", p)
	if err != nil {
		return nil, err
	}
	var out []byte
	err = c.call(ctx, "read", p, func(s *session) error {
		f, err := s.sftp.Open(a)
		if err != nil {
			return err
		}
		defer f.Close()
		out, err = remote.ReadLimited(f, limit)
		return err
	})
	return out, err
}
