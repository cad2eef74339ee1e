-- Insights: every step of every Link session (link_events, purged with the session), how far each session got
-- and how it ended (link_outcomes, the funnel's unit, kept after the session for --insights-retention-days),
-- the operator console's one-time sign-ins. No health data anywhere here. (Endpoints an operator disabled: 0800.)
-- Never edit an applied migration: add a new file.

-- The public id of a session (`lsn_…`): what the integrator API, the `link.events` webhook and the funnel name
-- it by. Unlike the session's own id (a bearer value in the hosted flow's URL) it grants nothing.
ALTER TABLE link_sessions ADD COLUMN public_id TEXT;
CREATE UNIQUE INDEX link_sessions_public_id ON link_sessions(public_id);

-- One row per step a patient took (or the server took for them), in order. Deleted with its session.
CREATE TABLE link_events (
    seq               INTEGER PRIMARY KEY AUTOINCREMENT,  -- insertion order
    session_public_id TEXT NOT NULL REFERENCES link_sessions(public_id) ON DELETE CASCADE,
    app_id            TEXT NOT NULL,
    name              TEXT NOT NULL,                      -- OPEN, CONSENT_GIVEN, HANDOFF, ... (LinkEventName)
    step              TEXT NOT NULL,                      -- the session's step where it happened (LinkStep)
    endpoint_id       TEXT,                               -- the plan in play, if any
    exit_code         TEXT,                               -- ERROR and EXIT: the exit code
    detail            TEXT NOT NULL DEFAULT '{}',         -- JSON, non-health metadata (e.g. the payer's error code)
    at                BIGINT NOT NULL
);
CREATE INDEX link_events_session ON link_events(session_public_id, seq);
CREATE INDEX link_events_name_at ON link_events(name, at);

-- How far one Link session got and how it ended: the first time it reached each stage of the funnel, its last
-- plan, and its ending. Outlives the session (no id that can act, no externalId); purged after
-- --insights-retention-days.
CREATE TABLE link_outcomes (
    public_id     TEXT PRIMARY KEY,                       -- the session's public id
    app_id        TEXT NOT NULL,
    mode          TEXT NOT NULL,
    endpoint_id   TEXT,                                   -- the last plan chosen
    opened_at     BIGINT NOT NULL,
    consented_at  BIGINT,
    chosen_at     BIGINT,                                 -- a plan chosen (or given by the integrator)
    handed_off_at BIGINT,                                 -- sent to the plan's sign-in
    authorized_at BIGINT,                                 -- the plan authorized
    succeeded_at  BIGINT,                                 -- ended with success
    ended_at      BIGINT,                                 -- ended without success
    exit_code     TEXT,
    exit_step     TEXT,                                   -- the step where the ending arose
    reported_at   BIGINT,                                 -- the link.events webhook was queued
    updated_at    BIGINT NOT NULL
);
CREATE INDEX link_outcomes_opened ON link_outcomes(opened_at);

-- Operator console sign-ins: a one-time link printed by `link-sdk console-link` (hash only, short expiry), bound
-- to the first browser that opens it (the hash of a value only that browser holds), which then becomes a console
-- session (hash only) of that browser.
CREATE TABLE console_sign_ins (
    id                 TEXT PRIMARY KEY,
    link_hash          TEXT NOT NULL UNIQUE,
    link_expires_at    BIGINT NOT NULL,
    binder_hash        TEXT,
    used_at            BIGINT,
    session_hash       TEXT UNIQUE,
    session_expires_at BIGINT,
    ended_at           BIGINT,
    created_at         BIGINT NOT NULL
);
