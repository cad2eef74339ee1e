//! The `link_outcomes` table: how far each Link session got and how it ended, one row per session (or per
//! `open()` refused before a session existed), the unit the funnel counts. A row holds the first time the session
//! reached each stage, its last plan and its ending; it outlives the session (it has no id that can act and no
//! `externalId`) until `--insights-retention-days` have passed. The only module that writes SQL on it.

use anyhow::Context as _;
use sqlx::Row as _;

use crate::{
    domain::{ExitCode, LinkEventName, LinkStep, Mode},
    server::platform::db::Db,
};

/// One session's outcome (times in Unix s).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The session's public id.
    pub public_id: String,
    /// The app.
    pub app_id: String,
    /// Test or live.
    pub mode: Mode,
    /// The last plan chosen.
    pub endpoint_id: Option<String>,
    /// Opened.
    pub opened_at: i64,
    /// Consent given.
    pub consented_at: Option<i64>,
    /// A plan chosen (or given by the integrator).
    pub chosen_at: Option<i64>,
    /// Sent to the plan's sign-in.
    pub handed_off_at: Option<i64>,
    /// The plan authorized.
    pub authorized_at: Option<i64>,
    /// Ended with success.
    pub succeeded_at: Option<i64>,
    /// Ended without success.
    pub ended_at: Option<i64>,
    /// The ending's exit code.
    pub exit_code: Option<ExitCode>,
    /// The step where the ending arose.
    pub exit_step: Option<LinkStep>,
}

/// Starts the outcome of session `public_id`, opened at `at`, through `ex`.
///
/// # Errors
/// Database errors.
pub async fn open<'e, E>(ex: E, public_id: &str, app_id: &str, mode: Mode, endpoint_id: Option<&str>, at: i64) -> anyhow::Result<()>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    sqlx::query(
        "INSERT INTO link_outcomes (public_id, app_id, mode, endpoint_id, opened_at, chosen_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $5)",
    )
    .bind(public_id)
    .bind(app_id)
    .bind(mode.as_str())
    .bind(endpoint_id)
    .bind(at)
    .bind(endpoint_id.map(|_| at))
    .execute(ex)
    .await
    .context("starting a link outcome")?;
    Ok(())
}

/// What an event changes in its session's outcome.
pub struct Step<'a> {
    /// The event.
    pub name: LinkEventName,
    /// The plan it names, if any.
    pub endpoint_id: Option<&'a str>,
    /// `EXIT`: its code.
    pub exit_code: Option<ExitCode>,
    /// `EXIT`: the step where the ending arose.
    pub exit_step: Option<LinkStep>,
    /// When (Unix s).
    pub at: i64,
}

/// Moves the outcome of `public_id` on with `step`: the first time of each stage is kept, the plan is the last
/// one named, and only the first ending counts (an ending never follows another). Events that are no stage of the
/// funnel change nothing.
///
/// # Errors
/// Database errors.
pub async fn apply<'e, E>(ex: E, public_id: &str, step: &Step<'_>) -> anyhow::Result<()>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    // Fixed SQL per stage: $1 the public id, $2 the time, then what the stage needs (PostgreSQL refuses a bound
    // parameter the statement does not use, so each binds only its own).
    let (set, endpoint, ending) = match step.name {
        LinkEventName::ConsentGiven => ("consented_at = COALESCE(consented_at, $2)", false, false),
        LinkEventName::EndpointSelected => {
            ("chosen_at = COALESCE(chosen_at, $2), endpoint_id = COALESCE($3, endpoint_id)", true, false)
        }
        LinkEventName::Handoff => (
            "chosen_at = COALESCE(chosen_at, $2), handed_off_at = COALESCE(handed_off_at, $2), \
             endpoint_id = COALESCE($3, endpoint_id)",
            true,
            false,
        ),
        LinkEventName::PayerAuthorized => ("authorized_at = COALESCE(authorized_at, $2)", false, false),
        LinkEventName::Success => (
            "succeeded_at = CASE WHEN ended_at IS NULL THEN COALESCE(succeeded_at, $2) ELSE succeeded_at END",
            false,
            false,
        ),
        LinkEventName::Exit => (
            "exit_code = CASE WHEN ended_at IS NULL AND succeeded_at IS NULL THEN $3 ELSE exit_code END, \
             exit_step = CASE WHEN ended_at IS NULL AND succeeded_at IS NULL THEN $4 ELSE exit_step END, \
             ended_at = CASE WHEN ended_at IS NULL AND succeeded_at IS NULL THEN $2 ELSE ended_at END",
            false,
            true,
        ),
        _ => return Ok(()),
    };
    let sql = format!("UPDATE link_outcomes SET {set}, updated_at = $2 WHERE public_id = $1");
    let mut q = sqlx::query(&sql).bind(public_id).bind(step.at);
    if endpoint {
        q = q.bind(step.endpoint_id);
    }
    if ending {
        q = q.bind(step.exit_code.map(ExitCode::as_str)).bind(step.exit_step.map(LinkStep::as_str));
    }
    q.execute(ex).await.context("updating a link outcome")?;
    Ok(())
}

