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
    let secret_security = json!([{"secretKey": []}, {"basic": []}]);
    p.insert(paths::SESSION.into(), json!({"get": {
        "summary": "One Link session with every step it took (no health data)",
        "description": "The id is the session's public id (lsn_…), as in the link.events webhook and in the list below. \
            Only sessions of the key's own app and mode are found; any other id is 404 not_found.",
        "security": secret_security.clone(),
        "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}],
        "responses": {"200": {"description": "The session and its events", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/LinkSession"}}}},
                      "400": oauth_err, "401": oauth_err, "404": oauth_err}}}));
    let list_params: Vec<Value> = [
        ("externalId", "string", "only this user's sessions"),
        ("since", "integer", "created at or after (Unix seconds)"),
        ("until", "integer", "created before (Unix seconds)"),
        ("limit", "integer", "sessions per page, 1 to 100 (default 20)"),
        ("cursor", "string", "next_cursor of the previous page"),
    ]
    .iter()
    .map(|(n, t, d)| {
        let schema = if *n == "limit" { json!({"type": t, "minimum": 1, "maximum": 100}) } else { json!({"type": t}) };
        json!({"name": n, "in": "query", "required": false, "schema": schema, "description": d})
    })
    .collect();
    p.insert(paths::SESSIONS.into(), json!({"get": {
        "summary": "The key's Link sessions, newest first, each with every step it took",
        "security": secret_security,
        "parameters": list_params,
        "responses": {"200": {"description": "A page of sessions", "content": {"application/json": {"schema": {"type": "object",
            "required": ["sessions", "next_cursor"],
            "properties": {"sessions": {"type": "array", "items": {"$ref": "#/components/schemas/LinkSession"}},
                           "next_cursor": {"type": ["string", "null"]}}}}}},
                      "400": oauth_err, "401": oauth_err}}}));
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
        ("externalId", false, "your id for this patient (required unless repairToken is given; with it, the repaired authorization's)"),
        ("usage", false, "ONE_TIME or MULTIPLE (required unless repairToken is given; with it, the repaired authorization's)"),
        ("redirect_uri", false, "the hosted flow: an exact registered redirect URI of the app, where every ending goes (required unless origin is given)"),
        ("origin", false, "the modal: the exact origin of the page that opens Link (an allowed origin of the app); link.js sends it"),
        ("nonce", false, "the modal: a value every message between Link and the page carries (link.js sends it)"),
        ("autoExit", false, "true or false"),
        ("state", false, "returned unchanged with the result (at most 512 characters)"),
        ("endpoint", false, "an endpoint UUID: skips the plan search"),
        ("skipExplainer", false, "true or false"),
        ("skipSyncing", false, "true or false"),
        ("multiplePlans", false, "true or false: the modal's success screen offers \"Connect another plan\" (ignored with redirect_uri)"),
        ("requestedResources", false, "comma-separated FHIR resource types"),
        ("language", false, "en, es or ko (default: Accept-Language); the patient can change it on the consent screen"),
        ("repairToken", false, "repair mode: a single-use repair token from POST /link/repair (spent here); the session renews that authorization (plan search and explainer skipped)"),
    ]
    .iter()
    .map(|(n, required, d)| {
        let schema = match *n {
            "usage" => json!({"type": "string", "enum": ["ONE_TIME", "MULTIPLE"]}),
            "endpoint" => json!({"type": "string", "format": "uuid"}),
            "autoExit" | "skipExplainer" | "skipSyncing" | "multiplePlans" => json!({"type": "string", "enum": ["true", "false"]}),
            "language" => json!({"type": "string", "enum": crate::i18n::LANGUAGES.map(|(code, _)| code)}),
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
    let max = crate::server::surfaces::integrator_api::directory::MAX_ENDPOINTS;
    p.insert(paths::ENDPOINTS.into(), json!({"get": {
        "summary": "The plans your patients can pick, with each one's health from real link attempts",
        "description": "The picker's own choices for the key's mode: a brand over the endpoint it uses (an endpoint with several \
            brands is listed once per brand), then endpoints no brand points to; only endpoints open to new links. health \
            counts the latest link attempts of every app on this server that ended by the plan's doing (a patient who declines \
            or leaves counts neither way): status ok, degraded, down or unchecked; a change of status is also sent as the \
            webhook endpoint.status_changed. Authenticate with a publishable key (Bearer, or publishableKey in the query) or \
            a secret key (Bearer).",
        "security": [{"secretKey": []}, {"publishableKey": []}, {"publishableKeyQuery": []}],
        "parameters": [
            {"name": "name", "in": "query", "required": false, "schema": {"type": "string", "maxLength": 100},
             "description": "part of a plan's name or alias (empty: every plan)"},
            {"name": "limit", "in": "query", "required": false, "schema": {"type": "integer", "minimum": 1, "maximum": max, "default": max}},
            {"name": "publishableKey", "in": "query", "required": false, "schema": {"type": "string"}, "description": "pk_test_… or pk_live_… (instead of the Authorization header)"}
        ],
        "responses": {"200": {"description": "Plans by name", "content": {"application/json": {"schema": {"type": "object",
            "required": ["endpoints"], "properties": {"endpoints": {"type": "array", "items": {"$ref": "#/components/schemas/DirectoryEntry"}}}}}}},
                      "400": oauth_err, "401": oauth_err}}}));
    let which = json!({"type": "object", "description": "exactly one of access_token and authorization_id",
        "properties": {"access_token": {"type": "string", "minLength": 1, "description": "a patient access token (at_…) of this app"},
                       "authorization_id": {"type": "string", "minLength": 1},
                       "secret_key": {"type": "string", "description": "when not sent in Authorization"}}});
    let history_runs = crate::server::services::sync::HISTORY_RUNS;
    p.insert(paths::SYNC.into(), json!({
        "post": {
            "summary": "Re-sync one live MULTIPLE authorization now",
            "description": "Queues a sync job (the payer token is refreshed first when it has to be). A job already pending, syncing \
                or delayed is answered instead of a second one (queued false). Queuing is rate-limited per authorization \
                (--rate-limit-resync a minute, 429 with Retry-After). The FHIR API keeps serving the previous data while it runs. \
                An authorization of another app or mode is 404 not_found; a ONE_TIME one 400 invalid_request; a revoked, \
                expired or NEEDS_REAUTH one 409 invalid_grant.",
            "security": [{"secretKey": []}, {"basic": []}, {}],
            "requestBody": form_or_json(which.clone()),
            "responses": {
                "202": {"description": "The job queued (or already running)", "content": {"application/json": {"schema": {"type": "object",
                    "required": ["job_id", "authorization_id", "queued", "sync"],
                    "properties": {"job_id": {"type": "string"}, "authorization_id": {"type": "string"},
                                   "queued": {"type": "boolean", "description": "false: the job was already pending or running"},
                                   "sync": {"$ref": "#/components/schemas/SyncStatus"}}}}}},
                "400": oauth_err, "401": oauth_err, "404": oauth_err, "409": oauth_err, "429": limited}},
        "get": {
            "summary": format!("The last {history_runs} sync runs of one authorization, newest first"),
            "description": "Name the authorization with authorization_id (preferred: it keeps tokens out of URLs) or access_token.",
            "security": [{"secretKey": []}, {"basic": []}],
            "parameters": [
                {"name": "authorization_id", "in": "query", "required": false, "schema": {"type": "string"}},
                {"name": "access_token", "in": "query", "required": false, "schema": {"type": "string"}}
            ],
            "responses": {
                "200": {"description": "The runs", "content": {"application/json": {"schema": {"type": "object",
                    "required": ["authorization_id", "sync_history"],
                    "properties": {"authorization_id": {"type": "string"},
                                   "sync_history": {"type": "array", "maxItems": history_runs, "items": {"$ref": "#/components/schemas/SyncRun"}}}}}}},
                "400": oauth_err, "401": oauth_err, "404": oauth_err}}}));
    let repair_ttl = crate::server::services::repair::REPAIR_TOKEN_TTL_SECS;
    p.insert(paths::REPAIR.into(), json!({"post": {
        "summary": "A single-use repair token: the patient renews one authorization's payer grant in Link",
        "description": format!("For a MULTIPLE authorization that is NEEDS_REAUTH, or still active and live (its payer grant ends soon, \
            or the patient wants to consent again). Pass the token to FlexpaLink.create({{repairToken}}): plan search is skipped, \
            the consent screen says it is a renewal, and a sign-in as the same payer patient keeps the same authorization_id, \
            access_token and refresh_token (state back to active, a sync queued, webhook authorization.repaired). The token is \
            rpt_…, valid {repair_ttl} s, spent when the Link session starts; each call issues a new one. Rate-limited per client \
            address (--rate-limit-token). An authorization of another app or mode is 404 not_found; a ONE_TIME, revoked, expired \
            or expunged one 409 invalid_grant."),
        "security": [{"secretKey": []}, {"basic": []}, {}],
        "requestBody": form_or_json(which.clone()),
        "responses": {
            "200": {"description": "The repair token", "content": {"application/json": {"schema": {"type": "object",
                "required": ["repair_token", "expires_in", "authorization_id", "state"],
                "properties": {"repair_token": {"type": "string", "pattern": "^rpt_"},
                               "expires_in": {"type": "integer", "description": "seconds"},
                               "authorization_id": {"type": "string"},
                               "state": {"type": "string", "enum": ["AUTHORIZED", "EXCHANGED", "REFRESHED", "NEEDS_REAUTH"]}}}}}},
            "400": oauth_err, "401": oauth_err, "404": oauth_err, "409": oauth_err, "429": limited}}}));
    let (ttl_default, ttl_max) =
        (crate::server::services::hosted_links::DEFAULT_TTL_SECS, crate::server::services::hosted_links::MAX_TTL_SECS);
    p.insert(paths::HOSTED_LINK.into(), json!({"post": {
        "summary": "A hosted (re-connect) link for one user: a URL to send by email or SMS that runs the whole Link flow",
        "description": format!("Call it from your backend. Opening the URL (a phone's browser, SFSafariViewController, Custom \
            Tabs) runs Link top-level and ends at the app's first registered redirect_uri with public_token (or on a \
            \"done, go back to the app\" screen when the app has none); the link.completed webhook also carries the \
            public_token, the hosted_link_id and the externalId. Single use: the first open claims the link for that \
            browser (a reload there resumes it; any other browser, or any open after it finished, gets an \"already used\" \
            page), and a link not opened within expires_in seconds shows an \"expired\" page. The URL is a bearer secret \
            until its first open: send it only to the patient. With a repairToken it is a repair link (see POST /link/repair). \
            Rate-limited per client address (429 with Retry-After). See docs/hosted-links.md."),
        "security": [{"secretKey": []}, {"basic": []}, {}],
        "requestBody": form_or_json(json!({"type": "object",
            "anyOf": [{"required": ["externalId", "usage"]}, {"required": ["repairToken"]}],
            "properties": {"externalId": {"type": "string", "minLength": 1, "maxLength": 255, "description": "your user's id"},
                           "usage": {"type": "string", "enum": ["ONE_TIME", "MULTIPLE"]},
                           "endpoint": {"type": "string", "format": "uuid", "description": "a plan of the key's mode: the flow skips the plan search"},
                           "expires_in": {"type": "integer", "minimum": 1, "maximum": ttl_max, "default": ttl_default,
                                          "description": "seconds the link can be first opened in"},
                           "repairToken": {"type": "string", "description": "a repair token from POST /link/repair, redeemed now (single use): the link renews that authorization in place, with its user, usage and plan (externalId, usage and endpoint may then be left out; when given they must be the authorization's). 400 invalid_grant when it is invalid, expired, used or no longer repairable"},
                           "secret_key": {"type": "string", "description": "when not sent in Authorization"}}})),
        "responses": {
            "200": {"description": "The link", "content": {"application/json": {"schema": {"type": "object",
                "required": ["hosted_link_id", "url", "expires_at", "expires_in"],
                "properties": {"hosted_link_id": {"type": "string", "description": "hl_…, as in the link.completed webhook"},
                               "url": {"type": "string", "format": "uri", "description": "/link/h/{token}"},
                               "expires_at": {"type": "integer", "description": "Unix seconds"},
                               "expires_in": {"type": "integer", "description": "seconds"}}}}}},
            "400": oauth_err, "401": oauth_err, "429": limited}}}));
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
            "secretKey": {"type": "http", "scheme": "bearer", "description": "Secret key (sk_…) as a Bearer credential"},
            "publishableKey": {"type": "http", "scheme": "bearer", "description": "Publishable key (pk_…) as a Bearer credential (GET /link/endpoints only)"},
            "publishableKeyQuery": {"type": "apiKey", "in": "query", "name": "publishableKey", "description": "Publishable key (pk_…) in the query (GET /link/endpoints only)"}
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
                          "unsupported_grant_type", "invalid_token", "insufficient_scope", "server_error", "temporarily_unavailable", "not_found"]},
                "error_description": {"type": "string"}}},
            "TokenRequest": {"type": "object", "required": ["grant_type"], "properties": {
                "grant_type": {"type": "string", "enum": ["refresh_token", "client_credentials", "authorization_code"]},
                "refresh_token": {"type": "string", "minLength": 1}, "code": {"type": "string", "minLength": 1}, "code_verifier": {"type": "string", "minLength": 43, "maxLength": 128},
                "redirect_uri": {"type": "string", "minLength": 1}, "client_id": {"type": "string", "minLength": 1}, "client_secret": {"type": "string", "minLength": 1}}},
            "Endpoint": {"type": "object", "properties": {"id": {"type": "string"}, "name": {"type": "string"},
                "label": {"type": "array", "items": {"type": "string"}}, "refreshable": {"type": "boolean"},
                "resources": {"type": "array", "items": {"type": "string"}}}},
            "EndpointHealth": {"type": "object", "required": ["status", "attempts"], "properties": {
                "status": {"type": "string", "enum": ["ok", "degraded", "down", "unchecked"]},
                "attempts": {"type": "integer", "description": "attempts counted (the latest, at most --endpoint-health-window)"},
                "success_rate": {"type": ["number", "null"], "minimum": 0, "maximum": 1},
                "median_connect_secs": {"type": ["integer", "null"], "description": "median seconds from leaving for the plan to its authorization"},
                "last_error_codes": {"type": "array", "items": {"type": "string"}, "description": "exit codes of the latest failures, newest first (at most 3)"},
                "checked_at": {"type": ["integer", "null"], "description": "when the operator's setup check last ran (Unix seconds)"}}},
            "DirectoryEntry": {"type": "object", "required": ["id", "name", "health"], "properties": {
                "id": {"type": "string", "format": "uuid", "description": "the endpoint: pass it as FlexpaLink.create({endpoint})"},
                "name": {"type": "string", "description": "the brand's name when listed under a brand, else the endpoint's"},
                "aliases": {"type": "array", "items": {"type": "string"}}, "logo_url": {"type": ["string", "null"]},
                "brand": {"type": ["object", "null"], "properties": {"id": {"type": "string"}, "name": {"type": "string"},
                    "aliases": {"type": "array", "items": {"type": "string"}}, "logo_url": {"type": ["string", "null"]},
                    "website": {"type": ["string", "null"]}, "portal_name": {"type": ["string", "null"]},
                    "portal_url": {"type": ["string", "null"]}, "plan_types": {"type": "array", "items": {"type": "string"}}}},
                "refreshable": {"type": "boolean"}, "resources": {"type": "array", "items": {"type": "string"}},
                "health": {"$ref": "#/components/schemas/EndpointHealth"}}},
            "TokenResponse": {"type": "object", "required": ["access_token", "token_type", "expires_in"], "properties": {
                "access_token": {"type": "string"}, "token_type": {"type": "string", "enum": ["Bearer"]},
                "expires_in": {"type": "integer", "description": format!("seconds ({ACCESS_TOKEN_TTL_SECS} for patient tokens, {APP_TOKEN_TTL_SECS} for application tokens)")},
                "refresh_token": {"type": "string", "description": "only for MULTIPLE on a refreshable endpoint"},
                "refresh_expires_in": {"type": ["integer", "null"], "description": "seconds left on the payer's long-term grant; null when the payer did not say"},
                "patient": {"type": ["string", "null"], "description": "Patient/<id>, the value behind $PATIENT_ID"},
                "endpoint": {"$ref": "#/components/schemas/Endpoint"}}},
            "LinkEvent": {"type": "object", "required": ["name", "step", "at", "metadata"], "properties": {
                "name": {"type": "string", "description": "recorded today: OPEN, CONSENT_GIVEN, CONSENT_DECLINED, LANGUAGE_CHANGED, PLAN_NOT_FOUND, REMIND_LATER, SEARCH, ENDPOINT_SELECTED, POPUP_BLOCKED, POPUP_CLOSED, HANDOFF, PAYER_AUTHORIZED, PLAN_REUSED, ANOTHER_PLAN, SYNC_STARTED, SYNC_COMPLETED, SYNC_FAILED, ERROR, SUCCESS, EXIT; treat any other name as informational"},
                "step": {"type": "string", "description": "the session's step where it happened"},
                "at": {"type": "integer", "description": "Unix seconds"},
                "endpoint_id": {"type": ["string", "null"]}, "exit_code": {"type": ["string", "null"]},
                "metadata": {"type": "object", "description": "non-health detail, e.g. queryLength, payer_error"}}},
            "LinkSession": {"type": "object", "required": ["id", "externalId", "mode", "usage", "status", "step", "created_at", "expires_at", "events"], "properties": {
                "id": {"type": "string", "description": "the public id (lsn_…)"}, "externalId": {"type": "string"},
                "mode": {"type": "string", "enum": ["test", "live"]}, "usage": {"type": "string", "enum": ["ONE_TIME", "MULTIPLE"]},
                "status": {"type": "string", "enum": ["open", "success", "exited", "expired"]},
                "step": {"type": "string"}, "endpoint_id": {"type": ["string", "null"]}, "exit_code": {"type": ["string", "null"]},
                "created_at": {"type": "integer"}, "expires_at": {"type": "integer"},
                "events": {"type": "array", "items": {"$ref": "#/components/schemas/LinkEvent"}}}},
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
                "changes": {"type": "object", "description": "what the sync changed: each resource received counted once as added, updated (other content) or unchanged (same content, or older than the one stored); removed: stored resources of a fully fetched type the plan no longer returned, deleted",
                    "properties": {"added": {"type": "integer"}, "updated": {"type": "integer"}, "unchanged": {"type": "integer"}, "removed": {"type": "integer"}}},
                "incremental": {"type": ["object", "null"], "description": "the types asked for changes only (_lastUpdated=ge{since}) and since when (a FHIR instant); null for a sync that read every type in full",
                    "required": ["since", "types"], "properties": {"since": {"type": "string"}, "types": {"type": "array", "items": {"type": "string"}}}},
                "delayed_until": {"type": ["integer", "null"], "description": "Unix seconds; only while status is delayed"},
                "finished_at": {"type": ["integer", "null"]}}},
            "SyncRun": {"type": "object", "description": "One run of an authorization's sync.",
                "required": ["job_id", "status", "created_at", "counts", "skipped", "incomplete", "added", "updated", "unchanged", "removed"], "properties": {
                "job_id": {"type": "string"},
                "status": {"type": "string", "enum": ["pending", "syncing", "delayed", "complete", "partial", "failed"]},
                "created_at": {"type": "integer", "description": "Unix seconds, when it was queued"},
                "started_at": {"type": ["integer", "null"], "description": "Unix seconds, when a worker first took it"},
                "finished_at": {"type": ["integer", "null"]},
                "counts": {"type": "object", "additionalProperties": {"type": "integer"}, "description": "resources stored, by type"},
                "skipped": {"type": "array", "items": {"type": "object", "properties": {"type": {"type": "string"}, "status": {"type": ["integer", "null"]}, "reason": {"type": "string"}}}},
                "incomplete": {"type": "array", "items": {"type": "object", "properties": {"type": {"type": "string"}, "reason": {"type": "string"}}}},
                "exit_code": {"type": ["string", "null"]},
                "added": {"type": "integer"}, "updated": {"type": "integer"}, "unchanged": {"type": "integer"},
                "removed": {"type": "integer", "description": "see SyncStatus.changes"},
                "incremental": {"type": ["object", "null"], "description": "the types asked for changes only (_lastUpdated=ge{since}) and since when (a FHIR instant); null for a sync that read every type in full",
                    "required": ["since", "types"], "properties": {"since": {"type": "string"}, "types": {"type": "array", "items": {"type": "string"}}}}}},
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

