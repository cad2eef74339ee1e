//! One sync job: claim (lease), run (types, pages, references), checkpoint, finish or reschedule.
//!
//! The job's resumable cursor lives in `sync_jobs.state` and is written after every page, so a job whose
//! instance died (lease expired), was shut down, or waited for a long `Retry-After` continues at the page
//! where it stopped. Re-fetching a page is harmless: storage is an upsert.

use std::{
    collections::{BTreeMap, HashSet},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};

use futures::StreamExt as _;
use serde::{Deserialize, Serialize};
use serde_json::{json, value::RawValue, Value};
use url::Url;

use crate::{
    domain::{ExitCode, IncompleteType, SkippedType, SyncStatus},
    server::{
        fhir::{self, index::references},
        platform::crypto,
        services::{
            directory,
            payer::fhir_client::{FetchCounters, FetchError, Payer},
            webhooks::{self, WebhookEvent},
        },
        state::AppState,
        store::{
            audit::{self, AuditEntry},
            authorizations, endpoints, resources,
            sync_jobs::{self, Progress},
        },
    },
};

/// How long a claimed job is leased before another instance may take it over, in clock seconds.
pub const LEASE_SECS: i64 = 120;
/// How often a running job renews its lease, in real seconds.
const LEASE_RENEW_SECS: u64 = 20;
/// Claims of one job (crash, lost lease, internal error) before it fails for good.
pub const MAX_ATTEMPTS: i64 = 5;
/// `_count` of a search page.
pub const PAGE_COUNT: u32 = 50;
/// Pages followed per resource type.
pub const PAGE_CAP: u32 = 1_000;
/// Depth of reference resolution (references of fetched references, …).
pub const MAX_REF_DEPTH: u32 = 3;
/// References read at once.
const REF_CONCURRENCY: usize = 8;
/// References taken per batch (one checkpoint per batch).
const REF_BATCH: usize = 64;
/// Warnings kept on one job.
const MAX_WARNINGS: usize = 200;
/// Concurrent running jobs per payer endpoint, across every instance.
pub const PER_PAYER_LIMIT: i64 = 2;
/// Types synced when neither `requestedResources` nor the endpoint name any (CARIN Blue Button and US Core).
pub const DEFAULT_TYPES: &[&str] = &[
    "Patient",
    "Coverage",
    "ExplanationOfBenefit",
    "Condition",
    "Observation",
    "Procedure",
    "MedicationRequest",
    "Immunization",
    "AllergyIntolerance",
    "Encounter",
];

/// Resumable position of a job.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Cursor {
    #[serde(default)]
    patient_id: Option<String>,
    /// Types finished (stored or skipped).
    #[serde(default)]
    done: Vec<String>,
    /// The page to fetch next of the type in progress.
    #[serde(default)]
    current: Option<TypeCursor>,
    /// References still to read, with their depth.
    #[serde(default)]
    refs_pending: BTreeMap<String, u32>,
    /// References already read or found stored.
    #[serde(default)]
    refs_tried: Vec<String>,
    /// Whether the job decided how to ask for each type (`Progress::incremental`), on its first run.
    #[serde(default)]
    planned: bool,
}

