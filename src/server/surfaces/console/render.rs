//! The console's HTML: every page server-rendered, no script, one stylesheet (`/console/console.css`), every
//! value escaped. The funnel chart is an inline SVG (`role="img"` with a title and a description) followed by
//! the same numbers as a table, its text equivalent.

use axum::response::Html;

use crate::{
    domain::{ExitCode, HealthStatus, LinkStep},
    server::{
        services::{
            console::SIGN_IN_PATH,
            insights::funnel::{duration, Block, Share, Stage},
            webhooks::rfc3339,
        },
        surfaces::{
            console::overview::{View, PERIODS},
            hosted_link::pages::esc,
        },
    },
};

/// A whole console page around `body` (a `<main>`), titled `title`.
fn page(title: &str, header_extra: &str, body: &str) -> Html<String> {
    Html(format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"robots\" content=\"noindex\">\
         <link rel=\"icon\" href=\"/favicon.svg\" type=\"image/svg+xml\">\
         <link rel=\"stylesheet\" href=\"/console/console.css\"><title>{title} · Link console</title></head>\
         <body><a class=\"skip\" href=\"#main\">Skip to the content</a>\
         <header class=\"top\"><p class=\"brand\">Link console</p>{header_extra}</header>{body}</body></html>",
        title = esc(title),
    ))
}

/// A page with one heading and one sentence (sign-in refusals, signed out, errors).
pub fn message_page(title: &str, text: &str) -> Html<String> {
    page(title, "", &format!("<main id=\"main\" class=\"narrow\"><h1>{}</h1><p>{}</p></main>", esc(title), code_spans(text)))
}

/// Escapes `text` and shows `` `…` `` spans as code.
fn code_spans(text: &str) -> String {
    esc(text)
        .split('`')
        .enumerate()
        .map(|(i, part)| if i % 2 == 1 { format!("<code>{part}</code>") } else { part.to_string() })
        .collect()
}

/// The sign-in confirmation: one button that posts the link's token.
pub fn sign_in_page(token: &str) -> Html<String> {
    page(
        "Sign in",
        "",
        &format!(
            "<main id=\"main\" class=\"narrow\"><h1>Sign in to the Link console</h1>\
             <p>This link signs in this browser, once. It cannot be used in any other browser.</p>\
             <form method=\"post\" action=\"{SIGN_IN_PATH}\"><input type=\"hidden\" name=\"token\" value=\"{}\">\
             <button type=\"submit\" class=\"primary\">Sign in</button></form></main>",
            esc(token)
        ),
    )
}

/// A time as operators read it: `2026-11-30 14:05 UTC`.
fn when(unix: i64) -> String {
    let t = rfc3339(unix);
    format!("{} {} UTC", &t[..10], &t[11..16])
}

fn step_name(s: Option<LinkStep>) -> &'static str {
    s.map(LinkStep::as_str).unwrap_or("–")
}

fn code_name(c: Option<ExitCode>) -> &'static str {
    c.map(ExitCode::as_str).unwrap_or("–")
}

/// The funnel of `b` as an inline SVG bar chart (bars: share of opened sessions).
pub fn funnel_svg(b: &Block, id: &str) -> String {
    const ROW: i64 = 44;
    const LABEL_W: i64 = 180;
    const BAR_W: i64 = 300;
    let height = ROW * Stage::ALL.len() as i64 + 8;
    let mut rows = String::new();
    for (i, s) in b.stages.iter().enumerate() {
        let y = i as i64 * ROW + 4;
        let w = (s.of_opened.ratio().unwrap_or(0.0) * BAR_W as f64).round() as i64;
        rows.push_str(&format!(
            "<text x=\"0\" y=\"{ty}\" class=\"label\">{label}</text>\
             <rect x=\"{LABEL_W}\" y=\"{y}\" width=\"{BAR_W}\" height=\"28\" class=\"track\"></rect>\
             <rect x=\"{LABEL_W}\" y=\"{y}\" width=\"{w}\" height=\"28\" class=\"bar\"></rect>\
             <text x=\"{vx}\" y=\"{ty}\" class=\"value\">{n} · {pct}</text>",
            ty = y + 19,
            label = esc(s.stage.label()),
            vx = LABEL_W + BAR_W + 8,
            n = s.sessions,
            pct = s.of_opened.percent(),
        ));
    }
    let desc: Vec<String> =
        b.stages.iter().map(|s| format!("{}: {} sessions, {} of opened", s.stage.label(), s.sessions, s.of_opened.percent())).collect();
    format!(
        "<svg class=\"chart\" viewBox=\"0 0 620 {height}\" role=\"img\" aria-labelledby=\"{id}-title {id}-desc\" \
         preserveAspectRatio=\"xMinYMin meet\"><title id=\"{id}-title\">Funnel of Link sessions</title>\
         <desc id=\"{id}-desc\">{desc}.</desc>{rows}</svg>",
        desc = esc(&desc.join("; ")),
    )
}

