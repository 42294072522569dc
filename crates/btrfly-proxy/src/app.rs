//! The Pingora app: hooks that only translate between Pingora and the
//! gateway (which decides) and the exchange (which records). The phases,
//! in the order Pingora runs them for one request:
//!
//! - `request_filter`: build the absolute request head, call the gateway.
//!   A `Respond` decision (replay hit, miss, 407, error) is written here
//!   and ends the request; a `Forward` starts an [`Exchange`].
//! - `upstream_peer`: resolve the target (overrides, then DNS) and connect
//!   with verified TLS, offering h2 and http/1.1.
//! - `upstream_request_filter`: origin-form URI, Host, no proxy headers, no
//!   conditionals while recording (a 304 would record no body).
//! - `request_body_filter` → [`Exchange::request_body_chunk`].
//! - `upstream_response_filter` → [`Exchange::response_head`].
//! - `response_filter`: an HTTP/1.0 client gets a close-delimited body,
//!   never chunking it cannot read; an answer after which the connection
//!   closes (a request body not read whole, an HTTP/2 upstream's refusal
//!   of a request with a body) says `Connection: close`.
//! - `upstream_response_body_filter` → [`Exchange::response_chunk`].
//! - `fail_to_proxy` → [`failure::Cause`], [`Exchange::end_by_close`],
//!   [`Exchange::failure`].
//! - `logging` → [`Exchange::finish`].

use async_trait::async_trait;
use btrfly_core::Origin;
use btrfly_gateway::{Decision, GatewayService, Reply, RequestBody, REPLAY_HEADER};
use btrfly_record::{Ending, Exchange, Failure, RequestBodySource, ResponseHead};
use btrfly_store::Store;
use bytes::Bytes;
use http::{header, HeaderValue, Method, StatusCode};
use pingora_core::protocols::ALPN;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_error::{Error, ErrorType, Result};
use pingora_http::{RequestHeader, ResponseHeader};
use pingora_proxy::{FailToProxy, ProxyHttp, Session};
use std::net::SocketAddr;
use std::sync::Arc;
use tower::ServiceExt;
use tracing::Instrument;

use crate::egress::EgressPolicy;
use crate::failure::{self, Cause};
use crate::limits::Limits;
use crate::resolve::UpstreamResolver;
use crate::respond::{continue_if_expected, replace_headers, write_reply};
use crate::target::{absolute_uri, origin_of, tunnel_of};

/// The Pingora app of the proxy listener.
pub struct GatewayApp {
    stack: GatewayService,
    store: Store,
    resolver: UpstreamResolver,
    policy: Arc<EgressPolicy>,
    connect_timeout: std::time::Duration,
    limits: Limits,
}

impl GatewayApp {
    /// The app: the gateway, the store replies stream from, how upstreams
    /// are resolved, which resolved addresses they may have (the egress
    /// policy) and how long connecting may take.
    pub fn new(
        stack: GatewayService,
        store: Store,
        resolver: UpstreamResolver,
        policy: Arc<EgressPolicy>,
        connect_timeout: std::time::Duration,
    ) -> Self {
        GatewayApp {
            stack,
            store,
            resolver,
            policy,
            connect_timeout,
            limits: Limits::default(),
        }
    }

    /// The same app with these limits (request heads, upstream reads)
    /// instead of [`Limits::default`].
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }
}

/// Where a forwarded request goes upstream.
#[derive(Clone, Debug)]
pub struct Target {
    /// Scheme, host and port.
    pub origin: Origin,
    /// Origin-form path and query for the upstream request.
    pub path_and_query: String,
}

/// Per-request state: the target and, once forwarded, the exchange; the
/// request log's span and start.
#[derive(Default)]
pub struct Ctx {
    target: Option<Target>,
    /// The upstream address, resolved and checked by the egress policy
    /// before the request was forwarded.
    addr: Option<SocketAddr>,
    exchange: Option<Exchange>,
    /// The request log's span (see `btrfly_gateway::log`) and when the
    /// request arrived.
    log: Option<(tracing::Span, std::time::Instant)>,
    /// The forwarded request has a body and its upstream answered over
    /// HTTP/2 (see `response_filter`).
    body_to_h2: bool,
}

fn internal(e: impl std::fmt::Display) -> Box<Error> {
    Error::explain(ErrorType::InternalError, e.to_string())
}

/// The client's side of a request body, for [`Exchange::finish`].
struct ClientBody<'a>(&'a mut Session);

