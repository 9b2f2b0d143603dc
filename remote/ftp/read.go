package ftp

import (
	"context"
	"errors"

	jftp "github.com/jlaffaye/ftp"

	"ferry/remote"
)

var _ remote.Reader = (*Conn)(nil)

// ReadSmall reads a small file with RETR.
func (c *Conn) ReadSmall(ctx context.Context, rel string, limit int64) ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	abs, err := c.abs("read", rel)
	if err != nil {
		return nil, err
	}
	var out []byte
	err = c.do(ctx, "read", rel, func(sc *jftp.ServerConn) error {
		resp, err := sc.Retr(abs)
		if err != nil {
			return err
		}
		b, rerr := remote.ReadLimited(resp, limit)
		// Close reads the server's 226: the transfer is only complete
		// (and the control connection in step) once it came.
		if cerr := resp.Close(); rerr == nil {
			rerr = cerr
		}
		out = b
		return rerr
	})
	if errors.Is(err, remote.ErrTooLarge) {
		return nil, remote.Errorf(remote.KindOther, "read", rel, err)
	}
	return out, err
}
