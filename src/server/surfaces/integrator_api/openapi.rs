//! The OpenAPI description of the integrator API's routes (assembled into `/openapi.json` by
//! `surfaces::openapi`).

use serde_json::{json, Value};

use crate::server::{
    store::tokens::{ACCESS_TOKEN_TTL_SECS, APP_TOKEN_TTL_SECS, PUBLIC_TOKEN_TTL_SECS},
    surfaces::integrator_api::paths,
};

/// The OpenAPI 3.1 `paths` of the /link API, built from [`paths`] and the same constants the handlers use.
pub fn paths() -> serde_json::Map<String, Value> {
    let oauth_err = json!({"$ref": "#/components/responses/OAuthError"});
    let unauth = json!({"$ref": "#/components/responses/Unauthorized"});
    let limited = json!({"$ref": "#/components/responses/RateLimited"});
    let html = |d: &str| json!({"description": d, "content": {"text/html": {"schema": {"type": "string"}}}});
    let form_or_json = |schema: Value| json!({"required": true, "content": {
        "application/json": {"schema": schema.clone()},
        "application/x-www-form-urlencoded": {"schema": schema}}});
    let mut p = serde_json::Map::new();
    p.insert(paths::EXCHANGE.into(), json!({"post": {
        "summary": "Exchange a public_token for a patient access token",
        "description": format!("The public_token is single use and expires {PUBLIC_TOKEN_TTL_SECS} s after it was minted; only the app it was issued to may exchange it. Rate limited per client address and per app (429 with Retry-After)."),
        "requestBody": form_or_json(json!({"type": "object",
            "required": ["public_token", "secret_key"],
            "properties": {"public_token": {"type": "string", "minLength": 1}, "secret_key": {"type": "string", "minLength": 1}}})),
        "responses": {"200": {"description": "Access granted", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/TokenResponse"}}}},
                      "400": oauth_err, "401": oauth_err, "429": limited}}}));
    p.insert(paths::INTROSPECT.into(), json!({"get": {
        "summary": "Describe the Bearer token", "security": [{"bearer": []}],
        "responses": {"200": {"description": "Token metadata", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Introspection"}}}},
                      "401": unauth}}}));
    p.insert(paths::TOKEN.into(), json!({"post": {
        "summary": "OAuth 2.0 token endpoint: refresh_token, client_credentials, authorization_code",
        "description": "Confidential clients authenticate with HTTP Basic publishableKey:secretKey or client_id + client_secret in the body (RFC 6749 §2.3.1); a wrong secret is 401 invalid_client. authorization_code also takes a public client (client_id alone); PKCE (code_verifier) is always required. refresh_token rotates: a spent refresh token presented again within 30 s of its use, while the new refresh token is unused, answers the same new pair (a network retry); any other reuse is 400 invalid_grant and revokes every token of the authorization (RFC 9700 §4.14.2). Rate limited per client address (429 with Retry-After).",
        "security": [{"basic": []}, {}],
        "requestBody": {"required": true, "content": {
            "application/x-www-form-urlencoded": {"schema": {"$ref": "#/components/schemas/TokenRequest"}},
            "application/json": {"schema": {"$ref": "#/components/schemas/TokenRequest"}}}},
        "responses": {"200": {"description": "Tokens", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/TokenResponse"}}}},
                      "400": oauth_err, "401": oauth_err, "429": limited}}}));
    p.insert(paths::REVOKE.into(), json!({"post": {
        "summary": "Revoke the token's authorization and that user's other links to the same payer patient, and expunge the data",
        "description": "Revokes the access token's own authorization and the same user's (externalId) other authorizations of this app and mode that link the same payer patient at the same endpoint. Another user of the app is never affected, even one who linked the same payer patient.",
        "security": [{"bearer": []}],
        "requestBody": form_or_json(json!({"type": "object",
            "required": ["secret_key"], "properties": {"secret_key": {"type": "string", "minLength": 1}}})),
        "responses": {"200": {"description": "Revoked", "content": {"application/json": {"schema": {"type": "object",
            "properties": {"count": {"type": "integer"}}}}}}, "400": oauth_err, "401": unauth, "403": oauth_err}}}));
    p.insert(paths::USERS.into(), json!({"get": {
        "summary": "A user's authorizations with endpoint, usage, state and sync status",
        "security": [{"secretKey": []}, {"basic": []}],
        "parameters": [{"name": "externalId", "in": "path", "required": true, "schema": {"type": "string"}}],
        "responses": {"200": {"description": "Authorizations", "content": {"application/json": {"schema": {"type": "object",
            "properties": {"externalId": {"type": "string"}, "authorizations": {"type": "array", "items": {"$ref": "#/components/schemas/UserAuthorization"}}}}}}},
                      "401": oauth_err}}}));
    let auth_params: Vec<Value> = [
        "response_type", "client_id", "redirect_uri", "code_challenge", "code_challenge_method", "state",
        "flexpa_external_id", "flexpa_endpoint_id", "usage",
    ]
    .iter()
    .map(|n| {
        let schema = match *n {
            "response_type" => json!({"type": "string", "enum": ["code"]}),
            "code_challenge_method" => json!({"type": "string", "enum": ["S256"]}),
            "usage" => json!({"type": "string", "enum": ["ONE_TIME", "MULTIPLE"]}),
            "code_challenge" => json!({"type": "string", "minLength": 43, "maxLength": 43, "pattern": "^[A-Za-z0-9_-]{43}$"}),
            "flexpa_endpoint_id" => json!({"type": "string", "format": "uuid"}),
            _ => json!({"type": "string", "minLength": 1}),
        };
        json!({"name": n, "in": "query", "required": !matches!(*n, "state" | "flexpa_endpoint_id" | "usage"), "schema": schema})
    })
    .collect();
    p.insert(paths::AUTH.into(), json!({"get": {
        "summary": "OAuth 2.0 authorization endpoint running the Link flow (redirect flow, PKCE S256)",
        "parameters": auth_params,
        "responses": {"303": {"description": "To the hosted Link flow (setting the session's binder cookie), or back to redirect_uri with error and state"},
                      "400": {"description": "client_id or redirect_uri invalid (never redirected to)", "content": {"text/plain": {"schema": {"type": "string"}}}},
                      "429": {"description": "Too many sessions started from this client address", "headers": {"Retry-After": {"$ref": "#/components/headers/RetryAfter"}},
                              "content": {"text/plain": {"schema": {"type": "string"}}}}}}}));
    let entry_params: Vec<Value> = [
        ("publishableKey", true, "pk_test_… or pk_live_…"),
        ("externalId", true, "your id for this patient"),
        ("usage", true, "ONE_TIME or MULTIPLE"),
        ("redirect_uri", false, "the hosted flow: an exact registered redirect URI of the app, where every ending goes (required unless origin is given)"),
        ("origin", false, "the modal: the exact origin of the page that opens Link (an allowed origin of the app); link.js sends it"),
        ("nonce", false, "the modal: a value every message between Link and the page carries (link.js sends it)"),
        ("autoExit", false, "true or false"),
        ("state", false, "returned unchanged with the result (at most 512 characters)"),
        ("endpoint", false, "an endpoint UUID: skips the plan search"),
        ("skipExplainer", false, "true or false"),
        ("skipSyncing", false, "true or false"),
        ("requestedResources", false, "comma-separated FHIR resource types"),
        ("language", false, "en or es (default: Accept-Language)"),
    ]
    .iter()
    .map(|(n, required, d)| {
        let schema = match *n {
            "usage" => json!({"type": "string", "enum": ["ONE_TIME", "MULTIPLE"]}),
            "endpoint" => json!({"type": "string", "format": "uuid"}),
            "autoExit" | "skipExplainer" | "skipSyncing" => json!({"type": "string", "enum": ["true", "false"]}),
            "language" => json!({"type": "string", "enum": ["en", "es"]}),
            _ => json!({"type": "string", "minLength": 1}),
        };
        json!({"name": n, "in": "query", "required": required, "schema": schema, "description": d})
    })
    .collect();
    p.insert(paths::HOSTED_ENTRY.into(), json!({"get": {
        "summary": "Start Link in a browser: the hosted (mobile) flow with a redirect_uri (link.js opens the same URL in its modal)",
        "description": "Open it in the system browser (ASWebAuthenticationSession, SFSafariViewController, Custom Tabs), never \
            from a backend. Every ending comes back to redirect_uri with state: public_token on success, error=<exit code> \
            otherwise (see docs/mobile.md). The session is bound to the browser that opened it (a cookie set here): every \
            later step from another browser is refused. A request with neither origin nor redirect_uri is refused.",
        "parameters": entry_params,
        "responses": {"303": {"description": "To the first Link screen (setting the session's binder cookie), or to redirect_uri with error and state (invalid options)"},
                      "400": html("A page ending Link with an exit code (invalid options in the modal), or: redirect_uri is not registered for the app (never redirected to), or neither origin nor redirect_uri was given"),
                      "403": html("A page ending Link with INVALID_PUBLISHABLE_KEY: the page's origin is not an allowed origin of the app"),
                      "429": {"description": "Too many sessions started from this client address: a page ending Link with RATE_LIMITED",
                              "headers": {"Retry-After": {"$ref": "#/components/headers/RetryAfter"}},
                              "content": {"text/html": {"schema": {"type": "string"}}}}}}}));
    let grant_ttl = crate::server::services::lifecycle::connections::CONNECTIONS_GRANT_TTL_SECS;
    p.insert(paths::CONNECTIONS_URL.into(), json!({"post": {
        "summary": "A short-lived URL of one user's connections page, where the patient sees and removes their links",
        "description": format!("Call it from your backend for the user signed in to your app, and open the URL in your page \
            (an iframe when your origin is an allowed origin of the app), a new tab or a web view. The URL is valid \
            {grant_ttl} s, for that user and the key's mode only; treat it like a password. The secret key goes in \
            `Authorization: Bearer sk_…` or as `secret_key` in the body."),
        "security": [{"secretKey": []}, {}],
        "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object",
            "required": ["externalId"],
            "properties": {"externalId": {"type": "string", "minLength": 1, "maxLength": 256,
                                          "description": "your user's id, as given to FlexpaLink.create (external_id also accepted)"},
                           "secret_key": {"type": "string", "description": "when not sent as a Bearer credential"}}}}}},
        "responses": {
            "200": {"description": "The page's URL", "content": {"application/json": {"schema": {"type": "object",
                "required": ["url", "expires_in", "expires_at"],
                "properties": {"url": {"type": "string", "format": "uri", "description": "/link/connections?token=ct_…"},
                               "expires_in": {"type": "integer", "description": "seconds"},
                               "expires_at": {"type": "integer", "description": "Unix seconds"}}}}}},
            "400": oauth_err, "401": unauth}}}));
    p.insert(paths::TEST_PUBLIC_TOKEN.into(), json!({"post": {
        "summary": "Test mode: link a sandbox member without the UI and return a public_token",
        "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object",
            "required": ["secret_key", "external_id"],
            "properties": {"secret_key": {"type": "string", "minLength": 1}, "external_id": {"type": "string", "minLength": 1},
                           "endpoint_id": {"type": "string", "format": "uuid"}, "member": {"type": "string", "minLength": 1},
                           "usage": {"type": "string", "enum": ["ONE_TIME", "MULTIPLE"]}}}}}},
        "responses": {"200": {"description": "public_token", "content": {"application/json": {"schema": {"type": "object",
            "properties": {"public_token": {"type": "string"}, "authorization_id": {"type": "string"}}}}}},
                      "400": oauth_err, "401": oauth_err, "429": limited}}}));
    p
}

