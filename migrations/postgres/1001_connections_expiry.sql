-- Expiry awareness: the payer grant end an `authorization.pending_expiration` webhook was sent for (a new grant
-- end arms it again). Never edit an applied migration: add a new file.
ALTER TABLE authorizations ADD COLUMN pending_expiration_sent_for BIGINT;
CREATE INDEX authorizations_refresh_expiry ON authorizations(payer_refresh_expires_at);
