//! Transparent-mode listeners: plain TLS routed by SNI and plain HTTP routed
//! by `Host`, for clients that btrfly's DNS sent here and that know nothing
//! of a proxy.
//!
//! The client is known only by its source address: a connection is served
//! when a session is bound to that address
//! ([`SessionRegistry::credential_for_address`]); the session's credential
//! then rides along in the stream's [`Tunnel`], exactly as a CONNECT
//! tunnel's `Proxy-Authorization` does, so every request goes through the
//! same [`GatewayApp`] and gateway stages as on the explicit proxy. The
//! upstream origin is the SNI name (or `Host`) with the port the client
//! connected to (443 and 80 in production), resolved by the gateway's own
//! resolver (`upstream.resolve`, then real DNS).
//!
//! Connections are accepted by the shared accept loop (`accept.rs`: the
//! connection limit, the opening timeout); this module only routes them.
//!
//! Refusals are never relayed:
//! - a ClientHello without SNI: TLS alert `unrecognized_name` (RFC 6066 §3)
//!   and a log line;
//! - no session bound to the client address: TLS alert `access_denied`
//!   (RFC 8446 §6.2) and a log line, or for plain HTTP a 403 whose body
//!   says what to run.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use btrfly_ca::CertificateAuthority;
use btrfly_session::SessionRegistry;
use pingora_core::listeners::tls::Acceptor;
use pingora_core::protocols::l4::stream::Stream as L4Stream;
use pingora_core::protocols::raw_connect::ProxyDigest;
use pingora_core::protocols::{GetProxyDigest, Ssl, Stream};
use pingora_core::server::ShutdownWatch;
use pingora_http::ResponseHeader;
use pingora_proxy::HttpProxy;
use rustls::ServerConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::accept::{read_request_head, AcceptLoop, Opener};
use crate::app::GatewayApp;
use crate::limits::Limits;
use crate::listener::simple_response;
use crate::tunnel::Tunnel;

/// Longest ClientHello (several records) or request head read before routing.
const MAX_HELLO: usize = 64 * 1024;
/// Longest request head read from a refused plain-HTTP client.
const MAX_HEAD: usize = 16 * 1024;
/// Offered ALPN protocols, as on the explicit proxy.
const ALPN: &[&[u8]] = &[b"h2", b"http/1.1", b"http/1.0"];
/// TLS alert descriptions (RFC 8446 §6, RFC 6066 §3).
const ALERT_ACCESS_DENIED: u8 = 49;
const ALERT_UNRECOGNIZED_NAME: u8 = 112;

/// Which protocol a transparent listener speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transparent {
    /// TLS, routed by the ClientHello's server name.
    Tls,
    /// Plain HTTP, routed by each request's `Host`.
    Http,
}

impl Transparent {
    /// `"transparent-tls"` or `"transparent-http"`, as in `listening on` lines.
    pub fn label(self) -> &'static str {
        match self {
            Transparent::Tls => "transparent-tls",
            Transparent::Http => "transparent-http",
        }
    }
}

/// A transparent listener, bound, not yet serving.
pub struct TransparentListener {
    listener: TcpListener,
    opener: Routing,
    app: Arc<HttpProxy<GatewayApp>>,
    limits: Limits,
}

/// How a transparent listener opens a connection: by the ClientHello's
/// server name, or by the request's `Host`, for the session bound to the
/// client's address.
struct Routing {
    kind: Transparent,
    local_port: u16,
    ca: Arc<CertificateAuthority>,
    sessions: Arc<SessionRegistry>,
    limits: Limits,
    tls_configs: Mutex<HashMap<String, Arc<ServerConfig>>>,
}

impl TransparentListener {
    /// Binds `addr` for `kind`; `app` serves the routed requests.
    ///
    /// # Errors
    /// The address cannot be bound.
    pub async fn bind(
        kind: Transparent,
        addr: SocketAddr,
        ca: Arc<CertificateAuthority>,
        sessions: Arc<SessionRegistry>,
        app: HttpProxy<GatewayApp>,
    ) -> std::io::Result<TransparentListener> {
        let listener = TcpListener::bind(addr).await?;
        let local_port = listener.local_addr()?.port();
        Ok(TransparentListener {
            listener,
            opener: Routing {
                kind,
                local_port,
                ca,
                sessions,
                limits: Limits::default(),
                tls_configs: Mutex::new(HashMap::new()),
            },
            app: Arc::new(app),
            limits: Limits::default(),
        })
    }

