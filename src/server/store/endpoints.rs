//! The endpoint directory: payers a patient can pick (upsert, get, search by name and aliases).
//!
//! An endpoint is a payer's FHIR R4 server with the SMART App Launch client registration we hold there.
//! Its client secret is never stored: `client_secret_ref` names the setting (environment variable) that
//! holds it, read when needed. Entries are keyed by a stable UUID so importing the same file twice updates
//! in place.

use anyhow::Context as _;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use sqlx::Row as _;

use crate::server::platform::db::Db;
use crate::domain::Mode;

/// One payer in the directory (the JSON shape of an `endpoints import` entry, camel-case aside).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    /// Stable UUID (the `endpoint` passed to Link and kept on authorizations).
    pub id: String,
    /// Display name, e.g. "Blue Button 2.0 (CMS)".
    pub name: String,
    /// Other names patients may search for (plan brands, abbreviations).
    #[serde(default)]
    pub aliases: Vec<String>,
    /// Logo shown in the payer picker (https URL).
    #[serde(default)]
    pub logo_url: Option<String>,
    /// `test` (sandbox payers, `pk_test_` keys) or `live`.
    pub mode: Mode,
    /// FHIR R4 base URL (no trailing slash); SMART configuration is discovered at
    /// `{fhir_base_url}/.well-known/smart-configuration` unless overridden below.
    pub fhir_base_url: String,
    /// Overrides the discovered `authorization_endpoint`.
    #[serde(default)]
    pub authorize_url: Option<String>,
    /// Overrides the discovered `token_endpoint`.
    #[serde(default)]
    pub token_url: Option<String>,
    /// Our OAuth `client_id` registered at the payer.
    pub client_id: String,
    /// Name of the environment variable holding the client secret (confidential clients); never the secret.
    #[serde(default)]
    pub client_secret_ref: Option<String>,
    /// Extra space-separated scopes to request beyond the defaults.
    #[serde(default)]
    pub scopes: Option<String>,
    /// Whether the payer issues refresh tokens (else `MULTIPLE` usage is downgraded to `ONE_TIME`).
    #[serde(default)]
    pub refreshable: bool,
    /// FHIR resource types this endpoint serves (e.g. `["Patient","Coverage","ExplanationOfBenefit"]`).
    #[serde(default)]
    pub resource_types: Vec<String>,
}

impl Endpoint {
    /// The FHIR base URL without a trailing `/`: the form kept on authorizations, sent as SMART `aud` and used to
    /// build `{base}/.well-known/smart-configuration` and resource URLs.
    pub fn fhir_base(&self) -> &str {
        self.fhir_base_url.trim_end_matches('/')
    }

    /// The client secret, read from the environment variable named by `client_secret_ref`.
    /// `None` for public clients or when the variable is unset or empty.
    pub fn client_secret(&self) -> Option<SecretString> {
        let name = self.client_secret_ref.as_deref()?.trim();
        // A row stored before the prefix rule is never read: it could name one of our own secrets.
        if !valid_secret_ref(name) {
            tracing::warn!(endpoint = %self.id, "client_secret_ref without the {CLIENT_SECRET_REF_PREFIX} prefix is ignored");
            return None;
        }
        std::env::var(name).ok().filter(|v| !v.is_empty()).map(SecretString::from)
    }

