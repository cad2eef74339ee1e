//! `searchset` Bundles (FHIR R4 §3.1.1.2): a JSON head (`id`, `meta.lastUpdated`, `total`, paging links) and
//! the entries spliced around each resource's stored JSON text, which is never parsed or re-serialized here,
//! written in chunks while the body is sent.

use axum::body::Body;
use bytes::Bytes;
use serde_json::{json, Value};

use crate::server::store::resources::Stored;

/// Why an entry is in a Bundle (`Bundle.entry.search.mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SearchMode {
    /// It matched the search.
    Match,
    /// `_include` brought it.
    Include,
}

impl SearchMode {
    fn as_str(self) -> &'static str {
        match self {
            SearchMode::Match => "match",
            SearchMode::Include => "include",
        }
    }
}

/// One entry: a stored resource and why it is there.
pub(super) struct Entry {
    pub resource: Stored,
    pub mode: SearchMode,
}

/// Where a Bundle's paging links point: the request's path and parameters, and the page it holds.
pub(super) struct Page<'a> {
    /// The server's public URL.
    pub base: &'a str,
    /// The request's path (`/fhir/…`).
    pub path: &'a str,
    /// The request's query parameters, in order (`_count` and `_offset` are rewritten per link).
    pub params: &'a [(String, String)],
    /// Every match over all pages.
    pub total: usize,
    /// Matches skipped before this page.
    pub offset: usize,
    /// Page size.
    pub count: usize,
}

fn link_url(p: &Page<'_>, offset: usize) -> String {
    let mut s = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in p.params {
        if k != "_offset" && k != "_count" {
            s.append_pair(k, v);
        }
    }
    s.append_pair("_count", &p.count.to_string());
    if offset > 0 {
        s.append_pair("_offset", &offset.to_string());
    }
    format!("{}{}?{}", p.base, p.path, s.finish())
}

/// `self`, `first`, and `next`/`previous` when there is such a page.
fn links(p: &Page<'_>) -> Vec<Value> {
    let mut links = vec![json!({"relation": "self", "url": link_url(p, p.offset)})];
    links.push(json!({"relation": "first", "url": link_url(p, 0)}));
    if let Some(next) = p.offset.checked_add(p.count).filter(|n| p.count > 0 && *n < p.total) {
        links.push(json!({"relation": "next", "url": link_url(p, next)}));
    }
    if p.offset > 0 {
        links.push(json!({"relation": "previous", "url": link_url(p, p.offset.saturating_sub(p.count.max(1)))}));
    }
    links
}

/// Bytes of entries per chunk of a Bundle's body.
const CHUNK_BYTES: usize = 64 * 1024;

/// Assembles a `searchset` Bundle around the stored resource texts (no re-serialization), as a body written
/// in chunks of about [`CHUNK_BYTES`] while it is sent (never a second copy of the whole Bundle in memory).
/// `now` (Unix s) is the Bundle's `meta.lastUpdated`.
pub(super) fn bundle(p: &Page<'_>, entries: Vec<Entry>, now: i64) -> Body {
    let head = json!({
        "resourceType": "Bundle",
        "id": uuid::Uuid::new_v4().to_string(),
        "meta": {"lastUpdated": crate::server::services::webhooks::rfc3339(now)},
        "type": "searchset",
        "total": p.total,
        "link": links(p),
    })
    .to_string();
    let mut chunks = Chunks { base: p.base.to_string(), pending: Some(format!("{},\"entry\":[", &head[..head.len() - 1])), entries: entries.into_iter(), first: true };
    let parts = std::iter::from_fn(move || chunks.next_chunk()).map(|s| Ok::<_, std::convert::Infallible>(Bytes::from(s)));
    Body::from_stream(futures::stream::iter(parts))
}

/// The remaining text of a Bundle being written.
struct Chunks {
    base: String,
    /// Text before the next entry (at first the head up to `"entry":[`), `None` once the Bundle is complete.
    pending: Option<String>,
    entries: std::vec::IntoIter<Entry>,
    /// No entry written yet.
    first: bool,
}

impl Chunks {
    /// The next piece of the Bundle's text, or `None` when it is complete.
    fn next_chunk(&mut self) -> Option<String> {
        let mut out = self.pending.take()?;
        while out.len() < CHUNK_BYTES {
            let Some(e) = self.entries.next() else {
                out.push_str("]}");
                return Some(out);
            };
            if !self.first {
                out.push(',');
            }
            self.first = false;
            let r = &e.resource;
            out.push_str("{\"fullUrl\":");
            out.push_str(&Value::String(format!("{}/fhir/{}/{}", self.base, r.resource_type, r.id)).to_string());
            out.push_str(",\"resource\":");
            out.push_str(&r.body);
            out.push_str(",\"search\":{\"mode\":\"");
            out.push_str(e.mode.as_str());
            out.push_str("\"}}");
        }
        self.pending = Some(String::new());
        Some(out)
    }
}
