package sftp

import (
	"errors"
	"io/fs"

	psftp "github.com/pkg/sftp"

	"ferry/remote"
)

// SFTP v3 status codes (draft-ietf-secsh-filexfer-02) that pkg/sftp does
// not normalise into os errors.
const (
	fxFailure        = 4 // OpenSSH's answer to ENOSPC, EDQUOT, EISDIR, ENOTEMPTY, ...
	fxNoConnection   = 6
	fxConnectionLost = 7
	fxOpUnsupported  = 8
)

// errNotDir is our own verdict (Mkdir over a file), not a server reply.
var errNotDir = errors.New("exists and is not a directory")

// isTransport reports whether err says the session is unusable rather than
// that the server refused one request: EOF, a network error, a closed
// channel, pkg/sftp's "connection lost". Anything the server answered with
// a status (or that pkg/sftp turned into an os error) leaves it usable.
func isTransport(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, psftp.ErrSSHFxConnectionLost) || errors.Is(err, psftp.ErrSSHFxNoConnection) {
		return true
	}
	var se *psftp.StatusError
	if errors.As(err, &se) {
		return se.Code == fxNoConnection || se.Code == fxConnectionLost
	}
	switch {
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, fs.ErrPermission), errors.Is(err, fs.ErrExist), errors.Is(err, errNotDir):
		return false
	}
	return true
}

// mapErr classifies an error the server replied with.
func mapErr(op, p string, err error) error {
	if err == nil {
		return nil
	}
	kind := remote.KindOther
	var se *psftp.StatusError
	switch {
	case errors.Is(err, fs.ErrNotExist):
		kind = remote.KindNotExist
	case errors.Is(err, fs.ErrPermission):
		kind = remote.KindPermission
	case errors.Is(err, fs.ErrExist), errors.Is(err, errNotDir):
		kind = remote.KindExist
	case errors.As(err, &se) && se.Code == fxOpUnsupported:
		kind = remote.KindUnsupported
	}
	return remote.Errorf(kind, op, p, err)
}