    /// Checks the entry before it is stored: UUID id, http(s) URLs (`https` for a live endpoint's FHIR base,
    /// authorize and token URLs), a client id, and a `client_secret_ref` that names a variable starting with
    /// [`CLIENT_SECRET_REF_PREFIX`].
    ///
    /// # Errors
    /// A human-readable description of the first problem.
    pub fn validate(&self) -> anyhow::Result<()> {
        uuid::Uuid::parse_str(&self.id).with_context(|| format!("endpoint id {:?} is not a UUID", self.id))?;
        anyhow::ensure!(!self.name.trim().is_empty(), "endpoint {}: name is empty", self.id);
        anyhow::ensure!(!self.client_id.trim().is_empty(), "endpoint {}: client_id is empty", self.id);
        for (what, u) in [
            ("fhir_base_url", Some(&self.fhir_base_url)),
            ("authorize_url", self.authorize_url.as_ref()),
            ("token_url", self.token_url.as_ref()),
            ("logo_url", self.logo_url.as_ref()),
        ] {
            if let Some(u) = u {
                let parsed = url::Url::parse(u).with_context(|| format!("endpoint {}: {what} is not a URL", self.id))?;
                anyhow::ensure!(
                    matches!(parsed.scheme(), "http" | "https"),
                    "endpoint {}: {what} must be http(s)",
                    self.id
                );
                anyhow::ensure!(
                    self.mode != Mode::Live || what == "logo_url" || parsed.scheme() == "https",
                    "endpoint {}: {what} of a live endpoint must be https",
                    self.id
                );
            }
        }
        if let Some(r) = &self.client_secret_ref {
            anyhow::ensure!(
                valid_secret_ref(r),
                "endpoint {}: client_secret_ref must name an environment variable {CLIENT_SECRET_REF_PREFIX}… \
                 (upper-case letters, digits, _), never hold a secret",
                self.id
            );
        }
        Ok(())
    }
}

/// The prefix every `client_secret_ref` must have: an endpoint may only name variables set aside for payer
/// client secrets, never one of the server's own (`LINK_ENCRYPTION_KEY`, `DATABASE_URL`, …).
pub const CLIENT_SECRET_REF_PREFIX: &str = "LINK_PAYER_SECRET_";

/// Whether `r` names a payer client-secret variable: [`CLIENT_SECRET_REF_PREFIX`] then upper-case letters, digits
/// and `_`.
pub fn valid_secret_ref(r: &str) -> bool {
    r.len() > CLIENT_SECRET_REF_PREFIX.len()
        && r.len() <= 128
        && r.starts_with(CLIENT_SECRET_REF_PREFIX)
        && r.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
}

fn search_text(e: &Endpoint) -> String {
    let mut parts = vec![e.name.to_lowercase()];
    parts.extend(e.aliases.iter().map(|a| a.to_lowercase()));
    parts.join("\n")
}

const COLUMNS: &str = "id, name, aliases, logo_url, mode, fhir_base_url, authorize_url, token_url, client_id, \
                       client_secret_ref, scopes, refreshable, resource_types";

fn from_row(row: &sqlx::any::AnyRow) -> anyhow::Result<Endpoint> {
    let aliases: String = row.try_get("aliases")?;
    let types: String = row.try_get("resource_types")?;
    let mode: String = row.try_get("mode")?;
    Ok(Endpoint {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        aliases: serde_json::from_str(&aliases).context("endpoints.aliases is not a JSON array")?,
        logo_url: row.try_get("logo_url")?,
        mode: Mode::parse(&mode).context("endpoints.mode")?,
        fhir_base_url: row.try_get("fhir_base_url")?,
        authorize_url: row.try_get("authorize_url")?,
        token_url: row.try_get("token_url")?,
        client_id: row.try_get("client_id")?,
        client_secret_ref: row.try_get("client_secret_ref")?,
        scopes: row.try_get("scopes")?,
        refreshable: row.try_get::<i64, _>("refreshable")? != 0,
        resource_types: serde_json::from_str(&types).context("endpoints.resource_types is not a JSON array")?,
    })
}