/// The types a saved cursor (JSON) marks as fetched; none when it does not parse.
fn fetched_types(cursor: &str) -> Vec<String> {
    serde_json::from_str::<Cursor>(cursor).map(|c| c.done).unwrap_or_default()
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct TypeCursor {
    #[serde(rename = "type")]
    ty: String,
    url: String,
    count: u32,
}

/// A job this instance holds the lease of.
#[derive(Debug)]
pub struct Claimed {
    pub id: String,
    pub authorization_id: String,
    pub attempt: i64,
    owner: String,
    cursor: Cursor,
    progress: Progress,
    refs_tried: HashSet<String>,
    /// The payer client's retry and rate-limit counters, drained into `progress.stats` at every save.
    counters: Option<Arc<FetchCounters>>,
}

/// Claims one due job: pending, or syncing with an expired lease (its instance died) and `run_after` past,
/// while its payer runs fewer than [`PER_PAYER_LIMIT`] jobs. One conditional `UPDATE … RETURNING` whose
/// subquery uses `FOR UPDATE SKIP LOCKED` on PostgreSQL, so concurrent instances never claim the same job.
///
/// # Errors
/// Database errors.
pub async fn claim(state: &AppState) -> anyhow::Result<Option<Claimed>> {
    let now = state.clock.now();
    let owner = crypto::random_id(12);
    let Some(row) = sync_jobs::claim(&state.db, &owner, now, now + LEASE_SECS, PER_PAYER_LIMIT).await? else {
        return Ok(None);
    };
    let cursor: Cursor = serde_json::from_str(&row.cursor).unwrap_or_default();
    let refs_tried = cursor.refs_tried.iter().cloned().collect();
    Ok(Some(Claimed {
        id: row.id,
        authorization_id: row.authorization_id,
        attempt: row.attempt,
        owner,
        progress: row.progress,
        cursor,
        refs_tried,
        counters: None,
    }))
}

/// How a run ended without a final status.
enum Pause {
    /// Long `Retry-After`: run again at this time.
    RetryAt(i64),
    /// Shutdown: release the lease so another instance (or the next start) resumes now.
    Shutdown,
    /// Another instance took the lease over: stop without writing.
    LostLease,
}

enum Stop {
    Pause(Pause),
    Fail(ExitCode, String),
    Internal(anyhow::Error),
}

impl From<anyhow::Error> for Stop {
    fn from(e: anyhow::Error) -> Self {
        Stop::Internal(e)
    }
}
impl From<sqlx::Error> for Stop {
    fn from(e: sqlx::Error) -> Self {
        Stop::Internal(e.into())
    }
}

/// Runs a claimed job until it finishes, fails, or pauses (long wait, shutdown, lost lease).
pub async fn run(state: &AppState, mut job: Claimed) {
    if job.attempt > MAX_ATTEMPTS {
        if let Err(e) = finish(state, &mut job, Some((ExitCode::SyncFailed, "too many attempts".into()))).await {
            tracing::error!(job = %job.id, error = %format!("{e:#}"), "recording the sync job's failure failed");
        }
        return;
    }
    let lost = Arc::new(AtomicBool::new(false));
    let renew = {
        let (state, id, owner, lost) = (state.clone(), job.id.clone(), job.owner.clone(), lost.clone());
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(LEASE_RENEW_SECS)).await;
                let now = state.clock.now();
                // A database error leaves the lease to expire on its own; only a lost lease stops the job.
                if let Ok(false) = sync_jobs::renew_lease(&state.db, &id, &owner, now + LEASE_SECS).await {
                    lost.store(true, Ordering::SeqCst);
                    return;
                }
            }
        })
    };
    let mut result = run_inner(state, &mut job, &lost).await;
    renew.abort();
    if result.is_ok() && plan_not_reachable(&job) {
        result = Err(Stop::Fail(ExitCode::PlanNotReachable, "the payer refused every request (HTTP 403)".into()));
    }
    let outcome = match result {
        Ok(()) => finish(state, &mut job, None).await,
        Err(Stop::Fail(code, reason)) => finish(state, &mut job, Some((code, reason))).await,
        Err(Stop::Pause(Pause::RetryAt(at))) => pause(state, &mut job, SyncStatus::Delayed, at).await,
        Err(Stop::Pause(Pause::Shutdown)) => pause(state, &mut job, SyncStatus::Syncing, state.clock.now()).await,
        Err(Stop::Pause(Pause::LostLease)) => Ok(()),
        Err(Stop::Internal(e)) => {
            tracing::error!(job = %job.id, error = %e, "sync job failed internally");
            if job.attempt >= MAX_ATTEMPTS {
                finish(state, &mut job, Some((ExitCode::SyncFailed, "internal error".into()))).await
            } else {
                let at = state.clock.now() + 5 * job.attempt;
                pause(state, &mut job, SyncStatus::Syncing, at).await
            }
        }
    };
    if let Err(e) = outcome {
        tracing::error!(job = %job.id, error = %e, "recording the sync job's outcome failed");
    }
}

