package mirror

import (
	"fmt"
	"io"
	"time"

	"ferry/planner"
	"ferry/remote"
)

// Summary is what a pass did, printed at the end of every run and, with
// --json, as a machine-readable object.
type Summary struct {
	Job          string    `json:"job"`
	Source       string    `json:"source"`
	Target       string    `json:"target"`
	Registry     string    `json:"registry"`
	DryRun       bool      `json:"dry_run,omitempty"`
	Started      time.Time `json:"started"`
	Ended        time.Time `json:"ended"`
	ListedRemote bool      `json:"listed_remote"`
	Recovered    int64     `json:"recovered,omitempty"` // entries a dead run left in flight
	// Marker says why the registry was not trusted this run (missing,
	// old-token, recreated, taken-over, new), with MarkerReason in words;
	// MarkerWritten that a new token was written at the end.
	Marker        string `json:"marker,omitempty"`
	MarkerReason  string `json:"marker_reason,omitempty"`
	MarkerWritten bool   `json:"marker_written,omitempty"`
	// GitCommits are the commits the Git stage made at the end of the run
	// (oldest first); GitError why it could not commit or push.
	GitCommits []string `json:"git_commits,omitempty"`
	GitError   string   `json:"git_error,omitempty"`

	Plan planner.Stats `json:"-"`

	Transferred int64     `json:"transferred"`
	Bytes       int64     `json:"bytes"`
	Touched     int64     `json:"touched"` // same bytes: only the remote mtime was set
	Adopted     int64     `json:"adopted"` // already identical on the remote: recorded, not sent
	Unchanged   int64     `json:"unchanged"`
	Deleted     int64     `json:"deleted"`
	Cleaned     int64     `json:"cleaned"` // temporary files of dead runs removed
	Conflicts   int64     `json:"conflicts"`
	Failed      int64     `json:"failed"`
	Failures    []Failure `json:"failures,omitempty"`
	ExitCode    int       `json:"exit_code"` // Options.ExitCode of the Outcome
	Outcome     Outcome   `json:"-"`
	Seconds     float64   `json:"seconds"`

	// SessionsLost counts sessions that ended under an item (a reset, a
	// 421, vsftpd's "500 OOPS", a timeout) and were redialed.
	SessionsLost int64 `json:"sessions_lost"`
}

// Failure is one path that did not make it, with the reason.
type Failure struct {
	Path     string `json:"path"`
	Error    string `json:"error"`
	Attempts int    `json:"attempts"`
}

// finish fills the derived fields.
func (s *Summary) finish() {
	s.Unchanged = s.Plan.Unchanged
	s.Seconds = s.Ended.Sub(s.Started).Seconds()
}

// WriteText prints the human summary.
func (s *Summary) WriteText(w io.Writer) {
	s.finish()
	d := s.Ended.Sub(s.Started).Round(time.Millisecond)
	if s.DryRun {
		fmt.Fprintf(w, "dry run: %d to upload (%s), %d to touch, %d directories to make, %d to delete, %d unchanged; nothing was changed\n",
			s.Plan.Uploads, remote.Bytes(s.Plan.UploadSize), s.Plan.Touches, s.Plan.Mkdirs, s.Plan.Deletes, s.Plan.Unchanged)
		return
	}
	if s.Transferred == 0 && s.Touched == 0 && s.Deleted == 0 && s.Failed == 0 && s.Adopted == 0 {
		fmt.Fprintf(w, "in sync: nothing to transfer (%d files unchanged) in %v\n", s.Unchanged, d)
	} else {
		rate := ""
		if secs := d.Seconds(); secs > 0 && s.Bytes > 0 {
			rate = fmt.Sprintf(", %s/s", remote.Bytes(int64(float64(s.Bytes)/secs)))
		}
		fmt.Fprintf(w, "transferred %d files (%s%s), touched %d, adopted %d, deleted %d, unchanged %d, failed %d in %v\n",
			s.Transferred, remote.Bytes(s.Bytes), rate, s.Touched, s.Adopted, s.Deleted, s.Unchanged, s.Failed, d)
	}
	if s.Marker != "" {
		fmt.Fprintf(w, "remote not taken on trust: %s; listed it and repaired what was gone\n", s.MarkerReason)
	}
	if s.SessionsLost > 0 {
		fmt.Fprintf(w, "sessions lost and redialed: %d\n", s.SessionsLost)
	}
	if s.Cleaned > 0 {
		fmt.Fprintf(w, "removed %d temporary files left by an interrupted run\n", s.Cleaned)
	}
	if s.Conflicts > 0 {
		fmt.Fprintf(w, "%d conflicts: remote files changed by someone else (see the log above)\n", s.Conflicts)
	}
	if s.Plan.Links > 0 {
		fmt.Fprintf(w, "skipped %d symbolic links\n", s.Plan.Links)
	}
	for _, e := range s.Plan.DirErrors {
		fmt.Fprintf(w, "unreadable: %v\n", e)
	}
	for _, f := range s.Failures {
		fmt.Fprintf(w, "failed: %s: %s (%d attempts)\n", f.Path, f.Error, f.Attempts)
	}
	if n := len(s.GitCommits); n > 0 {
		fmt.Fprintf(w, "git: %d commit%s, the last %s\n", n, map[bool]string{true: "", false: "s"}[n == 1], s.GitCommits[n-1])
	}
	if s.GitError != "" {
		fmt.Fprintf(w, "git: %s\n", s.GitError)
	}
}
