-- The plan directory: the operator's hold on each endpoint, User-access Brands (SMART App Launch 2.2) and the
-- endpoints they point to, the health of each endpoint from real link attempts and from `endpoints check`, and
-- the plans patients asked for but could not find. No health data in any of these tables.
-- Never edit an applied migration: add a new file.

-- While set, the endpoint is offered to no new link (existing authorizations keep working).
ALTER TABLE endpoints ADD COLUMN disabled_at BIGINT;
-- The sign-in service the plan's portal uses, when known (shown before the hand-off), e.g. "Login.gov".
ALTER TABLE endpoints ADD COLUMN identity_provider TEXT;
-- The longest a patient's grant at this payer is kept before they must link again (seconds; NULL: no cap).
ALTER TABLE endpoints ADD COLUMN max_grant_secs BIGINT;

-- A User-access Brand: what a patient recognises (a plan's name and logo) and where its portal is.
CREATE TABLE brands (
    id                 TEXT PRIMARY KEY,           -- UUID, derived from the brand's identifier in its bundle
    mode               TEXT NOT NULL CHECK (mode IN ('test', 'live')),
    name               TEXT NOT NULL,
    aliases            TEXT NOT NULL DEFAULT '[]', -- JSON array of strings
    logo_url           TEXT,
    website            TEXT,
    portal_name        TEXT,
    portal_url         TEXT,                       -- where a member creates or uses their online account
    portal_description TEXT,
    categories         TEXT NOT NULL DEFAULT '[]', -- JSON array of category codes (e.g. "ins")
    plan_types         TEXT NOT NULL DEFAULT '[]', -- JSON array of plan types served (e.g. "Medicare Advantage")
    search_text        TEXT NOT NULL DEFAULT '',   -- lower-cased name + aliases for search
    created_at         BIGINT NOT NULL,
    updated_at         BIGINT NOT NULL
);

-- Which endpoints serve a brand (a brand may have several; several brands may share one endpoint).
CREATE TABLE brand_endpoints (
    brand_id    TEXT NOT NULL REFERENCES brands(id),
    endpoint_id TEXT NOT NULL REFERENCES endpoints(id),
    PRIMARY KEY (brand_id, endpoint_id)
);
CREATE INDEX brand_endpoints_endpoint ON brand_endpoints(endpoint_id);

-- One patient's try at an endpoint: from the hand-off to the payer until the first sync ends.
CREATE TABLE endpoint_attempts (
    id               TEXT PRIMARY KEY,
    endpoint_id      TEXT NOT NULL,
    link_session_id  TEXT NOT NULL,
    authorization_id TEXT,
    outcome          TEXT NOT NULL,               -- pending, connected, synced, failed, declined
    exit_code        TEXT,
    started_at       BIGINT NOT NULL,
    connected_at     BIGINT,                      -- the payer authorized
    ended_at         BIGINT
);
CREATE INDEX endpoint_attempts_recent ON endpoint_attempts(endpoint_id, started_at);
CREATE INDEX endpoint_attempts_session ON endpoint_attempts(link_session_id);
CREATE INDEX endpoint_attempts_authorization ON endpoint_attempts(authorization_id);

-- Per endpoint: the status last announced (`endpoint.status_changed`) and the last `endpoints check`.
CREATE TABLE endpoint_health (
    endpoint_id       TEXT PRIMARY KEY,
    status            TEXT NOT NULL,              -- ok, degraded, down, unchecked
    status_changed_at BIGINT NOT NULL,
    checked_at        BIGINT,
    check_problems    TEXT,                       -- JSON array of the last check's problems
    updated_at        BIGINT NOT NULL
);

-- "Can't find your plan?": what a patient typed. No user id, no session: nothing ties it to a person.
CREATE TABLE plan_requests (
    id         TEXT PRIMARY KEY,
    app_id     TEXT NOT NULL,
    mode       TEXT NOT NULL,
    name       TEXT NOT NULL,
    language   TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX plan_requests_at ON plan_requests(created_at);
