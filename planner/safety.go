package planner

import (
	"context"
	"errors"
	"fmt"
	"path"
	"strings"
	"sync"
)

// Safety keeps deletions to what a pass can prove it should make: nothing
// the excludes leave alone (unless DeleteExcluded), nothing under a
// directory where something failed in this pass, and never more than
// MaxDelete allows, counting the deletions of the delete phase and those
// that type changes make on their way. The planner, the workers and the
// delete phase of one pass share one Safety; its methods are safe for
// concurrent use.
type Safety struct {
	Target         string // named in refusals
	MaxDelete      MaxDelete
	DeleteExcluded bool
	// Excluded matches the job's exclude patterns against remote paths
	// (nil = none).
	Excluded func(rel string, isDir bool) bool
	// InSync counts the paths recorded in sync: the base of a percentage
	// limit.
	InSync func(ctx context.Context) (int64, error)

	mu sync.Mutex
	// failed are directories under which something failed in this pass
	// (the daemon: in this scan).
	failed map[string]bool

	// replacing serialises the removals of type changes: several items may
	// find the same path in their way.
	replacing     sync.Mutex
	replaceMu     sync.Mutex // guards used and refused, read outside replacing
	used, refused int64
}

// ErrKept says why a type change cannot remove what is in its way.
var ErrKept = errors.New("not replaced")

// ErrTooManyDeletes marks a refusal for the deletion limit.
var ErrTooManyDeletes = errors.New("more than the deletion limit allows")

// Failed notes that something under dir failed: deletions there wait.
func (s *Safety) Failed(dir string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failed == nil {
		s.failed = map[string]bool{}
	}
	s.failed[dir] = true
}

// Retry forgets the failures at or under dir ("" = everywhere). A daemon's
// scan calls it first: the scan plans every failed path under dir again,
// so a failure that persists is noted again, and one that was fixed no
// longer holds back the deletions next to it.
func (s *Safety) Retry(dir string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for d := range s.failed {
		if dir == "" || d == dir || strings.HasPrefix(d, dir+"/") {
			delete(s.failed, d)
		}
	}
}

// HeldBack reports whether p lies under a directory where something failed
// this pass: its deletion waits for a pass without errors there.
func (s *Safety) HeldBack(p string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for d := path.Dir(p); ; d = path.Dir(d) {
		if d == "." {
			d = ""
		}
		if s.failed[d] {
			return true
		}
		if d == "" {
			return false
		}
	}
}

// FailedUnder returns a directory at or under p where something failed
// this pass, "" when none.
func (s *Safety) FailedUnder(p string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	for d := range s.failed {
		if d == p || strings.HasPrefix(d, p+"/") {
			return d
		}
	}
	return ""
}

// Kept reports whether the remote path p is left alone whatever the
// source says: the excludes match it and DeleteExcluded is off.
func (s *Safety) Kept(p string, isDir bool) bool {
	return s.Excluded != nil && !s.DeleteExcluded && s.Excluded(p, isDir)
}

// Replacing serialises the removals of type changes; call the returned
// function when the removal is over.
func (s *Safety) Replacing() (done func()) {
	s.replacing.Lock()
	return s.replacing.Unlock
}

// Reserve checks that a type change may delete n more remote entries
// within the deletion limit; Replaced counts them as they go. It is called
// under Replacing. A refusal wraps ErrKept and ErrTooManyDeletes.
func (s *Safety) Reserve(ctx context.Context, n int64) error {
	if !s.MaxDelete.Set {
		return nil
	}
	total, err := s.InSync(ctx)
	if err != nil {
		return err
	}
	s.replaceMu.Lock()
	defer s.replaceMu.Unlock()
	if limit := s.MaxDelete.Limit(total); s.used+n > limit {
		s.refused++
		return fmt.Errorf("%w: refused: replacing it deletes %d remote entries, %w (%d: --max-delete, or max_delete in the config; %d were used this run); nothing was deleted", ErrKept, n, ErrTooManyDeletes, limit, s.used)
	}
	return nil
}

// Replaced counts one deletion a type change made.
func (s *Safety) Replaced() {
	s.replaceMu.Lock()
	defer s.replaceMu.Unlock()
	s.used++
}

// Reset starts a new pass's (or scan's) count of replacements.
func (s *Safety) Reset() {
	s.replaceMu.Lock()
	defer s.replaceMu.Unlock()
	s.used, s.refused = 0, 0
}

// Replacements are the deletions type changes made this pass, and those
// refused for the limit.
func (s *Safety) Replacements() (used, refused int64) {
	s.replaceMu.Lock()
	defer s.replaceMu.Unlock()
	return s.used, s.refused
}

// AllowDeletes checks the delete phase's n planned deletions against the
// limit, counting the replacements made already; the error is the
// refusal, naming the target and what to do.
func (s *Safety) AllowDeletes(ctx context.Context, n int64) error {
	if !s.MaxDelete.Set {
		return nil
	}
	total, err := s.InSync(ctx)
	if err != nil {
		return err
	}
	used, _ := s.Replacements()
	if limit := s.MaxDelete.Limit(total + n); n+used > limit {
		return fmt.Errorf("refused: %d deletions planned on %s (and %d made to replace paths whose type changed), %w (%d: --max-delete, or max_delete in the config); nothing was deleted (check the source, then raise the limit)", n, s.Target, used, ErrTooManyDeletes, limit)
	}
	return nil
}
