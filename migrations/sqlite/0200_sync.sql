-- Sync: what a payer authorization is bound to, the refresh lease, the MULTIPLE re-sync schedule,
-- per-payer job limits, and the search keys the FHIR API reads.
-- Owner: [Sync]. Never edit an applied migration: add a new file.

-- The payer's FHIR base and token endpoint the tokens were issued for (a payer token only ever goes there).
ALTER TABLE authorizations ADD COLUMN payer_fhir_base TEXT;
ALTER TABLE authorizations ADD COLUMN payer_token_url TEXT;
-- JSON array of FHIR resource types to sync (`requestedResources`); '[]' means every type the endpoint offers.
ALTER TABLE authorizations ADD COLUMN resource_types TEXT NOT NULL DEFAULT '[]';
-- One refresh at a time per authorization, across instances: holder and expiry of the refresh lease.
ALTER TABLE authorizations ADD COLUMN refresh_lease_owner TEXT;
ALTER TABLE authorizations ADD COLUMN refresh_lease_until BIGINT;
-- MULTIPLE: when the next scheduled re-sync is due (NULL: none scheduled).
ALTER TABLE authorizations ADD COLUMN next_sync_at BIGINT;
CREATE INDEX authorizations_next_sync ON authorizations(next_sync_at);

-- The endpoint of a job's authorization, so the claim query can bound concurrent jobs per payer.
ALTER TABLE sync_jobs ADD COLUMN endpoint_id TEXT;
CREATE INDEX sync_jobs_endpoint ON sync_jobs(endpoint_id, status);

-- Search keys of a stored resource: `meta.lastUpdated` as Unix seconds (for "newest wins" and _lastUpdated),
-- and a JSON array of "system|code" tokens from identifier, type, category, code (system may be empty).
ALTER TABLE resources ADD COLUMN last_updated_at BIGINT;
ALTER TABLE resources ADD COLUMN search_tokens TEXT NOT NULL DEFAULT '[]';
CREATE INDEX resources_patient ON resources(authorization_id, resource_type, patient_ref);
