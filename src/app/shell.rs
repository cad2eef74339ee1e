//! The HTML document around every screen (server only): stylesheet and boot script with their hashed names
//! from the asset manifest, and the per-request CSP nonce on every inline script.

use leptos::{prelude::*, reactive::owner::Owner};
use leptos_meta::MetaTags;

use crate::app::App;
use crate::server::platform::{assets, http::CspNonce};

/// Renders the document for one request. Provides the request's CSP nonce to Leptos so that every script it
/// inlines (hydration data, resources) carries it.
pub fn shell(_options: LeptosOptions) -> impl IntoView {
    let nonce = use_context::<axum::http::request::Parts>()
        .and_then(|parts| parts.extensions.get::<CspNonce>().cloned())
        .map(|n| n.0);
    if let Some(n) = &nonce {
        provide_context(leptos::nonce::Nonce::from_value(n.clone()));
    }
    // Islands mode: the page is server-rendered HTML and only `#[island]` components hydrate, so nothing outside an
    // island writes hydration data (resources of server-only components are not serialized into the page).
    if let Some(sc) = Owner::current_shared_context() {
        sc.set_is_hydrating(false);
    }
    let manifest = assets::manifest();
    let css = manifest.css.clone().map(|c| format!("/pkg/{c}"));
    let boot = boot_script(manifest.js.as_ref().zip(manifest.wasm.as_ref()).map(|(js, wasm)| (format!("/pkg/{js}"), format!("/pkg/{wasm}"))));
    view! {
        <!DOCTYPE html>
        <html>
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                <meta name="color-scheme" content="light"/>
                <link rel="icon" href="/favicon.svg" type="image/svg+xml"/>
                {css.map(|href| view! { <link rel="stylesheet" href=href/> })}
                <script type="module" nonce=nonce.clone() inner_html=boot></script>
                <MetaTags/>
            </head>
            <body>
                <App/>
            </body>
        </html>
    }
}

/// The inline module script of every page (it carries the request's CSP nonce).
///
/// A page without an island loads no wasm at all: its forms and `/link/frame.js` are all it needs. A page with
/// islands loads the wasm (`assets`: the hashed `/pkg/` URLs of the JS glue and the wasm; `None` when no site is
/// built, e.g. in `cargo test`), calls `hydrate`, then each `<leptos-island data-component=…>` element's
/// exported function. Either way it then marks the page interactive (`window.__linkHydrated`, and `data-hydrated="true"` on `#link-root`) once
/// the deferred scripts have run (`DOMContentLoaded`), which tests and the first-screen benchmark wait for.
fn boot_script(assets: Option<(String, String)>) -> String {
    let hydrate = match assets {
        None => String::new(),
        Some((js, wasm)) => format!(
            r#"
  if (islands.length) {{
    const mod = await import('{js}');
    await mod.default({{ module_or_path: '{wasm}' }});
    mod.hydrate();
    for (const el of islands) {{
      const hydrateIsland = mod[el.dataset.component];
      if (hydrateIsland) await hydrateIsland(el); else console.warn('no wasm function for island', el.dataset.component);
    }}
  }}"#
        )
    };
    format!(
        r#"const islands = document.querySelectorAll('leptos-island');
const parsed = new Promise((ok) => document.readyState === 'complete' ? ok() : addEventListener('DOMContentLoaded', ok, {{ once: true }}));
async function boot() {{{hydrate}
  await parsed;
  window.__linkHydrated = true;
  document.getElementById('link-root')?.setAttribute('data-hydrated', 'true');
}}
boot();"#
    )
}