/// The stages of `b` as a table (the chart's text equivalent).
fn stages_table(b: &Block, caption: &str) -> String {
    let mut rows = String::new();
    for s in &b.stages {
        rows.push_str(&format!(
            "<tr><th scope=\"row\">{}</th><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(s.stage.label()),
            s.sessions,
            s.of_opened.percent(),
            s.of_previous.map(Share::percent).unwrap_or_else(|| "–".into())
        ));
    }
    format!(
        "<table class=\"numbers\"><caption>{}</caption><thead><tr><th scope=\"col\">Stage</th><th scope=\"col\">Sessions</th>\
         <th scope=\"col\">Of opened</th><th scope=\"col\">Of previous stage</th></tr></thead><tbody>{rows}</tbody></table>",
        esc(caption)
    )
}

/// One-line figures of `b`: success rate, sign-ins authorized, time to success.
fn figures(b: &Block) -> String {
    let time = match &b.time_to_success {
        Some(t) => format!(
            "<div><dt>Time to success</dt><dd>p50 {} · p90 {}</dd></div>\
             <div><dt>Within 3 minutes</dt><dd>{}</dd></div><div><dt>Within 5 minutes</dt><dd>{}</dd></div>",
            duration(t.p50_secs),
            duration(t.p90_secs),
            t.within_3_min.percent(),
            t.within_5_min.percent()
        ),
        None => "<div><dt>Time to success</dt><dd>no successful session</dd></div>".into(),
    };
    format!(
        "<dl class=\"figures\"><div><dt>Sessions opened</dt><dd>{}</dd></div>\
         <div><dt>Success rate</dt><dd>{} <small>({} of {})</small></dd></div>\
         <div><dt>Plan sign-ins authorized</dt><dd>{} <small>({} of {})</small></dd></div>{time}\
         <div><dt>No ending yet</dt><dd>{}</dd></div></dl>",
        b.sessions,
        b.success_rate.percent(),
        b.success_rate.count,
        b.success_rate.of,
        b.sign_in_success.percent(),
        b.sign_in_success.count,
        b.sign_in_success.of,
        b.open
    )
}

fn filters_form(v: &View) -> String {
    let option = |value: &str, label: &str, selected: bool| {
        format!("<option value=\"{}\"{}>{}</option>", esc(value), if selected { " selected" } else { "" }, esc(label))
    };
    let periods: String = PERIODS.iter().map(|(k, label, _)| option(k, label, *k == v.period)).collect();
    let mut apps = option("", "All apps", v.app.is_none());
    for a in &v.apps {
        apps.push_str(&option(&a.app.id, &a.app.name, v.app.as_deref() == Some(a.app.id.as_str())));
    }
    let mut endpoints = option("", "All endpoints", v.endpoint.is_none());
    for e in &v.endpoints {
        let label = format!("{} ({})", e.endpoint.name, e.endpoint.mode.as_str());
        endpoints.push_str(&option(&e.endpoint.id, &label, v.endpoint.as_deref() == Some(e.endpoint.id.as_str())));
    }
    format!(
        "<form method=\"get\" action=\"/console\" class=\"filters\" aria-label=\"What to show\">\
         <div><label for=\"f-since\">Period</label><select id=\"f-since\" name=\"since\">{periods}</select></div>\
         <div><label for=\"f-app\">App</label><select id=\"f-app\" name=\"app\">{apps}</select></div>\
         <div><label for=\"f-endpoint\">Endpoint</label><select id=\"f-endpoint\" name=\"endpoint\">{endpoints}</select></div>\
         <div><button type=\"submit\">Show</button></div></form>"
    )
}

