package remote

import (
	"context"
	"errors"
	"net"
	"syscall"
)

// ErrNoAnswer marks a failure where the server did not answer at all (a
// timeout, a refused or unreachable address), as opposed to one where it
// answered by ending the session. It is also the cause a caller gives when
// it cancels work because the server has been silent too long: backends
// then skip the cleanup that would only wait on the same silent server.
var ErrNoAnswer = errors.New("the server did not answer")

// Unreachable reports whether err says the server could not be reached or
// did not answer within the timeout: the whole server is out, so the
// failure is not the fault of the file being sent. A cancelled context is
// never one: the caller asked to stop.
func Unreachable(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	if errors.Is(err, ErrNoAnswer) || errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.EHOSTUNREACH) || errors.Is(err, syscall.ENETUNREACH) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// SessionLost reports whether err ended the session rather than refused one
// operation: a dropped or reset connection, a timeout, or a reply after
// which the server hangs up (421, vsftpd's "500 OOPS"). The backend redials
// on the next call; the operation is worth retrying on the new session.
func SessionLost(err error) bool {
	return err != nil && KindOf(err) == KindTransport &&
		!errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded)
}

// GivenUp reports whether ctx was cancelled because the server stopped
// answering (its cause wraps ErrNoAnswer): work on the same server, such as
// removing a temporary file, would only wait out another timeout.
func GivenUp(ctx context.Context) bool {
	return ctx.Err() != nil && errors.Is(context.Cause(ctx), ErrNoAnswer)
}
