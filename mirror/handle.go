package mirror

import (
	"context"
	"errors"

	"ferry/queue"
	"ferry/remote"
)

// handle makes one attempt at an item on a worker's connection: a
// directory rename is the session's (it re-keys the registry), everything
// else is the shipper's.
func (r *stages) handle(ctx context.Context, c remote.Conn, it queue.Item) error {
	if m := it.Move; m != nil && m.From.IsDir {
		err := r.moveDir(ctx, c, it)
		if errors.Is(err, errDirMoveFallback) {
			m.Err = err // not a failure: the caller settles the files instead
			return nil
		}
		return err
	}
	return r.ship.Handle(ctx, c, it)
}

// result takes an item's final outcome.
func (r *stages) result(it queue.Item, err error, attempts int) {
	if m := it.Move; m != nil && m.From.IsDir {
		// Its caller waits for the outcome and falls back on a failure.
		if err != nil {
			m.Err = err
		}
		close(m.Done)
		return
	}
	r.ship.Result(it, err, attempts)
}
