-- Lifecycle: when the sweep recorded a MULTIPLE→ONE_TIME downgrade in the audit trail, claimed with one
-- conditional update so that several instances record it exactly once.
-- Owner: [Lifecycle]. Never edit an applied migration: add a new file.
ALTER TABLE authorizations ADD COLUMN downgrade_recorded_at BIGINT;
