-- Hosted (re-connect) links: a URL an integrator sends by email or SMS that runs the whole Link flow top-level.
-- Never edit an applied migration: add a new file.

CREATE TABLE hosted_links (
    id              TEXT PRIMARY KEY,                 -- hl_…, public (the API returns it, webhooks carry it)
    token_hash      TEXT NOT NULL UNIQUE,             -- SHA-256 of the URL's token; the token itself is never stored
    app_id          TEXT NOT NULL REFERENCES apps(id),
    mode            TEXT NOT NULL,
    external_id     TEXT NOT NULL,
    usage           TEXT NOT NULL,
    endpoint_id     TEXT,                             -- fixed plan, or NULL for the plan search
    redirect_uri    TEXT,                             -- the app's registered redirect_uri at creation, or NULL
    expires_at      BIGINT NOT NULL,                  -- no first open after this
    created_at      BIGINT NOT NULL,
    claimed_at      BIGINT,                           -- first open
    link_session_id TEXT,                             -- the session the first open started (single use; no
                                                      -- foreign key: abandoned sessions are purged)
    completed_at    BIGINT                            -- the payer authorized (link.completed queued)
);
CREATE INDEX hosted_links_session ON hosted_links(link_session_id);

-- A delivery whose body carries a secret (link.completed's public_token) is stored sealed: payload is then the
-- base64 of the AES-GCM box and payload_key_id the key that opens it (NULL: payload is the plain body).
ALTER TABLE webhook_deliveries ADD COLUMN payload_key_id TEXT;
