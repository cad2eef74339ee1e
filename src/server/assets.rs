//! Static assets: the hashed wasm, JS and CSS under `/pkg` (long-cached, served pre-compressed as br or
//! gzip), and the files of `public/` at the site root. Compiled only with `ssr`.
//!
//! `scripts/build-site` writes `{site_root}/pkg/manifest.json`: `{"js": "link_sdk.<hash>.js",
//! "wasm": "link_sdk.<hash>.wasm", "css": "main.<hash>.css"}`. Without a built site the pages still render
//! (server-side only, unstyled), which is what plain `cargo test` sees.

use std::{path::Path, sync::OnceLock};

use axum::{
    http::{header, HeaderValue},
    Router,
};
use serde::Deserialize;
use tower_http::{services::ServeDir, set_header::SetResponseHeaderLayer};

/// Hashed file names of the built site, relative to `/pkg/`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Manifest {
    /// wasm-bindgen's JS glue, e.g. `link_sdk.3f2a….js`.
    pub js: Option<String>,
    /// The optimised wasm module.
    pub wasm: Option<String>,
    /// The stylesheet.
    pub css: Option<String>,
}

static MANIFEST: OnceLock<Manifest> = OnceLock::new();

/// Reads `{site_root}/pkg/manifest.json` once; later calls keep the first result.
pub fn load_manifest(site_root: &Path) -> &'static Manifest {
    MANIFEST.get_or_init(|| {
        let path = site_root.join("pkg").join("manifest.json");
        match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text).unwrap_or_else(|e| {
                tracing::warn!(path = %path.display(), error = %e, "asset manifest is not valid JSON");
                Manifest::default()
            }),
            Err(_) => {
                tracing::warn!(path = %path.display(), "no built site: pages render without CSS and islands stay static (run .ci/build-site)");
                Manifest::default()
            }
        }
    })
}

/// The manifest loaded at start (empty before [`load_manifest`]).
pub fn manifest() -> &'static Manifest {
    MANIFEST.get_or_init(Manifest::default)
}

/// Routes for `/pkg/*` (immutable, one year) and for public files at the root (five minutes).
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
    router
}
