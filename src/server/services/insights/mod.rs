//! Insights: every step of a Link session recorded on the server, and what operators and integrators read from
//! them.
//!
//! [`record`] appends one step ([`LinkEventName`]) to the session's events (`store::link_events`, deleted with
//! the session) and moves its outcome on (`store::link_outcomes`, the funnel's unit, which outlives the session
//! without any id that can act). When a session ends (success or exit) its whole list of events goes to the app
//! once, as the `link.events` webhook. Nothing recorded here is health data: names, steps, times, plan ids, exit
//! codes, and metadata such as a search's length or a payer's OAuth error text.
//!
//! [`funnel`] turns outcomes into conversion per stage, endings and time to success.

pub mod funnel;

use serde_json::{json, Value};
use sqlx::AnyConnection;

use crate::{
    domain::{ExitCode, LinkEventName, LinkStep},
    server::{
        platform::db::Db,
        services::webhooks::{self, WebhookEvent},
        store::{
            link_events::{self, LinkEvent},
            link_outcomes::{self, Step},
            link_sessions::{self, LinkSession},
        },
    },
};

/// Longest text kept from a payer's `error_description` (untrusted input: shown escaped, never as HTML).
pub const PAYER_TEXT_MAX: usize = 300;

/// One step to record for a session.
#[derive(Debug, Clone)]
pub struct NewEvent {
    /// What happened.
    pub name: LinkEventName,
    /// The session's step where it happened.
    pub step: LinkStep,
    /// The plan in play (defaults to the session's).
    pub endpoint_id: Option<String>,
    /// `ERROR` and `EXIT`: the exit code.
    pub exit_code: Option<ExitCode>,
    /// Non-health metadata.
    pub detail: Value,
}

impl NewEvent {
    /// `name` at `step`, with no code and no metadata.
    pub fn new(name: LinkEventName, step: LinkStep) -> Self {
        NewEvent { name, step, endpoint_id: None, exit_code: None, detail: json!({}) }
    }

    /// With the plan `endpoint_id`.
    pub fn endpoint(mut self, endpoint_id: &str) -> Self {
        self.endpoint_id = Some(endpoint_id.to_string());
        self
    }

    /// With exit code `code`.
    pub fn code(mut self, code: ExitCode) -> Self {
        self.exit_code = Some(code);
        self
    }

    /// With metadata `detail` (a JSON object; no health data).
    pub fn detail(mut self, detail: Value) -> Self {
        self.detail = detail;
        self
    }
}

/// A payer's OAuth error text as kept in an event's metadata: control characters dropped, at most
/// [`PAYER_TEXT_MAX`] characters.
pub fn payer_text(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(PAYER_TEXT_MAX).collect()
}

/// Records `e` for session `s` at `now` through `conn` (pass the transaction of the change it records): the
/// event, the session's outcome (an `OPEN` starts it) and, when `e` ends the session, the `link.events` webhook
/// (once per session; a `multiplePlans` session ends when it is done, not at its first plan's success). Sessions
/// created before sessions had a public id are not recorded.
///
/// An `EXIT` from the error screen ends at the step where that error arose.
///
/// # Errors
/// Database errors.
pub async fn record(conn: &mut AnyConnection, now: i64, s: &LinkSession, e: NewEvent) -> anyhow::Result<()> {
    let Some(public_id) = s.public_id.as_deref() else { return Ok(()) };
    let endpoint_id = e.endpoint_id.clone().or_else(|| s.endpoint_id.clone());
    if e.name == LinkEventName::Open {
        let given = if s.endpoint_fixed { s.endpoint_id.as_deref() } else { None };
        link_outcomes::open(&mut *conn, public_id, &s.app_id, s.mode, given, now).await?;
    }
    let event = LinkEvent {
        name: e.name,
        step: e.step,
        endpoint_id: endpoint_id.clone(),
        exit_code: e.exit_code,
        detail: if e.detail.is_object() { e.detail } else { json!({}) },
        at: now,
    };
    link_events::insert(&mut *conn, public_id, &s.app_id, &event).await?;
    let exit_step = match (e.name, e.step) {
        (LinkEventName::Exit, LinkStep::Error) => link_events::last_error_step(&mut *conn, public_id).await?.or(Some(e.step)),
        (LinkEventName::Exit, step) => Some(step),
        _ => None,
    };
    let step = Step { name: e.name, endpoint_id: endpoint_id.as_deref(), exit_code: e.exit_code, exit_step, at: now };
    link_outcomes::apply(&mut *conn, public_id, &step).await?;
    // A `multiplePlans` session's success is one plan's: it ends when the patient closes it (or it times out).
    let ends = e.name.is_ending() && !(s.options.multiple_plans && e.name == LinkEventName::Success && !s.step.is_ended());
    if ends {
        report(conn, now, s).await?;
    }
    Ok(())
}

