//! The HTML document around every screen (server only): stylesheet and hydration script with their hashed
//! names from the asset manifest, and the per-request CSP nonce on every inline script.

use leptos::prelude::*;
use leptos_meta::MetaTags;

use super::App;
use crate::server::{assets, http::CspNonce};

/// Renders the document for one request. Provides the request's CSP nonce to Leptos so that every script it
/// inlines (hydration data, resources) carries it.
pub fn shell(_options: LeptosOptions) -> impl IntoView {
    let nonce = use_context::<axum::http::request::Parts>()
        .and_then(|parts| parts.extensions.get::<CspNonce>().cloned())
        .map(|n| n.0);
    if let Some(n) = &nonce {
        provide_context(leptos::nonce::Nonce::from_value(n.clone()));
    }
    let manifest = assets::manifest();
    let css = manifest.css.clone().map(|c| format!("/pkg/{c}"));
    let hydration = match (&manifest.js, &manifest.wasm) {
        (Some(js), Some(wasm)) => {
            let js = format!("/pkg/{js}");
            let wasm = format!("/pkg/{wasm}");
            let boot = format!(
                "import init, {{ hydrate }} from '{js}'; \
                 init({{ module_or_path: '{wasm}' }}).then(function () {{ hydrate(); }});"
            );
            Some(view! {
                <link rel="modulepreload" href=js.clone()/>
                <link rel="preload" href=wasm r#as="fetch" type="application/wasm" crossorigin="anonymous"/>
                <script type="module" nonce=nonce.clone() inner_html=boot></script>
            })
        }
        _ => None,
    };
    view! {
        <!DOCTYPE html>
        <html>
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                <meta name="color-scheme" content="light"/>
                <link rel="icon" href="/favicon.svg" type="image/svg+xml"/>
                {css.map(|href| view! { <link rel="stylesheet" href=href/> })}
                {hydration}
                <MetaTags/>
            </head>
            <body>
                <App/>
            </body>
        </html>
    }
}
