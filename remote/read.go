package remote

import (
	"context"
	"fmt"
	"io"
)

// Reader is implemented by a Conn that can read a small file back. ferry
// reads nothing it mirrors: it reads only its own marker at the root of the
// target, to learn which registry wrote the target last.
type Reader interface {
	// ReadSmall returns the content of path; a file larger than limit
	// bytes is an error (ErrTooLarge), not a truncated read.
	ReadSmall(ctx context.Context, path string, limit int64) ([]byte, error)
}

// ErrTooLarge reports a file ReadSmall refused to read whole.
var ErrTooLarge = fmt.Errorf("larger than expected")

// ReadLimited reads r whole unless it holds more than limit bytes.
func ReadLimited(r io.Reader, limit int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%w (more than %d bytes)", ErrTooLarge, limit)
	}
	return b, nil
}
