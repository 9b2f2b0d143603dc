package registry

import (
	"context"
	"database/sql"
	"fmt"
)

// writerStmts are the statements every writer flush runs, prepared once
// per registry: preparing them in each transaction was a sixth of the
// writer's time on a first mirror of small files (SQLite parses and plans
// each one). A transaction binds them with Tx.StmtContext, which reuses
// what was prepared on its connection.
type writerStmts struct {
	put, cur, del, gitAdded, gitRemove *sql.Stmt
}

const (
	putSQL = `INSERT OR REPLACE INTO entry (job, ` + entryCols + `) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?,
		CASE WHEN ? THEN COALESCE((SELECT git_blob FROM entry WHERE job = ? AND dir = ? AND name = ?), '') ELSE ? END,
		CASE WHEN ? THEN COALESCE((SELECT git_exec FROM entry WHERE job = ? AND dir = ? AND name = ?), 0) ELSE ? END)`
	curSQL = `SELECT is_dir, remote_size, remote_mtime, hash, state, lane FROM entry WHERE job = ? AND dir = ? AND name = ?`
	delSQL = `DELETE FROM entry WHERE job = ? AND dir = ? AND name = ?`
)

// writerStmts prepares the writer's statements on first use. It must not
// be called inside a transaction of db: the registry has one connection.
func (db *DB) writerStmts(ctx context.Context) (*writerStmts, error) {
	db.stmtMu.Lock()
	defer db.stmtMu.Unlock()
	if db.ws != nil {
		return db.ws, nil
	}
	var ws writerStmts
	for _, s := range []struct {
		dst **sql.Stmt
		q   string
	}{{&ws.put, putSQL}, {&ws.cur, curSQL}, {&ws.del, delSQL}, {&ws.gitAdded, gitAddedSQL}, {&ws.gitRemove, gitRemoveSQL}} {
		st, err := db.sql.PrepareContext(ctx, s.q)
		if err != nil {
			for _, done := range []*sql.Stmt{ws.put, ws.cur, ws.del, ws.gitAdded, ws.gitRemove} {
				if done != nil {
					done.Close()
				}
			}
			return nil, fmt.Errorf("registry: prepare: %w", err)
		}
		*s.dst = st
	}
	db.ws = &ws
	return db.ws, nil
}
