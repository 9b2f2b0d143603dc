package registry

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// The Git stage's records. A path's entry keeps the Git blob of the bytes
// last shipped there (entry.git_blob); each change of it is a git_pending
// row, written in the transaction that records the entry, so that a crash
// between shipping and committing leaves it for the next run. A batch
// takes rows into one commit and is kept, with its rows, until pushed: a
// crash between claim and commit finds the same batch again, and a push
// refused because the branch moved rebuilds the batch from its rows.
//
// One goroutine per job (the stage) calls the Git* methods; the writer and
// MovePrefix add rows concurrently, each in its own transaction.

// GitChange is one path of a batch: its shipped blob, or a deletion.
type GitChange struct {
	Path       string
	Blob       string // "" = deleted
	Exec       bool   // the file had an execute bit when the blob's bytes were read
	DirtySince int64  // unix ns the path first went out of sync
}

// Batch is one commit's worth of changes.
type Batch struct {
	ID          int64
	Created     time.Time
	Files       int
	Commit      string // "" until committed; "-" when its changes changed nothing (nothing to push)
	CommittedAt time.Time
	PushedAt    time.Time // zero until pushed
	Error       string    // the last failure to commit or push it
}

// GitStatus is what status shows of a job's Git stage.
type GitStatus struct {
	Waiting      int64     // paths shipped and not yet committed
	WaitingSince time.Time // when the oldest of them shipped; zero when none
	LastCommit   string
	LastCommitAt time.Time
	LastPushAt   time.Time
	LastError    string // of the newest batch a failure left; cleared by its commit or push
	Unpushed     int    // batches committed, not pushed
}

// GitWaiting returns how many paths wait for a commit (unbatched, or in a
// batch not committed yet) and when the oldest of them shipped: the stage
// commits a batch once it is full or that old. The ship date, not the
// first out-of-sync one: a path that failed for a day before it shipped
// would otherwise be committed the moment it did, alone.
//
// Batch 0 and the open batch are looked up in the queue's index, value by
// value: written "batch = 0 OR batch IN (...)", the query read every row
// of the job, the committed and unpushed ones too, each time the stage
// polls.
func (j *Job) GitWaiting(ctx context.Context) (int64, time.Time, error) {
	var n, oldest int64
	err := j.db.sql.QueryRowContext(ctx, `SELECT COUNT(DISTINCT path), COALESCE(MIN(shipped_at), 0) FROM git_pending
		WHERE job = ? AND batch IN (SELECT 0 UNION ALL SELECT id FROM git_batch WHERE job = ? AND commit_id = '')`, j.ID, j.ID).Scan(&n, &oldest)
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("registry: git waiting: %w", err)
	}
	return n, nsTime(oldest), nil
}

const batchCols = `id, created, files, commit_id, committed_at, pushed_at, error`

func scanBatch(row interface{ Scan(...any) error }) (Batch, error) {
	var b Batch
	var created, committed, pushed int64
	err := row.Scan(&b.ID, &created, &b.Files, &b.Commit, &committed, &pushed, &b.Error)
	b.Created, b.CommittedAt, b.PushedAt = nsTime(created), nsTime(committed), nsTime(pushed)
	return b, err
}

func nsTime(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns)
}

