//! Storage of synced resources: the JSON exactly as the payer sent it, plus the index columns the FHIR API
//! searches on (type, id, patient, `meta.lastUpdated`, a main date, status, and "system|code" tokens).
//!
//! Rows are keyed by (authorization, type, id) and upserted: the newest `meta.lastUpdated` wins, and a
//! version without `lastUpdated` always replaces the stored one (it cannot be ordered, and it is the most
//! recently fetched). With `--encrypt-resources` the body is sealed with aad [`resource_aad`].

use std::collections::BTreeSet;

use serde_json::Value;

use crate::server::{platform::crypto::Cipher, state::AppState};

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

/// A resource ready to be stored: its raw text and the index values read from it.
#[derive(Debug, Clone)]
pub struct Indexed {
    /// `resourceType`.
    pub resource_type: String,
    /// `id`.
    pub id: String,
    /// `meta.versionId`.
    pub version_id: Option<String>,
    /// `meta.lastUpdated` as sent.
    pub last_updated: Option<String>,
    /// `meta.lastUpdated` as Unix seconds, when it parses.
    pub last_updated_at: Option<i64>,
    /// `Patient/{id}` this resource belongs to.
    pub patient_ref: Option<String>,
    /// The resource's main date as sent (see [`main_date`]).
    pub date_value: Option<String>,
    /// Top-level `status`.
    pub status: Option<String>,
    /// "system|code" tokens of identifier, type, category, code, class.
    pub tokens: Vec<String>,
    /// The exact JSON text received.
    pub raw: String,
}

/// Reads the index values of a resource. `None` when it has no `resourceType` or `id` (cannot be stored).
pub fn index(raw: &str, value: &Value) -> Option<Indexed> {
    let resource_type = value.get("resourceType")?.as_str()?.to_string();
    let id = value.get("id")?.as_str().filter(|s| !s.is_empty())?.to_string();
    let meta_str = |k: &str| value.get("meta").and_then(|m| m.get(k)).and_then(Value::as_str).map(String::from);
    let last_updated = meta_str("lastUpdated");
    let last_updated_at = last_updated.as_deref().and_then(parse_instant);
    let patient_ref = if resource_type == "Patient" {
        Some(format!("Patient/{id}"))
    } else {
        ["patient", "subject", "beneficiary"]
            .iter()
            .filter_map(|f| value.get(*f)?.get("reference")?.as_str())
            .find_map(patient_ref_of)
    };
    Some(Indexed {
        date_value: main_date(&resource_type, value),
        status: value.get("status").and_then(Value::as_str).map(String::from),
        tokens: search_tokens(value),
        version_id: meta_str("versionId"),
        last_updated,
        last_updated_at,
        patient_ref,
        resource_type,
        id,
        raw: raw.to_string(),
    })
}

/// `Patient/{id}` from a reference (relative or absolute); `None` for other types.
pub fn patient_ref_of(reference: &str) -> Option<String> {
    let r = reference.split(['?', '#']).next()?;
    let parts: Vec<&str> = r.trim_end_matches('/').split('/').collect();
    // Patient/{id} or Patient/{id}/_history/{vid}, possibly behind a base URL.
    let n = parts.len();
    let (ty, id) = if n >= 4 && parts[n - 2] == "_history" { (parts[n - 4], parts[n - 3]) } else if n >= 2 { (parts[n - 2], parts[n - 1]) } else { return None };
    (ty == "Patient" && !id.is_empty()).then(|| format!("Patient/{id}"))
}

fn parse_instant(s: &str) -> Option<i64> {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok().map(|t| t.unix_timestamp())
}

/// The main date of a resource (the one `date`-style searches use), as sent.
pub fn main_date(resource_type: &str, v: &Value) -> Option<String> {
    let paths: &[&str] = match resource_type {
        "ExplanationOfBenefit" | "Claim" => &["/billablePeriod/start", "/created"],
        "Coverage" | "Encounter" | "CarePlan" | "EpisodeOfCare" => &["/period/start"],
        "Observation" | "DiagnosticReport" => &["/effectiveDateTime", "/effectivePeriod/start", "/issued"],
        "Condition" => &["/recordedDate", "/onsetDateTime", "/onsetPeriod/start"],
        "Procedure" => &["/performedDateTime", "/performedPeriod/start"],
        "MedicationRequest" => &["/authoredOn"],
        "MedicationDispense" => &["/whenHandedOver", "/whenPrepared"],
        "Immunization" => &["/occurrenceDateTime"],
        "AllergyIntolerance" => &["/recordedDate", "/onsetDateTime"],
        "DocumentReference" | "Composition" => &["/date"],
        _ => &["/date", "/created", "/authoredOn", "/effectiveDateTime", "/period/start"],
    };
    paths.iter().find_map(|p| v.pointer(p).and_then(Value::as_str)).map(String::from)
}

