-- Incremental re-sync: which types a sync asked for changes only (`_lastUpdated`), and since when.
-- Never edit an applied migration: add a new file.

-- JSON {since, types} (domain::Incremental); NULL for a sync that read every type in full.
ALTER TABLE sync_jobs ADD COLUMN incremental TEXT;
