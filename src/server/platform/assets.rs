//! Static assets: the hashed wasm, JS and CSS under `/pkg` (long-cached, served pre-compressed as br or
//! gzip), and the files of `public/` at the site root. `/favicon.ico` is built into the binary, so browsers that
//! ask for it (every top-level page without a `<link rel="icon">`, e.g. an integrator's) never get a 404, built
//! site or not. Compiled only with `ssr`.
//!
//! `.ci/build-site` writes `{site_root}/pkg/manifest.json`: `{"js": "link_sdk.<hash>.js",
//! "wasm": "link_sdk.<hash>.wasm", "css": "main.<hash>.css"}`. Without it, the unhashed names that
//! `cargo leptos build` writes (`link_sdk.js`, `link_sdk.wasm` or `link_sdk_bg.wasm`, `link_sdk.css`) are used
//! when present. Without a built site the pages still render (server-side only, unstyled, islands static),
//! which is what plain `cargo test` sees.
//!
//! In local mode the site may be built after the server started (`.ci/serve` serves first and builds the site
//! beside it): a watcher thread looks at `pkg/` every [`WATCH_INTERVAL`] and, when it changed, reads the manifest
//! again and logs the switch; pages rendered after that reference the new files. In production the manifest is
//! read once at start: a rolling upgrade copies the next release's `pkg/` into the site root of instances that
//! must keep serving their own (see docs/deployment.md). [`manifest`] itself never touches the disk.

use std::{
    path::{Path, PathBuf},
    sync::{Arc, OnceLock, RwLock},
    time::{Duration, SystemTime},
};

use axum::{
    http::{header, HeaderValue},
    routing::get,
    Router,
};
use serde::Deserialize;
use tower_http::{services::ServeDir, set_header::SetResponseHeaderLayer};

/// Hashed file names of the built site, relative to `/pkg/`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Manifest {
    /// wasm-bindgen's JS glue, e.g. `link_sdk.3f2a….js`.
    pub js: Option<String>,
    /// The optimised wasm module.
    pub wasm: Option<String>,
    /// The stylesheet.
    pub css: Option<String>,
}

impl Manifest {
    /// Whether pages with islands can load the wasm (both the JS glue and the module are named).
    pub fn hydrates(&self) -> bool {
        self.js.is_some() && self.wasm.is_some()
    }
}

/// How often the watcher looks at `{site_root}/pkg` (two `stat` calls) for a new or changed manifest.
pub const WATCH_INTERVAL: Duration = Duration::from_secs(1);

/// The site root being served, its current manifest, and what `pkg/` looked like when that was read.
struct Site {
    root: PathBuf,
    current: RwLock<Arc<Manifest>>,
    seen: RwLock<Option<PkgStamp>>,
}

/// Modification times (and the manifest's length) of `pkg/` and `pkg/manifest.json`: a rebuild by
/// `.ci/build-site` replaces the folder, and `cargo leptos build` adds files to it; either changes this.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PkgStamp {
    dir: SystemTime,
    file: Option<(SystemTime, u64)>,
}

impl Site {
    fn new(root: &Path) -> Self {
        let seen = PkgStamp::of(root);
        let manifest = read_manifest(root);
        Site { root: root.to_path_buf(), current: RwLock::new(Arc::new(manifest)), seen: RwLock::new(seen) }
    }

    fn current(&self) -> Arc<Manifest> {
        self.current.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Reads the manifest again if `pkg/` changed since the last look; returns whether the manifest in use
    /// changed. A manifest that is not valid JSON is logged and the one in use is kept.
    fn refresh(&self) -> bool {
        let stamp = PkgStamp::of(&self.root);
        if *self.seen.read().unwrap_or_else(|e| e.into_inner()) == stamp {
            return false;
        }
        *self.seen.write().unwrap_or_else(|e| e.into_inner()) = stamp;
        let Some(next) = try_read_manifest(&self.root) else { return false };
        let before = self.current();
        if *before == next {
            return false;
        }
        match (before.hydrates(), next.hydrates()) {
            (false, true) => tracing::info!(js = ?next.js, wasm = ?next.wasm, css = ?next.css, "site built: pages now load the wasm and islands hydrate (no restart needed)"),
            (true, false) => tracing::warn!(site_root = %self.root.display(), "the built site is gone: pages render without wasm until it is built again"),
            _ => tracing::info!(js = ?next.js, wasm = ?next.wasm, css = ?next.css, "site rebuilt: pages now use the new asset manifest"),
        }
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(next);
        true
    }
}

impl PkgStamp {
    fn of(site_root: &Path) -> Option<Self> {
        let pkg = site_root.join("pkg");
        let dir = std::fs::metadata(&pkg).and_then(|m| m.modified()).ok()?;
        let file = std::fs::metadata(pkg.join("manifest.json")).and_then(|m| Ok((m.modified()?, m.len()))).ok();
        Some(PkgStamp { dir, file })
    }
}

static SITE: OnceLock<Site> = OnceLock::new();

/// Reads the site's manifest ([`read_manifest`]) and, with `watch`, starts the watcher that picks up a later build
/// of the site. Once per process: later calls (more servers in one test binary) keep the first site root.
pub fn load_manifest(site_root: &Path, watch: bool) -> Arc<Manifest> {
    let mut first = false;
    let site = SITE.get_or_init(|| {
        first = true;
        Site::new(site_root)
    });
    if first && !site.current().hydrates() {
        let root = site_root.display();
        if watch {
            tracing::warn!(site_root = %root, "no built site yet: pages render without CSS and islands stay static until .ci/build-site writes pkg/manifest.json");
        } else {
            tracing::warn!(site_root = %root, "no built site: pages render without CSS and islands stay static (build it with .ci/build-site, then restart)");
        }
    }
    if first && watch {
        let spawned = std::thread::Builder::new().name("asset-manifest".into()).spawn(move || loop {
            std::thread::sleep(WATCH_INTERVAL);
            site.refresh();
        });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "could not start the asset watcher: a site built later needs a restart");
        }
    }
    site.current()
}

