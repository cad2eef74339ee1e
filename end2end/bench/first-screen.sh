#!/usr/bin/env bash
# Benchmark (prints figures, not a timed test): weight and time-to-hydrated of the home page, of the first
# hosted Link screen (consent, no wasm) and of the plan-search screen (the first Link screen with an island, so
# the first to load the wasm), plus the size of link.js as transferred with gzip and brotli.
#
# Starts a release `link-sdk serve` on 127.0.0.1 (port picked by the OS, fresh data dir, local mode so the demo
# app's test publishable key exists) over an already built release site, runs first-screen.mjs in headless
# Chromium, and stops the server. Everything stays on loopback; RUNS cold loads per URL (default 10).
#
#   .ci/build-site                                              # release wasm (or LEPTOS_SITE_ROOT=… for another root)
#   CARGO_TARGET_DIR=target/bench cargo build --release --bin link-sdk
#   end2end/bench/first-screen.sh                               # BIN=… SITE=… RUNS=… override the defaults
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
bin="${BIN:-$root/target/bench/release/link-sdk}"
site="${SITE:-$root/target/site}"
[[ -x "$bin" ]] || { echo "no $bin: build it first (see the header of this script)" >&2; exit 2; }
[[ -f "$site/pkg/manifest.json" ]] || { echo "no built site in $site: run .ci/build-site first" >&2; exit 2; }

data="$(mktemp -d)"
out="$data/server.out"
"$bin" serve --env local --addr 127.0.0.1:0 --data-dir "$data" --site-root "$site" --sandbox true \
  --sync-workers 1 --log-filter warn >"$out" 2>"$data/server.err" &
pid=$!
trap 'kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; rm -rf "$data"' EXIT

base=""
for _ in $(seq 1 300); do   # at most 30 s for the server to start
  base="$(sed -n 's/^ *Link SDK is running at \(http[^ ]*\).*/\1/p' "$out" | head -n1)"
  pk="$(sed -n 's/^ *publishable key: \(pk_test_[^ ]*\).*/\1/p' "$out" | head -n1)"
  [[ -n "$base" && -n "$pk" ]] && break
  kill -0 "$pid" 2>/dev/null || { cat "$data/server.err" >&2; exit 1; }
  sleep 0.1
done
[[ -n "$base" && -n "${pk:-}" ]] || { echo "the server did not print its URL and test publishable key" >&2; exit 1; }
case "$base" in http://127.0.0.1:*) ;; *) echo "refusing a non-loopback base URL: $base" >&2; exit 1;; esac

echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) CPUs, $(free -h | awk '/^Mem:/ {print $2}') RAM"
echo "date:    $(date -u +%Y-%m-%dT%H:%MZ)   load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "site:    $site ($(ls "$site/pkg" | grep -E '\.wasm$' | head -n1))"
for enc in gzip br; do
  n="$(curl -s --max-time 10 -H "Accept-Encoding: $enc" -o /dev/null -w '%{size_download}' "$base/link.js")"
  echo "link.js: $n bytes transferred with Accept-Encoding: $enc (target <= 6 KB gzip)"
done
link_url="$base/link?publishableKey=$pk&externalId=bench-user&usage=ONE_TIME&origin=$base"
node "$root/end2end/bench/first-screen.mjs" "$base/" "$link_url" "search:$link_url" | sed "s/$pk/pk_test_…/g"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