impl RequestBodySource for ClientBody<'_> {
    fn is_done(&mut self) -> bool {
        self.0.is_body_done()
    }

    async fn next_chunk(&mut self) -> std::io::Result<Option<Bytes>> {
        self.0
            .read_request_body()
            .await
            .map_err(|e| std::io::Error::other(e.to_string()))
    }
}

#[async_trait]
impl ProxyHttp for GatewayApp {
    type CTX = Ctx;

    fn new_ctx(&self) -> Ctx {
        Ctx::default()
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut Ctx) -> Result<bool> {
        // Before anything reads the head (keys, logs, miss lists).
        if let Some((status, message)) = self.limits.check_head(session.req_header()) {
            session.set_keepalive(None);
            let reply = Reply::text(status, message).with_header("x-btrfly-error", "limit");
            write_reply(&self.store, session, reply).await?;
            return Ok(true);
        }
        let tunnel = tunnel_of(session);
        let origin = match origin_of(session, tunnel.as_ref()) {
            Ok(o) => o,
            Err(reply) => {
                session.set_keepalive(None);
                write_reply(&self.store, session, reply).await?;
                return Ok(true);
            }
        };
        let req = session.req_header();
        let pq = absolute_uri(req)
            .as_ref()
            .unwrap_or(&req.uri)
            .path_and_query()
            .map_or_else(|| "/".to_owned(), |pq| pq.as_str().to_owned());
        let url = format!("{origin}{pq}");
        let span = btrfly_gateway::log::request_span(&req.method, &url);
        ctx.log = Some((span.clone(), std::time::Instant::now()));
        let mut builder = http::Request::builder()
            .method(req.method.clone())
            .uri(url.as_str());
        let mut headers = req.headers.clone();
        if let Some(cred) = tunnel.as_ref().and_then(|t| t.credential.as_ref()) {
            if let Ok(v) = HeaderValue::from_bytes(cred) {
                headers.insert(header::PROXY_AUTHORIZATION, v);
            }
        }
        if let Some(h) = builder.headers_mut() {
            *h = headers;
        }
        let present = !session.is_body_empty();
        let (body, mut feeder) = RequestBody::channel(present);
        let request = match builder.body(body) {
            Ok(r) => r,
            Err(e) => {
                session.set_keepalive(None);
                write_reply(
                    &self.store,
                    session,
                    Reply::text(
                        StatusCode::BAD_REQUEST,
                        format!("btrfly: bad request target {url}: {e}"),
                    ),
                )
                .await?;
                return Ok(true);
            }
        };
        let decision = {
            let decide = self.stack.clone().oneshot(request).instrument(span.clone());
            // The gateway pulls the body only when it needs it (playback
            // hashes it); feed it from the client concurrently.
            let feed = async {
                feeder.wanted().await;
                if let Err(e) = continue_if_expected(session).await {
                    feeder.send(Err(std::io::Error::other(e.to_string()))).await;
                    drop(feeder);
                    return std::future::pending::<()>().await;
                }
                loop {
                    match session.read_request_body().await {
                        Ok(Some(chunk)) => {
                            if !feeder.send(Ok(chunk)).await {
                                break;
                            }
                        }
                        Ok(None) => break,
                        Err(e) => {
                            feeder.send(Err(std::io::Error::other(e.to_string()))).await;
                            break;
                        }
                    }
                }
                drop(feeder);
                std::future::pending::<()>().await;
            };
            tokio::select! {
                d = decide => match d { Ok(d) => d, Err(never) => match never {} },
                _ = feed => unreachable!("the feeder never completes"),
            }
        };
        let outcome = match &decision {
            Decision::Respond(reply) => match reply.headers.get(REPLAY_HEADER) {
                Some(v) => v.to_str().unwrap_or("answered"),
                None if reply.status.as_u16() >= 400 => "refused",
                None => "answered",
            },
            Decision::Forward(_) => "upstream",
        };
        span.record(btrfly_gateway::log::field::OUTCOME, outcome);
        match decision {
            Decision::Respond(reply) => {
                if present && !session.is_body_done() {
                    // the body was not read: the connection cannot be reused
                    session.set_keepalive(None);
                }
                write_reply(&self.store, session, reply).await?;
                Ok(true)
            }
            Decision::Forward(forward) => {
                // Resolved once, here, and checked on the address that is
                // then connected to: a name cannot resolve to an allowed
                // address for the check and to another for the connection.
                // A name that does not resolve fails in `upstream_peer`.
                if let Ok(addr) = self.resolver.resolve(&origin.host, origin.port).await {
                    if let Err(refusal) = self.policy.check(&origin.host, addr) {
                        let message =
                            format!("{refusal} (refused: {} {url})", session.req_header().method);
                        if let Some(plan) = forward.recording.as_ref() {
                            plan.session.stats.note_egress_refused(message.clone());
                        } else {
                            tracing::warn!("{message}");
                        }
                        if present && !session.is_body_done() {
                            session.set_keepalive(None);
                        }
                        let reply = Reply::text(StatusCode::FORBIDDEN, message)
                            .with_header("x-btrfly-error", "egress-refused");
                        write_reply(&self.store, session, reply).await?;
                        return Ok(true);
                    }
                    ctx.addr = Some(addr);
                }
                if present {
                    // btrfly forwards the body whatever the upstream would
                    // say first, and drops `Expect` upstream: the client
                    // never waits for a `100` that an HTTP/2 upstream
                    // connection would not pass on.
                    continue_if_expected(session).await?;
                }
                if forward.recording.is_some() {
                    // A client that closes its side early (Go's registry
                    // clients drop the `/v2/` answer unread) must not cut
                    // the upstream body short: it is still recorded whole.
                    session.as_downstream_mut().set_abort_on_close(false);
                }
                let declared = session
                    .req_header()
                    .headers
                    .get(header::CONTENT_LENGTH)
                    .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
                ctx.exchange = Some(
                    Exchange::new(url, forward.recording, present).with_request_body_len(declared),
                );
                ctx.body_to_h2 = present;
                ctx.target = Some(Target {
                    origin,
                    path_and_query: pq,
                });
                Ok(false)
            }
        }
    }

