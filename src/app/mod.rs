//! The Leptos application: every screen, rendered on the server and hydrated in the browser.
//!
//! Compiled in both builds. Server-only pieces (the HTML shell, which reads the asset manifest and the
//! request's CSP nonce) live in [`shell`] behind `ssr`.

use leptos::prelude::*;
use leptos_meta::{provide_meta_context, Html, Title};
use leptos_router::{
    components::{Route, Router, Routes},
    path,
};

mod home;

#[cfg(feature = "ssr")]
pub mod shell;

pub use home::HomePage;

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
