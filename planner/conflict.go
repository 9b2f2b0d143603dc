package planner

// Found is what a worker finds at a path on the remote just before it
// sends a file there, when the registry asks for a recheck.
type Found struct {
	Missing bool // nothing is there
	IsDir   bool // a directory stands where the source has a file
	// Same says the remote file has the local file's size and mtime (on a
	// remote that keeps mtimes; on one that does not, nothing is Same).
	Same bool
	// Ours says it is the copy ferry recorded shipping there; HashMatch
	// that the local bytes hash to what ferry shipped (read when Same).
	Ours      bool
	HashMatch bool
}

// Verdict is what to do about what a recheck found.
type Verdict int

// The verdicts.
const (
	Send       Verdict = iota // nothing in the way, or ferry's own copy: send
	ReplaceDir                // a directory in the way: remove it (under the delete rules), then send
	Adopt                     // already there: record it, send nothing
	// Someone else's copy, per the conflict policy:
	OverwriteTheirs // write over it (logged)
	SkipTheirs      // leave it; the path fails
	KeepTheirs      // move it aside under a conflict name, then send
)

// Decide settles what a recheck found. A remote file with the local size
// and mtime is adopted, unless it is ferry's own copy and the local bytes
// are not what was shipped (size and mtime are not proof enough then);
// ferry's own copy is overwritten; anyone else's goes to the policy.
func (c Conflict) Decide(f Found) Verdict {
	switch {
	case f.Missing:
		return Send
	case f.IsDir:
		return ReplaceDir
	case f.Same && (!f.Ours || f.HashMatch):
		return Adopt
	case f.Ours:
		return Send
	}
	switch c {
	case Overwrite:
		return OverwriteTheirs
	case Skip:
		return SkipTheirs
	}
	return KeepTheirs
}
