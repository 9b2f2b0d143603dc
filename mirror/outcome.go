package mirror

import "fmt"

// Outcome says how a pass, or a daemon's scan, ended. The CLI turns it into
// the process's exit code; the engine only says what happened.
type Outcome int

// The outcomes, from best to worst for a pass that ran.
const (
	Complete    Outcome = iota // the remote is an exact copy of the source
	Partial                    // some paths failed; the rest is done
	Aborted                    // the pass could not run or go on: usage, source, connection or registry
	Refused                    // refused for safety; nothing unsafe was done
	Interrupted                // stopped by a signal; the registry is saved
)

var outcomeNames = [...]string{"complete", "partial", "aborted", "refused", "interrupted"}

func (o Outcome) String() string {
	if o < 0 || int(o) >= len(outcomeNames) {
		return fmt.Sprintf("outcome(%d)", int(o))
	}
	return outcomeNames[o]
}

// Error carries the outcome a failure stands for.
type Error struct {
	Outcome Outcome
	Err     error
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

func fail(o Outcome, format string, args ...any) *Error {
	return &Error{Outcome: o, Err: fmt.Errorf(format, args...)}
}