// GitOpenBatch returns the batch to commit next and its changes, oldest
// first-out-of-sync first. A batch not committed yet (a run died between
// taking it and committing it, or its commit failed) comes back as it
// was, with the same rows: what a commit holds never depends on when it
// is retried. Otherwise up to max unbatched paths are taken into a new
// batch. No path waiting: a zero Batch (ID 0) and no changes.
func (j *Job) GitOpenBatch(ctx context.Context, max int, now time.Time) (Batch, []GitChange, error) {
	if max <= 0 {
		return Batch{}, nil, fmt.Errorf("registry: git batch: %d files at most", max)
	}
	tx, err := j.db.sql.BeginTx(ctx, nil)
	if err != nil {
		return Batch{}, nil, fmt.Errorf("registry: git batch: %w", err)
	}
	defer tx.Rollback()
	b, err := scanBatch(tx.QueryRowContext(ctx, `SELECT `+batchCols+` FROM git_batch WHERE job = ? AND commit_id = '' ORDER BY id LIMIT 1`, j.ID))
	switch {
	case errors.Is(err, sql.ErrNoRows):
		res, err := tx.ExecContext(ctx, `INSERT INTO git_batch (job, created, files) VALUES (?, ?, 0)`, j.ID, now.UnixNano())
		if err != nil {
			return Batch{}, nil, fmt.Errorf("registry: git batch: %w", err)
		}
		if b.ID, err = res.LastInsertId(); err != nil {
			return Batch{}, nil, fmt.Errorf("registry: git batch: %w", err)
		}
		// The unbatched rows hold a path once (the key), so a batch does.
		res, err = tx.ExecContext(ctx, `UPDATE git_pending SET batch = ? WHERE rowid IN (
			SELECT rowid FROM git_pending WHERE job = ? AND batch = 0 ORDER BY dirty_since, path LIMIT ?)`, b.ID, j.ID, max)
		if err != nil {
			return Batch{}, nil, fmt.Errorf("registry: git batch: %w", err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return Batch{}, nil, fmt.Errorf("registry: git batch: %w", err)
		}
		if n == 0 {
			return Batch{}, nil, nil // rolled back: never an empty batch
		}
		if _, err := tx.ExecContext(ctx, `UPDATE git_batch SET files = ? WHERE id = ?`, n, b.ID); err != nil {
			return Batch{}, nil, fmt.Errorf("registry: git batch: %w", err)
		}
		b.Created, b.Files = time.Unix(0, now.UnixNano()), int(n)
	case err != nil:
		return Batch{}, nil, fmt.Errorf("registry: git batch: %w", err)
	}
	changes, err := gitChanges(ctx, tx, j.ID, b.ID)
	if err != nil {
		return Batch{}, nil, err
	}
	if err := tx.Commit(); err != nil {
		return Batch{}, nil, fmt.Errorf("registry: git batch: %w", err)
	}
	return b, changes, nil
}

// GitChanges returns a batch's changes (kept until it is pushed), to
// rebuild its commit on a branch that moved.
func (j *Job) GitChanges(ctx context.Context, batchID int64) ([]GitChange, error) {
	return gitChanges(ctx, j.db.sql, j.ID, batchID)
}

type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

func gitChanges(ctx context.Context, q querier, job, batchID int64) ([]GitChange, error) {
	rows, err := q.QueryContext(ctx, `SELECT path, blob, exec, dirty_since FROM git_pending WHERE job = ? AND batch = ? ORDER BY dirty_since, path`, job, batchID)
	if err != nil {
		return nil, fmt.Errorf("registry: git batch %d: %w", batchID, err)
	}
	defer rows.Close()
	var out []GitChange
	for rows.Next() {
		var c GitChange
		if err := rows.Scan(&c.Path, &c.Blob, &c.Exec, &c.DirtySince); err != nil {
			return nil, fmt.Errorf("registry: git batch %d: %w", batchID, err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("registry: git batch %d: %w", batchID, err)
	}
	return out, nil
}

// GitCommitted records the commit made of a batch. A batch committed but
// not pushed may be committed again (rebuilt on a branch that moved): the
// newer commit replaces the older.
func (j *Job) GitCommitted(ctx context.Context, batchID int64, commit string, at time.Time) error {
	if commit == "" {
		return fmt.Errorf("registry: git batch %d: committed without a commit id", batchID)
	}
	res, err := j.db.sql.ExecContext(ctx, `UPDATE git_batch SET commit_id = ?, committed_at = ?, error = '' WHERE id = ? AND job = ? AND pushed_at = 0`,
		commit, at.UnixNano(), batchID, j.ID)
	return oneBatch(res, err, batchID, "committed", "no such batch, or pushed already")
}

// GitPushed records that the batch's commit was pushed, and with it every
// earlier batch committed and not marked pushed yet: a push sends the
// commit's ancestors too. Their rows are dropped; the batches stay as the
// record of what was pushed when.
func (j *Job) GitPushed(ctx context.Context, batchID int64, at time.Time) error {
	tx, err := j.db.sql.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("registry: git batch %d pushed: %w", batchID, err)
	}
	defer tx.Rollback()
	var n int
	err = tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM git_batch WHERE id = ? AND job = ? AND commit_id != ''`, batchID, j.ID).Scan(&n)
	if err != nil {
		return fmt.Errorf("registry: git batch %d pushed: %w", batchID, err)
	}
	if n == 0 {
		return fmt.Errorf("registry: git batch %d pushed: no such batch, or not committed", batchID)
	}
	pushed := `SELECT id FROM git_batch WHERE job = ? AND id <= ? AND commit_id NOT IN ('', '-') AND pushed_at = 0`
	if _, err := tx.ExecContext(ctx, `DELETE FROM git_pending WHERE job = ? AND batch IN (`+pushed+`)`, j.ID, j.ID, batchID); err != nil {
		return fmt.Errorf("registry: git batch %d pushed: %w", batchID, err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE git_batch SET pushed_at = ?, error = '' WHERE id IN (`+pushed+`)`, at.UnixNano(), j.ID, batchID); err != nil {
		return fmt.Errorf("registry: git batch %d pushed: %w", batchID, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("registry: git batch %d pushed: %w", batchID, err)
	}
	return nil
}

// GitPushedThrough records that commit was pushed (found on the remote
// branch, say, after a run died between push and record): its batch and
// every earlier one are pushed.
func (j *Job) GitPushedThrough(ctx context.Context, commit string, at time.Time) error {
	var id int64
	err := j.db.sql.QueryRowContext(ctx, `SELECT id FROM git_batch WHERE job = ? AND commit_id = ? ORDER BY id DESC LIMIT 1`, j.ID, commit).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("registry: commit %s pushed: no batch made it", commit)
	}
	if err != nil {
		return fmt.Errorf("registry: commit %s pushed: %w", commit, err)
	}
	return j.GitPushed(ctx, id, at)
}

// GitFailed records why a batch could not be committed or pushed; status
// shows it until the batch's commit or push succeeds.
func (j *Job) GitFailed(ctx context.Context, batchID int64, msg string) error {
	res, err := j.db.sql.ExecContext(ctx, `UPDATE git_batch SET error = ? WHERE id = ? AND job = ?`, msg, batchID, j.ID)
	return oneBatch(res, err, batchID, "failed", "no such batch")
}

func oneBatch(res sql.Result, err error, id int64, what, none string) error {
	if err != nil {
		return fmt.Errorf("registry: git batch %d %s: %w", id, what, err)
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return fmt.Errorf("registry: git batch %d %s: %s", id, what, none)
	}
	return nil
}

// GitUnpushed returns the batches committed and not pushed, oldest first:
// what a start must push before anything else.
func (j *Job) GitUnpushed(ctx context.Context) ([]Batch, error) {
	rows, err := j.db.sql.QueryContext(ctx, `SELECT `+batchCols+` FROM git_batch WHERE job = ? AND commit_id NOT IN ('', '-') AND pushed_at = 0 ORDER BY id`, j.ID)
	if err != nil {
		return nil, fmt.Errorf("registry: git unpushed: %w", err)
	}
	defer rows.Close()
	var out []Batch
	for rows.Next() {
		b, err := scanBatch(rows)
		if err != nil {
			return nil, fmt.Errorf("registry: git unpushed: %w", err)
		}
		out = append(out, b)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("registry: git unpushed: %w", err)
	}
	return out, nil
}

// GitStatus returns the figures status shows of the stage.
func (j *Job) GitStatus(ctx context.Context) (GitStatus, error) {
	var s GitStatus
	var err error
	if s.Waiting, s.WaitingSince, err = j.GitWaiting(ctx); err != nil {
		return s, err
	}
	var committed, pushed int64
	err = j.db.sql.QueryRowContext(ctx, `SELECT
		COALESCE((SELECT commit_id FROM git_batch WHERE job = ?1 AND commit_id NOT IN ('', '-') ORDER BY id DESC LIMIT 1), ''),
		COALESCE((SELECT committed_at FROM git_batch WHERE job = ?1 AND commit_id NOT IN ('', '-') ORDER BY id DESC LIMIT 1), 0),
		COALESCE((SELECT MAX(pushed_at) FROM git_batch WHERE job = ?1), 0),
		COALESCE((SELECT error FROM git_batch WHERE job = ?1 AND error != '' ORDER BY id DESC LIMIT 1), ''),
		(SELECT COUNT(*) FROM git_batch WHERE job = ?1 AND commit_id NOT IN ('', '-') AND pushed_at = 0)`, j.ID).
		Scan(&s.LastCommit, &committed, &pushed, &s.LastError, &s.Unpushed)
	if err != nil {
		return s, fmt.Errorf("registry: git status: %w", err)
	}
	s.LastCommitAt, s.LastPushAt = nsTime(committed), nsTime(pushed)
	return s, nil
}