/// "system|code" tokens (system empty when absent) of `identifier`, `type`, `category`, `code` and `class`.
pub fn search_tokens(v: &Value) -> Vec<String> {
    let mut out = BTreeSet::new();
    for field in ["identifier", "type", "category", "code", "class"] {
        let Some(x) = v.get(field) else { continue };
        let items: Vec<&Value> = match x {
            Value::Array(a) => a.iter().collect(),
            other => vec![other],
        };
        for item in items {
            // Identifier: system|value.
            if let Some(value) = item.get("value").and_then(Value::as_str) {
                let system = item.get("system").and_then(Value::as_str).unwrap_or("");
                out.insert(format!("{system}|{value}"));
            }
            // CodeableConcept: coding[]; Coding: itself.
            let codings: Vec<&Value> = match item.get("coding") {
                Some(Value::Array(c)) => c.iter().collect(),
                _ => vec![item],
            };
            for c in codings {
                if let Some(code) = c.get("code").and_then(Value::as_str) {
                    let system = c.get("system").and_then(Value::as_str).unwrap_or("");
                    out.insert(format!("{system}|{code}"));
                }
            }
        }
    }
    out.into_iter().collect()
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

/// The resource types stored for an authorization, in name order.
///
/// # Errors
/// Database errors.
pub async fn stored_types(db: &crate::server::platform::db::Db, authorization_id: &str) -> anyhow::Result<Vec<String>> {
    use sqlx::Row as _;
    let rows = sqlx::query("SELECT DISTINCT resource_type FROM resources WHERE authorization_id = $1 ORDER BY resource_type")
        .bind(authorization_id)
        .fetch_all(&db.pool)
        .await?;
    rows.iter().map(|r| Ok(r.try_get::<String, _>("resource_type")?)).collect()
}

/// Deletes every resource of an authorization through `ex` (the transaction that expunges it); returns how many.
///
/// # Errors
/// Database errors.
pub async fn delete_for_authorization<'e, E>(ex: E, authorization_id: &str) -> anyhow::Result<u64>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    Ok(sqlx::query("DELETE FROM resources WHERE authorization_id = $1")
        .bind(authorization_id)
        .execute(ex)
        .await?
        .rows_affected())
}

/// Every `reference` string inside a resource, at any depth (also inside `contained` resources). Used by the
/// sync to resolve references and by the FHIR API for `_include=Type:*`.
pub fn references(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                if k == "reference" {
                    if let Value::String(s) = x {
                        out.push(s.clone());
                    }
                } else {
                    references(x, out);
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| references(x, out)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tokens_and_dates() {
        let v = json!({"resourceType": "ExplanationOfBenefit", "id": "e1", "status": "active",
            "identifier": [{"system": "s", "value": "v"}],
            "type": {"coding": [{"system": "t", "code": "c"}, {"code": "bare"}]},
            "billablePeriod": {"start": "2020-01-01"}, "patient": {"reference": "Patient/p1"},
            "meta": {"lastUpdated": "2023-01-02T03:04:05.123+00:00"}});
        let i = index(&v.to_string(), &v).unwrap();
        assert_eq!(i.tokens, vec!["s|v", "t|c", "|bare"].into_iter().map(String::from).collect::<BTreeSet<_>>().into_iter().collect::<Vec<_>>());
        assert_eq!(i.date_value.as_deref(), Some("2020-01-01"));
        assert_eq!(i.patient_ref.as_deref(), Some("Patient/p1"));
        assert!(i.last_updated_at.is_some());
    }

    #[test]
    fn patient_refs() {
        assert_eq!(patient_ref_of("Patient/123").as_deref(), Some("Patient/123"));
        assert_eq!(patient_ref_of("https://x.example/fhir/Patient/-1").as_deref(), Some("Patient/-1"));
        assert_eq!(patient_ref_of("Organization/1"), None);
    }
}
