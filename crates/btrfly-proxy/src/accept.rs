//! The one accept loop of every client listener (the explicit proxy and
//! the transparent TLS and HTTP listeners), so that each gets the same
//! protections:
//!
//! - at most `limits.max_connections` connections served at once per
//!   listener; one more is refused at once ([`Opener::refuse_over_limit`])
//!   and closed;
//! - the whole *opening* of a connection — everything before Pingora reads
//!   HTTP: a CONNECT head, a ClientHello, the TLS handshake, the first
//!   plain-HTTP request head, refusals written back — is bounded by
//!   `limits.tls_handshake_timeout` (the slow-loris defence); then the
//!   connection is closed with a log line;
//! - the opened stream is served by Pingora's proxy app, request after
//!   request on a kept-alive connection, until `shutdown`.
//!
//! A listener supplies only an [`Opener`]: how to turn an accepted TCP
//! connection into an HTTP stream (or to answer it itself).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use pingora_core::apps::ServerApp;
use pingora_core::protocols::Stream;
use pingora_core::server::ShutdownWatch;
use pingora_proxy::HttpProxy;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use crate::app::GatewayApp;
use crate::limits::Limits;

/// How one listener opens its connections.
pub(crate) trait Opener: Send + Sync + 'static {
    /// `"proxy"`, `"transparent-tls"`, `"transparent-http"`: in log lines.
    fn label(&self) -> &'static str;

    /// Everything before HTTP: reads what routes the connection, answers
    /// refusals itself (`Ok(None)`), or hands back the stream Pingora
    /// serves. Bounded as a whole by the accept loop's opening timeout.
    ///
    /// # Errors
    /// The client sent something unusable or went away; logged at debug.
    fn open(
        &self,
        tcp: TcpStream,
        peer: SocketAddr,
    ) -> impl Future<Output = std::io::Result<Option<Stream>>> + Send;

    /// Answers a connection over `limits.max_connections` (the write is
    /// bounded in time by the caller), then it is closed.
    fn refuse_over_limit(
        &self,
        tcp: TcpStream,
        max: usize,
    ) -> impl Future<Output = std::io::Result<()>> + Send;
}

/// A bound listener, its opener and the app serving what it opens.
pub(crate) struct AcceptLoop<O> {
    pub(crate) listener: TcpListener,
    pub(crate) opener: Arc<O>,
    pub(crate) app: Arc<HttpProxy<GatewayApp>>,
    pub(crate) limits: Limits,
}

impl<O: Opener> AcceptLoop<O> {
    /// Accepts until `shutdown` turns true.
    pub(crate) async fn run(self, mut shutdown: ShutdownWatch) {
        let label = self.opener.label();
        let max = self.limits.max_connections;
        let connections = Arc::new(Semaphore::new(max));
        let opening = self.limits.tls_handshake_timeout;
        loop {
            tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok((tcp, peer)) => {
                        let _ = tcp.set_nodelay(true);
                        let opener = self.opener.clone();
                        let Ok(permit) = connections.clone().try_acquire_owned() else {
                            tracing::warn!(%peer, "{label}: refused a connection: {max} connections open (limits.max_connections)");
                            tokio::spawn(async move {
                                let _ = tokio::time::timeout(
                                    Duration::from_secs(1),
                                    opener.refuse_over_limit(tcp, max),
                                )
                                .await;
                            });
                            continue;
                        };
                        let app = self.app.clone();
                        let shutdown = shutdown.clone();
                        tokio::spawn(async move {
                            match tokio::time::timeout(opening, opener.open(tcp, peer)).await {
                                Ok(Ok(Some(stream))) => serve(&app, stream, &shutdown).await,
                                Ok(Ok(None)) => {}
                                Ok(Err(e)) => tracing::debug!(%peer, "{label}: connection ended: {e}"),
                                Err(_) => tracing::info!(
                                    %peer,
                                    "{label}: closed a connection that did not finish its opening (request head or TLS handshake) within {:.1}s (limits.tls_handshake_timeout_secs)",
                                    opening.as_secs_f64()
                                ),
                            }
                            drop(permit);
                        });
                    }
                    Err(e) => {
                        // Out of file descriptors and the like: back off, keep serving.
                        tracing::warn!("{label}: accepting a connection: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
                _ = shutdown.changed() => {
                    if *shutdown.borrow() {
                        return;
                    }
                }
            }
        }
    }
}

/// Pingora serves `stream`, request after request while it is kept alive.
async fn serve(app: &Arc<HttpProxy<GatewayApp>>, stream: Stream, shutdown: &ShutdownWatch) {
    let mut next = Some(stream);
    while let Some(stream) = next.take() {
        if *shutdown.borrow() {
            return;
        }
        next = app.process_new(stream, shutdown).await;
    }
}

/// Reads until a request head has ended (`CRLF CRLF`), the client closed,
/// or `max` bytes arrived; returns every byte read, for the stream to be
/// rewound with before Pingora parses the head itself (a head over the
/// limits is then answered by Pingora and the gateway, with 414/431).
///
/// # Errors
/// Reading the socket failed.
pub(crate) async fn read_request_head(tcp: &mut TcpStream, max: usize) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    loop {
        let n = tcp.read(&mut chunk).await?;
        if n == 0 {
            return Ok(buf);
        }
        // Only the new bytes (and the 3 before them) can complete the end.
        let from = buf.len().saturating_sub(3);
        buf.extend_from_slice(&chunk[..n]);
        if buf[from..].windows(4).any(|w| w == b"\r\n\r\n") || buf.len() >= max {
            return Ok(buf);
        }
    }
}
