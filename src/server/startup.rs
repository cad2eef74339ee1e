//! Building and running the server: settings → database → state → router → listener. Compiled only with `ssr`.
//!
//! [`Application::build`] binds first (port 0 picks a free one) so tests and the banner know the real port;
//! [`Application::run_until`] serves until a shutdown signal, lets in-flight requests finish, and stops the
//! background workers through [`AppState::shutdown`].

use std::{future::Future, net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

use anyhow::Context as _;
use axum::{http::header, middleware, Router};
use leptos_axum::{generate_route_list, LeptosRoutes as _};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_http::{
    compression::CompressionLayer,
    request_id::{PropagateRequestIdLayer, SetRequestIdLayer},
    set_header::SetResponseHeaderLayer,
    trace::TraceLayer,
};

use crate::{
    app::{shell::shell, App},
    server::{
        platform::{
            assets,
            clock::SharedClock,
            db::Db,
            http,
            telemetry::{self, MakeRandomRequestId, REQUEST_ID_HEADER},
        },
        settings::{RunMode, Settings},
        state::{load_cipher, AppState},
        surfaces::hosted_link::page,
    },
};

/// A bound, ready-to-run server.
pub struct Application {
    listener: TcpListener,
    router: Router,
    /// The state handlers see (tests use it to reach the database or the clock).
    pub state: AppState,
    /// Lines printed at start in local mode (demo app and its test keys).
    pub banner: Vec<String>,
    /// rustls configuration when `--tls-cert`/`--tls-key` are given (HTTPS served directly).
    tls: Option<Arc<rustls::ServerConfig>>,
}

impl Application {
    /// Connects the database (running migrations), loads keys, builds the router and binds `settings.addr`.
    ///
    /// # Errors
    /// Unreadable Leptos.toml, a database that cannot be reached or migrated, a missing secret in production
    /// mode, or an address that cannot be bound.
    pub async fn build(settings: Settings, clock: SharedClock) -> anyhow::Result<Self> {
        let conf = leptos::config::get_configuration(Some(
            settings.leptos_config.to_str().context("Leptos.toml path is not UTF-8")?,
        ))
        .context("reading the Leptos configuration")?;
        let mut leptos_options = conf.leptos_options;
        if let Some(root) = &settings.site_root {
            leptos_options.site_root = root.display().to_string().into();
        }
        let site_root = PathBuf::from(leptos_options.site_root.as_ref());
        assets::load_manifest(&site_root, settings.run_mode == RunMode::Local);

        let cipher = Arc::new(load_cipher(&settings)?);
        let tls = crate::server::platform::tls::server_config(&settings)?;
        let db = Db::connect(&settings.database_url(), settings.db_max_connections).await?;

        let listener = TcpListener::bind(settings.addr).await.with_context(|| format!("binding {}", settings.addr))?;
        let local = listener.local_addr()?;
        leptos_options.site_addr = local;
        let public_url: Arc<str> = match &settings.public_url {
            Some(u) => u.trim_end_matches('/').into(),
            None if tls.is_some() => default_public_url(local).replacen("http://", "https://", 1).into(),
            None => default_public_url(local).into(),
        };

        let http = crate::server::state::payer_http_client(&settings)?;

        let settings_for_limits = settings.clone();
        let state = AppState {
            leptos_options: leptos_options.clone(),
            db,
            clock,
            cipher,
            http,
            settings: Arc::new(settings),
            public_url,
            shutdown: CancellationToken::new(),
            limits: Arc::new(crate::server::platform::rate_limit::RateLimits::new(&settings_for_limits)),
            audit_queue: Default::default(),
        };
        // Resources stored before the current search index rules get their index rows before any search.
        let reindexed = crate::server::store::resources::reindex(state.resource_store()).await.context("indexing stored resources")?;
        if reindexed > 0 {
            tracing::info!(resources = reindexed, "search index written for stored resources");
        }
        if state.settings.sandbox {
            crate::server::surfaces::sandbox::register_endpoints(&state).await.context("registering the sandbox payers")?;
        }
        let banner = if state.settings.run_mode == RunMode::Local {
            crate::server::surfaces::demo::bootstrap_local(&state).await.context("creating the local demo app")?
        } else {
            Vec::new()
        };
        let router = build_router(state.clone(), &site_root);
        Ok(Application { listener, router, state, banner, tls })
    }

    /// The port actually bound.
    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    /// The public base URL (no trailing slash).
    pub fn base_url(&self) -> String {
        self.state.public_url.to_string()
    }

    /// Serves until `signal` resolves, then stops accepting, lets in-flight requests finish (at most
    /// `--shutdown-grace` seconds) and cancels the background workers.
    ///
    /// # Errors
    /// An I/O error of the listener.
    pub async fn run_until(self, signal: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let shutdown = self.state.shutdown.clone();
        let grace = Duration::from_secs(self.state.settings.shutdown_grace_secs);
        let workers = spawn_workers(&self.state);
        let stop = shutdown.clone();
        let serve = crate::server::platform::tls::spawn_serve(self.listener, self.router, self.tls, async move {
            tokio::select! {
                _ = signal => {},
                _ = stop.cancelled() => {},
            }
            stop.cancel();
            tracing::info!("shutting down: finishing in-flight requests");
        })?;
        // Cancelled by the graceful-shutdown future above (on `signal`) or by anyone holding the token.
        shutdown.cancelled().await;
        let result = tokio::time::timeout(grace, serve).await;
        for w in workers {
            if tokio::time::timeout(grace, w).await.is_err() {
                tracing::warn!("a background worker did not stop within the grace period");
            }
        }
        match result {
            Ok(joined) => joined.context("server task")?.context("serving")?,
            Err(_) => tracing::warn!("in-flight requests did not finish within the grace period"),
        }
        tracing::info!("stopped");
        Ok(())
    }
}

/// Starts every background worker of this instance; each stops when [`AppState::shutdown`] is cancelled.
fn spawn_workers(state: &AppState) -> Vec<tokio::task::JoinHandle<()>> {
    let mut workers = Vec::new();
    workers.extend(crate::server::services::sync::spawn_workers(state));
    workers.extend(crate::server::services::webhooks::spawn_workers(state));
    workers.extend(crate::server::services::lifecycle::sweep::spawn_workers(state));
    workers.extend(state.audit_queue.spawn_writer(state.db.clone(), state.shutdown.clone()));
    workers
}

fn default_public_url(local: SocketAddr) -> String {
    let host = if local.ip().is_unspecified() { "127.0.0.1".to_string() } else { local.ip().to_string() };
    if local.is_ipv6() {
        format!("http://[{host}]:{}", local.port())
    } else {
        format!("http://{host}:{}", local.port())
    }
}

/// The whole HTTP surface of the server, with its middleware.
pub fn build_router(state: AppState, site_root: &std::path::Path) -> Router {
    // `/link/s/{sid}` and `/link/connections` have their own handlers (data loaded before rendering, see
    // `surfaces::hosted_link::page`).
    let routes: Vec<_> =
        generate_route_list(App)
        .into_iter()
        .filter(|r| r.path() != page::LINK_SCREEN_PATH && r.path() != page::CONNECTIONS_PATH)
        .collect();
    let options = state.leptos_options.clone();
    let leptos = Router::<AppState>::new()
        .leptos_routes_with_context(&state, routes, || {}, {
            let options = options.clone();
            move || shell(options.clone())
        })
        .fallback(leptos_axum::file_and_error_handler::<AppState, _>(shell));

    let fhir = crate::server::surfaces::fhir_api::router()
        .route_layer(middleware::from_fn_with_state(state.clone(), crate::server::surfaces::fhir_limits::per_token));
    // The demo's page opens Link, whose payer window must keep its opener (COOP); the sandbox payers' pages are
    // that window's, as a payer's would be.
    let demo = crate::server::surfaces::demo::router().layer(SetResponseHeaderLayer::if_not_present(
        header::HeaderName::from_static("cross-origin-opener-policy"),
        http::COOP_ALLOW_POPUPS,
    ));
    let mut router = Router::new()
        .merge(crate::server::surfaces::health::router())
        .merge(assets::router(site_root))
        .merge(crate::server::surfaces::hosted_link::router())
        .merge(crate::server::surfaces::integrator_api::router())
        .merge(fhir)
        .merge(crate::server::surfaces::openapi::router())
        .merge(demo)
        .merge(crate::server::surfaces::console::router());
    if state.settings.sandbox {
        router = router.merge(crate::server::surfaces::sandbox::router(&state).layer(SetResponseHeaderLayer::if_not_present(
            header::HeaderName::from_static("cross-origin-opener-policy"),
            http::COOP_UNSAFE_NONE,
        )));
    }
    if state.settings.tls_cert.is_some() {
        // HTTPS served directly: browsers must never come back over plain HTTP (RFC 6797). Behind a proxy, the
        // proxy that terminates TLS sends it.
        router = router.layer(SetResponseHeaderLayer::overriding(header::STRICT_TRANSPORT_SECURITY, http::HSTS));
    }
    router
        .merge(leptos)
        .layer(CompressionLayer::new())
        .layer(middleware::from_fn(http::security_headers))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID_HEADER))
        .layer(TraceLayer::new_for_http().make_span_with(telemetry::make_span))
        .layer(SetRequestIdLayer::new(REQUEST_ID_HEADER, MakeRandomRequestId))
        .layer(middleware::from_fn(http::strip_request_id))
        .layer(middleware::from_fn_with_state(
            crate::server::platform::tls::TrustedProxies(Arc::new(state.settings.trusted_proxies.clone())),
            crate::server::platform::tls::client_address,
        ))
        .with_state(state)
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