async fn run_inner(state: &AppState, job: &mut Claimed, lost: &AtomicBool) -> Result<(), Stop> {
    let auth = authorizations::get(&state.db, &job.authorization_id)
        .await?
        .ok_or_else(|| Stop::Fail(ExitCode::SyncFailed, "authorization not found".into()))?;
    if auth.is_ended() || auth.state == crate::domain::AuthorizationState::NeedsReauth {
        return Err(Stop::Fail(ExitCode::SyncFailed, format!("authorization is {}", auth.state)));
    }
    let endpoint = endpoints::get(&state.db, &auth.endpoint_id).await?;
    let payer = Payer::new(state, &auth.id, endpoint.as_ref().map(|e| e.fhir_base_url.as_str()).unwrap_or(""))
        .await
        .map_err(|e| Stop::Fail(ExitCode::SyncFailed, format!("payer credentials unavailable: {e}")))?;
    job.counters = Some(payer.counters());

    let patient_id = match job.cursor.patient_id.clone().or(auth.patient_id.clone()) {
        Some(p) => p,
        None => find_patient(state, &payer, job).await?,
    };
    if auth.patient_id.is_none() {
        authorizations::set_patient_id(&state.db, &auth.id, &patient_id, state.clock.now()).await?;
    }
    job.cursor.patient_id = Some(patient_id.clone());
    job.refs_tried.insert(format!("Patient/{patient_id}"));

    let mut types = authorizations::resource_types(&state.db, &auth.id).await?;
    if types.is_empty() {
        types = endpoint.as_ref().map(|e| e.resource_types.clone()).unwrap_or_default();
    }
    if types.is_empty() {
        types = DEFAULT_TYPES.iter().map(|s| s.to_string()).collect();
    }
    if let Some(i) = types.iter().position(|t| t == "Patient") {
        types.remove(i);
    }
    types.insert(0, "Patient".into());
    types.dedup();
    if !job.cursor.planned {
        let (plan, warning) = super::incremental::plan(state, &payer, &auth.id, &types, fetched_types).await?;
        job.progress.incremental = plan;
        if let Some(w) = warning {
            warn(job, w);
        }
        job.cursor.planned = true;
    }

    for ty in types {
        if job.cursor.done.contains(&ty) {
            continue;
        }
        check(state, lost)?;
        match sync_type(state, &payer, job, &ty, &patient_id, lost).await {
            Ok(()) => {}
            Err(TypeStop::Skip(reason, status)) => {
                job.progress.skipped.push(SkippedType { reason, status, resource_type: ty.clone() });
            }
            Err(TypeStop::Stop(s)) => return Err(s),
        }
        job.cursor.current = None;
        job.cursor.done.push(ty);
        checkpoint(state, job).await?;
    }
    resolve_references(state, &payer, job, lost).await
}

/// Nothing stored and every type refused with 403: the patient's plan is not reachable through this API.
fn plan_not_reachable(job: &Claimed) -> bool {
    job.progress.counts.values().all(|n| *n == 0)
        && !job.progress.skipped.is_empty()
        && job.progress.skipped.iter().all(|s| s.status == Some(403))
}

fn check(state: &AppState, lost: &AtomicBool) -> Result<(), Stop> {
    if lost.load(Ordering::SeqCst) {
        return Err(Stop::Pause(Pause::LostLease));
    }
    if state.shutdown.is_cancelled() {
        return Err(Stop::Pause(Pause::Shutdown));
    }
    Ok(())
}

enum TypeStop {
    Skip(String, Option<u16>),
    Stop(Stop),
}

impl From<Stop> for TypeStop {
    fn from(s: Stop) -> Self {
        TypeStop::Stop(s)
    }
}
impl From<anyhow::Error> for TypeStop {
    fn from(e: anyhow::Error) -> Self {
        TypeStop::Stop(Stop::Internal(e))
    }
}

/// What a failed query means for the job: skip the type, pause, or end the sync.
fn type_error(e: FetchError) -> TypeStop {
    match e {
        FetchError::Status { status, .. } => TypeStop::Skip(e.to_string(), Some(status)),
        FetchError::BadBody { status, .. } => TypeStop::Skip(e.to_string(), Some(status)),
        FetchError::ForeignOrigin => TypeStop::Skip(e.to_string(), None),
        FetchError::RetryLater { at } => TypeStop::Stop(Stop::Pause(Pause::RetryAt(at))),
        FetchError::Unauthorized | FetchError::NeedsReauth => TypeStop::Stop(Stop::Fail(ExitCode::SyncFailed, e.to_string())),
        FetchError::ServerError { .. } => TypeStop::Stop(Stop::Fail(ExitCode::PayerServerError, e.to_string())),
        FetchError::Timeout => TypeStop::Stop(Stop::Fail(ExitCode::PayerTimeout, e.to_string())),
    }
}

#[derive(Deserialize)]
struct BundleLink {
    #[serde(default)]
    relation: Option<String>,
    #[serde(default)]
    url: Option<String>,
}

#[derive(Deserialize)]
struct Entry<'a> {
    #[serde(borrow, default)]
    resource: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct Bundle<'a> {
    #[serde(rename = "resourceType", default)]
    resource_type: Option<String>,
    #[serde(default)]
    link: Vec<BundleLink>,
    #[serde(borrow, default)]
    entry: Vec<Entry<'a>>,
}

/// The resources of a page, sorted out.
struct Page {
    resources: Vec<resources::Indexed>,
    refs: Vec<String>,
    warnings: Vec<String>,
    error: Option<String>,
    next: Option<String>,
}

