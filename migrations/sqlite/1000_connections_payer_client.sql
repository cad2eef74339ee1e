-- What a sync could not fetch and what it cost, and the retry window of our own rotated refresh tokens.
-- Never edit an applied migration: add a new file.

-- JSON array of {type, reason}: types whose paging stopped early (a repeated `next`, the page cap).
ALTER TABLE sync_jobs ADD COLUMN incomplete TEXT NOT NULL DEFAULT '[]';
-- JSON object of counters: retries, page-size reductions, rate-limit waits and the seconds they asked for.
ALTER TABLE sync_jobs ADD COLUMN stats TEXT NOT NULL DEFAULT '{}';

-- A spent refresh token keeps the answer its use produced, sealed with the token key (AES-GCM), for the
-- short grace window in which a network retry gets that same answer again; the sweep clears it after.
ALTER TABLE tokens ADD COLUMN reissue_enc BLOB;
ALTER TABLE tokens ADD COLUMN reissue_key_id TEXT;
CREATE INDEX tokens_reissue ON tokens(used_at) WHERE reissue_enc IS NOT NULL;
