package planner

import (
	"fmt"
	"strconv"
	"strings"
)

// Conflict is the policy for a remote file that differs from what ferry
// last put there (someone else changed it).
type Conflict int

// The conflict policies.
const (
	KeepBoth  Conflict = iota // move the remote copy aside with a dated name, then write
	Overwrite                 // write over it
	Skip                      // leave it, report the path
)

// ParseConflict reads a --conflict value.
func ParseConflict(s string) (Conflict, error) {
	switch s {
	case "keep-both", "":
		return KeepBoth, nil
	case "overwrite":
		return Overwrite, nil
	case "skip":
		return Skip, nil
	}
	return 0, fmt.Errorf("conflict policy %q: want keep-both, overwrite or skip", s)
}

func (c Conflict) String() string {
	return [...]string{"keep-both", "overwrite", "skip"}[c]
}

// MaxDelete limits how much one run may delete: a count, or a percentage of
// the files ferry has on the remote.
type MaxDelete struct {
	N         int64
	Percent   float64
	IsPercent bool
	Set       bool
}

// ParseMaxDelete reads "N" or "P%".
func ParseMaxDelete(s string) (MaxDelete, error) {
	if s == "" {
		return MaxDelete{}, nil
	}
	if p, ok := strings.CutSuffix(s, "%"); ok {
		v, err := strconv.ParseFloat(p, 64)
		if err != nil || v < 0 || v > 100 {
			return MaxDelete{}, fmt.Errorf("max-delete %q: want a count or a percentage between 0%% and 100%%", s)
		}
		return MaxDelete{Percent: v, IsPercent: true, Set: true}, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return MaxDelete{}, fmt.Errorf("max-delete %q: want a count (e.g. 100) or a percentage (e.g. 5%%)", s)
	}
	return MaxDelete{N: n, Set: true}, nil
}

// Limit returns the most deletions allowed when total files are recorded.
func (m MaxDelete) Limit(total int64) int64 {
	if !m.Set {
		return -1
	}
	if m.IsPercent {
		return int64(m.Percent / 100 * float64(total))
	}
	return m.N
}
