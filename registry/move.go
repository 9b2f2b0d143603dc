package registry

import (
	"context"
	"errors"
	"fmt"
	"unicode/utf8"

	"ferry/entry"
)

// ErrMoveTarget reports that the registry already holds rows at or under
// the new name of a directory move.
var ErrMoveTarget = errors.New("the new name is already recorded")

// ErrMoveSource reports that the old name of a directory move is not a
// directory recorded as made, or that deletions are planned under it (a
// scan took it for removed): its rows cannot simply follow the rename.
var ErrMoveSource = errors.New("the old name is not a directory ferry made, or deletions are planned under it")

// MovePrefix records that the directory from was renamed to to on the
// remote: the directory's row and every row under it are re-keyed to the
// new prefix, keeping what they say was shipped, in one transaction, so a
// crash leaves either the old names or the new ones; the Git stage's
// deletions and additions for the files that move are in it too. Rows a worker had
// claimed but not started become pending again, under their new names.
// It returns how many files moved. A registry already holding rows at or
// under to is refused with ErrMoveTarget, and one whose from is not a done
// directory or has deletions planned under it with ErrMoveSource; a refusal
// changes nothing.
func (j *Job) MovePrefix(ctx context.Context, from, to string) (int64, error) {
	if from == "" || to == "" || from == to {
		return 0, fmt.Errorf("registry: move %q to %q: %w", from, to, errors.New("not a move of a subdirectory"))
	}
	tx, err := j.db.sql.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("registry: move %q to %q: begin: %w", from, to, err)
	}
	defer tx.Rollback()
	// SQLite's substr counts characters, not bytes.
	fromN, toN := utf8.RuneCountInString(from), utf8.RuneCountInString(to)
	under := `(dir = ? OR substr(dir, 1, ?) = ?)`
	var n int64
	toDir, toName := split(to)
	err = tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM entry WHERE job = ? AND ((dir = ? AND name = ?) OR `+under+`)`,
		j.ID, toDir, toName, to, toN+1, to+"/").Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("registry: move %q to %q: %w", from, to, err)
	}
	if n > 0 {
		return 0, fmt.Errorf("registry: move %q to %q: %w", from, to, ErrMoveTarget)
	}
	fromDir, fromName := split(from)
	var ok, deleting int64
	err = tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM entry WHERE job = ? AND dir = ? AND name = ? AND is_dir = 1 AND state = ?`,
		j.ID, fromDir, fromName, entry.Done).Scan(&ok)
	if err == nil {
		err = tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM entry WHERE job = ? AND action = ? AND state IN (?, ?) AND `+under,
			j.ID, entry.Delete, entry.Pending, entry.Transferring, from, fromN+1, from+"/").Scan(&deleting)
	}
	if err != nil {
		return 0, fmt.Errorf("registry: move %q to %q: %w", from, to, err)
	}
	if ok == 0 || deleting > 0 {
		return 0, fmt.Errorf("registry: move %q to %q: %w", from, to, ErrMoveSource)
	}
	// For Git, a rename is a deletion at the old path and the same blob at
	// the new one, recorded with the move: a crash leaves both or neither.
	// A row under a non-empty prefix always has a non-empty dir.
	now := j.clock().UnixNano()
	gitMoved := `INSERT INTO git_pending (job, path, blob, exec, dirty_since, shipped_at, batch)
		SELECT job, dir || '/' || name, %s, COALESCE(NULLIF(dirty_since, 0), ?), ?, 0
		FROM entry WHERE job = ? AND is_dir = 0 AND git_blob != '' AND ` + under + gitUpsert
	if _, err := tx.ExecContext(ctx, fmt.Sprintf(gitMoved, "'', 0"), now, now, j.ID, from, fromN+1, from+"/"); err != nil {
		return 0, fmt.Errorf("registry: move %q to %q: %w", from, to, err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE entry SET dir = ?, name = ? WHERE job = ? AND dir = ? AND name = ?`,
		toDir, toName, j.ID, fromDir, fromName); err != nil {
		return 0, fmt.Errorf("registry: move %q to %q: %w", from, to, err)
	}
	err = tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM entry WHERE job = ? AND is_dir = 0 AND `+under,
		j.ID, from, fromN+1, from+"/").Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("registry: move %q to %q: %w", from, to, err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE entry SET dir = ? || substr(dir, ?),
		state = CASE WHEN state = ? THEN ? ELSE state END WHERE job = ? AND `+under,
		to, fromN+1, entry.Transferring, entry.Pending, j.ID, from, fromN+1, from+"/"); err != nil {
		return 0, fmt.Errorf("registry: move %q to %q: %w", from, to, err)
	}
	// Nothing was recorded under to before (ErrMoveTarget): what is there
	// now is what moved.
	if _, err := tx.ExecContext(ctx, fmt.Sprintf(gitMoved, "git_blob, git_exec"), now, now, j.ID, to, toN+1, to+"/"); err != nil {
		return 0, fmt.Errorf("registry: move %q to %q: %w", from, to, err)
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("registry: move %q to %q: commit: %w", from, to, err)
	}
	return n, nil
}