fn funnel_section(v: &View) -> String {
    let o = &v.funnel.overall;
    let mut endings = String::new();
    let ended: u64 = o.endings.iter().map(|e| e.sessions).sum();
    for e in &o.endings {
        endings.push_str(&format!(
            "<tr><th scope=\"row\"><code>{}</code></th><td>{}</td><td>{}</td><td>{}</td></tr>",
            e.exit_code.as_str(),
            step_name(e.step),
            e.sessions,
            Share { count: e.sessions, of: ended }.percent()
        ));
    }
    let endings = if endings.is_empty() {
        "<p>No session ended without success in this period.</p>".to_string()
    } else {
        format!(
            "<table class=\"numbers\"><caption>Endings without success</caption><thead><tr><th scope=\"col\">Exit code</th>\
             <th scope=\"col\">Step where it arose</th><th scope=\"col\">Sessions</th><th scope=\"col\">Share of endings</th></tr></thead>\
             <tbody>{endings}</tbody></table>"
        )
    };
    let mut per = String::new();
    for (id, b) in &v.funnel.per_endpoint {
        let name = v.names.get(id).map(String::as_str).unwrap_or("unknown endpoint");
        let (p50, within3) = match &b.time_to_success {
            Some(t) => (duration(t.p50_secs), t.within_3_min.percent()),
            None => ("–".into(), "–".into()),
        };
        per.push_str(&format!(
            "<tr><th scope=\"row\">{}</th><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(name),
            b.sessions,
            b.sign_in_success.percent(),
            b.success_rate.percent(),
            p50,
            within3
        ));
    }
    let per = if per.is_empty() {
        String::new()
    } else {
        format!(
            "<table class=\"numbers\"><caption>Per endpoint (the last plan each session chose)</caption><thead><tr>\
             <th scope=\"col\">Endpoint</th><th scope=\"col\">Sessions</th><th scope=\"col\">Sign-ins authorized</th>\
             <th scope=\"col\">Success rate</th><th scope=\"col\">Time to success p50</th><th scope=\"col\">Within 3 min</th>\
             </tr></thead><tbody>{per}</tbody></table>"
        )
    };
    format!(
        "<section id=\"funnel\" aria-labelledby=\"funnel-h\"><h2 id=\"funnel-h\">Conversion</h2>\
         <p class=\"hint\">Sessions opened since {since}.</p>{figures}\
         <figure>{svg}<figcaption>Each bar: sessions that reached the stage, as a share of sessions opened. The table \
         below has the same numbers.</figcaption></figure>{table}{endings}{per}</section>",
        since = when(v.since),
        figures = figures(o),
        svg = funnel_svg(o, "funnel-chart"),
        table = stages_table(o, "Sessions per stage"),
    )
}

fn endpoints_section(v: &View) -> String {
    let mut rows = String::new();
    for e in &v.endpoints {
        let ep = &e.endpoint;
        let setup = if e.setup_problems.is_empty() {
            "<span class=\"ok\">Ready</span>".to_string()
        } else {
            format!("<ul class=\"problems\">{}</ul>", e.setup_problems.iter().map(|p| format!("<li>{}</li>", esc(p))).collect::<String>())
        };
        let health = match &e.health {
            Some(b) => {
                let sent = &b.stages[3];
                let mut h = format!(
                    "{} sent to sign-in · {} authorized · {} success",
                    sent.sessions,
                    b.sign_in_success.percent(),
                    b.success_rate.percent()
                );
                if let Some(t) = &b.time_to_success {
                    h.push_str(&format!(" · p50 {}", duration(t.p50_secs)));
                }
                if !e.top_failures.is_empty() {
                    let codes: Vec<String> = e.top_failures.iter().map(|(c, n)| format!("{} ×{n}", c.as_str())).collect();
                    h.push_str(&format!("<br><small>Failures: {}</small>", codes.join(", ")));
                }
                h
            }
            None => "No sessions in this period".into(),
        };
        let status_word = match e.status {
            HealthStatus::Ok => "<span class=\"ok\">OK</span>",
            HealthStatus::Degraded => "<span class=\"bad\">Degraded</span>",
            HealthStatus::Down => "<span class=\"bad\">Down</span>",
            HealthStatus::Unchecked => "Unchecked",
        };
        let health = format!("{status_word}<br>{health}");
        let state = match e.disabled_at {
            Some(at) => format!("<span class=\"bad\">Disabled</span> <small>since {}</small>", when(at)),
            None => format!(
                "Enabled<form method=\"post\" action=\"/console/endpoints/{id}/disable\">\
                 <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
                 <button type=\"submit\" class=\"danger\" aria-label=\"Disable {name}\">Disable</button></form>",
                id = esc(&ep.id),
                csrf = esc(&v.csrf),
                name = esc(&ep.name),
            ),
        };
        rows.push_str(&format!(
            "<tr><th scope=\"row\" data-label=\"Endpoint\">{name}<br><small><code>{id}</code> · {mode}</small></th>\
             <td data-label=\"Setup\">{setup}</td><td data-label=\"Health\">{health}</td><td data-label=\"State\">{state}</td></tr>",
            name = esc(&ep.name),
            id = esc(&ep.id),
            mode = ep.mode.as_str(),
        ));
    }
    format!(
        "<section id=\"endpoints\" aria-labelledby=\"endpoints-h\"><h2 id=\"endpoints-h\">Endpoints</h2>\
         <p class=\"hint\">The status comes from each plan's latest link attempts and its last <code>endpoints check</code>; the figures under it are this period's Link sessions. Disabling hides a plan from patients at once.</p>\
         <table class=\"stack\"><thead><tr><th scope=\"col\">Endpoint</th><th scope=\"col\">Setup</th><th scope=\"col\">Health</th>\
         <th scope=\"col\">State</th></tr></thead><tbody>{rows}</tbody></table></section>"
    )
}

