-- The Git stage commits a file that had an execute bit when its bytes were
-- read (the same open that kept them) as mode 100755. entry.git_exec is
-- that bit for the bytes in entry.git_blob; git_pending.exec for the
-- row's version (0 for a deletion). Rows written before this migration
-- are 0: those files are committed as 100644 until they ship again.
ALTER TABLE entry ADD COLUMN git_exec INTEGER NOT NULL DEFAULT 0;
ALTER TABLE git_pending ADD COLUMN exec INTEGER NOT NULL DEFAULT 0;