/// Marks the outcome of `public_id` as reported to the integrator (the `link.events` webhook); returns whether
/// this call did it (one atomic conditional update, so it is reported once).
///
/// # Errors
/// Database errors.
pub async fn claim_report<'e, E>(ex: E, public_id: &str, now: i64) -> anyhow::Result<bool>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let done = sqlx::query("UPDATE link_outcomes SET reported_at = $2 WHERE public_id = $1 AND reported_at IS NULL")
        .bind(public_id)
        .bind(now)
        .execute(ex)
        .await
        .context("marking a link outcome reported")?;
    Ok(done.rows_affected() == 1)
}

/// Which outcomes [`list`] returns: opened in `[since, until)`, of one app and one endpoint when given.
#[derive(Debug, Clone, Default)]
pub struct OutcomeFilter {
    /// Opened at or after (Unix s).
    pub since: i64,
    /// Opened before (Unix s).
    pub until: i64,
    /// Only this app.
    pub app_id: Option<String>,
    /// Only sessions whose last plan is this endpoint.
    pub endpoint_id: Option<String>,
}

/// The outcomes matching `f`, oldest first.
///
/// # Errors
/// Database errors.
pub async fn list(db: &Db, f: &OutcomeFilter) -> anyhow::Result<Vec<Outcome>> {
    let rows = sqlx::query(
        "SELECT public_id, app_id, mode, endpoint_id, opened_at, consented_at, chosen_at, handed_off_at, \
         authorized_at, succeeded_at, ended_at, exit_code, exit_step FROM link_outcomes \
         WHERE opened_at >= $1 AND opened_at < $2 AND ($3 = '' OR app_id = $3) AND ($4 = '' OR endpoint_id = $4) \
         ORDER BY opened_at, public_id",
    )
    .bind(f.since)
    .bind(f.until)
    .bind(f.app_id.as_deref().unwrap_or(""))
    .bind(f.endpoint_id.as_deref().unwrap_or(""))
    .fetch_all(&db.pool)
    .await
    .context("reading link outcomes")?;
    rows.iter()
        .map(|r| {
            let mode: String = r.try_get("mode")?;
            let exit_code: Option<String> = r.try_get("exit_code")?;
            let exit_step: Option<String> = r.try_get("exit_step")?;
            Ok(Outcome {
                public_id: r.try_get("public_id")?,
                app_id: r.try_get("app_id")?,
                mode: Mode::parse(&mode).context("link_outcomes.mode")?,
                endpoint_id: r.try_get("endpoint_id")?,
                opened_at: r.try_get("opened_at")?,
                consented_at: r.try_get("consented_at")?,
                chosen_at: r.try_get("chosen_at")?,
                handed_off_at: r.try_get("handed_off_at")?,
                authorized_at: r.try_get("authorized_at")?,
                succeeded_at: r.try_get("succeeded_at")?,
                ended_at: r.try_get("ended_at")?,
                exit_code: exit_code.as_deref().and_then(ExitCode::parse),
                exit_step: exit_step.as_deref().and_then(LinkStep::parse),
            })
        })
        .collect()
}

/// Public ids of sessions opened before `before` that have no exit and were never reported (timed out without
/// an ending, or a `multiplePlans` session left open after a success, once `before` is their opening plus the
/// session lifetime), at most `limit`.
///
/// # Errors
/// Database errors.
pub async fn unreported_open_before(db: &Db, before: i64, limit: i64) -> anyhow::Result<Vec<String>> {
    let rows = sqlx::query(
        "SELECT public_id FROM link_outcomes WHERE opened_at < $1 AND reported_at IS NULL \
         AND ended_at IS NULL ORDER BY opened_at LIMIT $2",
    )
    .bind(before)
    .bind(limit)
    .fetch_all(&db.pool)
    .await
    .context("reading timed-out link outcomes")?;
    rows.iter().map(|r| r.try_get("public_id").map_err(Into::into)).collect()
}

/// Deletes outcomes of sessions opened before `before` (the retention window); returns how many.
///
/// # Errors
/// Database errors.
pub async fn purge_before(db: &Db, before: i64) -> anyhow::Result<u64> {
    let done = sqlx::query("DELETE FROM link_outcomes WHERE opened_at < $1").bind(before).execute(&db.pool).await?;
    Ok(done.rows_affected())
}
