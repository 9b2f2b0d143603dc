-- One row per mirrored tree.
CREATE TABLE job (
    id        INTEGER PRIMARY KEY,
    name      TEXT    NOT NULL UNIQUE,
    source    TEXT    NOT NULL,
    target    TEXT    NOT NULL,
    listed_at BIGINT  NOT NULL DEFAULT 0 -- unix ns of the last complete remote listing; 0 = never
);

-- One row per path ferry knows, split into parent directory and name so that
-- a scan compares one directory at a time.
CREATE TABLE entry (
    job          INTEGER NOT NULL REFERENCES job(id),
    dir          TEXT    NOT NULL, -- parent, relative, '' for the root
    name         TEXT    NOT NULL,
    is_dir       INTEGER NOT NULL DEFAULT 0,
    local_size   BIGINT  NOT NULL DEFAULT -1, -- what the local file was when last settled
    local_mtime  BIGINT  NOT NULL DEFAULT 0,  -- unix ns
    remote_size  BIGINT  NOT NULL DEFAULT -1, -- what ferry last put on the remote; -1 = never
    remote_mtime BIGINT  NOT NULL DEFAULT 0,
    hash         TEXT    NOT NULL DEFAULT '', -- sha256 of the bytes last shipped
    state        INTEGER NOT NULL,            -- see State in registry.go
    action       INTEGER NOT NULL DEFAULT 0,  -- see Action in registry.go
    lane         INTEGER NOT NULL DEFAULT 0,  -- weight lane of the pending action
    attempts     INTEGER NOT NULL DEFAULT 0,
    last_error   TEXT    NOT NULL DEFAULT '',
    dirty_since  BIGINT  NOT NULL DEFAULT 0,  -- unix ns the path first went out of sync
    recheck      INTEGER NOT NULL DEFAULT 0,  -- 1: a run died while shipping it; stat the remote first
    PRIMARY KEY (job, dir, name)
);
CREATE INDEX entry_queue ON entry (job, state, lane, dirty_since);

-- One row per run, with its totals.
CREATE TABLE run (
    id          INTEGER PRIMARY KEY,
    job         INTEGER NOT NULL REFERENCES job(id),
    started     BIGINT  NOT NULL,
    ended       BIGINT  NOT NULL DEFAULT 0,
    planned     BIGINT  NOT NULL DEFAULT 0,
    transferred BIGINT  NOT NULL DEFAULT 0,
    skipped     BIGINT  NOT NULL DEFAULT 0,
    deleted     BIGINT  NOT NULL DEFAULT 0,
    failed      BIGINT  NOT NULL DEFAULT 0,
    bytes       BIGINT  NOT NULL DEFAULT 0,
    exit_code   INTEGER NOT NULL DEFAULT -1,
    git_commit  TEXT    NOT NULL DEFAULT ''
);
