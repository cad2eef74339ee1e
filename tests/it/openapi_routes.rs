//! `/openapi.json` and the router agree: every route the server answers is documented there or left out on
//! purpose (with the reason, in [`NOT_IN_OPENAPI`]), and every documented path and method is routed.

use crate::common::spawn_app;

/// Routes deliberately absent from `/openapi.json` (the integrator's API), each with why. An entry ending in `*`
/// covers every path that starts with it.
const NOT_IN_OPENAPI: &[(&str, &str)] = &[
    ("/", "the start page (HTML for people)"),
    ("/healthz", "operator liveness probe (docs/deployment.md)"),
    ("/readyz", "operator readiness probe (docs/deployment.md)"),
    ("/favicon.ico", "static asset"),
    ("/favicon.svg", "static asset"),
    ("/robots.txt", "static asset"),
    ("/openapi.json", "this document itself"),
    ("/pkg*", "the hashed wasm, JS and CSS of the screens"),
    ("/link.js", "the FlexpaLink script a page loads (docs/integrating.md), not an HTTP API"),
    ("/link.d.ts", "TypeScript declarations of link.js"),
    ("/link/v1/link.js", "the FlexpaLink script, versioned path"),
    ("/link/v1/link.d.ts", "TypeScript declarations, versioned path"),
    ("/link/v1/link-element.js", "the <flexpa-link> custom element over link.js (docs/integrating.md), not an HTTP API"),
    ("/link/v1/link-element.d.ts", "TypeScript declarations of the element"),
    ("/link/v1/link-react.js", "the useFlexpaLink React hook over link.js (docs/integrating.md), not an HTTP API"),
    ("/link/v1/link-react.d.ts", "TypeScript declarations of the hook"),
    ("/link/frame.js", "the hosted screens' own script"),
    ("/link/s/{sid}*", "the hosted Link screens and their forms: a patient's browser drives them, bound to one session"),
    ("/link/h/{token}", "a hosted (re-connect) link opened by the patient (HTML); its URL comes from POST /link/hosted"),
    ("/link/callback", "the payer's OAuth redirect_uri (registered at the payer), not called by integrators"),
    ("/link/connections", "the patient's connections page (HTML); its URL comes from POST /link/connections-url"),
    ("/link/test-page", "a bare integrator page for end-to-end tests (sandbox mode only)"),
    ("/api/*", "Leptos server functions of the screens' islands (plan search, sync progress, connections list)"),
    ("/demo*", "the demo integrator app, written as an integrator would write theirs"),
    ("/console*", "the operator console (HTML for the operator, behind a one-time sign-in link; docs/deployment.md)"),
    ("/sandbox/*", "the built-in sandbox payers: a payer's SMART and FHIR API, not this server's"),
    ("/{*__private__axum_fallback}", "axum's fallback (unknown paths get the not-found page)"),
    ("/fhir", "the FHIR API's root: no interaction, a 404 OperationOutcome (the API is described at /fhir/metadata)"),
    ("/fhir/", "the FHIR API's root: no interaction, a 404 OperationOutcome (the API is described at /fhir/metadata)"),
    ("/fhir/{*__private__axum_fallback}", "the FHIR API's fallback (unknown /fhir paths get a 404 OperationOutcome)"),
];

/// Every path the router holds, read from its `Debug` output (axum keeps no other list of its routes).
fn router_paths(app: &crate::common::TestApp) -> Vec<String> {
    let root = std::path::PathBuf::from(app.state.leptos_options.site_root.as_ref());
    let router = link_sdk::server::startup::build_router(app.state.clone(), &root);
    let dbg = format!("{router:?}");
    let mut paths: Vec<String> = dbg
        .split("RouteId(")
        .skip(1)
        .filter_map(|part| part.split_once("): \"").and_then(|(_, rest)| rest.split('"').next()).map(str::to_string))
        .collect();
    paths.sort();
    paths.dedup();
    assert!(paths.len() > 40 && paths.iter().any(|p| p == "/link/exchange"), "could not read the routes: {dbg:.400}");
    paths
}

fn excluded(path: &str) -> Option<&'static str> {
    NOT_IN_OPENAPI.iter().find_map(|(pattern, reason)| {
        let hit = match pattern.strip_suffix('*') {
            Some(prefix) => path.starts_with(prefix),
            None => path == *pattern,
        };
        hit.then_some(*reason)
    })
}

/// Whether a router path (axum syntax, `{param}` segments) serves a documented path (OpenAPI syntax).
fn serves(route: &str, documented: &str) -> bool {
    let (r, d): (Vec<&str>, Vec<&str>) = (route.split('/').collect(), documented.split('/').collect());
    r.len() == d.len() && r.iter().zip(&d).all(|(a, b)| a == b || (a.starts_with('{') && a.ends_with('}')))
}

#[tokio::test]
async fn every_route_is_in_openapi_or_excluded_with_a_reason_and_every_documented_path_is_routed() {
    let app = spawn_app().await;
    let doc: serde_json::Value = app.get("/openapi.json").await.json().await.unwrap();
    let documented: Vec<String> = doc["paths"].as_object().expect("paths").keys().cloned().collect();
    let routes = router_paths(&app);

    let undocumented: Vec<&String> =
        routes.iter().filter(|r| excluded(r).is_none() && !documented.iter().any(|d| serves(r, d))).collect();
    assert!(undocumented.is_empty(), "routes neither in /openapi.json nor in NOT_IN_OPENAPI: {undocumented:?}");
    // An exclusion that matches nothing is stale.
    for (pattern, _) in NOT_IN_OPENAPI {
        let prefix = pattern.trim_end_matches('*');
        assert!(routes.iter().any(|r| r == pattern || (pattern.ends_with('*') && r.starts_with(prefix))), "stale exclusion {pattern}");
    }
    let unrouted: Vec<&String> = documented.iter().filter(|d| !routes.iter().any(|r| serves(r, d))).collect();
    assert!(unrouted.is_empty(), "documented but not routed: {unrouted:?}");

    // Each documented method is answered by a handler (never 404 or 405), even without credentials.
    for d in &documented {
        for method in doc["paths"][d].as_object().unwrap().keys() {
            let url = format!("{}{}", app.base_url, d.replace("{id}", "x").replace("{externalId}", "x"));
            let r = match method.as_str() {
                "get" => app.client.get(&url).send().await.unwrap(),
                "post" => app.client.post(&url).json(&serde_json::json!({})).send().await.unwrap(),
                other => panic!("{d}: unexpected method {other}"),
            };
            assert!(
                r.status() != 404 && r.status() != 405,
                "{} {d} answered {}",
                method.to_uppercase(),
                r.status()
            );
        }
    }
}
