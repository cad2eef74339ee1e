//! HTTPS and reverse proxies: serving TLS directly with rustls, and trusting `X-Forwarded-*` only from
//! configured proxy addresses.
//!
//! Two deployments are supported:
//! - **Direct TLS**: `--tls-cert` and `--tls-key` (PEM). The listener completes each TLS handshake on its own
//!   task (bounded by a timeout, so a slow client cannot hold up others) and hands finished connections to
//!   `axum::serve`; ALPN offers HTTP/2 and HTTP/1.1. Only the ring provider is compiled in.
//! - **Behind a TLS-terminating proxy** (load balancer, nginx, Caddy): `--trusted-proxy` lists the proxies'
//!   addresses or CIDRs. [`client_address`] drops `X-Forwarded-*`, `Forwarded` and `X-Real-IP` from every other
//!   peer, so nothing downstream can be fooled by a client-supplied header, and records the client address
//!   in the [`ClientIp`] request extension. The public URL is never derived from these headers: set
//!   `--public-url https://…`.

use std::{
    io,
    net::{IpAddr, SocketAddr},
    path::Path,
    sync::Arc,
    time::Duration,
};

use anyhow::Context as _;
use axum::{
    extract::{ConnectInfo, Request, State},
    http::HeaderName,
    middleware::Next,
    response::Response,
};
use rustls::pki_types::{pem::PemObject as _, CertificateDer, PrivateKeyDer};
use tokio::{
    net::{TcpListener, TcpStream},
    sync::mpsc,
};
use tokio_rustls::{server::TlsStream, TlsAcceptor};

use crate::server::settings::Settings;

/// How long a client may take to complete the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The address of the client that made the request: the TCP peer, or, when the peer is a trusted proxy, the
/// nearest untrusted address in `X-Forwarded-For`. Set by [`client_address`] on every request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

/// The rustls configuration for `--tls-cert` / `--tls-key`, or `None` when TLS is not configured.
///
/// # Errors
/// Unreadable or malformed PEM files, or a key that does not match the certificate.
pub fn server_config(settings: &Settings) -> anyhow::Result<Option<Arc<rustls::ServerConfig>>> {
    match (&settings.tls_cert, &settings.tls_key) {
        (Some(cert), Some(key)) => load_server_config(cert, key).map(Some),
        (None, None) => Ok(None),
        _ => anyhow::bail!("--tls-cert and --tls-key go together"),
    }
}

