//! The `plan_requests` table: the plans patients looked for in the picker and could not find ("Can't find your
//! plan?"), for the operator to add. Only what was typed, the app, the mode and the language: no user id, no
//! session, nothing that ties a request to a person. The only module that writes SQL on it.

use serde::Serialize;
use sqlx::Row as _;

use crate::{domain::Mode, server::platform::db::Db};

/// Longest name kept, in characters.
pub const MAX_NAME_CHARS: usize = 120;

/// One request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlanRequest {
    /// `pr_…`.
    pub id: String,
    /// The app whose Link it was asked in.
    pub app_id: String,
    /// Test or live.
    pub mode: Mode,
    /// What the patient typed (trimmed, at most [`MAX_NAME_CHARS`]).
    pub name: String,
    /// The screen's language.
    pub language: String,
    /// When (Unix s).
    pub created_at: i64,
}

/// Stores a request. Returns its id.
///
/// # Errors
/// Database errors.
pub async fn record(db: &Db, now: i64, app_id: &str, mode: Mode, name: &str, language: &str) -> anyhow::Result<String> {
    let id = format!("pr_{}", uuid::Uuid::new_v4().simple());
    let name: String = name.trim().chars().filter(|c| !c.is_control()).take(MAX_NAME_CHARS).collect();
    sqlx::query("INSERT INTO plan_requests (id, app_id, mode, name, language, created_at) VALUES ($1, $2, $3, $4, $5, $6)")
        .bind(&id)
        .bind(app_id)
        .bind(mode.as_str())
        .bind(&name)
        .bind(language)
        .bind(now)
        .execute(&db.pool)
        .await?;
    Ok(id)
}

/// The latest requests (at most `limit`), newest first.
///
/// # Errors
/// Database errors.
pub async fn latest(db: &Db, limit: i64) -> anyhow::Result<Vec<PlanRequest>> {
    let rows = sqlx::query("SELECT id, app_id, mode, name, language, created_at FROM plan_requests ORDER BY created_at DESC, id DESC LIMIT $1")
        .bind(limit.clamp(1, 10_000))
        .fetch_all(&db.pool)
        .await?;
    rows.iter()
        .map(|r| {
            let mode: String = r.try_get("mode")?;
            Ok(PlanRequest {
                id: r.try_get("id")?,
                app_id: r.try_get("app_id")?,
                mode: Mode::parse(&mode).ok_or_else(|| anyhow::anyhow!("plan_requests.mode"))?,
                name: r.try_get("name")?,
                language: r.try_get("language")?,
                created_at: r.try_get("created_at")?,
            })
        })
        .collect()
}