    async fn upstream_peer(&self, session: &mut Session, ctx: &mut Ctx) -> Result<Box<HttpPeer>> {
        let origin = ctx
            .target
            .as_ref()
            .map(|t| t.origin.clone())
            .ok_or_else(|| internal("no upstream target for a forwarded request"))?;
        let addr = match ctx.addr {
            Some(a) => a,
            None => self
                .resolver
                .resolve(&origin.host, origin.port)
                .await
                .map_err(|e| Error::explain(ErrorType::ConnectNoRoute, e.to_string()))?,
        };
        let mut peer = HttpPeer::new(addr, origin.https, origin.host.clone());
        // An HTTP/1.0 client goes upstream over HTTP/1.1: on that path the
        // answer's framing can still be made one it reads (`response_filter`).
        peer.options.alpn = if session.req_header().version == http::Version::HTTP_10 {
            ALPN::H1
        } else {
            ALPN::H2H1
        };
        peer.options.connection_timeout = Some(self.connect_timeout);
        peer.options.total_connection_timeout = Some(self.connect_timeout);
        peer.options.read_timeout = Some(self.limits.upstream_read_timeout);
        peer.options.verify_cert = true;
        peer.options.verify_hostname = true;
        Ok(Box::new(peer))
    }

    async fn upstream_request_filter(
        &self,
        _session: &mut Session,
        upstream: &mut RequestHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        let Some(target) = ctx.target.as_ref() else {
            return Err(internal("no upstream target"));
        };
        let pq = &target.path_and_query;
        let uri: http::Uri = pq
            .parse()
            .map_err(|e| Error::explain(ErrorType::InvalidHTTPHeader, format!("path {pq}: {e}")))?;
        upstream.set_uri(uri);
        upstream.insert_header(header::HOST, target.origin.host_header())?;
        upstream.remove_header(&header::PROXY_AUTHORIZATION);
        upstream.remove_header("proxy-connection");
        // Answered by btrfly itself (`continue_if_expected`).
        upstream.remove_header(&header::EXPECT);
        if ctx.exchange.as_ref().is_some_and(Exchange::is_recording) {
            // A conditional request could be answered 304 with no body, and
            // then there would be nothing to replay for a fresh client.
            upstream.remove_header(&header::IF_NONE_MATCH);
            upstream.remove_header(&header::IF_MODIFIED_SINCE);
        }
        Ok(())
    }

