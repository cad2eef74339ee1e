-- Lifecycle: why an authorization ended, when its data was expunged, the payer-refresh schedule,
-- the webhook outbox's lease and dead-letter marks, connections-page grants, and an append-only audit trail.
-- Owner: [Lifecycle]. Never edit an applied migration: add a new file.

-- Why the authorization is in its state (e.g. `one_time_expired`, `revoked_by_patient`, `payer_refused_refresh`):
-- the API answers 401 with it.
ALTER TABLE authorizations ADD COLUMN state_reason TEXT;
-- When resources and payer tokens were destroyed (NULL while the data is kept).
ALTER TABLE authorizations ADD COLUMN expunged_at BIGINT;
-- Earliest time of the next payer-refresh attempt after a transient failure (NULL: follow the token expiry).
ALTER TABLE authorizations ADD COLUMN refresh_after BIGINT;
CREATE INDEX authorizations_sweep ON authorizations(state, expunge_at);

-- Webhook outbox: one instance at a time holds a row while delivering it; `dead_at` after the last attempt.
ALTER TABLE webhook_deliveries ADD COLUMN lease_owner TEXT;
ALTER TABLE webhook_deliveries ADD COLUMN lease_until BIGINT;
ALTER TABLE webhook_deliveries ADD COLUMN dead_at BIGINT;
ALTER TABLE webhook_deliveries ADD COLUMN last_status BIGINT;
CREATE INDEX webhook_deliveries_due ON webhook_deliveries(delivered_at, dead_at, next_attempt_at);

-- Short-lived grants to open the connections page for one user of one app (token stored as a SHA-256 hash).
CREATE TABLE connections_grants (
    token_hash  TEXT PRIMARY KEY,
    app_id      TEXT NOT NULL REFERENCES apps(id),
    mode        TEXT NOT NULL,
    external_id TEXT NOT NULL,
    expires_at  BIGINT NOT NULL,
    created_at  BIGINT NOT NULL
);

CREATE INDEX audit_events_authorization ON audit_events(authorization_id);

-- The audit trail is append-only: the database itself refuses to change or delete a record.
CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'audit_events is append-only');
END;
CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'audit_events is append-only');
END;
