-- Repair mode: a Link session that renews an existing authorization's payer grant.
-- Never edit an applied migration: add a new file.

-- The authorization a repair session renews (set from its repair token when the session starts).
ALTER TABLE link_sessions ADD COLUMN repair_authorization_id TEXT;
-- When the authorization was last repaired (Unix s): each NEEDS_REAUTH episode after a repair is its own fact
-- (its webhook gets its own event_id).
ALTER TABLE authorizations ADD COLUMN repaired_at BIGINT;