/// Issues of an OperationOutcome: (has error/fatal, summaries).
fn outcome_issues(v: &Value) -> (bool, Vec<String>) {
    let mut bad = false;
    let mut out = Vec::new();
    for issue in v.get("issue").and_then(Value::as_array).into_iter().flatten() {
        let severity = issue.get("severity").and_then(Value::as_str).unwrap_or("unknown");
        let code = issue.get("code").and_then(Value::as_str).unwrap_or("unknown");
        bad |= matches!(severity, "error" | "fatal");
        let text = issue
            .get("diagnostics")
            .and_then(Value::as_str)
            .or_else(|| issue.pointer("/details/text").and_then(Value::as_str))
            .unwrap_or("");
        let text: String = text.chars().take(200).collect();
        out.push(if text.is_empty() { format!("{severity} {code}") } else { format!("{severity} {code}: {text}") });
    }
    (bad, out)
}

fn parse_page(body: &[u8]) -> Result<Page, String> {
    let bundle: Bundle<'_> = serde_json::from_slice(body).map_err(|_| "the payer's answer is not valid JSON".to_string())?;
    let mut page = Page { resources: Vec::new(), refs: Vec::new(), warnings: Vec::new(), error: None, next: None };
    match bundle.resource_type.as_deref() {
        Some("Bundle") => {}
        Some("OperationOutcome") => {
            let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
            let (_, issues) = outcome_issues(&v);
            page.error = Some(format!("OperationOutcome instead of a Bundle: {}", issues.join("; ")));
            return Ok(page);
        }
        _ => return Err("the payer's answer is not a FHIR Bundle".into()),
    }
    for entry in bundle.entry {
        let Some(raw) = entry.resource else { continue };
        let Ok(v) = serde_json::from_str::<Value>(raw.get()) else { continue };
        if v.get("resourceType").and_then(Value::as_str) == Some("OperationOutcome") {
            let (bad, issues) = outcome_issues(&v);
            if bad {
                page.error = Some(format!("OperationOutcome: {}", issues.join("; ")));
            } else {
                page.warnings.extend(issues);
            }
            continue;
        }
        references(&v, &mut page.refs);
        if let Some(i) = resources::index(raw.get(), &v) {
            page.resources.push(i);
        } else {
            page.warnings.push("an entry without resourceType or id was not stored".into());
        }
    }
    page.next = bundle.link.into_iter().find(|l| l.relation.as_deref() == Some("next")).and_then(|l| l.url).filter(|u| !u.is_empty());
    Ok(page)
}

fn with_count(url: &Url, count: u32) -> Url {
    let mut u = url.clone();
    let pairs: Vec<(String, String)> = url.query_pairs().filter(|(k, _)| k != "_count").map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
    u.query_pairs_mut().clear().extend_pairs(pairs).append_pair("_count", &count.to_string());
    u
}

fn warn(job: &mut Claimed, w: String) {
    if job.progress.warnings.len() < MAX_WARNINGS && !job.progress.warnings.contains(&w) {
        job.progress.warnings.push(w);
    }
}

fn add_refs(payer: &Payer, job: &mut Claimed, refs: &[String], depth: u32) {
    if depth > MAX_REF_DEPTH {
        return;
    }
    for r in refs {
        if let Some(r) = normalize_reference(payer, r) {
            if !job.refs_tried.contains(&r) {
                job.cursor.refs_pending.entry(r).or_insert(depth);
            }
        }
    }
}

/// `Type/id` of a reference to a resource on this payer; `None` for contained (`#id`), `urn:`, other
/// origins, conditional or malformed references.
pub fn normalize_reference(payer: &Payer, reference: &str) -> Option<String> {
    if fhir::reference::kind(reference) != fhir::reference::Kind::Literal {
        return None;
    }
    let relative = if reference.contains("://") {
        let u = Url::parse(reference).ok()?;
        if !payer.same_origin(&u) {
            return None;
        }
        u.path().strip_prefix(payer.base().path())?.to_string()
    } else {
        reference.trim_start_matches('/').to_string()
    };
    fhir::reference::relative_target(&relative)
}

async fn find_patient(state: &AppState, payer: &Payer, job: &mut Claimed) -> Result<String, Stop> {
    let url = payer.url("Patient")?;
    let no_patient = || Stop::Fail(ExitCode::SyncFailed, "the payer did not identify the patient".into());
    let body = match payer.get(&url).await {
        Ok(b) => b,
        Err(e) => {
            return Err(match type_error(e) {
                TypeStop::Skip(..) => no_patient(),
                TypeStop::Stop(s) => s,
            })
        }
    };
    let page = parse_page(&body).map_err(|_| no_patient())?;
    let patients: Vec<&resources::Indexed> = page.resources.iter().filter(|r| r.resource_type == "Patient").collect();
    if patients.len() != 1 {
        return Err(no_patient());
    }
    let id = patients[0].id.clone();
    let changes = resources::upsert(state.resource_store(), &job.authorization_id, state.clock.now(), &page.resources, Some(&job.id)).await?;
    job.progress.changes.add(changes);
    Ok(id)
}

