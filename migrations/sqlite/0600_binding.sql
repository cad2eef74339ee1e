-- Every Link flow bound to the browser that started it (RFC 6749 §10.12, RFC 9700 §4.7): a session keeps the
-- SHA-256 of its binder (a 256-bit value only that browser holds), a payer authorization request the hash of
-- the hand-off value set in the payer window's cookie, and what the payer's callback `iss` must be (RFC 9207).
-- Never edit an applied migration: add a new file.
ALTER TABLE link_sessions ADD COLUMN binder_hash TEXT;
ALTER TABLE payer_auth_requests ADD COLUMN binder_hash TEXT;
-- The `issuer` of the payer's discovered metadata, when it gave one (compared exactly with `iss`).
ALTER TABLE payer_auth_requests ADD COLUMN issuer TEXT;
-- The origin of the authorize URL the patient was sent to (an `iss` must have it when no issuer is known).
ALTER TABLE payer_auth_requests ADD COLUMN authorize_origin TEXT;
-- 1 when the payer's metadata says it always sends `iss` (authorization_response_iss_parameter_supported).
ALTER TABLE payer_auth_requests ADD COLUMN iss_required BIGINT NOT NULL DEFAULT 0;
-- Voiding a session's outstanding requests, and the purge of expired ones.
CREATE INDEX payer_auth_requests_session ON payer_auth_requests(link_session_id);
CREATE INDEX payer_auth_requests_expiry ON payer_auth_requests(expires_at);
CREATE INDEX link_sessions_expiry ON link_sessions(expires_at);
