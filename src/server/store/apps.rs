//! The `apps` and `api_keys` tables (an app and its key pairs exist only together): create, find by publishable
//! key, verify a secret key (hash only), the webhook URL and its sealed signing secret. The only module that
//! writes SQL on these tables.
//!
//! An app has one key pair per mode: a publishable key (`pk_test_…` / `pk_live_…`, public, used by the
//! browser in `FlexpaLink.create({publishableKey})`) and a secret key (`sk_test_…` / `sk_live_…`, used by
//! the integrator's backend as a bearer credential). Secret keys are 256-bit random tokens stored only as
//! their SHA-256 hash ([`crypto::hash_token`]); a lookup hashes the presented key and finds the row by that
//! hash, so no plaintext secret is ever at rest. Rotation keeps the previous hash valid for a grace period
//! so integrators can redeploy without downtime.

use anyhow::Context as _;
use secrecy::SecretString;
use sqlx::Row as _;

use crate::server::platform::{crypto, db::Db};
use crate::domain::Mode;

/// An integrator application (no secrets: safe to log and to show on the hosted screens).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct App {
    /// Opaque id (`app_…`).
    pub id: String,
    /// Display name shown to patients on the Link screens.
    pub name: String,
    /// Logo shown on the Link screens (https URL).
    pub logo_url: Option<String>,
    /// Brand colour of the Link screens (CSS hex colour, e.g. `#0b5fff`).
    pub brand_color: Option<String>,
    /// Exact origins (`https://app.example`) allowed to open Link with this app's publishable key.
    pub allowed_origins: Vec<String>,
    /// Exact redirect URIs accepted by the hosted (`redirect_uri`) flow.
    pub redirect_uris: Vec<String>,
    /// Where webhook events are delivered, if anywhere.
    pub webhook_url: Option<String>,
    /// Ask the patient for a typed e-signature on the consent screen.
    pub require_signature: bool,
}

/// What `apps create` needs.
#[derive(Debug, Clone, Default)]
pub struct NewApp {
    /// Display name.
    pub name: String,
    /// Exact allowed origins.
    pub allowed_origins: Vec<String>,
    /// Exact redirect URIs for the hosted flow.
    pub redirect_uris: Vec<String>,
    /// Webhook URL.
    pub webhook_url: Option<String>,
    /// Logo URL.
    pub logo_url: Option<String>,
    /// Brand colour (`#rrggbb`).
    pub brand_color: Option<String>,
}

/// The keys of a new app. The secrets are shown once and cannot be recovered (only hashes are stored).
#[derive(Debug)]
pub struct CreatedKeys {
    /// `pk_test_…`
    pub test_publishable: String,
    /// `sk_test_…`
    pub test_secret: SecretString,
    /// `pk_live_…`
    pub live_publishable: String,
    /// `sk_live_…`
    pub live_secret: SecretString,
}

/// A change to an app (`apps update`): `None` leaves a field as it is. For the optional fields, `Some("")`
/// clears the value.
#[derive(Debug, Clone, Default)]
pub struct AppUpdate {
    /// New display name.
    pub name: Option<String>,
    /// Replaces the allowed origins.
    pub allowed_origins: Option<Vec<String>>,
    /// Replaces the redirect URIs.
    pub redirect_uris: Option<Vec<String>>,
    /// New webhook URL (`Some("")` clears it).
    pub webhook_url: Option<String>,
    /// New logo URL (`Some("")` clears it).
    pub logo_url: Option<String>,
    /// New brand colour (`Some("")` clears it).
    pub brand_color: Option<String>,
    /// Ask for a typed e-signature on consent.
    pub require_signature: Option<bool>,
}

/// A key pair's public facts (for `apps list`): never the secret.
#[derive(Debug, Clone, serde::Serialize)]
pub struct KeyInfo {
    /// `test` or `live`.
    pub mode: Mode,
    /// The publishable key.
    pub publishable_key: String,
    /// Until when (Unix seconds) a rotated-out secret is still accepted, if a rotation is in its grace period.
    pub previous_valid_until: Option<i64>,
}

const APP_COLUMNS: &str =
    "id, name, logo_url, brand_color, allowed_origins, redirect_uris, webhook_url, require_signature";

