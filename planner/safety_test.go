package planner

import (
	"context"
	"errors"
	"testing"
)

func TestDecide(t *testing.T) {
	theirs := Found{} // a file someone else wrote, not the local bytes
	cases := []struct {
		name   string
		found  Found
		policy Conflict
		want   Verdict
	}{
		{"nothing there", Found{Missing: true}, KeepBoth, Send},
		{"a directory in the way", Found{IsDir: true}, Skip, ReplaceDir},
		{"same size and mtime, not ours: adopted", Found{Same: true}, KeepBoth, Adopt},
		{"same, ours, bytes as shipped: adopted", Found{Same: true, Ours: true, HashMatch: true}, KeepBoth, Adopt},
		{"same, ours, other bytes: sent again", Found{Same: true, Ours: true}, Skip, Send},
		{"ours, changed locally: overwritten", Found{Ours: true}, Skip, Send},
		{"theirs, keep-both", theirs, KeepBoth, KeepTheirs},
		{"theirs, overwrite", theirs, Overwrite, OverwriteTheirs},
		{"theirs, skip", theirs, Skip, SkipTheirs},
	}
	for _, c := range cases {
		if got := c.policy.Decide(c.found); got != c.want {
			t.Errorf("%s: Decide(%+v) with %v = %v, want %v", c.name, c.found, c.policy, got, c.want)
		}
	}
}

func TestSafetyHeldBack(t *testing.T) {
	var s Safety
	s.Failed("a/b")
	cases := []struct {
		path      string
		held      bool
		failedDir string // FailedUnder(path)
	}{
		{"a/b/x.txt", true, ""},
		{"a/b/c/y.txt", true, ""},
		{"a/z.txt", false, ""},
		{"a", false, "a/b"},
		{"a/b", false, "a/b"},
		{"ab/x.txt", false, ""},
	}
	for _, c := range cases {
		if got := s.HeldBack(c.path); got != c.held {
			t.Errorf("HeldBack(%q) = %v, want %v", c.path, got, c.held)
		}
		if got := s.FailedUnder(c.path); got != c.failedDir {
			t.Errorf("FailedUnder(%q) = %q, want %q", c.path, got, c.failedDir)
		}
	}
	s.Retry("a")
	if s.HeldBack("a/b/x.txt") {
		t.Error("a retry under a still holds a/b back")
	}
	s.Failed("")
	if !s.HeldBack("anything") {
		t.Error("a failure at the root holds nothing back")
	}
}

func TestSafetyLimit(t *testing.T) {
	ctx := context.Background()
	inSync := int64(10)
	s := Safety{Target: "sftp://h/x", InSync: func(context.Context) (int64, error) { return inSync, nil }}
	if err := s.AllowDeletes(ctx, 1000); err != nil {
		t.Fatalf("no limit set: %v", err)
	}
	s.MaxDelete, _ = ParseMaxDelete("3")
	done := s.Replacing()
	if err := s.Reserve(ctx, 2); err != nil {
		t.Fatalf("reserve 2 of 3: %v", err)
	}
	s.Replaced()
	s.Replaced()
	err := s.Reserve(ctx, 2)
	done()
	if !errors.Is(err, ErrTooManyDeletes) || !errors.Is(err, ErrKept) {
		t.Fatalf("reserve 2 more past 3: %v", err)
	}
	if used, refused := s.Replacements(); used != 2 || refused != 1 {
		t.Fatalf("replacements = %d used, %d refused; want 2, 1", used, refused)
	}
	if err := s.AllowDeletes(ctx, 1); err != nil {
		t.Fatalf("1 deletion after 2 replacements, limit 3: %v", err)
	}
	if err := s.AllowDeletes(ctx, 2); !errors.Is(err, ErrTooManyDeletes) {
		t.Fatalf("2 deletions after 2 replacements, limit 3: %v", err)
	}
	s.Reset()
	if err := s.AllowDeletes(ctx, 3); err != nil {
		t.Fatalf("3 deletions after a reset: %v", err)
	}
	s.MaxDelete, _ = ParseMaxDelete("50%")
	if err := s.AllowDeletes(ctx, 10); err != nil { // half of 10 in sync + 10 planned
		t.Fatalf("10 of 20 at 50%%: %v", err)
	}
	if err := s.AllowDeletes(ctx, 11); err == nil {
		t.Fatal("11 of 21 at 50% allowed")
	}
	s.Excluded = func(p string, dir bool) bool { return p == "keep.log" }
	if !s.Kept("keep.log", false) || s.Kept("other", false) {
		t.Fatal("Kept does not follow the excludes")
	}
	s.DeleteExcluded = true
	if s.Kept("keep.log", false) {
		t.Fatal("Kept ignores DeleteExcluded")
	}
}