/// OpenAPI `components` shared by the /link paths.
pub fn components() -> Value {
    // The lifetime fields of an authorization on introspect (patient tokens) and users.
    let lifetime = json!({
        "expires_at": {"type": ["integer", "null"], "description": "Unix seconds when the data is expunged (ONE_TIME: 24 h after linking; NEEDS_REAUTH: the end of the re-consent window); null when none is set"},
        "refresh_expires_at": {"type": ["integer", "null"], "description": "Unix seconds when the payer's long-term grant ends (from its refresh_expires_in); null when the payer did not say"},
        "last_synced_at": {"type": ["integer", "null"], "description": "Unix seconds when the latest sync with data (complete or partial) finished"},
        "sync": {"oneOf": [{"$ref": "#/components/schemas/SyncStatus"}, {"type": "null"}]},
    });
    json!({
        "securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer", "description": "Patient access token (at_…) or application token (app_…)"},
            "basic": {"type": "http", "scheme": "basic", "description": "publishableKey:secretKey"},
            "secretKey": {"type": "http", "scheme": "bearer", "description": "Secret key (sk_…) as a Bearer credential"}
        },
        "headers": {
            "RetryAfter": {"description": "Seconds to wait before trying again", "schema": {"type": "integer", "minimum": 1}}
        },
        "responses": {
            "OAuthError": {"description": "RFC 6749 §5.2 error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/OAuthError"}}}},
            "RateLimited": {"description": "A rate limit was exceeded (error temporarily_unavailable)", "headers": {"Retry-After": {"$ref": "#/components/headers/RetryAfter"}},
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/OAuthError"}}}},
            "Unauthorized": {"description": "RFC 6750 §3 (WWW-Authenticate: Bearer)", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/OAuthError"}}}}
        },
        "schemas": {
            "OAuthError": {"type": "object", "required": ["error"], "properties": {
                "error": {"type": "string", "enum": ["invalid_request", "invalid_client", "invalid_grant", "unauthorized_client",
                          "unsupported_grant_type", "invalid_token", "insufficient_scope", "server_error", "temporarily_unavailable"]},
                "error_description": {"type": "string"}}},
            "TokenRequest": {"type": "object", "required": ["grant_type"], "properties": {
                "grant_type": {"type": "string", "enum": ["refresh_token", "client_credentials", "authorization_code"]},
                "refresh_token": {"type": "string", "minLength": 1}, "code": {"type": "string", "minLength": 1}, "code_verifier": {"type": "string", "minLength": 43, "maxLength": 128},
                "redirect_uri": {"type": "string", "minLength": 1}, "client_id": {"type": "string", "minLength": 1}, "client_secret": {"type": "string", "minLength": 1}}},
            "Endpoint": {"type": "object", "properties": {"id": {"type": "string"}, "name": {"type": "string"},
                "label": {"type": "array", "items": {"type": "string"}}, "refreshable": {"type": "boolean"},
                "resources": {"type": "array", "items": {"type": "string"}}}},
            "TokenResponse": {"type": "object", "required": ["access_token", "token_type", "expires_in"], "properties": {
                "access_token": {"type": "string"}, "token_type": {"type": "string", "enum": ["Bearer"]},
                "expires_in": {"type": "integer", "description": format!("seconds ({ACCESS_TOKEN_TTL_SECS} for patient tokens, {APP_TOKEN_TTL_SECS} for application tokens)")},
                "refresh_token": {"type": "string", "description": "only for MULTIPLE on a refreshable endpoint"},
                "refresh_expires_in": {"type": ["integer", "null"], "description": "seconds left on the payer's long-term grant; null when the payer did not say"},
                "patient": {"type": ["string", "null"], "description": "Patient/<id>, the value behind $PATIENT_ID"},
                "endpoint": {"$ref": "#/components/schemas/Endpoint"}}},
            "UserAuthorization": {"type": "object", "properties": {
                "id": {"type": "string"}, "endpoint": {"$ref": "#/components/schemas/Endpoint"},
                "usage": {"type": "string", "enum": ["ONE_TIME", "MULTIPLE"]}, "usage_requested": {"type": "string", "enum": ["ONE_TIME", "MULTIPLE"]},
                "state": {"type": "string"}, "patient": {"type": ["string", "null"]}, "created_at": {"type": "integer"},
                "expires_at": lifetime["expires_at"], "refresh_expires_at": lifetime["refresh_expires_at"],
                "last_synced_at": lifetime["last_synced_at"], "sync": lifetime["sync"]}},
            "SyncStatus": {"type": "object", "description": "The latest sync job of an authorization. partial: some types were skipped (skipped) or their paging stopped early (incomplete); delayed: the payer asked for a wait longer than a worker holds on (Retry-After or x-ms-retry-after-ms), the job resumes at delayed_until. stats counts what the payer cost: retries, page_size_reductions (a page asked again with half its _count after a timeout), rate_limit_waits and rate_limit_wait_secs (429/503 waits asked for).",
                "required": ["status", "progress", "skipped", "incomplete", "warnings", "stats"], "properties": {
                "status": {"type": "string", "enum": ["pending", "syncing", "delayed", "complete", "partial", "failed"]},
                "progress": {"type": "object", "additionalProperties": {"type": "integer"}, "description": "resources stored, by type"},
                "skipped": {"type": "array", "items": {"type": "object", "properties": {"type": {"type": "string"}, "status": {"type": ["integer", "null"]}, "reason": {"type": "string"}}}},
                "incomplete": {"type": "array", "items": {"type": "object", "properties": {"type": {"type": "string"}, "reason": {"type": "string"}}}},
                "exit_code": {"type": ["string", "null"]},
                "warnings": {"type": "array", "items": {"type": "string"}},
                "stats": {"type": "object", "properties": {"retries": {"type": "integer"}, "page_size_reductions": {"type": "integer"},
                          "rate_limit_waits": {"type": "integer"}, "rate_limit_wait_secs": {"type": "integer"}}},
                "delayed_until": {"type": ["integer", "null"], "description": "Unix seconds; only while status is delayed"},
                "finished_at": {"type": ["integer", "null"]}}},
            "Introspection": {"type": "object", "properties": {
                "active": {"type": "boolean"}, "jti": {"type": "string"}, "iat": {"type": "integer"}, "exp": {"type": ["integer", "null"]},
                "patient": {"type": ["string", "null"]}, "state": {"type": "string"}, "endpoint": {"$ref": "#/components/schemas/Endpoint"},
                "user": {"type": "object", "properties": {"externalId": {"type": "string"}}},
                "sub": {"type": "string"}, "usage": {"type": "string"}, "token_type": {"type": "string", "enum": ["patient", "application"]},
                "mode": {"type": "string", "enum": ["test", "live"]},
                "expires_at": lifetime["expires_at"], "refresh_expires_at": lifetime["refresh_expires_at"],
                "last_synced_at": lifetime["last_synced_at"], "sync": lifetime["sync"]}}
        }
    })
}

