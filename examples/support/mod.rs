//! What the benchmarks in `examples/` print beside their figures: the machine and its load. Included by each with
//! `#[path = "support/mod.rs"] mod support;` (a folder without `main.rs` is not an example of its own).

// Each benchmark uses some of these.
#![allow(dead_code)]

/// `name` from the environment, or `default`.
pub fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

/// The 1, 5 and 15 minute load averages (the figures mean little on a busy machine).
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg").map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" ")).unwrap_or_default()
}

/// CPU model, logical CPUs and memory of this machine.
pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpu.lines().find(|l| l.starts_with("model name")).and_then(|l| l.split(':').nth(1)).unwrap_or("?").trim().to_string();
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let mem = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let kb: u64 = mem.lines().next().and_then(|l| l.split_whitespace().nth(1)).and_then(|v| v.parse().ok()).unwrap_or(0);
    format!("{model}, {cpus} CPUs, {:.1} GiB RAM", kb as f64 / 1048576.0)
}