/// Records `e` for session `s` at `now` in a transaction of its own (for a step whose change has none). A failure
/// is logged and the patient's flow goes on: the record of a step never stops the step.
pub async fn note(db: &Db, now: i64, s: &LinkSession, e: NewEvent) {
    let name = e.name;
    let done = async {
        let mut tx = db.begin_write().await?;
        record(&mut tx, now, s, e).await?;
        tx.commit().await?;
        anyhow::Ok(())
    };
    if let Err(err) = done.await {
        tracing::error!(error = %format!("{err:#}"), event = name.as_str(), "recording a link event failed");
    }
}

/// The steps only the page sees (a search as the patient types, the plan clicked, the sign-in window blocked or
/// closed), which it reports with [`client_event`]. Every other step is recorded by the server where it happens.
pub const CLIENT_EVENTS: [LinkEventName; 4] =
    [LinkEventName::Search, LinkEventName::EndpointSelected, LinkEventName::PopupBlocked, LinkEventName::PopupClosed];

/// At most this many [`CLIENT_EVENTS`] are kept per session (a page reporting more is ignored: a session of a
/// real patient has a few dozen).
pub const CLIENT_EVENTS_PER_SESSION: i64 = 200;

/// What the page reported of a step only it sees, already read from its form (`name`, and for `SEARCH` the
/// query's length, never its text; for `ENDPOINT_SELECTED` the plan's id).
#[derive(Debug, Clone, Default)]
pub struct ClientEvent {
    /// One of [`CLIENT_EVENTS`], spelled as `onEvent` names it.
    pub name: String,
    /// `SEARCH`: how many characters the patient typed (0 to 1,000).
    pub query_length: Option<u32>,
    /// `ENDPOINT_SELECTED`: the plan's endpoint id (kept only when it is an endpoint of the session's mode).
    pub endpoint_id: Option<String>,
}

/// Records a step the page reported for session `s` at `now`, when it is one of [`CLIENT_EVENTS`] and the
/// session has fewer than [`CLIENT_EVENTS_PER_SESSION`] of them; `endpoint_known` says whether an
/// `ENDPOINT_SELECTED`'s plan is an endpoint of the session's mode. Returns whether it was recorded.
///
/// # Errors
/// Database errors.
pub async fn client_event(db: &Db, now: i64, s: &LinkSession, e: ClientEvent, endpoint_known: bool) -> anyhow::Result<bool> {
    let Some(name) = LinkEventName::parse(&e.name).filter(|n| CLIENT_EVENTS.contains(n)) else { return Ok(false) };
    let Some(public_id) = s.public_id.as_deref() else { return Ok(false) };
    if s.step.is_ended() || link_events::count_named(db, public_id, &CLIENT_EVENTS).await? >= CLIENT_EVENTS_PER_SESSION {
        return Ok(false);
    }
    let mut event = NewEvent::new(name, s.step);
    match name {
        LinkEventName::Search => {
            let n = e.query_length.unwrap_or(0).min(1_000);
            event = event.detail(json!({ "queryLength": n }));
        }
        LinkEventName::EndpointSelected => match e.endpoint_id.as_deref().filter(|_| endpoint_known) {
            Some(id) => event = event.endpoint(id),
            None => return Ok(false),
        },
        _ => {}
    }
    let mut tx = db.begin_write().await?;
    record(&mut tx, now, s, event).await?;
    tx.commit().await?;
    Ok(true)
}

/// Records `OPEN` for the session `sid` just created (see [`note`]).
pub async fn opened(db: &Db, now: i64, sid: &str) {
    match link_sessions::get(db, sid).await {
        Ok(Some(s)) => note(db, now, &s, NewEvent::new(LinkEventName::Open, s.step)).await,
        Ok(None) => tracing::error!("recording OPEN: the new link session is missing"),
        Err(err) => tracing::error!(error = %format!("{err:#}"), "recording OPEN failed"),
    }
}

/// Sessions a sweep looks at, at most.
const SWEEP_BATCH: i64 = 200;

/// The insights part of the lifecycle sweep at `now`: sessions that timed out without an ending go to their app as
/// `link.events` (status `expired`; once), and outcomes older than `retention_days` are deleted. Returns how many
/// sessions it reported.
///
/// # Errors
/// Database errors.
pub async fn sweep(db: &Db, now: i64, retention_days: u32) -> anyhow::Result<u64> {
    let mut reported = 0;
    for public_id in link_outcomes::unreported_open_before(db, now - link_sessions::SESSION_TTL_SECS, SWEEP_BATCH).await? {
        let mut tx = db.begin_write().await?;
        match link_sessions::get_by_public_id(db, &public_id).await? {
            Some(s) if s.expires_at <= now => {
                report(&mut tx, now, &s).await?;
                reported += 1;
            }
            // Still open (an older row's clock), or already purged: nothing to send, never look again.
            Some(_) => {}
            None => {
                link_outcomes::claim_report(&mut *tx, &public_id, now).await?;
            }
        }
        tx.commit().await?;
    }
    let purged = link_outcomes::purge_before(db, now - i64::from(retention_days) * 86_400).await?;
    if purged > 0 {
        tracing::info!(purged, "purged link outcomes past --insights-retention-days");
    }
    Ok(reported)
}

