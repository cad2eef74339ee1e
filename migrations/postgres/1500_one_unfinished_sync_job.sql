-- At most one unfinished (pending, syncing or delayed) sync job per authorization, kept by the database. Two
-- instances queueing a re-sync of one authorization at once on PostgreSQL (READ COMMITTED) could each insert a job
-- past the other's `NOT EXISTS`, and two syncs of one authorization would then run side by side, each removing the
-- resources the other had marked as seen.
-- Never edit an applied migration: add a new file.

-- Duplicates queued before this migration. Per authorization one unfinished job stays: a started one (attempt > 0)
-- before one never started, then the oldest, then the lowest id. A started duplicate ends as failed (SYNC_FAILED);
-- one never started holds nothing and is removed.
UPDATE sync_jobs SET status = 'failed', exit_code = 'SYNC_FAILED', finished_at = updated_at, lease_owner = NULL, lease_until = NULL
WHERE status IN ('pending', 'syncing', 'delayed') AND attempt > 0 AND EXISTS (
    SELECT 1 FROM sync_jobs n
    WHERE n.authorization_id = sync_jobs.authorization_id AND n.id <> sync_jobs.id
      AND n.status IN ('pending', 'syncing', 'delayed') AND n.attempt > 0
      AND (n.created_at < sync_jobs.created_at OR (n.created_at = sync_jobs.created_at AND n.id < sync_jobs.id)));

DELETE FROM sync_jobs
WHERE status IN ('pending', 'syncing', 'delayed') AND attempt = 0 AND EXISTS (
    SELECT 1 FROM sync_jobs n
    WHERE n.authorization_id = sync_jobs.authorization_id AND n.id <> sync_jobs.id
      AND n.status IN ('pending', 'syncing', 'delayed')
      AND (n.attempt > 0 OR n.created_at < sync_jobs.created_at OR (n.created_at = sync_jobs.created_at AND n.id < sync_jobs.id)));

CREATE UNIQUE INDEX sync_jobs_one_unfinished ON sync_jobs(authorization_id) WHERE status IN ('pending', 'syncing', 'delayed');