fn app_from_row(row: &sqlx::any::AnyRow) -> anyhow::Result<App> {
    let origins: String = row.try_get("allowed_origins")?;
    let redirects: String = row.try_get("redirect_uris")?;
    Ok(App {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        logo_url: row.try_get("logo_url")?,
        brand_color: row.try_get("brand_color")?,
        allowed_origins: serde_json::from_str(&origins).context("apps.allowed_origins is not a JSON array")?,
        redirect_uris: serde_json::from_str(&redirects).context("apps.redirect_uris is not a JSON array")?,
        webhook_url: row.try_get("webhook_url")?,
        require_signature: row.try_get::<i64, _>("require_signature")? != 0,
    })
}

/// A new key pair for `mode`: the publishable key and the secret key.
fn new_key_pair(mode: Mode) -> (String, SecretString) {
    let m = mode.as_str();
    (crypto::random_token(&format!("pk_{m}_")), SecretString::from(crypto::random_token(&format!("sk_{m}_"))))
}

fn non_empty(v: Option<String>) -> Option<String> {
    v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
}

/// Checks an optional http(s) URL setting (webhook, logo).
fn validate_url(what: &str, v: Option<&str>) -> anyhow::Result<()> {
    if let Some(v) = v {
        let u = url::Url::parse(v).with_context(|| format!("{what} {v:?} is not a URL"))?;
        anyhow::ensure!(matches!(u.scheme(), "http" | "https"), "{what} {v:?} must be http(s)");
    }
    Ok(())
}

/// Checks origins, redirect URIs and the brand colour so that bad input fails at the CLI, not in a browser.
fn validate(origins: &[String], redirects: &[String], brand_color: Option<&str>) -> anyhow::Result<()> {
    for o in origins {
        let u = url::Url::parse(o).with_context(|| format!("allowed origin {o:?} is not a URL"))?;
        anyhow::ensure!(
            matches!(u.scheme(), "http" | "https") && u.origin().ascii_serialization() == o.trim_end_matches('/'),
            "allowed origin {o:?} must be scheme://host[:port] with no path"
        );
    }
    for r in redirects {
        let u = url::Url::parse(r).with_context(|| format!("redirect URI {r:?} is not a URL"))?;
        anyhow::ensure!(u.fragment().is_none(), "redirect URI {r:?} must not have a fragment");
        anyhow::ensure!(
            !crate::server::platform::http::is_unsafe_navigation_scheme(u.scheme()),
            "redirect URI {r:?} must be an https URL or an app's own scheme, not {}:",
            u.scheme()
        );
    }
    if let Some(c) = brand_color {
        let hex = c.strip_prefix('#').unwrap_or("");
        anyhow::ensure!(
            matches!(hex.len(), 3 | 6) && hex.chars().all(|ch| ch.is_ascii_hexdigit()),
            "brand colour {c:?} must be #rgb or #rrggbb"
        );
    }
    Ok(())
}

fn normalize_origins(origins: Vec<String>) -> Vec<String> {
    origins.into_iter().map(|o| o.trim().trim_end_matches('/').to_string()).filter(|o| !o.is_empty()).collect()
}

