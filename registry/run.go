package registry

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Run is one pass of a job, with its totals.
type Run struct {
	ID          int64
	Started     time.Time
	Ended       time.Time
	Planned     int64
	Transferred int64
	Skipped     int64
	Deleted     int64
	Failed      int64
	Bytes       int64
	ExitCode    int    // -1 while running, or when the run died
	GitCommit   string // the last commit the run's Git stage made; "" = none
}

// StartRun records the start of a run.
func (j *Job) StartRun(ctx context.Context, now time.Time) (*Run, error) {
	res, err := j.db.sql.ExecContext(ctx, `INSERT INTO run(job, started) VALUES (?, ?)`, j.ID, now.UnixNano())
	if err != nil {
		return nil, fmt.Errorf("registry: start run: %w", err)
	}
	id, err := res.LastInsertId()
	if err != nil {
		return nil, err
	}
	return &Run{ID: id, Started: now, ExitCode: -1}, nil
}

// EndRun records a run's totals and exit code. It runs even when ctx is
// cancelled: an interrupted run still records what it did.
func (j *Job) EndRun(r *Run) error {
	_, err := j.db.sql.ExecContext(context.Background(), `UPDATE run SET ended = ?, planned = ?, transferred = ?, skipped = ?, deleted = ?, failed = ?, bytes = ?, exit_code = ?, git_commit = ? WHERE id = ?`,
		r.Ended.UnixNano(), r.Planned, r.Transferred, r.Skipped, r.Deleted, r.Failed, r.Bytes, r.ExitCode, r.GitCommit, r.ID)
	if err != nil {
		return fmt.Errorf("registry: end run %d: %w", r.ID, err)
	}
	return nil
}

// LastRun returns the most recent run before the current one, or nil.
func (j *Job) LastRun(ctx context.Context, before int64) (*Run, error) {
	var r Run
	var started, ended int64
	err := j.db.sql.QueryRowContext(ctx, `SELECT id, started, ended, planned, transferred, skipped, deleted, failed, bytes, exit_code, git_commit FROM run WHERE job = ? AND id < ? ORDER BY id DESC LIMIT 1`, j.ID, before).
		Scan(&r.ID, &started, &ended, &r.Planned, &r.Transferred, &r.Skipped, &r.Deleted, &r.Failed, &r.Bytes, &r.ExitCode, &r.GitCommit)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("registry: last run: %w", err)
	}
	r.Started, r.Ended = time.Unix(0, started), time.Unix(0, ended)
	return &r, nil
}
