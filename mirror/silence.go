package mirror

import (
	"errors"
	"fmt"

	"ferry/transfer"
)

// poolErr names the server in a pool's give-up on a silent server, and
// says what becomes of the work it abandoned.
func (r *stages) poolErr(err error) error {
	var se *transfer.SilentError
	if !errors.As(err, &se) {
		return err
	}
	return fmt.Errorf("server %s (%s) silent: %w; gave up after server_patience (%v); what was in flight is sent by the next run",
		r.o.Target.Addr(), r.o.Target, err, r.o.patience())
}
