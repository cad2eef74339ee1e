-- Lifecycle: when the app was told (refresh_expired) that an authorization needs re-consent. NULL on a
-- NEEDS_REAUTH row means no one has sent the event and set its readable window yet: the sweep does it.
-- Owner: [Lifecycle]. Never edit an applied migration: add a new file.
ALTER TABLE authorizations ADD COLUMN reauth_notified_at BIGINT;
