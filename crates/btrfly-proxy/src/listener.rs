//! The explicit-proxy listener: CONNECT interception and plain HTTP.
//!
//! Pingora's proxy answers CONNECT with 405, so connections are accepted
//! here. A `CONNECT host:port` is authenticated (a tunnel without a valid
//! session credential is refused with 407 before any TLS), answered 200,
//! and the tunnel's TLS is terminated with a leaf minted for the host. The
//! tunnel's target and credential ride along as the stream's proxy digest,
//! where the app reads them for every request inside the tunnel. Anything
//! else on the port is plain HTTP (absolute-form requests) and goes to the
//! app as is. Connections are accepted by the shared accept loop
//! (`accept.rs`: the connection limit, the opening timeout); this module
//! only opens them.

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
use crate::egress::EgressPolicy;
use crate::limits::Limits;
use crate::tunnel::Tunnel;

/// Longest CONNECT head accepted.
const MAX_HEAD: usize = 16 * 1024;
/// Offered in this order; `http/1.0` so that a client offering only it
/// (`curl --http1.0`) completes its handshake (RFC 7301 would otherwise
/// refuse it). A client that offers no ALPN gets HTTP/1.x too.
const ALPN: &[&[u8]] = &[b"h2", b"http/1.1", b"http/1.0"];

/// The explicit-proxy listener.
pub struct ProxyListener {
    listener: TcpListener,
    opener: Explicit,
    app: Arc<HttpProxy<GatewayApp>>,
    limits: Limits,
}

/// How the explicit proxy opens a connection: a CONNECT tunnel (with its
/// TLS) or a plain-HTTP request head.
struct Explicit {
    ca: Arc<CertificateAuthority>,
    sessions: Arc<SessionRegistry>,
    policy: Arc<EgressPolicy>,
    limits: Limits,
    tls_configs: Mutex<HashMap<String, Arc<ServerConfig>>>,
}