async fn sync_type(state: &AppState, payer: &Payer, job: &mut Claimed, ty: &str, patient_id: &str, lost: &AtomicBool) -> Result<(), TypeStop> {
    if ty == "Patient" {
        return sync_patient(state, payer, job, patient_id).await;
    }
    let mut walk = PageWalk::start(payer, job, ty, patient_id)?;
    loop {
        if !walk.enter(job) {
            break;
        }
        let Some(parsed) = walk.fetch(state, payer, job).await? else { continue };
        let page = parsed.map_err(|r| TypeStop::Skip(r, Some(200)))?;
        for w in &page.warnings {
            warn(job, format!("{ty}: {w}"));
        }
        if let Some(e) = page.error {
            return Err(TypeStop::Skip(e, Some(200)));
        }
        let next = next_link(payer, job, ty, &walk.url, page.next.as_deref());
        walk.store(state, payer, job, &page, next.as_ref()).await?;
        let Some(next) = next else { break };
        check(state, lost)?;
        walk.url = next;
    }
    Ok(())
}

/// The Patient "type": a read of the patient's own resource (`GET Patient/{id}`), not a search.
async fn sync_patient(state: &AppState, payer: &Payer, job: &mut Claimed, patient_id: &str) -> Result<(), TypeStop> {
    let url = payer.url(&format!("Patient/{}", urlencode(patient_id)))?;
    let body = payer.get(&url).await.map_err(type_error)?;
    let stored = read_one(state, job, &body, "Patient").map_err(|r| TypeStop::Skip(r, None))?;
    if let Some((item, refs)) = stored {
        let changes = resources::upsert(state.resource_store(), &job.authorization_id, state.clock.now(), std::slice::from_ref(&item), Some(&job.id)).await?;
        job.progress.changes.add(changes);
        *job.progress.counts.entry("Patient".into()).or_default() += 1;
        add_refs(payer, job, &refs, 1);
    }
    Ok(())
}

/// The walk through the search pages of one type: the page at hand and what the walk has seen so far.
struct PageWalk<'a> {
    ty: &'a str,
    url: Url,
    /// `_count` of the pages asked for (halved after a timeout).
    count: u32,
    /// Page URLs entered; a `next` link back to one of them ends the walk.
    seen: HashSet<String>,
    pages: u32,
    halvings: u32,
    /// The next page, fetched and parsed while the current one is stored (the payer works while we write).
    prefetched: Option<Result<Result<Page, String>, FetchError>>,
}

impl<'a> PageWalk<'a> {
    /// From the job's cursor when it stopped inside this type, else from the type's first page.
    fn start(payer: &Payer, job: &Claimed, ty: &'a str, patient_id: &str) -> Result<Self, TypeStop> {
        let (url, count) = match &job.cursor.current {
            Some(c) if c.ty == ty => (Url::parse(&c.url).map_err(|e| TypeStop::Stop(Stop::Internal(e.into())))?, c.count),
            _ => {
                let mut first = format!("{ty}?patient={}&_count={PAGE_COUNT}", urlencode(patient_id));
                if let Some(since) = changes_since(job, ty) {
                    first.push_str(&format!("&_lastUpdated=ge{}", urlencode(since)));
                }
                (payer.url(&first)?, PAGE_COUNT)
            }
        };
        Ok(PageWalk { ty, url, count, seen: HashSet::new(), pages: 0, halvings: 0, prefetched: None })
    }

    /// Enters the page at `url` and makes it the job's cursor; `false` when the walk ends instead, with the
    /// type recorded as incomplete: a repeated `next` link, or [`PAGE_CAP`] pages.
    fn enter(&mut self, job: &mut Claimed) -> bool {
        let ty = self.ty;
        if !self.seen.insert(self.url.to_string()) {
            incomplete(job, ty, "a repeated next link was not followed");
            return false;
        }
        self.pages += 1;
        if self.pages > PAGE_CAP {
            incomplete(job, ty, &format!("paging stopped at the cap of {PAGE_CAP} pages"));
            return false;
        }
        job.cursor.current = Some(TypeCursor { ty: ty.to_string(), url: self.url.to_string(), count: self.count });
        true
    }

