-- The Git stage. entry.git_blob is the Git object id of the bytes last
-- shipped to the path ('' = none known): what the path's next change is
-- compared with, and what a deletion or a directory rename takes out of
-- the tree.
ALTER TABLE entry ADD COLUMN git_blob TEXT NOT NULL DEFAULT '';

-- What was shipped and is not yet in a commit pushed: one row per path and
-- batch. Written in the same transaction as the entry, so a crash between
-- shipping and committing leaves the row for the next run. Batch 0 holds
-- what no batch has taken yet (a path appears there once); a path shipped
-- again while its batch is being committed gets a new batch-0 row, and the
-- batch's own row, the bytes it commits, never changes.
CREATE TABLE git_pending (
    job         INTEGER NOT NULL REFERENCES job(id),
    path        TEXT    NOT NULL,            -- relative, slash-separated
    blob        TEXT    NOT NULL,            -- Git object id; '' = a deletion
    dirty_since BIGINT  NOT NULL,            -- unix ns the path first went out of sync
    shipped_at  BIGINT  NOT NULL,            -- unix ns the row was first recorded
    batch       INTEGER NOT NULL DEFAULT 0,  -- git_batch.id; 0 = not in a batch yet
    PRIMARY KEY (job, path, batch)
);
-- Batches take paths oldest first-out-of-sync first.
CREATE INDEX git_pending_queue ON git_pending (job, batch, dirty_since);

-- One row per batch: its commit once made, and when it was pushed.
CREATE TABLE git_batch (
    id           INTEGER PRIMARY KEY,
    job          INTEGER NOT NULL REFERENCES job(id),
    created      BIGINT  NOT NULL,
    files        INTEGER NOT NULL,
    commit_id    TEXT    NOT NULL DEFAULT '', -- '' until committed
    committed_at BIGINT  NOT NULL DEFAULT 0,
    pushed_at    BIGINT  NOT NULL DEFAULT 0,  -- 0 = not pushed
    error        TEXT    NOT NULL DEFAULT ''  -- the last failure to commit or push it
);
CREATE INDEX git_batch_job ON git_batch (job, id);
