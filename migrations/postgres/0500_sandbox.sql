-- The built-in sandbox payer's own state. The sandbox is a remote payer that happens to live in this process
-- and this database: only src/server/surfaces/sandbox/store.rs reads these tables, and nothing joins them with
-- Link's. Times are BIGINT Unix seconds. Codes and refresh tokens are stored as SHA-256 hashes (hex).
-- Never edit an applied migration: add a new file.

-- The key that signs the sandbox's stateless access tokens and sign-in proofs (HMAC-SHA256), created once by
-- the first sandbox to start on this database and shared by every later one (restarts, other instances).
-- Stored in the clear: it only guards synthetic test data.
CREATE TABLE sandbox_keys (
    id         TEXT PRIMARY KEY,                  -- purpose, e.g. 'hmac'
    key_b64    TEXT NOT NULL,                     -- 32 random bytes, base64url
    created_at BIGINT NOT NULL
);

-- Authorization codes (RFC 6749 §4.1.2): single use, deleted when redeemed or once expired.
CREATE TABLE sandbox_codes (
    code_hash      TEXT PRIMARY KEY,
    payer          TEXT NOT NULL,                 -- payer slug (`sandbox-health`, …)
    member         BIGINT NOT NULL,               -- index in the sandbox's member roster
    scope          TEXT NOT NULL,                 -- granted scope
    client_id      TEXT NOT NULL,
    redirect_uri   TEXT NOT NULL,
    code_challenge TEXT NOT NULL,                 -- PKCE S256 challenge (RFC 7636)
    expires_at     BIGINT NOT NULL,
    created_at     BIGINT NOT NULL
);
CREATE INDEX sandbox_codes_expiry ON sandbox_codes(expires_at);

-- Refresh tokens (RFC 6749 §6): deleted when rotated (payers that rotate) or once expired.
CREATE TABLE sandbox_refresh_tokens (
    token_hash TEXT PRIMARY KEY,
    payer      TEXT NOT NULL,
    member     BIGINT NOT NULL,
    scope      TEXT NOT NULL,
    client_id  TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX sandbox_refresh_tokens_expiry ON sandbox_refresh_tokens(expires_at);