/// Queues the `link.events` webhook of session `s` (every event so far) unless it was already queued.
///
/// # Errors
/// Database errors.
pub async fn report(conn: &mut AnyConnection, now: i64, s: &LinkSession) -> anyhow::Result<()> {
    let Some(public_id) = s.public_id.as_deref() else { return Ok(()) };
    if !link_outcomes::claim_report(&mut *conn, public_id, now).await? {
        return Ok(());
    }
    let events = link_events::of_session(&mut *conn, public_id).await?;
    let data = json!({"session": session_json(s, now), "events": events_json(&events)});
    webhooks::enqueue(conn, now, &s.app_id, WebhookEvent::LinkEvents, data).await
}

/// Where a session is, as the integrator reads it: `success`, `exited`, `expired` (timed out before an ending)
/// or `open`. A `multiplePlans` session that linked a plan is a success whatever came after.
pub fn status(s: &LinkSession, now: i64) -> &'static str {
    match s.step {
        LinkStep::Success | LinkStep::Done => "success",
        _ if s.plans_linked > 0 => "success",
        LinkStep::Exited => "exited",
        _ if s.expires_at <= now => "expired",
        _ => "open",
    }
}

/// A session as the integrator API and the `link.events` webhook show it (never its bearer id, never a token):
/// `{id, externalId, mode, usage, status, step, endpoint_id, exit_code, created_at, expires_at}`.
pub fn session_json(s: &LinkSession, now: i64) -> Value {
    json!({
        "id": s.public_id,
        "externalId": s.external_id,
        "mode": s.mode,
        "usage": s.usage,
        "status": status(s, now),
        "step": s.step,
        "endpoint_id": s.endpoint_id,
        "exit_code": s.exit_code,
        "created_at": s.created_at,
        "expires_at": s.expires_at,
    })
}

/// Events as the integrator API and the webhook show them: `[{name, step, at, endpoint_id, exit_code, metadata}]`.
pub fn events_json(events: &[LinkEvent]) -> Value {
    Value::Array(
        events
            .iter()
            .map(|e| {
                json!({
                    "name": e.name,
                    "step": e.step,
                    "at": e.at,
                    "endpoint_id": e.endpoint_id,
                    "exit_code": e.exit_code,
                    "metadata": e.detail,
                })
            })
            .collect(),
    )
}

/// A start time as operators write it, relative to `now` (Unix s): a duration back from now (`30m`, `24h`, `7d`),
/// a date (`2026-11-01`, midnight UTC), an RFC 3339 time, or Unix seconds.
///
/// # Errors
/// A readable message for anything else.
pub fn parse_since(text: &str, now: i64) -> Result<i64, String> {
    let t = text.trim();
    let unit = |c: char| match c {
        's' => Some(1),
        'm' => Some(60),
        'h' => Some(3600),
        'd' => Some(86_400),
        _ => None,
    };
    if let Some(last) = t.chars().last().filter(|c| c.is_ascii_alphabetic()) {
        if let (Some(mult), Ok(n)) = (unit(last), t[..t.len() - 1].parse::<i64>()) {
            if n >= 0 {
                return n.checked_mul(mult).map(|secs| now - secs).ok_or_else(|| format!("{t:?} is too long ago"));
            }
        }
    }
    if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
        return t.parse::<i64>().map_err(|_| format!("{t:?} is not a time"));
    }
    let rfc3339 = time::format_description::well_known::Rfc3339;
    if let Ok(at) = time::OffsetDateTime::parse(t, &rfc3339) {
        return Ok(at.unix_timestamp());
    }
    let day = time::macros::format_description!("[year]-[month]-[day]");
    if let Ok(d) = time::Date::parse(t, &day) {
        return Ok(d.midnight().assume_utc().unix_timestamp());
    }
    Err(format!("{t:?} is not a time: use 30m, 24h, 7d, a date (2026-11-01), an RFC 3339 time or Unix seconds"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_forms() {
        let now = 1_800_000_000;
        assert_eq!(parse_since("7d", now), Ok(now - 7 * 86_400));
        assert_eq!(parse_since("24h", now), Ok(now - 86_400));
        assert_eq!(parse_since("90m", now), Ok(now - 5_400));
        assert_eq!(parse_since("1700000000", now), Ok(1_700_000_000));
        assert_eq!(parse_since("2026-11-01", now), Ok(1_793_491_200));
        assert_eq!(parse_since("2026-11-01T12:00:00Z", now), Ok(1_793_534_400));
        assert!(parse_since("last week", now).is_err());
        assert!(parse_since("-3d", now).is_err());
    }

    #[test]
    fn payer_text_is_bounded_and_plain() {
        assert_eq!(payer_text("bad\u{0}\nthing"), "badthing");
        assert_eq!(payer_text(&"x".repeat(1000)).len(), PAYER_TEXT_MAX);
    }
}
