# Link SDK as a container image: the release server binary and the built site (hashed wasm, JS and CSS,
# pre-compressed), run as an unprivileged user. See docs/deployment.md.
#
#   docker build -t link-sdk .          (or: podman build -t link-sdk .)
#
# Every stage installs only from Debian bookworm's archive (with bookworm-security, where rustc-web lives),
# crates.io and npm, with the versions the repository pins: the same steps as on a developer machine
# (.ci/setup, .ci/build-site). No syntax directive on purpose: it would fetch a frontend image; the cache mounts
# below are understood by BuildKit (Docker 23 and later) and by Buildah/Podman as they are.

ARG DEBIAN_IMAGE=docker.io/library/debian:bookworm-slim

# 1. Toolchain. Debian's rustc-web 1.96 builds both halves (it can build std for wasm32 with -Zbuild-std, rustup's
#    toolchains cannot here); lld-22 gives wasm-ld-22 (.cargo/config.toml); gcc and libc6-dev link the server and
#    compile its C parts (ring, the bundled SQLite); brotli pre-compresses the site; Debian's Node.js 18 and npm
#    run binaryen's wasm-opt from npm (Debian's own binaryen 108 breaks hydration: never install it).
FROM ${DEBIAN_IMAGE} AS toolchain
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      rustc-web cargo-web rust-web-src libstd-rust-web-dev lld-22 rust-web-llvm \
      gcc libc6-dev brotli ca-certificates nodejs npm \
 && rm -rf /var/lib/apt/lists/*
ENV RUSTC_BOOTSTRAP=1 CARGO_TERM_COLOR=never PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
WORKDIR /src

# 2. Tools, in their own layer so that a source change does not reinstall them: wasm-bindgen-cli at exactly the
#    wasm-bindgen version in Cargo.lock (into /root/.cargo/bin), and end2end/'s npm packages from its lock file
#    (binaryen's wasm-opt; the Playwright packages come along unused and download no browser; npm warns that
#    they want Node 20, which only running Playwright needs).
FROM toolchain AS tools
COPY .ci/ .ci/
COPY Cargo.toml Cargo.lock ./
COPY end2end/package.json end2end/package-lock.json end2end/
RUN --mount=type=cache,target=/root/.cargo/registry \
    .ci/setup wasm-bindgen npm

# 3. Build: the server (release profile, the committed Cargo.lock) and the site into /out/site.
FROM tools AS build
COPY . .
RUN --mount=type=cache,target=/root/.cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --locked --release --bin link-sdk \
 && mkdir -p /out \
 && cp target/release/link-sdk /out/link-sdk \
 && LEPTOS_SITE_ROOT=/out/site .ci/build-site \
 && rm -f /out/site/.inputs.sha256

# 4. Runtime: Debian slim with CA certificates, the binary, the site and Leptos.toml; user 10001, no shell login,
#    data (SQLite file, local-mode secrets) in the volume /var/lib/link-sdk.
FROM ${DEBIAN_IMAGE} AS runtime
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 link \
 && useradd --system --uid 10001 --gid link --home-dir /var/lib/link-sdk --create-home --shell /usr/sbin/nologin link
COPY --from=build /out/link-sdk /usr/local/bin/link-sdk
COPY --from=build /out/site /srv/link-sdk/site
COPY Leptos.toml /srv/link-sdk/Leptos.toml
WORKDIR /srv/link-sdk
USER 10001:10001
ENV LINK_ENV=production \
    LINK_ADDR=0.0.0.0:3000 \
    LINK_DATA_DIR=/var/lib/link-sdk \
    LINK_LEPTOS_CONFIG=/srv/link-sdk/Leptos.toml \
    LEPTOS_SITE_ROOT=/srv/link-sdk/site \
    LINK_LOG_FORMAT=json \
    LEPTOS_ENV=PROD
VOLUME /var/lib/link-sdk
EXPOSE 3000
ENTRYPOINT ["link-sdk"]
CMD ["serve"]