/// Inserts the endpoint, or updates every field of the one with the same id.
///
/// # Errors
/// Database errors.
pub async fn upsert(db: &Db, now: i64, e: &Endpoint) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO endpoints (id, name, aliases, logo_url, mode, fhir_base_url, authorize_url, token_url, \
         client_id, client_secret_ref, scopes, refreshable, resource_types, search_text, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $15) \
         ON CONFLICT (id) DO UPDATE SET name = excluded.name, aliases = excluded.aliases, \
         logo_url = excluded.logo_url, mode = excluded.mode, fhir_base_url = excluded.fhir_base_url, \
         authorize_url = excluded.authorize_url, token_url = excluded.token_url, client_id = excluded.client_id, \
         client_secret_ref = excluded.client_secret_ref, scopes = excluded.scopes, \
         refreshable = excluded.refreshable, resource_types = excluded.resource_types, \
         search_text = excluded.search_text, updated_at = excluded.updated_at",
    )
    .bind(&e.id)
    .bind(&e.name)
    .bind(serde_json::to_string(&e.aliases)?)
    .bind(e.logo_url.clone())
    .bind(e.mode.as_str())
    .bind(e.fhir_base_url.trim_end_matches('/'))
    .bind(e.authorize_url.clone())
    .bind(e.token_url.clone())
    .bind(&e.client_id)
    .bind(e.client_secret_ref.clone())
    .bind(e.scopes.clone())
    .bind(i64::from(e.refreshable))
    .bind(serde_json::to_string(&e.resource_types)?)
    .bind(search_text(e))
    .bind(now)
    .execute(&db.pool)
    .await
    .context("upserting endpoint")?;
    Ok(())
}

/// The endpoint with this id.
///
/// # Errors
/// Database errors.
pub async fn get(db: &Db, id: &str) -> anyhow::Result<Option<Endpoint>> {
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM endpoints WHERE id = $1"))
        .bind(id)
        .fetch_optional(&db.pool)
        .await?;
    row.as_ref().map(from_row).transpose()
}

/// A `LIKE` pattern matching `query` anywhere (case-insensitive on lower-cased text), with the wildcards a
/// patient may type (`%`, `_`, a backslash) matched literally (use with `ESCAPE` and a backslash).
pub fn like_pattern(query: &str) -> String {
    let needle = query.trim().to_lowercase().replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
    format!("%{needle}%")
}

/// SQL condition (on `endpoints` aliased `e`) of an endpoint a new link may use: not disabled by the operator,
/// and registered (a client id is set; an endpoint imported from a brands bundle has none until the operator
/// sets it).
pub fn linkable_sql(e: &str) -> String {
    format!("{e}.disabled_at IS NULL AND {e}.client_id <> ''")
}

/// Endpoints of `mode` open to new links ([`linkable_sql`]) whose name or an alias contains `query`
/// (case-insensitive), by name; an empty query returns every such endpoint of the mode. At most `limit` rows
/// (clamped to 1..=200).
///
/// # Errors
/// Database errors.
pub async fn search(db: &Db, mode: Mode, query: &str, limit: i64) -> anyhow::Result<Vec<Endpoint>> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM endpoints e WHERE mode = $1 AND search_text LIKE $2 ESCAPE '\\' AND {} \
         ORDER BY name, id LIMIT $3",
        linkable_sql("e")
    ))
    .bind(mode.as_str())
    .bind(like_pattern(query))
    .bind(limit.clamp(1, 200))
    .fetch_all(&db.pool)
    .await?;
    rows.iter().map(from_row).collect()
}

/// The endpoint with this id if a new link may use it ([`linkable_sql`]); `None` for an unknown, disabled or
/// unregistered one.
///
/// # Errors
/// Database errors.
pub async fn get_linkable(db: &Db, id: &str) -> anyhow::Result<Option<Endpoint>> {
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM endpoints e WHERE id = $1 AND {}", linkable_sql("e")))
        .bind(id)
        .fetch_optional(&db.pool)
        .await?;
    row.as_ref().map(from_row).transpose()
}

/// The endpoints with these ids (unknown ids are skipped), by name.
///
/// # Errors
/// Database errors.
pub async fn get_many(db: &Db, ids: &[String]) -> anyhow::Result<Vec<Endpoint>> {
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        if let Some(e) = get(db, id).await? {
            out.push(e);
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name).then(a.id.cmp(&b.id)));
    Ok(out)
}

