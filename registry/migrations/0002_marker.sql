-- The registry's own identity, one row written at first open: the marker a
-- job writes at the root of its target names it, so another registry that
-- finds the marker knows the target is not its own.
CREATE TABLE registry_info (id TEXT NOT NULL);

-- What the job last wrote in its target's marker: the token, and the size
-- and mtime the marker had then (a stat that finds both unchanged proves the
-- token without reading the file). An empty token: no marker written yet.
ALTER TABLE job ADD COLUMN marker_token TEXT NOT NULL DEFAULT '';
ALTER TABLE job ADD COLUMN marker_size BIGINT NOT NULL DEFAULT -1;
ALTER TABLE job ADD COLUMN marker_mtime BIGINT NOT NULL DEFAULT 0;
