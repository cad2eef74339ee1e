-- Foundation schema: the entities of ../shared/DESIGN.md.
-- Conventions (both backends): ids are TEXT (UUID or typed ids), times are BIGINT Unix seconds,
-- JSON is TEXT, encrypted values are BYTEA/BYTEA with a key id beside them, flags are 0/1 integers.
-- Never edit an applied migration: add a new file.

-- An integrator application.
CREATE TABLE apps (
    id              TEXT PRIMARY KEY,
    name            TEXT NOT NULL,
    logo_url        TEXT,
    brand_color     TEXT,
    allowed_origins TEXT NOT NULL DEFAULT '[]',   -- JSON array of exact origins ("https://app.example")
    redirect_uris   TEXT NOT NULL DEFAULT '[]',   -- JSON array of exact redirect URIs
    webhook_url     TEXT,
    webhook_secret_enc BYTEA,                      -- AEAD ciphertext of the signing secret
    webhook_key_id  TEXT,
    require_signature BIGINT NOT NULL DEFAULT 0,  -- ask the patient for a typed e-signature on consent
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);

-- Key pairs of an app, one per mode. The secret key is kept only as a SHA-256 hash.
CREATE TABLE api_keys (
    id                   TEXT PRIMARY KEY,
    app_id               TEXT NOT NULL REFERENCES apps(id),
    mode                 TEXT NOT NULL CHECK (mode IN ('test', 'live')),
    publishable_key      TEXT NOT NULL UNIQUE,
    secret_hash          TEXT NOT NULL UNIQUE,
    previous_secret_hash TEXT,                    -- still accepted until previous_valid_until (rotation grace)
    previous_valid_until BIGINT,
    created_at           BIGINT NOT NULL,
    updated_at           BIGINT NOT NULL
);
CREATE INDEX api_keys_app ON api_keys(app_id);

-- The endpoint directory: payers a patient can pick.
CREATE TABLE endpoints (
    id                TEXT PRIMARY KEY,           -- UUID
    name              TEXT NOT NULL,
    aliases           TEXT NOT NULL DEFAULT '[]', -- JSON array of strings
    logo_url          TEXT,
    mode              TEXT NOT NULL CHECK (mode IN ('test', 'live')),
    fhir_base_url     TEXT NOT NULL,
    authorize_url     TEXT,                       -- overrides discovery when set
    token_url         TEXT,                       -- overrides discovery when set
    client_id         TEXT NOT NULL,
    client_secret_ref TEXT,                       -- name of the setting holding the secret, never the secret
    scopes            TEXT,                       -- space-separated extra scopes
    refreshable       BIGINT NOT NULL DEFAULT 0,
    resource_types    TEXT NOT NULL DEFAULT '[]', -- JSON array of FHIR resource types
    search_text       TEXT NOT NULL DEFAULT '',   -- lower-cased name + aliases for search
    created_at        BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL
);

-- One per open(): all flow state lives here, never only in memory.
CREATE TABLE link_sessions (
    id               TEXT PRIMARY KEY,
    app_id           TEXT NOT NULL REFERENCES apps(id),
    mode             TEXT NOT NULL,
    external_id      TEXT NOT NULL,
    usage            TEXT NOT NULL,
    options          TEXT NOT NULL DEFAULT '{}',  -- JSON: autoExit, skipSyncing, skipExplainer, requestedResources, language
    endpoint_id      TEXT,
    host_origin      TEXT,
    redirect_uri     TEXT,                        -- hosted/mobile flow
    client_state     TEXT,                        -- integrator's `state` for the hosted flow
    nonce            TEXT NOT NULL,
    step             TEXT NOT NULL DEFAULT 'consent',
    authorization_id TEXT,
    exit_code        TEXT,
    public_token_enc BYTEA,                        -- shown to the modal once; encrypted, cleared at exchange
    public_token_key_id TEXT,
    expires_at       BIGINT NOT NULL,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL
);

-- The patient's recorded choice on the consent screen (served later as FHIR Consent).
CREATE TABLE consents (
    id              TEXT PRIMARY KEY,
    link_session_id TEXT NOT NULL REFERENCES link_sessions(id),
    app_id          TEXT NOT NULL,
    external_id     TEXT NOT NULL,
    usage           TEXT NOT NULL,
    scope           TEXT NOT NULL,
    text_version    TEXT NOT NULL,
    text_hash       TEXT NOT NULL,
    text            TEXT NOT NULL,
    language        TEXT NOT NULL,
    choice          TEXT NOT NULL CHECK (choice IN ('given', 'declined')),
    signature_name  TEXT,
    authorization_id TEXT,
    created_at      BIGINT NOT NULL
);

