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

# Phase timings. The first .ci script of a command creates $CI_TIMINGS; the scripts it starts (and their
# background jobs) append one line per phase: name, start and end (seconds since the command started), the CPU
# seconds its processes used (user + system, so a phase slowed by other work on the machine still shows what it
# cost), and its status. `phase NAME [MESSAGE]` starts a phase in the current shell (and logs MESSAGE or NAME),
# `phase_done [STATUS]` records it; `timing_summary` prints one line per phase, in the order they ended
# (overlapping spans ran side by side).
# (Sourced in an interactive shell for its PATH, it records nothing and sets no trap.)
if [[ -z "${CI_TIMINGS:-}" && $- != *i* ]]; then
  CI_TIMINGS="$(mktemp /tmp/link-sdk-timings.XXXXXX)"
  CI_T0="$(date +%s)"
  CI_TIMINGS_OWNER="$$"
  export CI_TIMINGS CI_T0 CI_TIMINGS_OWNER
fi
ci_now() { echo $(( $(date +%s) - CI_T0 )); }
# Sets _cpu to the CPU time (1/100 s) used so far by this shell's finished children (cutime + cstime in
# /proc/PID/stat). Called directly, never in $(...), which would read a fresh subshell's.
ci_cpu() {
  local stat
  _cpu=0
  read -r stat < "/proc/$BASHPID/stat" || return 0
  set -- ${stat##*) }
  _cpu=$(( ${14} + ${15} ))
}
phase() { _phase="$1"; _phase_t="$(ci_now)"; ci_cpu; _phase_cpu="$_cpu"; log "${2:-$1}"; }
phase_done() {
  [[ -n "${_phase:-}" ]] || return 0
  ci_cpu
  printf '%s\t%s\t%s\t%s\t%s\n' "$_phase" "$_phase_t" "$(ci_now)" "$(( (_cpu - _phase_cpu + 50) / 100 ))" "${1:-ok}" >> "$CI_TIMINGS"
  _phase=""
}
# Records a phase that did not run (NAME, why) at zero length.
phase_skipped() { local t; t="$(ci_now)"; printf '%s\t%s\t%s\t0\t%s\n' "$1" "$t" "$t" "$2" >> "$CI_TIMINGS"; }
timing_summary() {
  local title="${1:-$(basename "$0")}"
  log "timings of $title: wall seconds, from → to (seconds since it started; overlapping spans ran side by side), CPU seconds"
  sort -t $'\t' -k3,3n -k2,2n "$CI_TIMINGS" | while IFS=$'\t' read -r name from to cpu status; do
    printf '  %-52s %5d s  (%4d → %4d)  cpu %4d s%s\n' "$name" $((to - from)) "$from" "$to" "$cpu" \
      "$([[ $status == ok ]] || echo "  $status")" >&2
  done
}
# On a fresh machine (Debian's cargo not installed yet), downloads the crates of Cargo.lock (host and wasm32) in
# the background with whatever cargo is on PATH (rustup's), so that the downloads overlap the apt step. Best
# effort: the builds download whatever is still missing. `wait_prefetch` joins.
prefetch_crates() {
  _prefetch_pid=""
  ! dpkg -s cargo-web >/dev/null 2>&1 || return 0
  command -v cargo >/dev/null 2>&1 || return 0
  (
    phase "crates: cargo fetch"
    host="$(rustc -vV 2>/dev/null | sed -n 's/^host: //p')"
    if cargo fetch --quiet ${host:+--target "$host"} --target wasm32-unknown-unknown >/dev/null 2>&1; then
      phase_done
    else
      phase_done "failed (the builds download instead)"
    fi
  ) &
  _prefetch_pid=$!
}
wait_prefetch() { [[ -z "${_prefetch_pid:-}" ]] || wait "$_prefetch_pid" || true; }
# True in the script that created $CI_TIMINGS (it prints the summary and removes the file).
timing_owner() { [[ "${CI_TIMINGS_OWNER:-}" == "$$" ]]; }

# On exit (also after a failure under `set -e`): a phase still open is recorded as failed, the hooks added with
# `on_exit` run, and the script that owns the timings prints them (unless it set CI_SUMMARY_AT_EXIT=0).
ci_exit_hooks=()
on_exit() { ci_exit_hooks+=("$1"); }
_ci_on_exit() {
  local rc=$? hook
  [[ -n "${_phase:-}" ]] && phase_done "FAILED (exit $rc)"
  for hook in "${ci_exit_hooks[@]}"; do eval "$hook" || true; done
  if timing_owner; then
    [[ "${CI_SUMMARY_AT_EXIT:-1}" == 1 && -s "$CI_TIMINGS" ]] && timing_summary
    rm -f "$CI_TIMINGS"
  fi
  exit "$rc"
}
[[ $- == *i* ]] || trap _ci_on_exit EXIT
