// Package entry owns the vocabulary of a mirrored path shared by every stage:
// what a listing says of a remote path (FileInfo), the names ferry gives its
// temporary uploads and conflict copies, and what the registry records of a
// path (Entry, with its State and pending Action).
//
// It sits below every other package of ferry and imports none of them, so a
// stage that only needs to speak of a path does not have to depend on the
// registry's database or on the remote layer's connections to do so.
package entry

import "strconv"

// Entry is what the registry knows of one path.
type Entry struct {
	Path  string // relative, slash-separated
	IsDir bool

	LocalSize  int64 // -1 = unknown
	LocalMtime int64 // unix ns

	RemoteSize  int64 // what ferry last put; -1 = never
	RemoteMtime int64 // unix ns
	Hash        string
	// GitBlob is the Git object id of the bytes last shipped, written from
	// the upload's own read when the job has a Git stage ("" otherwise).
	// A Done entry whose GitBlob changes, or a forgotten entry that had
	// one, is what the Git stage commits next.
	GitBlob string
	// GitExec says the file had an execute bit when GitBlob's bytes were
	// read (by the same open): the Git stage commits it as 100755.
	GitExec bool

	State      State
	Action     Action
	Lane       int
	Attempts   int
	LastError  string
	DirtySince int64
	Recheck    bool
}

// Shipped reports whether ferry ever put this path on the remote.
func (e *Entry) Shipped() bool { return e.RemoteSize >= 0 || (e.IsDir && e.State == Done) }

// MarkDone records that the path is in sync: its action is carried out
// (or was found already done), so nothing about an attempt stays.
func (e *Entry) MarkDone() {
	e.State, e.LastError, e.Attempts, e.DirtySince, e.Recheck = Done, "", 0, 0, false
}

// MarkFailed records that the path's action gave up after attempts more
// tries, with err the last reason; the next run tries again.
func (e *Entry) MarkFailed(attempts int, err error) {
	e.State, e.Attempts, e.LastError = Failed, e.Attempts+attempts, err.Error()
}

// Defer puts the path's action back to wait, in its lane, for a later
// pass (a deletion held back after a failure near it).
func (e *Entry) Defer() { e.State = Pending }

// KeepDir records a remote directory ferry was to delete but keeps (it
// holds something ferry keeps, such as a conflict copy): in sync, as a
// directory ferry made.
func (e *Entry) KeepDir() { e.State, e.Action, e.Lane = Done, Mkdir, 0 }

// The lanes of a pending entry: 0 and up are the queue's weight lanes (by
// size); the negative ones are phases, which no claim of a weight lane
// takes.
const (
	// LaneDeletes holds deletions until every upload of the pass is done.
	LaneDeletes = -1
	// LaneDirDeletes holds directory deletions, which can only go once
	// their content has.
	LaneDirDeletes = -2
	// LaneLive holds what the daemon queued from a live change: the live
	// queue has it in memory, so no claim takes it; after a crash the next
	// scan finds it pending and plans it again.
	LaneLive = -3
)

// State is where a path stands.
type State int

// The states of a path. A path moves pending → transferring → done, or to
// failed with its attempts and last error.
const (
	Pending      State = 1 // out of sync: an action is waiting
	Transferring State = 2 // claimed by a worker
	Done         State = 3 // verified on the remote
	Failed       State = 4 // gave up; retried by the next run
	// Stale is an upload or touch an earlier session left unfinished
	// (pending, in flight or failed). No claim takes it: it waits until
	// this session's planner settles the path again and makes it pending,
	// so a path is planned, shipped and counted once per pass.
	Stale State = 5
)

func (s State) String() string {
	switch s {
	case Pending:
		return "pending"
	case Transferring:
		return "transferring"
	case Done:
		return "done"
	case Failed:
		return "failed"
	case Stale:
		return "stale"
	}
	return "state(" + strconv.Itoa(int(s)) + ")"
}

// Action is what a pending path needs.
type Action int

// The actions.
const (
	Upload  Action = 0 // send the local file
	Delete  Action = 1 // remove the remote copy (only with --delete)
	Mkdir   Action = 2 // make the remote directory
	Touch   Action = 3 // same bytes, new mtime: set the remote mtime only
	Cleanup Action = 4 // remove a temporary file a dead run left on the remote
)

func (a Action) String() string {
	switch a {
	case Upload:
		return "upload"
	case Delete:
		return "delete"
	case Mkdir:
		return "mkdir"
	case Touch:
		return "touch"
	case Cleanup:
		return "cleanup"
	}
	return "action(" + strconv.Itoa(int(a)) + ")"
}