-- A payer authorization request: `state` (hash only) and PKCE verifier (encrypted), single use.
CREATE TABLE payer_auth_requests (
    id                 TEXT PRIMARY KEY,
    link_session_id    TEXT NOT NULL REFERENCES link_sessions(id),
    endpoint_id        TEXT NOT NULL,
    state_hash         TEXT NOT NULL UNIQUE,
    code_verifier_enc  BYTEA NOT NULL,
    key_id             TEXT NOT NULL,
    redirect_uri       TEXT NOT NULL,
    scope              TEXT NOT NULL,
    token_url          TEXT NOT NULL,
    expires_at         BIGINT NOT NULL,
    used_at            BIGINT,
    created_at         BIGINT NOT NULL
);

-- A patient's authorization at a payer, for one app and user: the unit of isolation.
CREATE TABLE authorizations (
    id                       TEXT PRIMARY KEY,
    app_id                   TEXT NOT NULL REFERENCES apps(id),
    mode                     TEXT NOT NULL,
    external_id              TEXT NOT NULL,
    endpoint_id              TEXT NOT NULL,
    link_session_id          TEXT,
    patient_id               TEXT,               -- the payer's Patient id
    usage_requested          TEXT NOT NULL,
    usage                    TEXT NOT NULL,      -- effective usage (MULTIPLE downgraded to ONE_TIME when not refreshable)
    downgraded               BIGINT NOT NULL DEFAULT 0,
    state                    TEXT NOT NULL,      -- AUTHORIZED, EXCHANGED, REFRESHED, NEEDS_REAUTH, REVOKED, EXPIRED
    payer_scope              TEXT,
    payer_access_token_enc   BYTEA,
    payer_refresh_token_enc  BYTEA,
    payer_key_id             TEXT,
    payer_token_expires_at   BIGINT,
    payer_refresh_expires_at BIGINT,
    expunge_at               BIGINT,
    revoked_at               BIGINT,
    created_at               BIGINT NOT NULL,
    updated_at               BIGINT NOT NULL
);
CREATE INDEX authorizations_user ON authorizations(app_id, external_id);

-- Every token we issue, stored only as a SHA-256 hash.
CREATE TABLE tokens (
    id               TEXT PRIMARY KEY,
    kind             TEXT NOT NULL,      -- public, access, refresh, app, code
    token_hash       TEXT NOT NULL UNIQUE,
    app_id           TEXT NOT NULL,
    authorization_id TEXT,
    detail           TEXT NOT NULL DEFAULT '{}',
    expires_at       BIGINT,
    used_at          BIGINT,
    revoked_at       BIGINT,
    created_at       BIGINT NOT NULL
);
CREATE INDEX tokens_authorization ON tokens(authorization_id);

-- Durable sync jobs, leased by one instance at a time.
CREATE TABLE sync_jobs (
    id               TEXT PRIMARY KEY,
    authorization_id TEXT NOT NULL,
    status           TEXT NOT NULL,      -- pending, syncing, complete, partial, failed
    attempt          BIGINT NOT NULL DEFAULT 0,
    run_after        BIGINT NOT NULL,
    lease_owner      TEXT,
    lease_until      BIGINT,
    progress         TEXT NOT NULL DEFAULT '{}',
    warnings         TEXT NOT NULL DEFAULT '[]',
    skipped          TEXT NOT NULL DEFAULT '[]',
    state            TEXT NOT NULL DEFAULT '{}',  -- resumable cursor
    exit_code        TEXT,
    started_at       BIGINT,
    finished_at      BIGINT,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL
);
CREATE INDEX sync_jobs_due ON sync_jobs(status, run_after);
CREATE INDEX sync_jobs_authorization ON sync_jobs(authorization_id);

-- Synced FHIR resources, exactly as the payer sent them, keyed by authorization.
CREATE TABLE resources (
    authorization_id TEXT NOT NULL,
    resource_type    TEXT NOT NULL,
    id               TEXT NOT NULL,
    version_id       TEXT,
    last_updated     TEXT,
    patient_ref      TEXT,
    date_value       TEXT,
    status           TEXT,
    body             TEXT,               -- JSON as received (NULL when body_enc is used)
    body_enc         BYTEA,
    body_key_id      TEXT,
    fetched_at       BIGINT NOT NULL,
    PRIMARY KEY (authorization_id, resource_type, id)
);

-- Durable webhook outbox.
CREATE TABLE webhook_deliveries (
    id              TEXT PRIMARY KEY,
    event_id        TEXT NOT NULL UNIQUE,
    app_id          TEXT NOT NULL,
    event           TEXT NOT NULL,
    payload         TEXT NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    delivered_at    BIGINT,
    last_error      TEXT,
    created_at      BIGINT NOT NULL
);

-- Append-only audit trail. No health data.
CREATE TABLE audit_events (
    id               TEXT PRIMARY KEY,
    at               BIGINT NOT NULL,
    actor            TEXT NOT NULL,
    action           TEXT NOT NULL,
    app_id           TEXT,
    authorization_id TEXT,
    request_id       TEXT,
    detail           TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_events_at ON audit_events(at);

-- tower-sessions store (first-party sessions only, e.g. the sandbox payer's sign-in).
CREATE TABLE http_sessions (
    id          TEXT PRIMARY KEY,
    data        BYTEA NOT NULL,
    expiry_date BIGINT NOT NULL
);
