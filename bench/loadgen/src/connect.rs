//! Opening one HTTPS connection: TCP (direct, or to the proxy followed by
//! `CONNECT`), TLS with the negotiated ALPN checked, then an HTTP/1.1 or
//! HTTP/2 client connection from hyper.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{header, Method, Request, StatusCode};
use http_body_util::Empty;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use crate::target::{Proxy, Resolve, Target};

/// Which HTTP version to speak over TLS (offered as the only ALPN protocol).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
pub enum HttpVersion {
    #[value(name = "1.1")]
    #[serde(rename = "1.1")]
    Http1,
    #[value(name = "2")]
    #[serde(rename = "2")]
    Http2,
}

impl HttpVersion {
    fn alpn(self) -> &'static [u8] {
        match self {
            HttpVersion::Http1 => b"http/1.1",
            HttpVersion::Http2 => b"h2",
        }
    }
}

/// Why a connection could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("reading CA file {path}: {source}")]
    CaFile {
        path: String,
        source: rustls::pki_types::pem::Error,
    },
    #[error("CA file {path} holds no usable certificate")]
    NoCa { path: String },
    #[error("building the TLS client: {0}")]
    TlsConfig(#[from] rustls::Error),
    #[error("connecting to {addr}: {source}")]
    Tcp {
        addr: String,
        source: std::io::Error,
    },
    #[error("CONNECT {authority} through the proxy: {source}")]
    ConnectRequest {
        authority: String,
        source: hyper::Error,
    },
    #[error("CONNECT {authority}: the proxy answered {status}")]
    ConnectRefused {
        authority: String,
        status: StatusCode,
    },
    #[error(
        "CONNECT {authority}: the tunnel is not a plain TCP stream, or the proxy sent bytes early"
    )]
    ConnectTunnel { authority: String },
    #[error("{host:?} is not a valid TLS server name")]
    ServerName { host: String },
    #[error("TLS handshake with {authority}: {source}")]
    Tls {
        authority: String,
        source: std::io::Error,
    },
    #[error("{authority} negotiated ALPN {got:?}, not {want:?}")]
    Alpn {
        authority: String,
        want: String,
        got: Option<String>,
    },
    #[error("HTTP handshake with {authority}: {source}")]
    Http {
        authority: String,
        source: hyper::Error,
    },
}

/// How long each step of opening a connection took.
#[derive(Debug, Clone, Copy, Default)]
pub struct Phases {
    /// TCP connect, plus the `CONNECT` exchange when going through a proxy.
    pub connect: Duration,
    /// The TLS handshake (with certificate minting, for an intercepting
    /// proxy that sees the name for the first time).
    pub tls: Duration,
}

/// A request sender on an open connection; its connection task runs on
/// the runtime until the sender is dropped.
pub enum Sender {
    H1(http1::SendRequest<Empty<Bytes>>),
    H2(http2::SendRequest<Empty<Bytes>>),
}

impl Sender {
    /// Builds the GET request for `target` in this connection's form:
    /// origin-form with `Host` for HTTP/1.1, the full URI for HTTP/2.
    pub fn request(&self, target: &Target) -> Result<Request<Empty<Bytes>>, http::Error> {
        match self {
            Sender::H1(_) => Request::get(target.path_and_query.as_str())
                .header(header::HOST, target.authority.as_str())
                .body(Empty::new()),
            Sender::H2(_) => Request::get(target.url.as_str()).body(Empty::new()),
        }
    }
}

/// Opens connections to targets with one TLS client configuration.
pub struct Connector {
    proxy: Option<Proxy>,
    resolve: Resolve,
    tls: TlsConnector,
    version: HttpVersion,
}