/// Creates an app and its test and live key pairs. The returned secrets are the only copies.
///
/// # Errors
/// Invalid origins, redirect URIs or colour; database errors.
pub async fn create(db: &Db, now: i64, new: NewApp) -> anyhow::Result<(App, CreatedKeys)> {
    anyhow::ensure!(!new.name.trim().is_empty(), "an app needs a name");
    let allowed_origins = normalize_origins(new.allowed_origins);
    let redirect_uris: Vec<String> = new.redirect_uris.into_iter().map(|r| r.trim().to_string()).collect();
    let brand_color = non_empty(new.brand_color);
    validate(&allowed_origins, &redirect_uris, brand_color.as_deref())?;
    let webhook_url = non_empty(new.webhook_url);
    let logo_url = non_empty(new.logo_url);
    validate_url("webhook URL", webhook_url.as_deref())?;
    validate_url("logo URL", logo_url.as_deref())?;
    let app = App {
        id: format!("app_{}", uuid::Uuid::new_v4().simple()),
        name: new.name.trim().to_string(),
        logo_url,
        brand_color,
        allowed_origins,
        redirect_uris,
        webhook_url,
        require_signature: false,
    };
    let (test_pk, test_sk) = new_key_pair(Mode::Test);
    let (live_pk, live_sk) = new_key_pair(Mode::Live);

    let mut tx = db.begin_write().await?;
    sqlx::query(
        "INSERT INTO apps (id, name, logo_url, brand_color, allowed_origins, redirect_uris, webhook_url, \
         require_signature, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, 0, $8, $8)",
    )
    .bind(&app.id)
    .bind(&app.name)
    .bind(app.logo_url.clone())
    .bind(app.brand_color.clone())
    .bind(serde_json::to_string(&app.allowed_origins)?)
    .bind(serde_json::to_string(&app.redirect_uris)?)
    .bind(app.webhook_url.clone())
    .bind(now)
    .execute(&mut *tx)
    .await
    .context("inserting app")?;
    for (mode, pk, sk) in [(Mode::Test, &test_pk, &test_sk), (Mode::Live, &live_pk, &live_sk)] {
        use secrecy::ExposeSecret as _;
        sqlx::query(
            "INSERT INTO api_keys (id, app_id, mode, publishable_key, secret_hash, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $6)",
        )
        .bind(uuid::Uuid::new_v4().to_string())
        .bind(&app.id)
        .bind(mode.as_str())
        .bind(pk.as_str())
        .bind(crypto::hash_token(sk.expose_secret()))
        .bind(now)
        .execute(&mut *tx)
        .await
        .context("inserting api key")?;
    }
    tx.commit().await?;
    Ok((
        app,
        CreatedKeys { test_publishable: test_pk, test_secret: test_sk, live_publishable: live_pk, live_secret: live_sk },
    ))
}

/// The app with this id.
///
/// # Errors
/// Database errors.
pub async fn get(db: &Db, id: &str) -> anyhow::Result<Option<App>> {
    let row = sqlx::query(&format!("SELECT {APP_COLUMNS} FROM apps WHERE id = $1"))
        .bind(id)
        .fetch_optional(&db.pool)
        .await?;
    row.as_ref().map(app_from_row).transpose()
}

/// Every app, oldest first.
///
/// # Errors
/// Database errors.
pub async fn list(db: &Db) -> anyhow::Result<Vec<App>> {
    let rows = sqlx::query(&format!("SELECT {APP_COLUMNS} FROM apps ORDER BY created_at, name, id"))
        .fetch_all(&db.pool)
        .await?;
    rows.iter().map(app_from_row).collect()
}

/// The publishable keys of an app (one per mode), for listing.
///
/// # Errors
/// Database errors.
pub async fn keys(db: &Db, app_id: &str) -> anyhow::Result<Vec<KeyInfo>> {
    let rows = sqlx::query(
        "SELECT mode, publishable_key, previous_valid_until FROM api_keys WHERE app_id = $1 ORDER BY mode DESC",
    )
    .bind(app_id)
    .fetch_all(&db.pool)
    .await?;
    rows.iter()
        .map(|r| {
            let mode: String = r.try_get("mode")?;
            Ok(KeyInfo {
                mode: Mode::parse(&mode).context("api_keys.mode")?,
                publishable_key: r.try_get("publishable_key")?,
                previous_valid_until: r.try_get("previous_valid_until")?,
            })
        })
        .collect()
}

/// The app and mode of a publishable key (`pk_test_…` / `pk_live_…`), if it exists.
///
/// # Errors
/// Database errors.
pub async fn by_publishable_key(db: &Db, pk: &str) -> anyhow::Result<Option<(App, Mode)>> {
    if Mode::of_publishable_key(pk).is_none() {
        return Ok(None);
    }
    let row = sqlx::query(&format!(
        "SELECT k.mode AS key_mode, {} FROM api_keys k JOIN apps a ON a.id = k.app_id WHERE k.publishable_key = $1",
        prefixed_app_columns()
    ))
    .bind(pk)
    .fetch_optional(&db.pool)
    .await?;
    row.map(|r| app_and_mode(&r)).transpose()
}