    /// The page entered, parsed ([`parse_page`]: `Err` with why when it is not a Bundle), prefetched or fetched
    /// now. `Ok(None)` after a timeout that halved `_count` (at most four times): the page is to be entered again,
    /// smaller. A `RetryLater` checkpoints the job first, so it resumes at this page.
    async fn fetch(&mut self, state: &AppState, payer: &Payer, job: &mut Claimed) -> Result<Option<Result<Page, String>>, TypeStop> {
        let fetched = match self.prefetched.take() {
            Some(r) => r,
            None => payer.get(&self.url).await.map(|body| parse_page(&body)),
        };
        match fetched {
            Ok(b) => Ok(Some(b)),
            Err(FetchError::Timeout) if self.count > 1 && self.halvings < 4 => {
                self.count = (self.count / 2).max(1);
                self.halvings += 1;
                job.progress.stats.page_size_reductions += 1;
                self.seen.remove(self.url.as_str());
                self.pages -= 1;
                self.url = with_count(&self.url, self.count);
                Ok(None)
            }
            Err(e) => {
                if matches!(e, FetchError::RetryLater { .. }) {
                    checkpoint(state, job).await?;
                }
                Err(type_error(e))
            }
        }
    }

    /// Stores the page's resources, counts them and what changed, queues their references, and when the walk goes
    /// on, makes `next` the job's cursor and saves it ([`checkpoint`]). Meanwhile it fetches and parses `next` when
    /// the walk will go on to it (not seen yet, under the page cap, no shutdown): the payer only waits for us while
    /// we find the page's `next` link.
    async fn store(&mut self, state: &AppState, payer: &Payer, job: &mut Claimed, page: &Page, next: Option<&Url>) -> Result<(), TypeStop> {
        let (ty, count) = (self.ty, self.count);
        let save = async {
            let changes =
                resources::upsert(state.resource_store(), &job.authorization_id, state.clock.now(), &page.resources, Some(&job.id)).await?;
            job.progress.changes.add(changes);
            for r in &page.resources {
                *job.progress.counts.entry(r.resource_type.clone()).or_default() += 1;
            }
            add_refs(payer, job, &page.refs, 1);
            if let Some(n) = next {
                job.cursor.current = Some(TypeCursor { ty: ty.to_string(), url: n.to_string(), count });
                checkpoint(state, job).await?;
            }
            Ok::<(), TypeStop>(())
        };
        match next {
            Some(n) if !self.seen.contains(n.as_str()) && self.pages < PAGE_CAP && !state.shutdown.is_cancelled() => {
                let (saved, fetched) = tokio::join!(save, async { payer.get(n).await.map(|body| parse_page(&body)) });
                self.prefetched = Some(fetched);
                saved
            }
            _ => save.await,
        }
    }
}

/// The page's `next` link resolved against `url`, if it stays on the payer's origin (else the type is recorded
/// as incomplete: its later pages are not fetched).
fn next_link(payer: &Payer, job: &mut Claimed, ty: &str, url: &Url, next: Option<&str>) -> Option<Url> {
    match next {
        None => None,
        Some(n) => match url.join(n) {
            Ok(next) if payer.same_origin(&next) => Some(next),
            Ok(_) => {
                incomplete(job, ty, "a next link to another origin was not followed");
                None
            }
            Err(_) => {
                incomplete(job, ty, "an invalid next link was not followed");
                None
            }
        },
    }
}

/// Records that `ty`'s paging stopped before the payer's last page (the job will end `partial`).
fn incomplete(job: &mut Claimed, ty: &str, reason: &str) {
    if !job.progress.incomplete.iter().any(|i| i.resource_type == ty) {
        job.progress.incomplete.push(IncompleteType { resource_type: ty.to_string(), reason: reason.to_string() });
    }
}

