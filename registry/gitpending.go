package registry

import (
	"context"
	"database/sql"

	"ferry/entry"
)

// gitWrite is what a write of an entry does to the row's git_blob.
type gitWrite int

const (
	gitKeep gitWrite = iota // the row's blob stays
	gitShip                 // the entry's blob is the path's new version
	gitGone                 // the path holds no blob any more
)

// gitWriteOf says what writing e does to the row's blob. Only a verified
// upload changes what was shipped, so every other write keeps the row's
// blob: a plan made from a fresh struct, a claimed row failing, a
// rename's pending row at its new name (which carries the old name's blob
// before anything is there) would otherwise erase it or pre-empt it, and
// the path's later deletion or shipping would not reach Git. A Done write
// without a blob (a job without the stage, an adoption of identical
// bytes) keeps it too: a blob that may be out of date still lets a
// deletion reach Git; none would not. A directory holds no blob: once it
// is made, the file it replaced is gone.
func gitWriteOf(e entry.Entry) gitWrite {
	switch {
	case e.State != entry.Done:
		return gitKeep
	case e.IsDir:
		return gitGone
	case e.GitBlob != "":
		return gitShip
	}
	return gitKeep
}

// gitUpsert keeps one unbatched row per path: the latest version, and the
// first dates, so that a path that keeps changing keeps its place.
const gitUpsert = ` ON CONFLICT (job, path, batch) DO UPDATE SET blob = excluded.blob, exec = excluded.exec,
	dirty_since = MIN(dirty_since, excluded.dirty_since), shipped_at = MIN(shipped_at, excluded.shipped_at)`

// gitStmts are the pending-row writes of one writer transaction.
type gitStmts struct {
	added, remove *sql.Stmt
}

// shipped records blob, executable or not, as path's next version unless
// the row already has it (a touch, a recheck that found the bytes there).
// It runs before the entry's write, which it compares with. The path's
// first out-of-sync date is the write's, else the row's (a Done write has
// none), else now.
func (g *gitStmts) shipped(ctx context.Context, job int64, p, dir, name, blob string, exec bool, dirty, now int64) error {
	_, err := g.added.ExecContext(ctx, job, p, blob, dirty, now, dir, name, exec)
	return err
}

const gitAddedSQL = `INSERT INTO git_pending (job, path, blob, exec, dirty_since, shipped_at, batch)
	SELECT ?1, ?2, ?3, ?8, COALESCE(NULLIF(?4, 0), NULLIF(e.dirty_since, 0), ?5), ?5, 0
	FROM (SELECT 1) LEFT JOIN entry e ON e.job = ?1 AND e.dir = ?6 AND e.name = ?7
	WHERE ?3 != COALESCE(e.git_blob, '') OR ?8 != COALESCE(e.git_exec, 0)` + gitUpsert

// gone records path's deletion when its row has a blob: a path that never
// had one (a temporary file, a file never shipped, a directory) was never
// in a commit.
func (g *gitStmts) gone(ctx context.Context, job int64, p, dir, name string, now int64) error {
	_, err := g.remove.ExecContext(ctx, p, now, now, job, dir, name)
	return err
}

const gitRemoveSQL = `INSERT INTO git_pending (job, path, blob, exec, dirty_since, shipped_at, batch)
	SELECT job, ?, '', 0, COALESCE(NULLIF(dirty_since, 0), ?), ?, 0
	FROM entry WHERE job = ? AND dir = ? AND name = ? AND git_blob != ''` + gitUpsert
