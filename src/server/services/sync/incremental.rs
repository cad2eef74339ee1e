//! Which types a re-sync asks the payer for changes only: the documented rule of docs/lifecycle.md
//! ("Incremental re-syncs").
//!
//! A type is searched with `_lastUpdated=ge{since}` when all of these hold, else it is read in full:
//! - an earlier sync of the authorization brought data (`complete` or `partial`), and it fetched this type
//!   completely (not skipped, paging not stopped early);
//! - a sync that read every type in full started less than [`FULL_SYNC_EVERY_SECS`] ago: a full read is the
//!   only way to learn that the payer deleted something, so one happens at least that often;
//! - the payer's CapabilityStatement (`GET [base]/metadata`, read at the start of the job) lists `_lastUpdated`
//!   for the type, or for every type;
//! - the type is not `Patient`, which is read by id on every sync.
//!
//! `since` is the start of the earlier sync less [`SINCE_MARGIN_SECS`], for the payer's clock and the delay
//! before a change shows in its search index: a resource changed while that sync ran is asked for again
//! (stored as `unchanged` if it was already seen), never missed.

use serde_json::Value;
use time::{format_description::well_known::Rfc3339, OffsetDateTime};

use crate::{
    domain::Incremental,
    server::{fhir::capability, services::payer::fhir_client::Payer, state::AppState, store::sync_jobs},
};

/// A sync reads every type in full at least this often, in seconds (7 days): deletions at the payer are found
/// only by full reads.
pub const FULL_SYNC_EVERY_SECS: i64 = 7 * 86_400;
/// How far before the earlier sync's start the changes are asked from, in seconds (1 hour).
pub const SINCE_MARGIN_SECS: i64 = 3_600;

/// The plan of a job about to read `types` (in order) of `authorization_id`: `Ok(None)` for a full sync, with a
/// warning to record when the CapabilityStatement could not be read. `fetched_types` reads the types an earlier
/// job's saved cursor marks as done (the cursor's shape belongs to the job module).
///
/// # Errors
/// Database errors.
pub async fn plan(
    state: &AppState,
    payer: &Payer,
    authorization_id: &str,
    types: &[String],
    fetched_types: fn(&str) -> Vec<String>,
) -> anyhow::Result<(Option<Incremental>, Option<String>)> {
    let now = state.clock.now();
    let Some((last, cursor, full_started_at)) = sync_jobs::last_success(&state.db, authorization_id).await? else {
        return Ok((None, None));
    };
    let (Some(started_at), Some(full_started_at)) = (last.started_at, full_started_at) else {
        return Ok((None, None));
    };
    if now - full_started_at >= FULL_SYNC_EVERY_SECS {
        return Ok((None, None));
    }
    let fetched_before = fetched_types(&cursor);
    let candidates: Vec<&String> = types
        .iter()
        .filter(|t| t.as_str() != "Patient" && fetched_before.contains(t))
        .filter(|t| !last.skipped.iter().any(|s| &s.resource_type == *t))
        .filter(|t| !last.incomplete.iter().any(|i| &i.resource_type == *t))
        .collect();
    if candidates.is_empty() {
        return Ok((None, None));
    }
    let cs: Value = match payer.url("metadata") {
        Ok(url) => match payer.get(&url).await.ok().and_then(|body| serde_json::from_slice(&body).ok()) {
            Some(cs) => cs,
            None => {
                return Ok((None, Some("the payer's CapabilityStatement could not be read: every type was read in full".into())))
            }
        },
        Err(_) => return Ok((None, None)),
    };
    let types: Vec<String> =
        candidates.into_iter().filter(|t| capability::searches(&cs, t, "_lastUpdated")).cloned().collect();
    if types.is_empty() {
        return Ok((None, None));
    }
    Ok((Some(Incremental { since: instant(started_at - SINCE_MARGIN_SECS), types }), None))
}

/// A FHIR `instant` in UTC, whole seconds: `2026-12-01T09:30:00Z`.
fn instant(unix: i64) -> String {
    OffsetDateTime::from_unix_timestamp(unix).ok().and_then(|t| t.format(&Rfc3339).ok()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #[test]
    fn instants_are_utc_seconds() {
        assert_eq!(super::instant(1_764_581_400), "2025-12-01T09:30:00Z");
    }
}