/// The endpoint of `mode` whose FHIR base URL is `fhir_base_url` (trailing `/` ignored), if any: how an import
/// from a brands bundle finds an entry the operator made before.
///
/// # Errors
/// Database errors.
pub async fn find_by_fhir_base(db: &Db, mode: Mode, fhir_base_url: &str) -> anyhow::Result<Option<Endpoint>> {
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM endpoints WHERE mode = $1 AND fhir_base_url = $2 ORDER BY id LIMIT 1"))
        .bind(mode.as_str())
        .bind(fhir_base_url.trim_end_matches('/'))
        .fetch_optional(&db.pool)
        .await?;
    row.as_ref().map(from_row).transpose()
}

/// What the operator holds on an endpoint beyond its import entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct EndpointProfile {
    /// When it was disabled (Unix s); `None` while it is offered to patients.
    pub disabled_at: Option<i64>,
    /// The sign-in service the plan uses, when known (shown to the patient before the hand-off).
    pub identity_provider: Option<String>,
    /// The longest a patient's grant at this payer is kept before they must link again, in seconds.
    pub max_grant_secs: Option<i64>,
}

/// The profile of an endpoint (`None` for an unknown id).
///
/// # Errors
/// Database errors.
pub async fn profile(db: &Db, id: &str) -> anyhow::Result<Option<EndpointProfile>> {
    let row = sqlx::query("SELECT disabled_at, identity_provider, max_grant_secs FROM endpoints WHERE id = $1")
        .bind(id)
        .fetch_optional(&db.pool)
        .await?;
    row.map(|r| {
        Ok(EndpointProfile {
            disabled_at: r.try_get("disabled_at")?,
            identity_provider: r.try_get("identity_provider")?,
            max_grant_secs: r.try_get("max_grant_secs")?,
        })
    })
    .transpose()
}

/// The end of a patient's grant at this endpoint: the earlier of the payer's (`payer`, from
/// `refresh_expires_in`) and `granted_at` + the endpoint's maximum grant time; the payer's alone when the
/// operator set no maximum. Past it, the lifecycle sweep asks the patient to link again (`NEEDS_REAUTH`).
///
/// # Errors
/// Database errors.
pub async fn capped_grant_end(db: &Db, endpoint_id: &str, granted_at: i64, payer: Option<i64>) -> anyhow::Result<Option<i64>> {
    let cap = profile(db, endpoint_id).await?.and_then(|p| p.max_grant_secs).map(|s| granted_at + s);
    Ok(match (payer, cap) {
        (Some(p), Some(c)) => Some(p.min(c)),
        (p, c) => p.or(c),
    })
}

/// Disables (`disabled` true: offered to no new link from now) or enables an endpoint. Returns false for an
/// unknown id or when it already was in that state.
///
/// # Errors
/// Database errors.
pub async fn set_disabled(db: &Db, now: i64, id: &str, disabled: bool) -> anyhow::Result<bool> {
    let sql = if disabled {
        "UPDATE endpoints SET disabled_at = $1, updated_at = $1 WHERE id = $2 AND disabled_at IS NULL"
    } else {
        "UPDATE endpoints SET disabled_at = NULL, updated_at = $1 WHERE id = $2 AND disabled_at IS NOT NULL"
    };
    Ok(sqlx::query(sql).bind(now).bind(id).execute(&db.pool).await?.rows_affected() == 1)
}

