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

use std::{path::Path, sync::OnceLock};

use axum::{
    http::{header, HeaderValue},
    routing::get,
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

/// Reads the site's manifest once ([`read_manifest`]); later calls keep the first result.
pub fn load_manifest(site_root: &Path) -> &'static Manifest {
    MANIFEST.get_or_init(|| {
        let m = read_manifest(site_root);
        if m.js.is_none() || m.wasm.is_none() {
            tracing::warn!(site_root = %site_root.display(), "no built site: pages render without CSS and islands stay static (run .ci/build-site)");
        }
        m
    })
}

/// The hashed names from `{site_root}/pkg/manifest.json`; without that file, the unhashed names of a
/// `cargo leptos build` found in `pkg/`; otherwise an empty manifest. Never fails.
pub fn read_manifest(site_root: &Path) -> Manifest {
    let pkg = site_root.join("pkg");
    let path = pkg.join("manifest.json");
    if let Ok(text) = std::fs::read_to_string(&path) {
        return serde_json::from_str(&text).unwrap_or_else(|e| {
            tracing::warn!(path = %path.display(), error = %e, "asset manifest is not valid JSON");
            Manifest::default()
        });
    }
    let first = |names: &[&str]| names.iter().find(|n| pkg.join(n).is_file()).map(|n| n.to_string());
    Manifest {
        js: first(&["link_sdk.js"]),
        wasm: first(&["link_sdk.wasm", "link_sdk_bg.wasm"]),
        css: first(&["link_sdk.css", "main.css"]),
    }
}

/// The manifest loaded at start (empty before [`load_manifest`]).
pub fn manifest() -> &'static Manifest {
    MANIFEST.get_or_init(Manifest::default)
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
}
