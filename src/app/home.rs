//! The start page at `/`: what this server is, where the demo and API docs are, and the integration snippet.

use leptos::prelude::*;
use leptos_meta::Title;

/// The integration snippets shown on the start page, by tab; `{base}` is this server's public URL, so a
/// snippet works when copied into a page on another origin.
const SNIPPETS: [(&str, &str); 2] = [
    (
        "Script tag",
        r#"<button id="connect">Connect your health plan</button>
<script src="{base}/link.js"></script>
<script>
  const link = FlexpaLink.create({
    publishableKey: 'pk_test_…',
    user: { externalId: 'your-user-id' },
    usage: 'ONE_TIME',
    // Your backend exchanges it at {base}/link/exchange with your secret key.
    onSuccess: (publicToken) => fetch('/your-backend/exchange', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ public_token: publicToken }),
    }),
  });
  document.getElementById('connect').onclick = () => link.open();
</script>"#,
    ),
    (
        "React",
        r#"// index.html: <script src="{base}/link.js"></script>
const linkRef = useRef(null);
useEffect(() => {
  linkRef.current = FlexpaLink.create({
    publishableKey: 'pk_test_…',
    user: { externalId: userId },
    usage: 'MULTIPLE',
    onSuccess: (publicToken) => exchange(publicToken), // POST it to your backend
  });
}, [userId]);

return <button onClick={() => linkRef.current.open()}>Connect your health plan</button>;"#,
    ),
];

/// `/`: the start page.
#[component]
pub fn HomePage() -> impl IntoView {
    #[allow(unused_mut)]
    let mut base = String::new();
    #[cfg(feature = "ssr")]
    if let Some(state) = use_context::<crate::server::state::AppState>() {
        base = state.public_url.to_string();
    }
    view! {
        <super::PageLang lang="en"/>
        <Title text="Link SDK"/>
        <super::IslandAssets/>
        <main class="page" id="main">
            <header class="hero">
                <p class="eyebrow">"Link SDK"</p>
                <h1>"Connect patients to their health plan"</h1>
                <p class="lede">
                    "A self-hosted consent flow: the patient picks their plan, signs in there, and their claims, "
                    "coverage and medical records reach your app through a FHIR R4 API."
                </p>
                <p class="actions">
                    <a class="button primary" href="/demo">"Open the demo"</a>
                    <a class="button" href="/openapi.json">"API reference (OpenAPI)"</a>
                </p>
            </header>
            <section aria-labelledby="integrate-heading" class="card">
                <h2 id="integrate-heading">"Add it to your app"</h2>
                <SnippetTabs base=base/>
            </section>
        </main>
    }
}

/// The integration snippets with a tab per flavour (an island: the tabs switch in the browser). `base`: this
/// server's public URL, written into the snippets.
#[island]
fn SnippetTabs(base: String) -> impl IntoView {
    let (tab, set_tab) = signal(0usize);
    let texts: Vec<String> = SNIPPETS.iter().map(|(_, text)| text.replace("{base}", &base)).collect();
    view! {
        <div role="tablist" aria-label="Integration snippets" class="tabs">
            {SNIPPETS
                .iter()
                .enumerate()
                .map(|(i, (label, _))| {
                    view! {
                        <button
                            role="tab"
                            type="button"
                            id=format!("tab-{i}")
                            aria-selected=move || (tab.get() == i).to_string()
                            aria-controls="snippet-panel"
                            class:active=move || tab.get() == i
                            on:click=move |_| set_tab.set(i)
                        >
                            {*label}
                        </button>
                    }
                })
                .collect_view()}
        </div>
        <pre id="snippet-panel" role="tabpanel" tabindex="0" data-testid="snippet">
            <code>{move || texts[tab.get()].clone()}</code>
        </pre>
    }
}