/// Sets the identity provider and the maximum grant time of an endpoint (`None` clears them). Returns false for
/// an unknown id.
///
/// # Errors
/// Database errors.
pub async fn set_profile(db: &Db, now: i64, id: &str, identity_provider: Option<&str>, max_grant_secs: Option<i64>) -> anyhow::Result<bool> {
    let done = sqlx::query("UPDATE endpoints SET identity_provider = $1, max_grant_secs = $2, updated_at = $3 WHERE id = $4")
        .bind(identity_provider)
        .bind(max_grant_secs)
        .bind(now)
        .bind(id)
        .execute(&db.pool)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Deletes the endpoint row, through `conn` (the transaction that first removed what refers to it).
///
/// # Errors
/// Database errors (a row still referring to it).
pub async fn delete(conn: &mut sqlx::AnyConnection, id: &str) -> anyhow::Result<bool> {
    Ok(sqlx::query("DELETE FROM endpoints WHERE id = $1").bind(id).execute(conn).await?.rows_affected() == 1)
}

/// Every endpoint, test mode first, by name.
///
/// # Errors
/// Database errors.
pub async fn list(db: &Db) -> anyhow::Result<Vec<Endpoint>> {
    let rows = sqlx::query(&format!("SELECT {COLUMNS} FROM endpoints ORDER BY mode DESC, name, id"))
        .fetch_all(&db.pool)
        .await?;
    rows.iter().map(from_row).collect()
}

/// Whether endpoint `id` is disabled (an unknown id is not).
///
/// # Errors
/// Database errors.
pub async fn is_disabled(db: &Db, id: &str) -> anyhow::Result<bool> {
    let row = sqlx::query("SELECT disabled_at FROM endpoints WHERE id = $1").bind(id).fetch_optional(&db.pool).await?;
    Ok(match row {
        Some(r) => r.try_get::<Option<i64>, _>("disabled_at")?.is_some(),
        None => false,
    })
}

/// The ids of disabled endpoints, with when each was disabled (Unix s).
///
/// # Errors
/// Database errors.
pub async fn disabled(db: &Db) -> anyhow::Result<Vec<(String, i64)>> {
    let rows = sqlx::query("SELECT id, disabled_at FROM endpoints WHERE disabled_at IS NOT NULL ORDER BY id")
        .fetch_all(&db.pool)
        .await?;
    rows.iter().map(|r| Ok((r.try_get("id")?, r.try_get("disabled_at")?))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Endpoint {
        Endpoint {
            id: "6f1c2f9e-2f3a-4b7e-9a51-0c1d2e3f4a5b".into(),
            name: "Example Health".into(),
            aliases: vec!["EXH".into()],
            logo_url: None,
            mode: Mode::Live,
            fhir_base_url: "https://fhir.example.com/r4".into(),
            authorize_url: None,
            token_url: None,
            client_id: "abc".into(),
            client_secret_ref: Some("LINK_PAYER_SECRET_EXAMPLE".into()),
            scopes: None,
            refreshable: true,
            resource_types: vec!["Coverage".into()],
        }
    }

    #[test]
    fn validates_entries() {
        assert!(sample().validate().is_ok());
        let mut bad = sample();
        bad.id = "not-a-uuid".into();
        assert!(bad.validate().is_err());
        let mut bad = sample();
        bad.client_secret_ref = Some("s3cr3t value!".into());
        assert!(bad.validate().is_err());
        for ours in ["LINK_ENCRYPTION_KEY", "DATABASE_URL", "LINK_PAYER_SECRET_", "link_payer_secret_x"] {
            let mut bad = sample();
            bad.client_secret_ref = Some(ours.into());
            assert!(bad.validate().is_err(), "{ours}");
        }
        for field in ["fhir_base_url", "authorize_url", "token_url"] {
            let mut bad = sample();
            let http = "http://fhir.example.com/x".to_string();
            match field {
                "fhir_base_url" => bad.fhir_base_url = http,
                "authorize_url" => bad.authorize_url = Some(http),
                _ => bad.token_url = Some(http),
            }
            assert!(bad.validate().is_err(), "live {field} over http");
            bad.mode = Mode::Test;
            assert!(bad.validate().is_ok(), "test {field} over http");
        }
        let mut bad = sample();
        bad.fhir_base_url = "ftp://x".into();
        assert!(bad.validate().is_err());
    }

    #[test]
    fn search_text_has_name_and_aliases() {
        assert_eq!(search_text(&sample()), "example health\nexh");
    }

    #[test]
    fn json_shape_defaults() {
        let e: Endpoint = serde_json::from_str(
            r#"{"id":"6f1c2f9e-2f3a-4b7e-9a51-0c1d2e3f4a5b","name":"X","mode":"test",
                "fhir_base_url":"https://x.example/fhir","client_id":"c"}"#,
        )
        .unwrap();
        assert!(!e.refreshable);
        assert!(e.aliases.is_empty());
    }
}
