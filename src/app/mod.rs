//! The Leptos application: every screen, rendered on the server and hydrated in the browser.
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

/// The root component: meta context and the router of every hosted screen.
#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    view! {
        <Html attr:lang="en" attr:dir="ltr"/>
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
        <Title text="Page not found · Link SDK"/>
        <main class="page narrow" id="main">
            <h1>"Page not found"</h1>
            <p>"There is nothing at this address. Check the link you followed, or go back to the page you came from."</p>
            <p><a href="/">"Go to the start page"</a></p>
        </main>
    }
}
