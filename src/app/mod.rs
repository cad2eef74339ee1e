//! The Leptos application: every screen, rendered on the server; only its islands hydrate in the browser.
//!
//! Leptos runs in islands mode: components are server-rendered HTML (forms that work without JavaScript), and
//! the few interactive parts are `#[island]`s. Island props are serialized into the page as JSON, so they carry
//! only what the page already shows or holds in its URL (plan names, counts, the session id, and on the
//! connections page its grant token, which is in the URL and in every Remove form); never health data or a
//! token the page did not already have. The wasm holds only the islands, and a page without one loads no wasm at all.
//! A component that renders an island also renders [`IslandAssets`] so the browser fetches the wasm early.
//!
//! Compiled in both builds. Server-only pieces (the HTML shell, which reads the asset manifest and the
//! request's CSP nonce) live in [`shell`] behind `ssr`.

use leptos::prelude::*;
use leptos_meta::{provide_meta_context, Html, Title};
use leptos_router::{
    components::{Route, Router, Routes},
    path, SsrMode,
};

pub mod connections;
mod home;
pub mod link;

#[cfg(feature = "ssr")]
pub mod shell;

pub use connections::ConnectionsPage;
pub use home::HomePage;
pub use link::LinkPage;

/// The root component: meta context and the router of every hosted screen. Each page sets the document's
/// language itself with [`PageLang`] (the root cannot know it: a Link screen or the connections page is in the
/// session's or the patient's language).
#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    view! {
        <Html attr:dir="ltr"/>
        <Title text="Link SDK"/>
        <Router>
            <Routes fallback=NotFoundPage>
                <Route path=path!("/") view=HomePage/>
                // Before any `/link/{…}` route so the static path wins; Async: full HTML without JavaScript.
                <Route path=path!("/link/connections") view=ConnectionsPage ssr=SsrMode::Async/>
                // The hosted Link screens (owner: Link flow). Async so the app's CSP frame-ancestors header is set.
                <Route path=path!("/link/s/:sid") view=LinkPage ssr=SsrMode::Async/>
            </Routes>
        </Router>
    }
}

/// The page for an unknown path; sets the HTTP status to 404 on the server.
#[component]
pub fn NotFoundPage() -> impl IntoView {
    #[cfg(feature = "ssr")]
    {
        if let Some(resp) = use_context::<leptos_axum::ResponseOptions>() {
            resp.set_status(axum::http::StatusCode::NOT_FOUND);
        }
    }
    view! {
        <PageLang lang="en"/>
        <Title text="Page not found · Link SDK"/>
        <main class="page narrow" id="main">
            <h1>"Page not found"</h1>
            <p>"There is nothing at this address. Check the link you followed, or go back to the page you came from."</p>
            <p><a href="/">"Go to the start page"</a></p>
        </main>
    }
}

/// Sets `<html lang>` to the page's language (`en`, `es` or `ko`), which screen readers use to pick their voice.
/// Exactly one per page: leptos_meta concatenates the attributes of every `<Html>`, and a browser keeps the
/// first of two `lang` attributes.
#[component]
pub fn PageLang(#[prop(into)] lang: String) -> impl IntoView {
    view! { <Html attr:lang=lang/> }
}

/// Preload hints (`modulepreload` for the JS glue, `preload` for the wasm) in the page's `<head>`, for screens
/// that contain an island. Renders nothing in the browser build or when no site is built.
#[component]
pub fn IslandAssets() -> impl IntoView {
    #[cfg(feature = "ssr")]
    {
        let manifest = crate::server::platform::assets::manifest();
        if let (Some(js), Some(wasm)) = (&manifest.js, &manifest.wasm) {
            return view! {
                <leptos_meta::Link rel="modulepreload" href=format!("/pkg/{js}")/>
                <leptos_meta::Link
                    rel="preload"
                    href=format!("/pkg/{wasm}")
                    as_="fetch"
                    type_="application/wasm"
                    crossorigin="anonymous"
                />
            }
            .into_any();
        }
    }
    ().into_any()
}
