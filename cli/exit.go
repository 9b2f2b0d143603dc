package cli

import (
	"context"
	"errors"

	"ferry/mirror"
)

// The process's exit codes: the user-facing contract (DESIGN.md), which
// scripts and systemd units test. They are the CLI's; the engine reports
// outcomes (mirror.Outcome) and exitCode maps them.
const (
	exitOK          = 0   // the remote is an exact copy
	exitFailed      = 1   // some files failed; the rest is done
	exitUsage       = 2   // usage, config, connection or authentication error
	exitRefused     = 3   // refused for safety
	exitInterrupted = 130 // interrupted; the registry is saved
)

// exitCode is the exit code of an outcome.
func exitCode(o mirror.Outcome) int {
	switch o {
	case mirror.Complete:
		return exitOK
	case mirror.Partial:
		return exitFailed
	case mirror.Refused:
		return exitRefused
	case mirror.Interrupted:
		return exitInterrupted
	}
	return exitUsage
}

// exitOf is the exit code of a run's error: the outcome a *mirror.Error
// carries, exitInterrupted once ctx is done, and exitUsage for any other.
func exitOf(ctx context.Context, err error) int {
	code := exitOK
	var me *mirror.Error
	if errors.As(err, &me) {
		code = exitCode(me.Outcome)
	} else if err != nil {
		code = exitUsage
	}
	if ctx.Err() != nil {
		code = exitInterrupted
	}
	return code
}

// worseExit is the exit code that says more of two jobs' outcomes:
// interrupted, then usage/connection errors, refusals, failed files.
func worseExit(a, b int) int {
	rank := map[int]int{exitOK: 0, exitFailed: 1, exitRefused: 2, exitUsage: 3, exitInterrupted: 4}
	if rank[b] > rank[a] {
		return b
	}
	return a
}
