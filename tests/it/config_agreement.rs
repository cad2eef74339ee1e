//! `Leptos.toml` (runtime options read by the server) and `[package.metadata.leptos]` in Cargo.toml (read by
//! cargo-leptos) must agree, or `cargo leptos serve` and `.ci/serve` would build different sites.

#[test]
fn leptos_toml_agrees_with_cargo_metadata() {
    let cargo: toml::Value = toml::from_str(&std::fs::read_to_string("Cargo.toml").unwrap()).unwrap();
    let leptos: toml::Value = toml::from_str(&std::fs::read_to_string("Leptos.toml").unwrap()).unwrap();
    let a = &cargo["package"]["metadata"]["leptos"];
    let b = &leptos["package"]["metadata"]["leptos"];
    for key in ["output-name", "site-root", "site-pkg-dir", "site-addr", "reload-port", "env"] {
        assert_eq!(a.get(key), b.get(key), "{key} differs between Cargo.toml and Leptos.toml");
    }
}

#[test]
fn help_lists_every_setting() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_link-sdk")).arg("--help").output().unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    for flag in [
        "--env", "--addr", "--public-url", "--database-url", "--data-dir", "--encryption-key", "--log-format",
        "--sandbox", "--sync-workers", "--shutdown-grace",
    ] {
        assert!(help.contains(flag), "--help does not list {flag}");
    }
    for var in ["LINK_ADDR", "DATABASE_URL", "LINK_ENCRYPTION_KEY"] {
        assert!(help.contains(var), "--help does not name {var}");
    }
}