/// A single resource read (`GET Type/id`): the resource and its references, `None` for an OperationOutcome
/// 200 (recorded as a warning); `Err` with a reason when the body is not a resource.
fn read_one(_state: &AppState, job: &mut Claimed, body: &[u8], what: &str) -> Result<Option<(resources::Indexed, Vec<String>)>, String> {
    let raw: &RawValue = serde_json::from_slice(body).map_err(|_| "the payer's answer is not valid JSON".to_string())?;
    let v: Value = serde_json::from_str(raw.get()).map_err(|_| "the payer's answer is not valid JSON".to_string())?;
    if v.get("resourceType").and_then(Value::as_str) == Some("OperationOutcome") {
        let (_, issues) = outcome_issues(&v);
        warn(job, format!("{what}: OperationOutcome: {}", issues.join("; ")));
        return Ok(None);
    }
    let mut refs = Vec::new();
    references(&v, &mut refs);
    let item = resources::index(raw.get(), &v).ok_or_else(|| "the payer's answer is not a FHIR resource".to_string())?;
    Ok(Some((item, refs)))
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Reads every referenced resource not stored yet, in batches of [`REF_BATCH`] with at most
/// [`REF_CONCURRENCY`] reads at once, down to [`MAX_REF_DEPTH`]. A 403/404 is a warning, never fatal.
async fn resolve_references(state: &AppState, payer: &Payer, job: &mut Claimed, lost: &AtomicBool) -> Result<(), Stop> {
    loop {
        check(state, lost)?;
        let batch: Vec<(String, u32)> = job.cursor.refs_pending.iter().take(REF_BATCH).map(|(k, v)| (k.clone(), *v)).collect();
        if batch.is_empty() {
            return Ok(());
        }
        let mut todo = Vec::new();
        for (r, depth) in batch {
            let (ty, id) = r.split_once('/').unwrap_or(("", ""));
            if job.refs_tried.contains(&r) || resources::exists(state.resource_store(), &job.authorization_id, ty, id, Some(&job.id)).await? {
                job.cursor.refs_pending.remove(&r);
                job.refs_tried.insert(r);
                continue;
            }
            todo.push((r, depth));
        }
        let results: Vec<((String, u32), Result<bytes::Bytes, FetchError>)> = futures::stream::iter(todo)
            .map(|(r, depth)| async move {
                let res = match payer.url(&r) {
                    Ok(u) => payer.get(&u).await,
                    Err(_) => Err(FetchError::ForeignOrigin),
                };
                ((r, depth), res)
            })
            .buffer_unordered(REF_CONCURRENCY)
            .collect()
            .await;
        let mut items = Vec::new();
        let mut retry_at = None;
        let mut fatal = None;
        for ((r, depth), res) in results {
            match res {
                Ok(body) => match read_one(state, job, &body, &r) {
                    Ok(Some((item, refs))) => {
                        add_refs(payer, job, &refs, depth + 1);
                        items.push(item);
                    }
                    Ok(None) => {}
                    Err(reason) => warn(job, format!("{r}: {reason}")),
                },
                Err(FetchError::RetryLater { at }) => {
                    retry_at = Some(retry_at.map_or(at, |x: i64| x.max(at)));
                    continue;
                }
                Err(e @ (FetchError::Unauthorized | FetchError::NeedsReauth)) => {
                    fatal = Some(e.to_string());
                    continue;
                }
                Err(e) => warn(job, format!("{r}: not resolved ({e})")),
            }
            job.cursor.refs_pending.remove(&r);
            job.refs_tried.insert(r);
        }
        let changes = resources::upsert(state.resource_store(), &job.authorization_id, state.clock.now(), &items, Some(&job.id)).await?;
        job.progress.changes.add(changes);
        for i in &items {
            *job.progress.counts.entry(i.resource_type.clone()).or_default() += 1;
        }
        checkpoint(state, job).await?;
        if let Some(reason) = fatal {
            return Err(Stop::Fail(ExitCode::SyncFailed, reason));
        }
        if let Some(at) = retry_at {
            return Err(Stop::Pause(Pause::RetryAt(at)));
        }
    }
}

/// The cursor as JSON to save; first drains the payer client's counters into the job's stats, so every save
/// carries them.
fn cursor_json(job: &mut Claimed) -> String {
    if let Some(c) = &job.counters {
        job.progress.stats.add(c.take());
    }
    job.cursor.refs_tried = job.refs_tried.iter().cloned().collect();
    job.cursor.refs_tried.sort();
    serde_json::to_string(&job.cursor).unwrap_or_else(|_| "{}".into())
}

/// Saves progress and the cursor; fails with `LostLease` when another instance holds the job now.
async fn checkpoint(state: &AppState, job: &mut Claimed) -> Result<(), Stop> {
    let cursor = cursor_json(job);
    if !sync_jobs::checkpoint(&state.db, &job.id, &job.owner, &job.progress, &cursor, state.clock.now()).await? {
        return Err(Stop::Pause(Pause::LostLease));
    }
    Ok(())
}

/// Releases the lease and sets `run_after` with `status` (`delayed` when the payer asked for the wait, else
/// `syncing`); the cursor is kept.
async fn pause(state: &AppState, job: &mut Claimed, status: SyncStatus, at: i64) -> anyhow::Result<()> {
    let cursor = cursor_json(job);
    sync_jobs::pause(&state.db, &job.id, &job.owner, status, &job.progress, &cursor, at, state.clock.now()).await
}

/// The `_lastUpdated` lower bound when this job asks for `ty`'s changes only (see `super::incremental`).
fn changes_since<'j>(job: &'j Claimed, ty: &str) -> Option<&'j str> {
    job.progress.incremental.as_ref().filter(|i| i.types.iter().any(|t| t == ty)).map(|i| i.since.as_str())
}

/// Deletes the stored resources of every type this job read in full and completely (not asked for changes
/// only, not skipped, paging not stopped early) that the job did not see: the payer no longer returns them.
/// Returns how many.
async fn remove_unseen(state: &AppState, job: &Claimed) -> anyhow::Result<u64> {
    let full: Vec<String> = job
        .cursor
        .done
        .iter()
        .filter(|t| changes_since(job, t).is_none())
        .filter(|t| !job.progress.skipped.iter().any(|s| &s.resource_type == *t))
        .filter(|t| !job.progress.incomplete.iter().any(|i| &i.resource_type == *t))
        .cloned()
        .collect();
    resources::remove_unseen(&state.db, &job.authorization_id, &full, &job.id).await
}

