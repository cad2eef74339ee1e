# Sourced by every .ci script: the toolchain environment described in ../shared/TOOLCHAIN.md.
# Debian's rustc-web (which can build std for wasm32) must win over rustup's proxies, and cargo needs
# RUSTC_BOOTSTRAP=1 for -Zbuild-std. Every build of this project uses the same compiler, so nothing is
# built twice.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export ROOT
export PATH="/usr/bin:$ROOT/end2end/node_modules/.bin:$HOME/.cargo/bin:$PATH"
export RUSTC_BOOTSTRAP=1
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
# Wasm-bindgen CLI must equal the wasm-bindgen crate in Cargo.lock.
WASM_BINDGEN_VERSION="$(awk '/^name = "wasm-bindgen"$/ {getline; gsub(/[version =" ]/, ""); print; exit}' "$ROOT/Cargo.lock")"
export WASM_BINDGEN_VERSION
log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
