package daemon

import (
	"time"

	"ferry/mirror"
)

// silence is when the job's server stopped answering, or zero while it
// answers: the live pool l has had work waiting on the server with no
// progress for longer than one timeout (a single slow reply is not
// silence). The pool's workers wait with capped back-off meanwhile, and
// nothing is counted against the files.
func (j *job) silence(l *mirror.Live) time.Time {
	if l == nil {
		return time.Time{}
	}
	since, d := l.Pool().Silence()
	if d <= j.mo.RemoteOpts.IOTimeout() {
		return time.Time{}
	}
	return since
}
