//! The start page at `/`: what this server is, where the demo and API docs are, and the integration snippet.

use leptos::prelude::*;
use leptos_meta::Title;

/// The integration snippets shown on the start page, by tab.
const SNIPPETS: [(&str, &str); 2] = [
    (
        "Script tag",
        r#"<script src="/link.js"></script>
<script>
  const link = FlexpaLink.create({
    publishableKey: 'pk_test_…',
    user: { externalId: 'your-user-id' },
    usage: 'ONE_TIME',
    onSuccess: (publicToken) => fetch('/your-backend/exchange', {
      method: 'POST', body: JSON.stringify({ publicToken }),
    }),
  });
  document.querySelector('#connect').onclick = () => link.open();
</script>"#,
    ),
    (
        "React",
        r#"useEffect(() => {
  linkRef.current = FlexpaLink.create({
    publishableKey: 'pk_test_…',
    user: { externalId: userId },
    usage: 'MULTIPLE',
    onSuccess: (publicToken) => exchange(publicToken),
  });
}, [userId]);

return <button onClick={() => linkRef.current.open()}>Connect your health plan</button>;"#,
    ),
];

/// `/`: the start page.
#[component]
pub fn HomePage() -> impl IntoView {
    view! {
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
                <SnippetTabs/>
            </section>
        </main>
    }
}

/// The integration snippets with a tab per flavour (an island: the tabs switch in the browser).
#[island]
fn SnippetTabs() -> impl IntoView {
    let (tab, set_tab) = signal(0usize);
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
            <code>{move || SNIPPETS[tab.get()].1}</code>
        </pre>
    }
}