/// The payer's error text of a failure's metadata (`payer_error`: `payer_error_description`), if any.
fn payer_text(detail: &serde_json::Value) -> String {
    let error = detail.get("payer_error").and_then(|v| v.as_str()).unwrap_or("");
    let description = detail.get("payer_error_description").and_then(|v| v.as_str()).unwrap_or("");
    match (error.is_empty(), description.is_empty()) {
        (true, true) => "–".into(),
        (false, true) => esc(error),
        (true, false) => esc(description),
        (false, false) => format!("<code>{}</code>: {}", esc(error), esc(description)),
    }
}

fn failures_section(v: &View) -> String {
    let app = |id: &str| v.app_names.get(id).cloned().unwrap_or_else(|| id.to_string());
    let plan = |id: &Option<String>| id.as_ref().and_then(|e| v.names.get(e)).cloned().unwrap_or_else(|| "–".into());
    if v.failure_groups.is_empty() {
        return "<section id=\"failures\" aria-labelledby=\"failures-h\"><h2 id=\"failures-h\">Recent failures</h2>\
                <p>No failure in this period.</p></section>"
            .into();
    }
    let mut groups = String::new();
    for g in &v.failure_groups {
        groups.push_str(&format!(
            "<tr><th scope=\"row\" data-label=\"Exit code\"><code>{}</code></th><td data-label=\"Failures\">{}</td>\
             <td data-label=\"Newest\">{}</td><td data-label=\"Newest payer text\">{}</td></tr>",
            code_name(g.exit_code),
            g.count,
            when(g.newest.event.at),
            payer_text(&g.newest.event.detail)
        ));
    }
    let mut list = String::new();
    for f in &v.failures {
        list.push_str(&format!(
            "<tr><th scope=\"row\" data-label=\"When\">{}</th><td data-label=\"Exit code\"><code>{}</code></td>\
             <td data-label=\"Step\">{}</td><td data-label=\"Plan\">{}</td><td data-label=\"App\">{}</td>\
             <td data-label=\"Payer's error text\">{}</td></tr>",
            when(f.event.at),
            code_name(f.event.exit_code),
            f.event.step.as_str(),
            esc(&plan(&f.event.endpoint_id)),
            esc(&app(&f.app_id)),
            payer_text(&f.event.detail)
        ));
    }
    format!(
        "<section id=\"failures\" aria-labelledby=\"failures-h\"><h2 id=\"failures-h\">Recent failures</h2>\
         <table class=\"stack\"><caption>By exit code</caption><thead><tr><th scope=\"col\">Exit code</th>\
         <th scope=\"col\">Failures</th><th scope=\"col\">Newest</th><th scope=\"col\">Newest payer text</th></tr></thead>\
         <tbody>{groups}</tbody></table>\
         <table class=\"stack\"><caption>Newest failures</caption><thead><tr><th scope=\"col\">When</th><th scope=\"col\">Exit code</th>\
         <th scope=\"col\">Step</th><th scope=\"col\">Plan</th><th scope=\"col\">App</th><th scope=\"col\">Payer's error text</th>\
         </tr></thead><tbody>{list}</tbody></table></section>"
    )
}