    /// The same listener with these limits (connections, the opening
    /// timeout, head sizes) instead of [`Limits::default`].
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.opener.limits = limits.clone();
        self.limits = limits;
        self
    }

    /// The bound address.
    ///
    /// # Errors
    /// The socket cannot tell.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Which protocol it speaks.
    pub fn kind(&self) -> Transparent {
        self.opener.kind
    }

    /// Accepts until `shutdown` turns true (the shared accept loop:
    /// `limits.max_connections`, the opening timeout).
    pub async fn run(self, shutdown: ShutdownWatch) {
        AcceptLoop {
            listener: self.listener,
            opener: Arc::new(self.opener),
            app: self.app,
            limits: self.limits,
        }
        .run(shutdown)
        .await;
    }
}

impl Opener for Routing {
    fn label(&self) -> &'static str {
        self.kind.label()
    }

    async fn open(&self, tcp: TcpStream, peer: SocketAddr) -> std::io::Result<Option<Stream>> {
        match self.kind {
            Transparent::Tls => self.open_tls(tcp, peer).await,
            Transparent::Http => self.open_http(tcp, peer).await,
        }
    }

    async fn refuse_over_limit(&self, mut tcp: TcpStream, max: usize) -> std::io::Result<()> {
        match self.kind {
            // No TLS alert says "busy": the log line names the limit, the
            // client sees the connection closed.
            Transparent::Tls => Ok(()),
            Transparent::Http => {
                let body = format!(
                    "btrfly: this listener serves {max} connections at once (limits.max_connections); try again later\n"
                );
                let answer = simple_response(
                    503,
                    "Service Unavailable",
                    &[("Retry-After", "1"), ("X-Btrfly-Error", "limit")],
                    &body,
                );
                tcp.write_all(answer.as_bytes()).await
            }
        }
    }
}

/// What a ClientHello said, and every byte read to learn it.
struct Hello {
    bytes: Vec<u8>,
    server_name: Option<String>,
}

/// Reads the client's first flight until rustls has a whole ClientHello.
async fn read_client_hello(tcp: &mut TcpStream) -> std::io::Result<Result<Hello, Vec<u8>>> {
    let mut acceptor = rustls::server::Acceptor::default();
    let mut bytes = Vec::with_capacity(2048);
    let mut chunk = [0u8; 4096];
    loop {
        let n = tcp.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "client closed before its ClientHello ended",
            ));
        }
        bytes.extend_from_slice(&chunk[..n]);
        let mut fed = &chunk[..n];
        while !fed.is_empty() {
            acceptor.read_tls(&mut fed)?;
        }
        match acceptor.accept() {
            Ok(Some(accepted)) => {
                let server_name = accepted
                    .client_hello()
                    .server_name()
                    .map(str::to_ascii_lowercase);
                return Ok(Ok(Hello { bytes, server_name }));
            }
            Ok(None) => {}
            Err((error, mut alert)) => {
                let mut out = Vec::new();
                while alert.write(&mut out).is_ok_and(|n| n > 0) {}
                tracing::warn!("transparent TLS: not a TLS ClientHello: {error}");
                return Ok(Err(out));
            }
        }
        if bytes.len() > MAX_HELLO {
            return Err(std::io::Error::other("ClientHello larger than 64 KiB"));
        }
    }
}

/// A fatal TLS alert record (plaintext, before any handshake).
fn alert(description: u8) -> [u8; 7] {
    [0x15, 0x03, 0x03, 0x00, 0x02, 0x02, description]
}

