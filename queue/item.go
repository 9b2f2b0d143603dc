package queue

import (
	"context"

	"ferry/entry"
)

// Lanes is the number of weight lanes.
const Lanes = 4

// laneLimits are the upper size bounds of lanes 0..2; lane 3 takes the rest.
var laneLimits = [Lanes - 1]int64{64 << 10, 1 << 20, 32 << 20}

// LaneOf returns the weight lane of an item of size bytes.
func LaneOf(size int64) int {
	for i, lim := range laneLimits {
		if size < lim {
			return i
		}
	}
	return Lanes - 1
}

// Item is one unit of work.
type Item struct {
	Path       string
	Size       int64 // bytes to move; chooses the lane
	DirtySince int64 // unix ns the path first went out of sync
	High       bool  // live edit
	// Waited says another item of this path was in flight while this one
	// was queued: what that one shipped may be what this one means to
	// ship, so the handler should compare with the remote first.
	Waited bool
	// Entry is the path's recorded entry: its Action says what to do. The
	// queue does not look at it.
	Entry entry.Entry
	// Move, when set, renames the remote copy of a path the user moved
	// instead of sending it again.
	Move *Move
}

// Move is a queued rename of what ferry shipped under an old name. For a
// directory the caller waits for the outcome: the worker sets Renamed,
// Files and Err, then closes Done.
type Move struct {
	From    entry.Entry // what ferry recorded under the old name
	Renamed bool
	Files   int64 // rows re-keyed under the new name
	Err     error
	Done    chan struct{}
}

// Source supplies bulk work from where it is stored.
type Source interface {
	// Claim takes up to n pending items of one lane, oldest first, and
	// marks them as being worked on.
	Claim(ctx context.Context, lane, n int) ([]Item, error)
}