/// The hashed names from `{site_root}/pkg/manifest.json`; without that file, the unhashed names of a
/// `cargo leptos build` found in `pkg/`; otherwise an empty manifest. Never fails.
pub fn read_manifest(site_root: &Path) -> Manifest {
    try_read_manifest(site_root).unwrap_or_default()
}

/// [`read_manifest`], but `None` (after a warning) when `manifest.json` exists and cannot be read or parsed.
fn try_read_manifest(site_root: &Path) -> Option<Manifest> {
    let pkg = site_root.join("pkg");
    let path = pkg.join("manifest.json");
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            return serde_json::from_str(&text)
                .inspect_err(|e| tracing::warn!(path = %path.display(), error = %e, "asset manifest is not valid JSON"))
                .ok();
        }
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            tracing::warn!(path = %path.display(), error = %e, "asset manifest cannot be read");
            return None;
        }
        Err(_) => {}
    }
    let first = |names: &[&str]| names.iter().find(|n| pkg.join(n).is_file()).map(|n| n.to_string());
    Some(Manifest {
        js: first(&["link_sdk.js"]),
        wasm: first(&["link_sdk.wasm", "link_sdk_bg.wasm"]),
        css: first(&["link_sdk.css", "main.css"]),
    })
}

/// The manifest in use: the latest one the watcher read (empty before [`load_manifest`]). Called on every page
/// render: a read lock and a reference-count increment, no disk access.
pub fn manifest() -> Arc<Manifest> {
    SITE.get().map(Site::current).unwrap_or_default()
}

/// `public/favicon.ico`: the favicon (16, 32 and 48 px PNGs in an ICO container) drawn from `public/favicon.svg`.
const FAVICON_ICO: &[u8] = include_bytes!("../../../public/favicon.ico");

/// Routes for `/pkg/*` (immutable, one year), for public files at the root (five minutes) and `/favicon.ico`.
pub fn router<S: Clone + Send + Sync + 'static>(site_root: &Path) -> Router<S> {
    let pkg = ServeDir::new(site_root.join("pkg")).precompressed_br().precompressed_gzip();
    let public = ServeDir::new(site_root).precompressed_br().precompressed_gzip();
    let immutable = SetResponseHeaderLayer::overriding(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    let short = SetResponseHeaderLayer::if_not_present(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    let mut router = Router::new().nest_service("/pkg", tower::ServiceBuilder::new().layer(immutable).service(pkg));
    for file in ["favicon.svg", "robots.txt"] {
        let svc = tower::ServiceBuilder::new().layer(short.clone()).service(public.clone());
        router = router.route_service(&format!("/{file}"), svc);
    }
    router.route(
        "/favicon.ico",
        get(|| async {
            (
                [
                    (header::CONTENT_TYPE, HeaderValue::from_static("image/x-icon")),
                    (header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=86400")),
                ],
                FAVICON_ICO,
            )
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_from_file_from_cargo_leptos_names_or_empty() {
        let dir = std::env::temp_dir().join(format!("link-sdk-assets-{}", std::process::id()));
        let pkg = dir.join("pkg");
        std::fs::create_dir_all(&pkg).unwrap();
        // Nothing built: empty.
        let m = read_manifest(&dir);
        assert!(m.js.is_none() && m.wasm.is_none() && m.css.is_none());
        // cargo-leptos output (unhashed).
        for f in ["link_sdk.js", "link_sdk.wasm", "link_sdk.css"] {
            std::fs::write(pkg.join(f), b"x").unwrap();
        }
        let m = read_manifest(&dir);
        assert_eq!(
            (m.js.as_deref(), m.wasm.as_deref(), m.css.as_deref()),
            (Some("link_sdk.js"), Some("link_sdk.wasm"), Some("link_sdk.css"))
        );
        // .ci/build-site's manifest wins.
        std::fs::write(pkg.join("manifest.json"), br#"{"js":"link_sdk.ab.js","wasm":"link_sdk.cd.wasm","css":"main.ef.css"}"#)
            .unwrap();
        let m = read_manifest(&dir);
        assert_eq!(m.wasm.as_deref(), Some("link_sdk.cd.wasm"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn refresh_picks_up_a_site_built_later_and_keeps_it_over_a_broken_manifest() {
        let dir = std::env::temp_dir().join(format!("link-sdk-assets-refresh-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let site = Site::new(&dir);
        assert!(!site.current().hydrates());
        assert!(!site.refresh(), "nothing changed");

        let pkg = dir.join("pkg");
        std::fs::create_dir_all(&pkg).unwrap();
        std::fs::write(pkg.join("manifest.json"), br#"{"js":"link_sdk.ab.js","wasm":"link_sdk.cd.wasm","css":"main.ef.css"}"#)
            .unwrap();
        assert!(site.refresh());
        assert_eq!(site.current().js.as_deref(), Some("link_sdk.ab.js"));
        assert!(!site.refresh(), "read once per change");

        // A half-written manifest (another length, so the stamp differs even within one mtime tick) keeps the last good one.
        std::fs::write(pkg.join("manifest.json"), br#"{"js":"link_sdk.12.js","wasm":"#).unwrap();
        assert!(!site.refresh());
        assert_eq!(site.current().wasm.as_deref(), Some("link_sdk.cd.wasm"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