impl Routing {
    async fn open_tls(
        &self,
        mut tcp: TcpStream,
        peer: SocketAddr,
    ) -> std::io::Result<Option<Stream>> {
        let hello = match read_client_hello(&mut tcp).await? {
            Ok(h) => h,
            Err(alert_bytes) => {
                tcp.write_all(&alert_bytes).await?;
                return Ok(None);
            }
        };
        let Some(host) = hello.server_name else {
            tracing::warn!(
                %peer,
                "transparent TLS: refused a ClientHello without SNI (server name): btrfly cannot tell which host the client wants; connect by name, not by address"
            );
            tcp.write_all(&alert(ALERT_UNRECOGNIZED_NAME)).await?;
            return Ok(None);
        };
        let Some(credential) = self.sessions.credential_for_address(peer.ip()) else {
            tracing::warn!(
                %peer,
                %host,
                "transparent TLS: refused: no btrfly session is bound to client address {}; run `btrfly start record|playback --tag=TAG --system` on that machine",
                peer.ip()
            );
            tcp.write_all(&alert(ALERT_ACCESS_DENIED)).await?;
            return Ok(None);
        };
        let tunnel = Tunnel {
            host: host.clone(),
            port: self.local_port,
            tls: true,
            credential: Some(credential),
            by_host: false,
        };
        let mut l4 = L4Stream::from(tcp);
        l4.rewind(&hello.bytes);
        set_tunnel(&mut l4, tunnel)?;
        let config = self.tls_config(&host)?;
        let stream = Acceptor::from_server_config(config)
            .tls_handshake(l4)
            .await
            .map_err(|e| std::io::Error::other(format!("TLS handshake for {host}: {e}")))?;
        let negotiated_h10 = matches!(
            stream.selected_alpn_proto(),
            Some(pingora_core::protocols::ALPN::Custom(ref c)) if c.protocol() == b"http/1.0"
        );
        if negotiated_h10 {
            return Ok(Some(Box::new(crate::alpn::AsHttp1(Box::new(stream)))));
        }
        Ok(Some(Box::new(stream)))
    }

    async fn open_http(
        &self,
        mut tcp: TcpStream,
        peer: SocketAddr,
    ) -> std::io::Result<Option<Stream>> {
        let Some(credential) = self.sessions.credential_for_address(peer.ip()) else {
            tracing::warn!(
                %peer,
                "transparent HTTP: refused: no btrfly session is bound to client address {}",
                peer.ip()
            );
            // Read the head so that the client sees the answer, not a reset.
            read_request_head(&mut tcp, MAX_HEAD).await?;
            let body = format!(
                "btrfly: no session is bound to client address {}: run `btrfly start record|playback --tag=TAG --system` on this machine (or pass --client-ip)\n",
                peer.ip()
            );
            let response = format!(
                "HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            tcp.write_all(response.as_bytes()).await?;
            let _ = tcp.shutdown().await;
            return Ok(None);
        };
        // The first head is read here, within the opening timeout.
        let head = read_request_head(
            &mut tcp,
            self.limits.max_url_bytes + self.limits.max_header_bytes + 1024,
        )
        .await?;
        if head.is_empty() {
            return Ok(None);
        }
        let tunnel = Tunnel {
            host: String::new(),
            port: self.local_port,
            tls: false,
            credential: Some(credential),
            by_host: true,
        };
        let mut l4 = L4Stream::from(tcp);
        l4.rewind(&head);
        set_tunnel(&mut l4, tunnel)?;
        Ok(Some(Box::new(l4)))
    }

    /// One TLS config per server name, cached (bounded).
    fn tls_config(&self, host: &str) -> std::io::Result<Arc<ServerConfig>> {
        let mut configs = self.tls_configs.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = configs.get(host) {
            return Ok(c.clone());
        }
        let config = self
            .ca
            .server_config(Some(host), ALPN)
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        if configs.len() > 10_000 {
            configs.clear();
        }
        configs.insert(host.to_owned(), config.clone());
        Ok(config)
    }
}

fn set_tunnel(l4: &mut L4Stream, tunnel: Tunnel) -> std::io::Result<()> {
    let marker =
        ResponseHeader::build(200, None).map_err(|e| std::io::Error::other(e.to_string()))?;
    l4.set_proxy_digest(ProxyDigest::new(Box::new(marker), Some(Box::new(tunnel))));
    Ok(())
}
