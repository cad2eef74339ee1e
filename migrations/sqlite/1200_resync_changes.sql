-- Re-sync: what each sync changed, and which sync last saw each stored resource.
-- Never edit an applied migration: add a new file.

-- JSON {added, updated, unchanged, removed} of a job (domain::SyncChanges).
ALTER TABLE sync_jobs ADD COLUMN changes TEXT NOT NULL DEFAULT '{}';
-- The sync job that last received (or found referenced) this resource: a fully fetched type's rows that the
-- latest job did not see are the ones the payer no longer returns.
ALTER TABLE resources ADD COLUMN sync_job_id TEXT;