impl ProxyListener {
    /// Binds `addr`. CONNECT targets are checked against `policy` (the
    /// port, and the address of an IP literal) before the tunnel is
    /// answered.
    ///
    /// # Errors
    /// The address cannot be bound.
    pub async fn bind(
        addr: SocketAddr,
        ca: Arc<CertificateAuthority>,
        sessions: Arc<SessionRegistry>,
        policy: Arc<EgressPolicy>,
        app: HttpProxy<GatewayApp>,
    ) -> std::io::Result<ProxyListener> {
        let listener = TcpListener::bind(addr).await?;
        Ok(ProxyListener {
            listener,
            opener: Explicit {
                ca,
                sessions,
                policy,
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

impl Opener for Explicit {
    fn label(&self) -> &'static str {
        "proxy"
    }

    async fn open(&self, tcp: TcpStream, _peer: SocketAddr) -> std::io::Result<Option<Stream>> {
        let mut tcp = tcp;
        let mut first = [0u8; 8];
        let n = tcp.peek(&mut first).await?;
        if n == 0 {
            return Ok(None);
        }
        if first[..n].starts_with(b"CONNECT ") || (n < 8 && b"CONNECT ".starts_with(&first[..n])) {
            return self.open_connect(tcp).await;
        }
        // Plain HTTP (absolute form): the first head is read here, within
        // the opening timeout, and handed to Pingora with the stream.
        let head = read_request_head(&mut tcp, self.head_bytes()).await?;
        if head.is_empty() {
            return Ok(None);
        }
        let mut l4 = L4Stream::from(tcp);
        l4.rewind(&head);
        Ok(Some(Box::new(l4)))
    }

    async fn refuse_over_limit(&self, mut tcp: TcpStream, max: usize) -> std::io::Result<()> {
        let body = format!(
            "btrfly: the proxy serves {max} connections at once (limits.max_connections); try again later\n"
        );
        let answer = simple_response(
            503,
            "Service Unavailable",
            &[("Retry-After", "1"), ("X-Btrfly-Error", "limit")],
            &body,
        );
        // Read what the client already sent (its CONNECT head, usually)
        // before answering: a socket closed with unread data sends a reset,
        // which can reach the client before the answer and lose it.
        let mut scratch = [0u8; 4096];
        let _ = tokio::time::timeout(
            std::time::Duration::from_millis(200),
            tcp.read(&mut scratch),
        )
        .await;
        tcp.write_all(answer.as_bytes()).await?;
        tcp.shutdown().await?;
        // Then until the client closes (the caller bounds the whole).
        while tcp.read(&mut scratch).await? > 0 {}
        Ok(())
    }
}

impl Explicit {
    /// How much of a plain-HTTP head is read before Pingora takes over:
    /// enough for the largest head the limits allow.
    fn head_bytes(&self) -> usize {
        self.limits.max_url_bytes + self.limits.max_header_bytes + 1024
    }

    async fn open_connect(&self, mut tcp: TcpStream) -> std::io::Result<Option<Stream>> {
        let (head, extra) = read_head(&mut tcp).await?;
        let connect = match parse_connect(&head) {
            Ok(c) => c,
            Err(msg) => {
                let body = format!("btrfly: {msg}\n");
                tcp.write_all(simple_response(400, "Bad Request", &[], &body).as_bytes())
                    .await?;
                return Ok(None);
            }
        };
        let Some(session) = self
            .sessions
            .authenticate_header(connect.credential.as_deref())
            .await
        else {
            let detail = btrfly_gateway::stages::auth::refusal_detail(connect.credential.is_some());
            let body = format!("btrfly: {detail}: start a session with `btrfly start record|playback --tag=TAG` and use the proxy URL it prints\n");
            tcp.write_all(
                simple_response(
                    407,
                    "Proxy Authentication Required",
                    &[("Proxy-Authenticate", "Basic realm=\"btrfly\"")],
                    &body,
                )
                .as_bytes(),
            )
            .await?;
            return Ok(None);
        };
        // Before any TLS: a refused port (or IP literal) never gets a tunnel.
        if let Err(refusal) = self.policy.check_target(&connect.host, connect.port) {
            let message = format!(
                "{refusal} (refused: CONNECT {}:{})",
                connect.host, connect.port
            );
            session.stats.note_egress_refused(message.clone());
            tcp.write_all(
                simple_response(
                    403,
                    "Forbidden",
                    &[("X-Btrfly-Error", "egress-refused")],
                    &format!("{message}\n"),
                )
                .as_bytes(),
            )
            .await?;
            return Ok(None);
        }
        tcp.write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n")
            .await?;

        // TLS starts with a handshake record (0x16); anything else is plain
        // HTTP tunnelled through CONNECT.
        let tls = if let Some(b) = extra.first() {
            *b == 0x16
        } else {
            let mut b = [0u8; 1];
            let n = tcp.peek(&mut b).await?;
            if n == 0 {
                return Ok(None);
            }
            b[0] == 0x16
        };
        let tunnel = Tunnel {
            host: connect.host,
            port: connect.port,
            tls,
            credential: connect.credential,
            by_host: false,
        };
        let mut l4 = L4Stream::from(tcp);
        if !extra.is_empty() {
            l4.rewind(&extra);
        }
        let marker =
            ResponseHeader::build(200, None).map_err(|e| std::io::Error::other(e.to_string()))?;
        let host = tunnel.host.clone();
        l4.set_proxy_digest(ProxyDigest::new(Box::new(marker), Some(Box::new(tunnel))));
        if !tls {
            return Ok(Some(Box::new(l4)));
        }
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
            // Pingora serves HTTP/1.x only for `http/1.1` (or no ALPN) and
            // hands any other protocol to a custom session.
            return Ok(Some(Box::new(crate::alpn::AsHttp1(Box::new(stream)))));
        }
        Ok(Some(Box::new(stream)))
    }

    /// One TLS config per tunnel host (the fallback leaf for clients that
    /// send no SNI, as for IP addresses), cached.
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

/// Reads up to the end of the request head; returns it and any bytes the
/// client already sent after it.
async fn read_head(tcp: &mut TcpStream) -> std::io::Result<(Vec<u8>, Vec<u8>)> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 2048];
    loop {
        let n = tcp.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "client closed before the CONNECT head ended",
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = head_end(&buf) {
            let extra = buf.split_off(end);
            return Ok((buf, extra));
        }
        if buf.len() > MAX_HEAD {
            return Err(std::io::Error::other("CONNECT head larger than 16 KiB"));
        }
    }
}

/// Where a request head ends in `buf`: the offset just past its blank
/// line (`CRLF CRLF`), when it has arrived.
pub fn head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4)
}