fn apps_section(v: &View) -> String {
    let mut rows = String::new();
    for a in &v.apps {
        let d = &a.deliveries;
        let hook = match &a.app.webhook_url {
            Some(u) => format!("<code>{}</code>", esc(u)),
            None => "none".into(),
        };
        rows.push_str(&format!(
            "<tr><th scope=\"row\" data-label=\"App\">{name}<br><small><code>{id}</code></small></th>\
             <td data-label=\"Webhook URL\">{hook}</td><td data-label=\"Delivered\">{}</td><td data-label=\"Retrying\">{}</td>\
             <td data-label=\"Dead\">{}</td><td data-label=\"Last error\">{}</td></tr>",
            d.delivered,
            d.retrying,
            if d.dead > 0 { format!("<span class=\"bad\">{}</span>", d.dead) } else { "0".into() },
            d.last_error.as_deref().map(esc).unwrap_or_else(|| "–".into()),
            name = esc(&a.app.name),
            id = esc(&a.app.id),
        ));
    }
    let mut dead = String::new();
    for d in &v.dead {
        let app = v.app_names.get(&d.app_id).cloned().unwrap_or_else(|| d.app_id.clone());
        let last = match (d.last_status, d.last_error.as_deref()) {
            (Some(s), Some(e)) => format!("{s} · {}", esc(e)),
            (None, Some(e)) => esc(e),
            (Some(s), None) => s.to_string(),
            (None, None) => "–".into(),
        };
        dead.push_str(&format!(
            "<tr><th scope=\"row\" data-label=\"Event\"><code>{event}</code><br><small><code>{event_id}</code></small></th>\
             <td data-label=\"App\">{app}</td><td data-label=\"Attempts\">{attempts}</td><td data-label=\"Last answer\">{last}</td>\
             <td data-label=\"Given up\">{dead_at}</td><td data-label=\"Action\"><form method=\"post\" \
             action=\"/console/deliveries/{event_id}/retry\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
             <button type=\"submit\" aria-label=\"Retry delivery {event_id}\">Retry</button></form></td></tr>",
            event = esc(&d.event),
            event_id = esc(&d.event_id),
            app = esc(&app),
            attempts = d.attempts,
            dead_at = d.dead_at.map(when).unwrap_or_default(),
            csrf = esc(&v.csrf),
        ));
    }
    let dead = if dead.is_empty() {
        "<p>No dead delivery: every webhook was delivered or is still being retried.</p>".to_string()
    } else {
        format!(
            "<table class=\"stack\"><caption>Dead deliveries (given up after every attempt)</caption><thead><tr>\
             <th scope=\"col\">Event</th><th scope=\"col\">App</th><th scope=\"col\">Attempts</th><th scope=\"col\">Last answer</th>\
             <th scope=\"col\">Given up</th><th scope=\"col\">Action</th></tr></thead><tbody>{dead}</tbody></table>"
        )
    };
    format!(
        "<section id=\"apps\" aria-labelledby=\"apps-h\"><h2 id=\"apps-h\">Apps and webhooks</h2>\
         <table class=\"stack\"><caption>Webhook deliveries created in this period</caption><thead><tr><th scope=\"col\">App</th>\
         <th scope=\"col\">Webhook URL</th><th scope=\"col\">Delivered</th><th scope=\"col\">Retrying</th><th scope=\"col\">Dead</th>\
         <th scope=\"col\">Last error</th></tr></thead><tbody>{rows}</tbody></table>{dead}</section>"
    )
}

/// The console page.
pub fn console_page(v: &View) -> Html<String> {
    let sign_out = format!(
        "<form method=\"post\" action=\"/console/sign-out\" class=\"sign-out\"><input type=\"hidden\" name=\"csrf\" value=\"{}\">\
         <button type=\"submit\">Sign out</button></form>",
        esc(&v.csrf)
    );
    let notice = v.notice.map(|n| format!("<p class=\"notice\" role=\"status\">{}</p>", code_spans(n))).unwrap_or_default();
    let body = format!(
        "<nav aria-label=\"Sections\"><ul><li><a href=\"#funnel\">Conversion</a></li><li><a href=\"#endpoints\">Endpoints</a></li>\
         <li><a href=\"#failures\">Failures</a></li><li><a href=\"#apps\">Apps and webhooks</a></li></ul></nav>\
         <main id=\"main\"><h1>Link console</h1>{notice}{filters}{funnel}{endpoints}{failures}{apps}\
         <p class=\"hint\">Shown {now}. Every view and action here is recorded in the audit trail.</p></main>",
        filters = filters_form(v),
        funnel = funnel_section(v),
        endpoints = endpoints_section(v),
        failures = failures_section(v),
        apps = apps_section(v),
        now = when(v.now),
    );
    page("Overview", &sign_out, &body)
}
