-- Several plans in one sitting: how many plans a Link session linked before the one in play (the patient chose
-- "Connect another plan" after each), and whether the authorization of the plan in play was an existing one
-- (the same plan and payer patient signed in again: reused, not duplicated).
-- Never edit an applied migration: add a new file.
ALTER TABLE link_sessions ADD COLUMN plans_linked BIGINT NOT NULL DEFAULT 0;
ALTER TABLE link_sessions ADD COLUMN authorization_reused BIGINT NOT NULL DEFAULT 0;