/// The app and mode of a secret key (`sk_test_…` / `sk_live_…`), found by the SHA-256 of the presented key.
/// A rotated-out secret is still accepted while `now < previous_valid_until` (the rotation grace period).
///
/// # Errors
/// Database errors.
pub async fn by_secret_key(db: &Db, now: i64, sk: &str) -> anyhow::Result<Option<(App, Mode)>> {
    if !(sk.starts_with("sk_test_") || sk.starts_with("sk_live_")) {
        return Ok(None);
    }
    let hash = crypto::hash_token(sk);
    let row = sqlx::query(&format!(
        "SELECT k.mode AS key_mode, {} FROM api_keys k JOIN apps a ON a.id = k.app_id \
         WHERE k.secret_hash = $1 OR (k.previous_secret_hash = $1 AND k.previous_valid_until > $2)",
        prefixed_app_columns()
    ))
    .bind(&hash)
    .bind(now)
    .fetch_optional(&db.pool)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let (app, mode) = app_and_mode(&row)?;
    // The prefix is part of what the integrator holds: a test secret never authenticates as live.
    if !sk.starts_with(&format!("sk_{}_", mode.as_str())) {
        return Ok(None);
    }
    Ok(Some((app, mode)))
}

fn prefixed_app_columns() -> String {
    APP_COLUMNS.split(", ").map(|c| format!("a.{c}")).collect::<Vec<_>>().join(", ")
}

fn app_and_mode(row: &sqlx::any::AnyRow) -> anyhow::Result<(App, Mode)> {
    let mode: String = row.try_get("key_mode")?;
    Ok((app_from_row(row)?, Mode::parse(&mode).context("api_keys.mode")?))
}

/// Replaces the secret key of `mode`; the old secret keeps working for `grace_secs` more seconds
/// (0 = revoked at once). Returns the new secret (shown once).
///
/// # Errors
/// Unknown app; database errors.
pub async fn rotate_secret(db: &Db, now: i64, app_id: &str, mode: Mode, grace_secs: i64) -> anyhow::Result<SecretString> {
    use secrecy::ExposeSecret as _;
    let (_, sk) = new_key_pair(mode);
    // Both engines evaluate every right-hand side against the row as it was, so the old hash moves to
    // `previous_secret_hash` while the new one replaces it.
    let query = if grace_secs > 0 {
        sqlx::query(
            "UPDATE api_keys SET previous_secret_hash = secret_hash, previous_valid_until = $1, secret_hash = $2, \
             updated_at = $3 WHERE app_id = $4 AND mode = $5",
        )
        .bind(now + grace_secs)
    } else {
        sqlx::query(
            "UPDATE api_keys SET previous_secret_hash = NULL, previous_valid_until = NULL, secret_hash = $1, \
             updated_at = $2 WHERE app_id = $3 AND mode = $4",
        )
    };
    let updated = query
        .bind(crypto::hash_token(sk.expose_secret()))
        .bind(now)
        .bind(app_id)
        .bind(mode.as_str())
        .execute(&db.pool)
        .await
        .context("rotating secret key")?;
    anyhow::ensure!(updated.rows_affected() == 1, "no {} key for app {app_id}", mode.as_str());
    Ok(sk)
}

/// Applies `change` to an app and returns it as stored.
///
/// # Errors
/// Unknown app; invalid values; database errors.
pub async fn update(db: &Db, now: i64, app_id: &str, change: AppUpdate) -> anyhow::Result<App> {
    let mut app = get(db, app_id).await?.with_context(|| format!("no app {app_id}"))?;
    if let Some(n) = change.name {
        anyhow::ensure!(!n.trim().is_empty(), "an app needs a name");
        app.name = n.trim().to_string();
    }
    if let Some(o) = change.allowed_origins {
        app.allowed_origins = normalize_origins(o);
    }
    if let Some(r) = change.redirect_uris {
        app.redirect_uris = r.into_iter().map(|r| r.trim().to_string()).filter(|r| !r.is_empty()).collect();
    }
    if let Some(w) = change.webhook_url {
        app.webhook_url = non_empty(Some(w));
    }
    if let Some(l) = change.logo_url {
        app.logo_url = non_empty(Some(l));
    }
    if let Some(c) = change.brand_color {
        app.brand_color = non_empty(Some(c));
    }
    if let Some(s) = change.require_signature {
        app.require_signature = s;
    }
    validate(&app.allowed_origins, &app.redirect_uris, app.brand_color.as_deref())?;
    validate_url("webhook URL", app.webhook_url.as_deref())?;
    validate_url("logo URL", app.logo_url.as_deref())?;
    sqlx::query(
        "UPDATE apps SET name = $1, logo_url = $2, brand_color = $3, allowed_origins = $4, redirect_uris = $5, \
         webhook_url = $6, require_signature = $7, updated_at = $8 WHERE id = $9",
    )
    .bind(&app.name)
    .bind(app.logo_url.clone())
    .bind(app.brand_color.clone())
    .bind(serde_json::to_string(&app.allowed_origins)?)
    .bind(serde_json::to_string(&app.redirect_uris)?)
    .bind(app.webhook_url.clone())
    .bind(i64::from(app.require_signature))
    .bind(now)
    .bind(&app.id)
    .execute(&db.pool)
    .await
    .context("updating app")?;
    Ok(app)
}