    async fn request_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        _end_of_stream: bool,
        ctx: &mut Ctx,
    ) -> Result<()> {
        if let (Some(x), Some(chunk)) = (ctx.exchange.as_mut(), body.as_ref()) {
            x.request_body_chunk(chunk);
        }
        Ok(())
    }

    async fn upstream_response_filter(
        &self,
        session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        ctx.body_to_h2 &= resp.version >= http::Version::HTTP_2;
        let Some(exchange) = ctx.exchange.as_mut() else {
            return Ok(());
        };
        let mut headers = resp.headers.clone();
        exchange
            .response_head(ResponseHead {
                request_is_head: session.req_header().method == Method::HEAD,
                status: resp.status.as_u16(),
                http2: resp.version >= http::Version::HTTP_2,
                headers: &mut headers,
            })
            .await;
        replace_headers(resp, &headers)
    }

    async fn response_filter(
        &self,
        session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        if session.req_header().version < http::Version::HTTP_2
            && !resp.status.is_informational()
            && (!session.is_body_done() || ctx.body_to_h2 && resp.status.as_u16() >= 400)
        {
            // An answer before the body was read whole, or an HTTP/2
            // upstream's refusal (it may have answered without reading the
            // body and reset its stream, and Pingora then does not reuse
            // the client's connection even when btrfly read the body): the
            // connection closes after this answer, and the answer says so
            // (RFC 9112 §9.6), so a client does not send its next request
            // on it.
            session.set_keepalive(None);
        }
        if session.req_header().version == http::Version::HTTP_10
            && !resp.status.is_informational()
            && resp.headers.get(header::CONTENT_LENGTH).is_none()
        {
            // Pingora frames an answer without a length as chunked, which
            // an HTTP/1.0 client cannot read (RFC 9112 §6.1): it gets the
            // body delimited by the connection's close instead.
            resp.remove_header(&header::TRANSFER_ENCODING);
            session.set_keepalive(None);
        }
        Ok(())
    }

    fn upstream_response_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut Ctx,
    ) -> Result<Option<std::time::Duration>> {
        let Some(exchange) = ctx.exchange.as_mut() else {
            return Ok(None);
        };
        exchange
            .response_chunk(body, end_of_stream)
            .map_err(|mismatch| {
                Error::explain(
                    ErrorType::Custom("BodyDigestMismatch"),
                    format!("btrfly: {mismatch}"),
                )
            })
    }

    async fn fail_to_proxy(&self, session: &mut Session, e: &Error, ctx: &mut Ctx) -> FailToProxy {
        let ended_by_close = session.response_written().is_some()
            && failure::is_unnotified_close(e)
            && ctx
                .exchange
                .as_ref()
                .is_some_and(Exchange::can_end_by_close);
        if ended_by_close {
            // A close-delimited body ends when the connection closes; a TLS
            // peer that closes without `close_notify` (Python's ssl servers)
            // is taken at its word, as curl and browsers take it.
            if let Some(last) = ctx.exchange.as_mut().and_then(Exchange::end_by_close) {
                if let Err(we) = session.write_response_body(last, true).await {
                    tracing::debug!("ending a close-delimited body: {we}");
                }
            }
            return FailToProxy {
                error_code: 0,
                can_reuse_downstream: false,
            };
        }
        let code = Cause::of(e).status();
        // The connection is not reused (below): the answer says so.
        session.set_keepalive(None);
        let target = ctx
            .target
            .as_ref()
            .map(|t| t.origin.authority())
            .unwrap_or_default();
        let Failure { message, kind } = match ctx.exchange.as_mut() {
            Some(x) => x.failure(e, &target),
            None => Failure {
                message: format!(
                    "btrfly: upstream {target} failed for {}: {e}",
                    session.req_header().uri
                ),
                kind: "upstream",
            },
        };
        if code > 0 && session.response_written().is_none() {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_GATEWAY);
            let reply = match kind {
                "digest-mismatch" => Reply::digest_mismatch(status, message),
                _ => Reply::text(status, message).with_header("x-btrfly-error", kind),
            };
            if let Err(we) = write_reply(&self.store, session, reply).await {
                tracing::debug!("writing the error response: {we}");
            }
        }
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
    }

    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut Ctx) {
        if let Some((span, started)) = &ctx.log {
            let status = session.response_written().map(|r| r.status.as_u16());
            let duration_ms = started.elapsed().as_secs_f64() * 1000.0;
            let error = e.map(|e| e.to_string());
            span.in_scope(|| {
                tracing::info!(status, duration_ms, error, "request");
            });
        }
        let Some(exchange) = ctx.exchange.as_mut() else {
            return;
        };
        let ending = Ending {
            error: e.map(|e| e.to_string()),
            client_left: e.is_some_and(failure::is_downstream),
        };
        exchange.finish(ending, &mut ClientBody(session)).await;
    }
}
