//! A site built after the server started: pages render without the wasm boot until `pkg/manifest.json`
//! appears in the site root, then reference the new hashed files, with no restart, and the server logs the
//! switch. Runs the real `link-sdk` binary as a child process, because the asset manifest is process-wide (the
//! in-process servers of the other tests share one).

use std::{
    io::{BufRead as _, BufReader, Read},
    path::Path,
    process::{Child, Command, Stdio},
    sync::{mpsc, Arc, Mutex},
    time::{Duration, Instant},
};

use crate::common::fresh_database_url;

/// The child server, killed when the test ends (also on a failed assertion).
struct Server {
    child: Child,
    base_url: String,
    log: Arc<Mutex<String>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `link-sdk` on port 0 with `site_root` and returns once its banner printed the URL.
async fn start_server(data: &tempfile::TempDir, site_root: &Path) -> Server {
    let database_url = fresh_database_url(data).await;
    let mut child = Command::new(env!("CARGO_BIN_EXE_link-sdk"))
        .arg("--addr=127.0.0.1:0")
        .arg(format!("--data-dir={}", data.path().display()))
        .arg(format!("--database-url={database_url}"))
        .arg(format!("--site-root={}", site_root.display()))
        .arg(concat!("--leptos-config=", env!("CARGO_MANIFEST_DIR"), "/Leptos.toml"))
        .env("RUST_LOG", "info")
        .env("LINK_LOG_FORMAT", "text")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start link-sdk");

    // The log (stderr) is collected for the assertions and for the failure message.
    let log = Arc::new(Mutex::new(String::new()));
    let mut stderr = child.stderr.take().expect("stderr");
    let sink = log.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stderr.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().expect("stdout");
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(url) = line.trim().strip_prefix("Link SDK is running at ") {
                let _ = tx.send(url.to_string());
            }
        }
    });
    let base_url = tokio::task::spawn_blocking(move || rx.recv_timeout(Duration::from_secs(60)))
        .await
        .unwrap()
        .unwrap_or_else(|_| panic!("no URL in the banner; log:\n{}", log.lock().unwrap()));
    Server { child, base_url, log }
}

async fn page(client: &reqwest::Client, url: &str) -> String {
    let res = client.get(url).send().await.expect("GET");
    assert_eq!(res.status(), 200, "GET {url}");
    res.text().await.unwrap()
}

#[tokio::test]
async fn islands_load_the_wasm_once_the_site_is_built_without_a_restart() {
    let data = tempfile::tempdir().unwrap();
    let site = tempfile::tempdir().unwrap();
    let mut server = start_server(&data, site.path()).await;
    let client = reqwest::Client::new();
    let home = format!("{}/", server.base_url);

    // No site yet: the start page renders, its island is static HTML and nothing loads a wasm module.
    let before = page(&client, &home).await;
    assert!(before.contains("<leptos-island"), "the start page has an island");
    assert!(before.contains("snippet-panel"), "the island's content is server-rendered");
    assert!(!before.contains("/pkg/"), "no site, no /pkg/ reference: {before}");
    assert!(!before.contains("import("), "no wasm boot without a site");
    assert!(server.log.lock().unwrap().contains("no built site yet"), "the server says the site is missing");

    // The site appears as .ci/build-site writes it: the files in pkg.new/, the manifest last, then renamed.
    let staging = site.path().join("pkg.new");
    std::fs::create_dir_all(&staging).unwrap();
    std::fs::write(staging.join("link_sdk.0123456789abcdef.js"), b"export default async function init() {}\n").unwrap();
    std::fs::write(staging.join("link_sdk.fedcba9876543210.wasm"), b"\0asm\x01\0\0\0").unwrap();
    std::fs::write(staging.join("main.00112233aabbccdd.css"), b"body { margin: 0 }\n").unwrap();
    std::fs::write(
        staging.join("manifest.json"),
        br#"{"js":"link_sdk.0123456789abcdef.js","wasm":"link_sdk.fedcba9876543210.wasm","css":"main.00112233aabbccdd.css"}"#,
    )
    .unwrap();
    std::fs::rename(&staging, site.path().join("pkg")).unwrap();

    // The watcher looks every second; allow for a busy machine.
    let deadline = Instant::now() + Duration::from_secs(20);
    let after = loop {
        let body = page(&client, &home).await;
        if body.contains("/pkg/link_sdk.0123456789abcdef.js") || Instant::now() > deadline {
            break body;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(after.contains("import('/pkg/link_sdk.0123456789abcdef.js')"), "the page boots the new wasm: {after}");
    assert!(after.contains("module_or_path: '/pkg/link_sdk.fedcba9876543210.wasm'"));
    assert!(after.contains(r#"href="/pkg/link_sdk.0123456789abcdef.js" rel="modulepreload""#), "island pages preload the JS glue: {after}");
    assert!(after.contains(r#"href="/pkg/main.00112233aabbccdd.css""#), "and link the stylesheet");

    // The files it names are served, immutable, by the same process (never restarted).
    let js = client.get(format!("{}/pkg/link_sdk.0123456789abcdef.js", server.base_url)).send().await.unwrap();
    assert_eq!(js.status(), 200);
    assert!(js.headers()[reqwest::header::CACHE_CONTROL].to_str().unwrap().contains("immutable"));
    assert!(server.child.try_wait().unwrap().is_none(), "the server is still the first process");
    let log = server.log.lock().unwrap().clone();
    assert!(log.contains("site built: pages now load the wasm"), "the switch is logged:\n{log}");
    assert_eq!(log.matches(" listening").count(), 1, "started once:\n{log}");
}