/// The publishable key of an app's key pair of one mode (the OAuth `client_id` of the redirect flow).
///
/// # Errors
/// Database errors.
pub async fn publishable_key(db: &Db, app_id: &str, mode: Mode) -> anyhow::Result<Option<String>> {
    let row = sqlx::query("SELECT publishable_key FROM api_keys WHERE app_id = $1 AND mode = $2")
        .bind(app_id)
        .bind(mode.as_str())
        .fetch_optional(&db.pool)
        .await?;
    Ok(row.map(|r| r.try_get("publishable_key")).transpose()?)
}

/// The app's webhook URL, when it has a non-blank one.
///
/// # Errors
/// Database errors.
pub async fn webhook_url<'e, E>(ex: E, app_id: &str) -> anyhow::Result<Option<String>>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let row = sqlx::query("SELECT webhook_url FROM apps WHERE id = $1").bind(app_id).fetch_optional(ex).await?;
    Ok(row
        .map(|r| r.try_get::<Option<String>, _>("webhook_url"))
        .transpose()?
        .flatten()
        .filter(|u| !u.trim().is_empty()))
}

/// The app's sealed webhook signing secret and its key id, when one was stored. `Err` for an unknown app.
///
/// # Errors
/// Unknown app; database errors.
pub async fn webhook_secret_sealed(db: &Db, app_id: &str) -> anyhow::Result<Option<(Vec<u8>, String)>> {
    let row = sqlx::query("SELECT webhook_secret_enc, webhook_key_id FROM apps WHERE id = $1")
        .bind(app_id)
        .fetch_optional(&db.pool)
        .await?
        .context("unknown app")?;
    let enc: Option<Vec<u8>> = row.try_get("webhook_secret_enc")?;
    let key_id: Option<String> = row.try_get("webhook_key_id")?;
    Ok(enc.zip(key_id))
}

/// Stores a sealed webhook signing secret: only when none is stored yet (`only_if_absent`, so of two instances
/// racing to create one, the first write wins), or replacing it. Returns whether it was written.
///
/// # Errors
/// Database errors.
pub async fn set_webhook_secret_sealed(
    db: &Db,
    app_id: &str,
    sealed: &[u8],
    key_id: &str,
    now: i64,
    only_if_absent: bool,
) -> anyhow::Result<bool> {
    let sql = if only_if_absent {
        "UPDATE apps SET webhook_secret_enc = $1, webhook_key_id = $2, updated_at = $3 WHERE id = $4 \
         AND webhook_secret_enc IS NULL"
    } else {
        "UPDATE apps SET webhook_secret_enc = $1, webhook_key_id = $2, updated_at = $3 WHERE id = $4"
    };
    let n = sqlx::query(sql).bind(sealed).bind(key_id).bind(now).bind(app_id).execute(&db.pool).await?.rows_affected();
    Ok(n == 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_pairs_have_mode_prefixes() {
        use secrecy::ExposeSecret as _;
        let (pk, sk) = new_key_pair(Mode::Live);
        assert!(pk.starts_with("pk_live_"));
        assert!(sk.expose_secret().starts_with("sk_live_"));
        assert!(!format!("{:?}", CreatedKeys {
            test_publishable: pk.clone(),
            test_secret: sk.clone(),
            live_publishable: pk,
            live_secret: sk.clone()
        })
        .contains(sk.expose_secret()));
    }

    #[test]
    fn validation() {
        assert!(validate(&["https://app.example".into()], &[], Some("#0b5fff")).is_ok());
        assert!(validate(&["http://127.0.0.1:3000".into()], &["myapp://cb".into()], None).is_ok());
        assert!(validate(&["https://app.example/path".into()], &[], None).is_err());
        assert!(validate(&["app.example".into()], &[], None).is_err());
        assert!(validate(&[], &[], Some("blue")).is_err());
        assert!(validate(&[], &["https://x.example/cb#frag".into()], None).is_err());
    }
}
