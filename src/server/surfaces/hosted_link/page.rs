//! The Leptos pages of the hosted surfaces that load their data before rendering: a Link session's screen
//! (`/link/s/{sid}`) and the connections page (`/link/connections`). Each handler loads first, then renders the
//! whole app with the data in context, so the render has nothing to wait for. (Rendering through a Resource
//! under `<Suspense>` in `SsrMode::Async` hung now and then: a few requests in a thousand never completed.)

use axum::{
    extract::{Path, Request, State},
    http::header,
    response::{IntoResponse, Response},
};
use leptos::prelude::provide_context;

use crate::{
    app::{
        connections::{ssr::list_with, PreloadedConnections},
        link::PreloadedScreen,
        shell::shell,
    },
    i18n,
    server::{
        state::AppState,
        surfaces::hosted_link::{respond::{FlowError, PageQuery}, screen},
    },
};

/// The hosted Link screen's path (axum syntax).
pub const LINK_SCREEN_PATH: &str = "/link/s/{sid}";
/// The connections page's path.
pub const CONNECTIONS_PATH: &str = "/link/connections";

/// Renders the whole app for `req` (`SsrMode::Async`) with `state` and `preloaded` in context: the data a page
/// would otherwise load through a Resource, loaded by its handler before rendering.
async fn render_with<T: Clone + Send + Sync + 'static>(state: AppState, preloaded: T, req: Request) -> Response {
    let options = state.leptos_options.clone();
    let handler = leptos_axum::render_app_async_with_context(
        move || {
            provide_context(state.clone());
            provide_context(preloaded.clone());
        },
        move || shell(options.clone()),
    );
    handler(req).await
}

/// Query parameters of a Link screen (see `app::link::LinkPage`).
#[derive(Debug, serde::Deserialize)]
pub struct ScreenParams {
    q: Option<String>,
    err: Option<String>,
    wait: Option<String>,
}

/// `GET /link/s/{sid}`: the session's screen ([`PreloadedScreen`]).
pub async fn link_screen_page(
    State(state): State<AppState>,
    Path(sid): Path<String>,
    PageQuery(p): PageQuery<ScreenParams>,
    req: Request,
) -> Result<Response, FlowError> {
    let found = screen::load(&state, &sid, p.q, p.err, p.wait).await?;
    let preloaded = PreloadedScreen(found.map(|l| (l.screen, l.policy)));
    Ok(render_with(state, preloaded, req).await)
}

/// Query parameters of the connections page (see `app::connections::ConnectionsPage`).
#[derive(Debug, serde::Deserialize)]
pub struct ConnectionsParams {
    token: Option<String>,
    language: Option<String>,
}

/// `GET /link/connections`: the grant's connections ([`PreloadedConnections`]), in the page's language.
pub async fn connections_page(
    State(state): State<AppState>,
    PageQuery(p): PageQuery<ConnectionsParams>,
    req: Request,
) -> Response {
    let accept = req.headers().get(header::ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok());
    let lang = i18n::choose(p.language.as_deref(), accept);
    let listed = list_with(&state, p.token.unwrap_or_default(), lang.to_string()).await;
    render_with(state, PreloadedConnections { listed, lang }, req).await.into_response()
}