impl Connector {
    /// A connector trusting only the certificates in the PEM file `ca_file`
    /// (a bundle is fine), offering `version` as the only ALPN protocol.
    /// rustls with the ring provider; TLS session resumption is rustls's
    /// default (an in-memory cache per server name), as in real clients.
    ///
    /// # Errors
    /// An unreadable CA file, or one without a certificate.
    pub fn new(
        ca_file: &Path,
        proxy: Option<Proxy>,
        resolve: Resolve,
        version: HttpVersion,
    ) -> Result<Connector, ConnectError> {
        let path = ca_file.display().to_string();
        let mut roots = rustls::RootCertStore::empty();
        for cert in
            CertificateDer::pem_file_iter(ca_file).map_err(|source| ConnectError::CaFile {
                path: path.clone(),
                source,
            })?
        {
            let cert = cert.map_err(|source| ConnectError::CaFile {
                path: path.clone(),
                source,
            })?;
            // A bundle may hold certificates webpki cannot use as anchors;
            // skipping them is what the OS bundle loaders do too.
            let _ = roots.add(cert);
        }
        if roots.is_empty() {
            return Err(ConnectError::NoCa { path });
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![version.alpn().to_vec()];
        Ok(Connector {
            proxy,
            resolve,
            tls: TlsConnector::from(Arc::new(config)),
            version,
        })
    }

    /// Opens a connection to `target`'s host and port and returns a ready
    /// sender, with the time each step took.
    ///
    /// # Errors
    /// Any failing step, named with the authority.
    pub async fn connect(&self, target: &Target) -> Result<(Sender, Phases), ConnectError> {
        let started = Instant::now();
        let tcp = match &self.proxy {
            Some(proxy) => self.tunnel(proxy, target).await?,
            None => {
                let tcp = match self.resolve.lookup(&target.host, target.port) {
                    Some(ip) => {
                        let addr = SocketAddr::new(ip, target.port);
                        TcpStream::connect(addr)
                            .await
                            .map_err(|source| ConnectError::Tcp {
                                addr: addr.to_string(),
                                source,
                            })?
                    }
                    None => TcpStream::connect((target.host.as_str(), target.port))
                        .await
                        .map_err(|source| ConnectError::Tcp {
                            addr: target.authority.clone(),
                            source,
                        })?,
                };
                let _ = tcp.set_nodelay(true);
                tcp
            }
        };
        let connected = Instant::now();
        let tls = self.handshake(tcp, target).await?;
        let tls_done = Instant::now();
        let sender = self.http(tls, target).await?;
        Ok((
            sender,
            Phases {
                connect: connected - started,
                tls: tls_done - connected,
            },
        ))
    }

    /// TCP to the proxy and a `CONNECT host:port` (RFC 9110 §9.3.6) with
    /// the proxy credential; returns the raw TCP stream of the tunnel.
    async fn tunnel(&self, proxy: &Proxy, target: &Target) -> Result<TcpStream, ConnectError> {
        let tcp = TcpStream::connect(proxy.addr.as_str())
            .await
            .map_err(|source| ConnectError::Tcp {
                addr: proxy.addr.clone(),
                source,
            })?;
        let _ = tcp.set_nodelay(true);
        let authority = target.authority.clone();
        let request_error = |source| ConnectError::ConnectRequest {
            authority: authority.clone(),
            source,
        };
        let (mut sender, conn) = http1::handshake(TokioIo::new(tcp))
            .await
            .map_err(request_error)?;
        let conn = tokio::spawn(conn.with_upgrades());
        let mut req = Request::builder()
            .method(Method::CONNECT)
            .uri(authority.as_str())
            .header(header::HOST, authority.as_str());
        if let Some(auth) = &proxy.authorization {
            req = req.header(header::PROXY_AUTHORIZATION, auth.clone());
        }
        let req = req
            .body(Empty::<Bytes>::new())
            .map_err(|_| ConnectError::ConnectTunnel {
                authority: authority.clone(),
            })?;
        let resp = sender.send_request(req).await.map_err(request_error)?;
        if resp.status() != StatusCode::OK {
            conn.abort();
            return Err(ConnectError::ConnectRefused {
                authority,
                status: resp.status(),
            });
        }
        let upgraded = hyper::upgrade::on(resp).await.map_err(request_error)?;
        // Take the TCP stream back out of hyper: TLS then runs on the
        // socket itself, with no extra layer of buffering in between.
        let parts =
            upgraded
                .downcast::<TokioIo<TcpStream>>()
                .map_err(|_| ConnectError::ConnectTunnel {
                    authority: authority.clone(),
                })?;
        if !parts.read_buf.is_empty() {
            return Err(ConnectError::ConnectTunnel { authority });
        }
        Ok(parts.io.into_inner())
    }

    async fn handshake(
        &self,
        tcp: TcpStream,
        target: &Target,
    ) -> Result<TlsStream<TcpStream>, ConnectError> {
        let name =
            ServerName::try_from(target.host.clone()).map_err(|_| ConnectError::ServerName {
                host: target.host.clone(),
            })?;
        let tls = self
            .tls
            .connect(name, tcp)
            .await
            .map_err(|source| ConnectError::Tls {
                authority: target.authority.clone(),
                source,
            })?;
        let got = tls.get_ref().1.alpn_protocol();
        if got != Some(self.version.alpn()) {
            return Err(ConnectError::Alpn {
                authority: target.authority.clone(),
                want: String::from_utf8_lossy(self.version.alpn()).into_owned(),
                got: got.map(|g| String::from_utf8_lossy(g).into_owned()),
            });
        }
        Ok(tls)
    }

    async fn http(
        &self,
        tls: TlsStream<TcpStream>,
        target: &Target,
    ) -> Result<Sender, ConnectError> {
        let http_error = |source| ConnectError::Http {
            authority: target.authority.clone(),
            source,
        };
        let io = TokioIo::new(tls);
        match self.version {
            HttpVersion::Http1 => {
                let (sender, conn) = http1::handshake(io).await.map_err(http_error)?;
                tokio::spawn(conn);
                Ok(Sender::H1(sender))
            }
            HttpVersion::Http2 => {
                let (sender, conn) = http2::handshake(TokioExecutor::new(), io)
                    .await
                    .map_err(http_error)?;
                tokio::spawn(conn);
                Ok(Sender::H2(sender))
            }
        }
    }
}
