//! Storage of synced resources: the JSON exactly as the payer sent it, plus the index columns the FHIR API
//! searches on (type, id, patient, `meta.lastUpdated`, a main date, status, and "system|code" tokens).
//!
//! Rows are keyed by (authorization, type, id) and upserted: the newest `meta.lastUpdated` wins, and a
//! version without `lastUpdated` always replaces the stored one (it cannot be ordered, and it is the most
//! recently fetched). With `--encrypt-resources` the body is sealed with aad [`resource_aad`].

use crate::server::{platform::crypto::Cipher, state::AppState};

/// What [`upsert`] stores: a resource's JSON text and the index values read from it.
pub use crate::server::fhir::index::{index, Indexed};

/// The aad sealing one resource's JSON when resources are encrypted at rest.
pub fn resource_aad(authorization_id: &str, resource_type: &str, id: &str) -> String {
    format!("resource:{authorization_id}/{resource_type}/{id}")
}

/// What to store in `resources (body, body_enc, body_key_id)` for one resource's JSON: `(Some(json), None,
/// None)` normally, `(None, Some(ciphertext), Some(key_id))` with `--encrypt-resources`, the ciphertext bound
/// by [`resource_aad`] to the row's key `(authorization_id, resource_type, id)`.
pub fn seal_body(
    state: &AppState,
    authorization_id: &str,
    resource_type: &str,
    id: &str,
    json: &str,
) -> (Option<String>, Option<Vec<u8>>, Option<String>) {
    if state.settings.encrypt_resources {
        let (enc, key_id) = state.cipher.seal_str(json, &resource_aad(authorization_id, resource_type, id));
        (None, Some(enc), Some(key_id))
    } else {
        (Some(json.to_string()), None, None)
    }
}

/// The JSON text of a stored resource row: `body` when plain, else `body_enc` opened with `body_key_id`.
///
/// # Errors
/// A sealed body that does not open, or a row with neither.
pub fn body_text(
    cipher: &Cipher,
    authorization_id: &str,
    resource_type: &str,
    id: &str,
    body: Option<String>,
    body_enc: Option<Vec<u8>>,
    body_key_id: Option<String>,
) -> anyhow::Result<String> {
    use secrecy::ExposeSecret as _;
    if let Some(b) = body {
        return Ok(b);
    }
    match (body_enc, body_key_id) {
        (Some(enc), Some(k)) => {
            Ok(cipher.open_str(&enc, &k, &resource_aad(authorization_id, resource_type, id))?.expose_secret().to_string())
        }
        _ => anyhow::bail!("resource row has no body"),
    }
}

/// Upserts resources of one authorization in one transaction; returns how many rows were written.
///
/// # Errors
/// Database errors.
pub async fn upsert(state: &AppState, authorization_id: &str, now: i64, items: &[Indexed]) -> anyhow::Result<u64> {
    if items.is_empty() {
        return Ok(0);
    }
    let encrypt = state.settings.encrypt_resources;
    let mut tx = state.db.begin_write().await?;
    let mut n = 0;
    for r in items {
        let (body, body_enc, key_id) = seal_body(state, authorization_id, &r.resource_type, &r.id, &r.raw);
        n += sqlx::query(
            "INSERT INTO resources (authorization_id, resource_type, id, version_id, last_updated, last_updated_at, \
             patient_ref, date_value, status, body, body_enc, body_key_id, search_tokens, fetched_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) \
             ON CONFLICT (authorization_id, resource_type, id) DO UPDATE SET version_id = excluded.version_id, \
             last_updated = excluded.last_updated, last_updated_at = excluded.last_updated_at, \
             patient_ref = excluded.patient_ref, date_value = excluded.date_value, status = excluded.status, \
             body = excluded.body, body_enc = excluded.body_enc, body_key_id = excluded.body_key_id, \
             search_tokens = excluded.search_tokens, fetched_at = excluded.fetched_at \
             WHERE resources.last_updated_at IS NULL OR excluded.last_updated_at IS NULL \
             OR excluded.last_updated_at >= resources.last_updated_at",
        )
        .bind(authorization_id)
        .bind(&r.resource_type)
        .bind(&r.id)
        .bind(r.version_id.as_deref())
        .bind(r.last_updated.as_deref())
        .bind(r.last_updated_at)
        .bind(r.patient_ref.as_deref())
        .bind(r.date_value.as_deref())
        .bind(r.status.as_deref())
        .bind(body)
        .bind(body_enc)
        .bind(key_id)
        // Identifier values (member ids) are identifying: with encryption at rest they are not indexed in clear.
        .bind(if encrypt { "[]".to_string() } else { serde_json::to_string(&r.tokens)? })
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    }
    tx.commit().await?;
    Ok(n)
}

/// Whether a resource is already stored for this authorization.
///
/// # Errors
/// Database errors.
pub async fn exists(state: &AppState, authorization_id: &str, resource_type: &str, id: &str) -> anyhow::Result<bool> {
    Ok(sqlx::query("SELECT 1 FROM resources WHERE authorization_id = $1 AND resource_type = $2 AND id = $3")
        .bind(authorization_id)
        .bind(resource_type)
        .bind(id)
        .fetch_optional(&state.db.pool)
        .await?
        .is_some())
}
