package remote

import (
	"context"
	"errors"
	"fmt"
)

// Kind classifies a remote failure independently of the protocol.
type Kind int

// The kinds every backend maps its errors onto.
const (
	KindOther       Kind = iota // permanent, unclassified
	KindNotExist                // the path does not exist
	KindExist                   // the path exists where it must not
	KindPermission              // the server refused the operation on this path
	KindAuth                    // login refused: wrong user, password or key
	KindHostKey                 // SSH host key unknown or changed
	KindTooMany                 // too many connections (FTP 421, 530 "too many")
	KindDiskFull                // no space left or quota exceeded (452, 552, ENOSPC)
	KindTransport               // connection refused, reset, timed out, closed
	KindUnsupported             // the server lacks the feature (e.g. setting mtimes)
	KindBusy                    // a transient server-side refusal (FTP 4xx)
)

// Sentinel errors, one per kind; match them with errors.Is.
var (
	ErrNotExist          = errors.New("does not exist")
	ErrExist             = errors.New("already exists")
	ErrPermission        = errors.New("permission denied")
	ErrAuth              = errors.New("authentication failed")
	ErrHostKey           = errors.New("host key not trusted")
	ErrTooMany           = errors.New("too many connections")
	ErrDiskFull          = errors.New("remote disk full")
	ErrTransport         = errors.New("connection failed")
	ErrUnsupported       = errors.New("not supported by the server")
	ErrBusy              = errors.New("server busy")
	errOther             = errors.New("remote error")
	kindSentinels        = map[Kind]error{KindNotExist: ErrNotExist, KindExist: ErrExist, KindPermission: ErrPermission, KindAuth: ErrAuth, KindHostKey: ErrHostKey, KindTooMany: ErrTooMany, KindDiskFull: ErrDiskFull, KindTransport: ErrTransport, KindUnsupported: ErrUnsupported, KindBusy: ErrBusy, KindOther: errOther}
	kindAdvice           = map[Kind]string{KindAuth: "check the user name and the password (FERRY_PASSWORD or password_file) or the key (identity_file, SSH agent)", KindTooMany: "the server caps connections per client; lower --workers", KindDiskFull: "free space or raise the quota on the server, then run again", KindTransport: "check that the server is up and reachable; ferry retries transient failures", KindPermission: "check the remote account's rights on this path"}
	_              error = (*Error)(nil)
)

// Error is a classified remote failure carrying the operation and the path.
type Error struct {
	Op   string // "put", "stat", "dial", ...
	Path string // path relative to the target root, or the URL for dial/login
	Kind Kind
	Err  error // the protocol's own error, kept for the message and errors.As
	// Advice, when set, replaces the default hint for the kind.
	Advice string
}

func (e *Error) Error() string {
	msg := e.Op
	if e.Path != "" {
		msg += " " + quotePath(e.Path)
	}
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	} else {
		msg += ": " + kindSentinels[e.Kind].Error()
	}
	advice := e.Advice
	if advice == "" {
		advice = kindAdvice[e.Kind]
	}
	if advice != "" {
		msg += " (" + advice + ")"
	}
	return msg
}

// Unwrap exposes both the kind's sentinel and the underlying error, so that
// errors.Is(err, ErrNotExist) and errors.As(err, &textproto.Error{}) both work.
func (e *Error) Unwrap() []error {
	s := kindSentinels[e.Kind]
	if e.Err == nil {
		return []error{s}
	}
	return []error{s, e.Err}
}

// Errorf builds a classified error; backends use it so every error carries
// its operation and path.
func Errorf(kind Kind, op, path string, err error) *Error {
	return &Error{Op: op, Path: path, Kind: kind, Err: err}
}

// KindOf returns the kind of err, KindOther when err is not classified.
// A cancelled context is reported as KindTransport only if it wraps one.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return KindOther
}

// IsTemporary reports whether retrying the same operation later may succeed:
// dropped connections, too many connections, transient 4xx refusals. A
// cancelled context is never temporary: the caller asked to stop.
func IsTemporary(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	switch KindOf(err) {
	case KindTransport, KindTooMany, KindBusy:
		return true
	}
	return false
}

// quotePath keeps odd names (spaces, leading dashes) readable in messages.
func quotePath(p string) string {
	return fmt.Sprintf("%q", p)
}

// TempLeftError reports a failed upload whose temporary file could not be
// removed (the connection died with it). The caller records Temp, relative
// to the target root, so that a later pass removes it.
type TempLeftError struct {
	Temp       string
	Err        error // why the upload failed
	CleanupErr error // why the removal failed
}

func (e *TempLeftError) Error() string {
	return fmt.Sprintf("%v; the temporary file %q is left on the server until the next pass removes it: %v", e.Err, e.Temp, e.CleanupErr)
}

// Unwrap returns the upload's failure, so its kind decides retries.
func (e *TempLeftError) Unwrap() error { return e.Err }

// Bytes renders a byte count for people ("1.5 MiB"), in messages and
// summaries alike.
func Bytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