/// Loads a PEM certificate chain and private key into a rustls server configuration (TLS 1.2 and 1.3,
/// ALPN `h2` and `http/1.1`).
///
/// # Errors
/// Unreadable or malformed files, or a key that does not match the certificate.
pub fn load_server_config(cert: &Path, key: &Path) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("reading the TLS certificate {}", cert.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("parsing the TLS certificate {}", cert.display()))?;
    anyhow::ensure!(!certs.is_empty(), "no certificate in {}", cert.display());
    let key = PrivateKeyDer::from_pem_file(key).with_context(|| format!("reading the TLS key {}", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("the TLS key does not match the certificate")?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A listener yielding TLS connections whose handshake has completed; use it with `axum::serve`.
///
/// Handshakes run on their own tasks; the accept loop stops when this listener is dropped.
pub struct TlsListener {
    local: SocketAddr,
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
}

impl TlsListener {
    /// Wraps a bound TCP listener.
    pub fn new(tcp: TcpListener, config: Arc<rustls::ServerConfig>) -> io::Result<Self> {
        let local = tcp.local_addr()?;
        let acceptor = TlsAcceptor::from(config);
        let (tx, ready) = mpsc::channel(64);
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    a = tcp.accept() => a,
                    _ = tx.closed() => break,
                };
                let (stream, peer) = match accepted {
                    Ok(x) => x,
                    Err(e) => {
                        // Usually EMFILE: back off instead of spinning.
                        tracing::warn!(error = %e, "accepting a TCP connection failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let acceptor = acceptor.clone();
                let tx = tx.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            let _ = tx.send((tls, peer)).await;
                        }
                        Ok(Err(e)) => tracing::debug!(error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!("TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(TlsListener { local, ready })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(conn) => conn,
            // The accept task only ends once we are dropped, so this cannot happen while serving.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.local)
    }
}

/// Serves `router` on `listener` (plain HTTP, or TLS when `tls` is given) with `ConnectInfo<SocketAddr>`,
/// until `signal` resolves; returns the server task.
pub fn spawn_serve(
    listener: TcpListener,
    router: axum::Router,
    tls: Option<Arc<rustls::ServerConfig>>,
    signal: impl std::future::Future<Output = ()> + Send + 'static,
) -> io::Result<tokio::task::JoinHandle<io::Result<()>>> {
    use axum::serve::ListenerExt as _;
    let service = router.into_make_service_with_connect_info::<SocketAddr>();
    Ok(match tls {
        None => {
            // Small responses must not wait for delayed ACKs (Nagle): set TCP_NODELAY on every accepted socket.
            let listener = listener.tap_io(|tcp| {
                let _ = tcp.set_nodelay(true);
            });
            tokio::spawn(async move { axum::serve(listener, service).with_graceful_shutdown(signal).await })
        }
        Some(config) => {
            // `tap_io` gives the wrapped listener axum's `ConnectInfo<SocketAddr>` support.
            let listener = TlsListener::new(listener, config)?.tap_io(|_| {});
            tokio::spawn(async move { axum::serve(listener, service).with_graceful_shutdown(signal).await })
        }
    })
}

const FORWARDED_HEADERS: [HeaderName; 5] = [
    HeaderName::from_static("x-forwarded-for"),
    HeaderName::from_static("x-forwarded-proto"),
    HeaderName::from_static("x-forwarded-host"),
    HeaderName::from_static("forwarded"),
    HeaderName::from_static("x-real-ip"),
];

fn is_trusted(proxies: &[ipnet::IpNet], ip: IpAddr) -> bool {
    let ip = canonical(ip);
    proxies.iter().any(|net| net.contains(&ip))
}

/// IPv4-mapped IPv6 addresses (`::ffff:10.0.0.1`, from dual-stack sockets) compare as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// The client address given the TCP peer and the `X-Forwarded-For` values (in header order): walking from
/// the right, the first address that is not a trusted proxy; the peer itself when it is not trusted.
pub fn resolve_client(proxies: &[ipnet::IpNet], peer: IpAddr, forwarded_for: &[&str]) -> IpAddr {
    if !is_trusted(proxies, peer) {
        return canonical(peer);
    }
    let chain: Vec<IpAddr> = forwarded_for
        .iter()
        .flat_map(|v| v.split(','))
        .filter_map(|s| s.trim().parse::<IpAddr>().ok())
        .collect();
    let mut client = canonical(peer);
    for ip in chain.into_iter().rev() {
        client = canonical(ip);
        if !is_trusted(proxies, ip) {
            break;
        }
    }
    client
}

/// The networks whose forwarding headers are believed (`--trusted-proxy`), the state of [`client_address`].
#[derive(Debug, Clone)]
pub struct TrustedProxies(pub Arc<Vec<ipnet::IpNet>>);

/// Middleware: records [`ClientIp`] and removes forwarding headers unless the TCP peer is a trusted proxy.
pub async fn client_address(State(TrustedProxies(proxies)): State<TrustedProxies>, mut request: Request, next: Next) -> Response {
    let proxies = proxies.as_slice();
    let peer = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
    let trusted = peer.is_some_and(|ip| is_trusted(proxies, ip));
    if let Some(peer) = peer {
        let forwarded: Vec<String> = if trusted {
            request
                .headers()
                .get_all("x-forwarded-for")
                .iter()
                .filter_map(|v| v.to_str().ok().map(str::to_owned))
                .collect()
        } else {
            Vec::new()
        };
        let refs: Vec<&str> = forwarded.iter().map(String::as_str).collect();
        let client = resolve_client(proxies, peer, &refs);
        request.extensions_mut().insert(ClientIp(client));
    }
    if !trusted {
        for h in &FORWARDED_HEADERS {
            request.headers_mut().remove(h);
        }
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(v: &[&str]) -> Vec<ipnet::IpNet> {
        v.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn untrusted_peers_are_the_client() {
        let p = nets(&["10.0.0.0/8"]);
        let peer: IpAddr = "203.0.113.9".parse().unwrap();
        assert_eq!(resolve_client(&p, peer, &["1.2.3.4"]), peer);
        assert_eq!(resolve_client(&[], peer, &["1.2.3.4"]), peer);
    }

    #[test]
    fn trusted_proxies_are_skipped_from_the_right() {
        let p = nets(&["10.0.0.0/8", "192.168.1.1/32"]);
        let peer: IpAddr = "10.1.2.3".parse().unwrap();
        // A client-forged first entry is ignored: the nearest untrusted hop wins.
        assert_eq!(
            resolve_client(&p, peer, &["6.6.6.6, 198.51.100.7", "192.168.1.1"]),
            "198.51.100.7".parse::<IpAddr>().unwrap()
        );
        assert_eq!(resolve_client(&p, peer, &[]), peer);
        assert_eq!(resolve_client(&p, peer, &["garbage"]), peer);
        // Every hop trusted: the leftmost.
        assert_eq!(resolve_client(&p, peer, &["10.9.9.9"]), "10.9.9.9".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn mapped_ipv6_peers_match_ipv4_proxies() {
        let p = nets(&["127.0.0.1/32"]);
        assert!(is_trusted(&p, "::ffff:127.0.0.1".parse().unwrap()));
    }
}