/// A CONNECT head as the listener reads it (RFC 9110 §9.3.6): the tunnel's
/// host (lower-case, without IPv6 brackets), port, and the
/// `Proxy-Authorization` value. Public for the fuzz targets.
///
/// # Errors
/// The head is incomplete, malformed (as `httparse` reads it), or its
/// target is not `host:port`; the message names which.
pub fn parse_connect_head(head: &[u8]) -> Result<(String, u16, Option<Vec<u8>>), String> {
    parse_connect(head)
        .map(|c| (c.host, c.port, c.credential))
        .map_err(|e| e.to_string())
}

#[derive(Debug, PartialEq, Eq)]
struct Connect {
    host: String,
    port: u16,
    credential: Option<Vec<u8>>,
}

/// A CONNECT head that names no tunnel.
#[derive(Debug, thiserror::Error)]
enum ConnectError {
    #[error("incomplete CONNECT request")]
    Incomplete,
    #[error("malformed CONNECT request: {0}")]
    Malformed(httparse::Error),
    #[error("CONNECT target {0:?} is not host:port")]
    NotHostPort(String),
    #[error("CONNECT target {0:?} has no port")]
    NoPort(String),
    #[error("CONNECT target {0:?} has no host")]
    NoHost(String),
}

fn parse_connect(head: &[u8]) -> Result<Connect, ConnectError> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Err(ConnectError::Incomplete),
        Err(e) => return Err(ConnectError::Malformed(e)),
    }
    let target = req.path.unwrap_or("");
    let authority: http::uri::Authority = target
        .parse()
        .map_err(|_| ConnectError::NotHostPort(target.to_owned()))?;
    let port = authority
        .port_u16()
        .ok_or_else(|| ConnectError::NoPort(target.to_owned()))?;
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase();
    if host.is_empty() {
        return Err(ConnectError::NoHost(target.to_owned()));
    }
    let credential = req
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("proxy-authorization"))
        .map(|h| h.value.to_vec());
    Ok(Connect {
        host,
        port,
        credential,
    })
}

pub(crate) fn simple_response(
    code: u16,
    reason: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> String {
    let mut out = format!("HTTP/1.1 {code} {reason}\r\n");
    for (k, v) in headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str(&format!(
        "Content-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_heads() {
        let c = parse_connect(
            b"CONNECT Files.Example.test:443 HTTP/1.1\r\nHost: files.example.test:443\r\nProxy-Authorization: Basic YTpi\r\n\r\n",
        )
        .expect("parse");
        assert_eq!(c.host, "files.example.test");
        assert_eq!(c.port, 443);
        assert_eq!(c.credential.as_deref(), Some(&b"Basic YTpi"[..]));
        let v6 = parse_connect(b"CONNECT [::1]:8443 HTTP/1.1\r\n\r\n").expect("v6");
        assert_eq!(
            (v6.host.as_str(), v6.port, v6.credential),
            ("::1", 8443, None)
        );
        for bad in [
            &b"CONNECT files.example.test HTTP/1.1\r\n\r\n"[..],
            b"CONNECT :443 HTTP/1.1\r\n\r\n",
            b"CONNECT \x01 HTTP/1.1\r\n\r\n",
        ] {
            let err = parse_connect(bad).unwrap_err().to_string();
            assert!(err.contains("CONNECT"), "{err}");
        }
    }
}