/// Final status: `complete`, `partial` (some types skipped, or their paging stopped early) or `failed` (with
/// the exit code); then the
/// `sync_completed` / `sync_failed` webhook and the audit record, in one transaction.
async fn finish(state: &AppState, job: &mut Claimed, failure: Option<(ExitCode, String)>) -> anyhow::Result<()> {
    let now = state.clock.now();
    let (status, exit_code) = match &failure {
        Some((code, reason)) => {
            warn(job, format!("sync failed: {reason}"));
            (SyncStatus::Failed, Some(*code))
        }
        None if !job.progress.skipped.is_empty() || !job.progress.incomplete.is_empty() => (SyncStatus::Partial, None),
        None => (SyncStatus::Complete, None),
    };
    if failure.is_none() {
        job.progress.changes.removed += remove_unseen(state, job).await?;
    }
    let cursor = cursor_json(job);
    if !sync_jobs::finish(&state.db, &job.id, &job.owner, status, exit_code, &job.progress, &cursor, now).await? {
        return Ok(());
    }
    directory::health::observe_sync(state, &job.authorization_id, exit_code).await;
    let auth = authorizations::get(&state.db, &job.authorization_id).await?;
    let counts: BTreeMap<&String, &i64> = job.progress.counts.iter().collect();
    let changes = job.progress.changes;
    // This job when it brought data, else the latest one that did.
    let last_synced_at = match exit_code {
        None => Some(now),
        Some(_) => sync_jobs::last_succeeded_at(&state.db, &job.authorization_id).await?,
    };
    let mut tx = state.db.begin_write().await?;
    if let Some(a) = &auth {
        // Non-health data only: ids, counts per type, skipped types, the exit code.
        let skipped_types: Vec<&str> = job.progress.skipped.iter().map(|s| s.resource_type.as_str()).collect();
        let incomplete_types: Vec<&str> = job.progress.incomplete.iter().map(|s| s.resource_type.as_str()).collect();
        let (event, mut data) = match exit_code {
            Some(code) => (
                WebhookEvent::SyncFailed,
                json!({"authorization_id": a.id, "external_id": a.external_id, "endpoint_id": a.endpoint_id,
                       "job_id": job.id, "exit_code": code, "counts": counts}),
            ),
            None => (
                WebhookEvent::SyncCompleted,
                json!({"authorization_id": a.id, "external_id": a.external_id, "endpoint_id": a.endpoint_id,
                       "job_id": job.id, "status": status, "counts": counts, "skipped_types": skipped_types,
                       "incomplete_types": incomplete_types, "added": changes.added, "updated": changes.updated,
                       "unchanged": changes.unchanged, "removed": changes.removed, "skipped": skipped_types.len(),
                       "incremental": job.progress.incremental}),
            ),
        };
        // The authorization's lifetime, as introspect and users give it.
        if let Some(o) = data.as_object_mut() {
            o.insert("state".into(), json!(a.state));
            o.insert("expires_at".into(), json!(a.data_ends_at()));
            o.insert("refresh_expires_at".into(), json!(a.payer_refresh_expires_at));
            o.insert("last_synced_at".into(), json!(last_synced_at));
        }
        webhooks::enqueue(&mut tx, now, &a.app_id, event, data).await?;
    }
    audit::record(
        &mut *tx,
        now,
        AuditEntry {
            actor: "system",
            action: if failure.is_some() { "sync.failed" } else { "sync.finished" },
            app_id: auth.as_ref().map(|a| a.app_id.as_str()),
            authorization_id: Some(&job.authorization_id),
            request_id: None,
            detail: Some(json!({"job_id": job.id, "status": status, "exit_code": exit_code, "counts": counts, "changes": changes})),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn count_is_replaced() {
        let u = Url::parse("https://p.example/fhir/EOB?patient=1&_count=50&page=2").unwrap();
        let h = with_count(&u, 25);
        assert_eq!(h.as_str(), "https://p.example/fhir/EOB?patient=1&page=2&_count=25");
    }

    #[test]
    fn outcome_severity() {
        let (bad, issues) = outcome_issues(&json!({"issue": [{"severity": "warning", "code": "processing", "diagnostics": "x"}]}));
        assert!(!bad);
        assert_eq!(issues, vec!["warning processing: x"]);
        let (bad, _) = outcome_issues(&json!({"issue": [{"severity": "fatal", "code": "exception"}]}));
        assert!(bad);
    }
}
