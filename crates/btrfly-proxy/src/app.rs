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
//!   never chunking it cannot read.
//! - `upstream_response_body_filter` → [`Exchange::response_chunk`].
//! - `fail_to_proxy` → [`failure::Cause`], [`Exchange::end_by_close`],
//!   [`Exchange::failure`].
//! - `logging` → [`Exchange::finish`].

use async_trait::async_trait;
use btrfly_core::Origin;
use btrfly_gateway::{Decision, GatewayService, Reply, ReplyBody, RequestBody};
use btrfly_record::{Ending, Exchange, Failure, RequestBodySource, ResponseHead};
use btrfly_store::Store;
use bytes::Bytes;
use futures::StreamExt;
use http::{header, HeaderValue, Method, StatusCode};
use pingora_core::protocols::ALPN;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_error::{Error, ErrorType, Result};
use pingora_http::{RequestHeader, ResponseHeader};
use pingora_proxy::{FailToProxy, ProxyHttp, Session};
use tower::ServiceExt;

use crate::failure::{self, Cause};
use crate::resolve::UpstreamResolver;
use crate::tunnel::Tunnel;

/// The Pingora app of the proxy listener.
pub struct GatewayApp {
    stack: GatewayService,
    store: Store,
    resolver: UpstreamResolver,
    connect_timeout: std::time::Duration,
}

impl GatewayApp {
    /// The app: the gateway, the store replies stream from, how upstreams
    /// are resolved and how long connecting may take.
    pub fn new(
        stack: GatewayService,
        store: Store,
        resolver: UpstreamResolver,
        connect_timeout: std::time::Duration,
    ) -> Self {
        GatewayApp {
            stack,
            store,
            resolver,
            connect_timeout,
        }
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

/// Per-request state: the target and, once forwarded, the exchange.
#[derive(Default)]
pub struct Ctx {
    target: Option<Target>,
    exchange: Option<Exchange>,
}

fn tunnel_of(session: &Session) -> Option<Tunnel> {
    session
        .digest()?
        .proxy_digest
        .as_ref()?
        .user_data
        .as_ref()?
        .downcast_ref::<Tunnel>()
        .cloned()
}

/// The request target as an absolute URI when the client sent one
/// (absolute-form, as clients do towards a plain-HTTP proxy, or HTTP/2's
/// `:scheme`+`:authority`). Pingora keeps absolute-form in `raw_path`.
fn absolute_uri(req: &RequestHeader) -> Option<http::Uri> {
    if req.uri.scheme().is_some() && req.uri.authority().is_some() {
        return Some(req.uri.clone());
    }
    std::str::from_utf8(req.raw_path())
        .ok()
        .and_then(|p| p.parse::<http::Uri>().ok())
        .filter(|u| u.scheme().is_some() && u.authority().is_some())
}

/// Works out the upstream origin of a request, or the reply that refuses it.
fn origin_of(session: &Session, tunnel: Option<&Tunnel>) -> std::result::Result<Origin, Reply> {
    let req = session.req_header();
    let absolute = absolute_uri(req);
    let named_host = absolute
        .as_ref()
        .and_then(|u| u.host())
        .map(str::to_owned)
        .or_else(|| {
            req.headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .and_then(|h| h.parse::<http::uri::Authority>().ok())
                .map(|a| a.host().to_owned())
        })
        .map(|h| {
            h.trim_start_matches('[')
                .trim_end_matches(']')
                .to_ascii_lowercase()
        });
    if let Some(t) = tunnel {
        if let Some(named) = named_host {
            if named != t.host {
                return Err(Reply::text(
                    StatusCode::MISDIRECTED_REQUEST,
                    format!(
                        "btrfly: this tunnel was opened to {} but the request names {named}",
                        t.host
                    ),
                ));
            }
        }
        return Ok(Origin::new(t.tls, &t.host, t.port));
    }
    let https = match absolute.as_ref().and_then(|u| u.scheme_str()) {
        Some("http") => false,
        Some("https") => true,
        Some(other) => {
            return Err(Reply::text(
                StatusCode::BAD_REQUEST,
                format!("btrfly: unsupported scheme {other:?}"),
            ))
        }
        None => {
            return Err(Reply::text(
                StatusCode::BAD_REQUEST,
                "btrfly is a proxy: send absolute-form requests (GET http://host/path) or CONNECT host:port; set HTTPS_PROXY/HTTP_PROXY as `btrfly start` prints them",
            ))
        }
    };
    let Some(host) = named_host else {
        return Err(Reply::text(
            StatusCode::BAD_REQUEST,
            "btrfly: the request names no host",
        ));
    };
    let port = absolute
        .as_ref()
        .and_then(|u| u.port_u16())
        .unwrap_or(if https { 443 } else { 80 });
    Ok(Origin::new(https, &host, port))
}

/// Makes `resp` carry exactly `wanted`, touching only the names that
/// differ (pingora keeps header-name case beside the map).
fn replace_headers(resp: &mut ResponseHeader, wanted: &http::HeaderMap) -> Result<()> {
    let names: std::collections::HashSet<http::HeaderName> =
        resp.headers.keys().chain(wanted.keys()).cloned().collect();
    for name in names {
        let old: Vec<_> = resp.headers.get_all(&name).iter().collect();
        let new: Vec<_> = wanted.get_all(&name).iter().collect();
        if old == new {
            continue;
        }
        resp.remove_header(&name);
        for v in new {
            resp.append_header(name.clone(), v.clone())?;
        }
    }
    Ok(())
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

impl GatewayApp {
    async fn write_reply(&self, session: &mut Session, reply: Reply) -> Result<()> {
        let is_head = session.req_header().method == Method::HEAD;
        let mut resp = ResponseHeader::build(reply.status, Some(reply.headers.len() + 1))?;
        for (name, value) in reply.headers.iter() {
            resp.append_header(name.clone(), value.clone())?;
        }
        if let Some(reason) = reply.reason {
            // HTTP/1 clients print the reason phrase with the status
            // (pip: "409 Client Error: … for url: …"): make it say why.
            resp.set_reason_phrase(Some(reason))?;
        }
        match reply.body {
            ReplyBody::Bytes(bytes) => {
                resp.insert_header(header::CONTENT_LENGTH, bytes.len())?;
                let empty = bytes.is_empty() || is_head;
                session.write_response_header(Box::new(resp), empty).await?;
                if !empty {
                    session.write_response_body(Some(bytes), true).await?;
                }
            }
            ReplyBody::Blob {
                sha256,
                offset,
                len,
            } => {
                if len == 0 {
                    session.write_response_header(Box::new(resp), true).await?;
                    return Ok(());
                }
                // Open before the head goes out, so a missing blob is still
                // a clean error response rather than a truncated body.
                let mut stream = self
                    .store
                    .read_blob(&sha256, Some(offset..offset + len))
                    .await
                    .map_err(internal)?;
                session.write_response_header(Box::new(resp), false).await?;
                let mut sent = 0u64;
                while let Some(chunk) = stream.next().await {
                    let chunk = chunk.map_err(|e| {
                        Error::explain(ErrorType::ReadError, format!("reading blob {sha256}: {e}"))
                    })?;
                    sent += chunk.len() as u64;
                    session.write_response_body(Some(chunk), false).await?;
                }
                if sent != len {
                    return Err(Error::explain(
                        ErrorType::ReadError,
                        format!("blob {sha256} ended after {sent} of {len} bytes"),
                    ));
                }
                session.write_response_body(None, true).await?;
            }
            ReplyBody::Parts {
                sha256,
                parts,
                tail,
            } => {
                session.write_response_header(Box::new(resp), false).await?;
                for part in parts {
                    session.write_response_body(Some(part.head), false).await?;
                    let mut stream = self
                        .store
                        .read_blob(&sha256, Some(part.offset..part.offset + part.len))
                        .await
                        .map_err(internal)?;
                    while let Some(chunk) = stream.next().await {
                        let chunk = chunk.map_err(|e| {
                            Error::explain(
                                ErrorType::ReadError,
                                format!("reading blob {sha256}: {e}"),
                            )
                        })?;
                        session.write_response_body(Some(chunk), false).await?;
                    }
                }
                session.write_response_body(Some(tail), true).await?;
            }
        }
        Ok(())
    }

    /// `100 Continue` for an HTTP/1.1 client that asked for it and whose
    /// body btrfly is about to read (RFC 9110 §10.1.1): it would otherwise
    /// wait (curl for a second) before sending it. HTTP/2 has no place for
    /// it in Pingora; clients there send the body without waiting long.
    async fn continue_if_expected(session: &mut Session) -> Result<()> {
        let expects = session
            .req_header()
            .headers
            .get(header::EXPECT)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
        if !expects
            || session.as_downstream().is_http2()
            || session.req_header().version != http::Version::HTTP_11
            || session.response_written().is_some()
        {
            return Ok(());
        }
        let interim = ResponseHeader::build(StatusCode::CONTINUE, Some(0))?;
        session
            .write_response_header(Box::new(interim), false)
            .await
    }
}

#[async_trait]
impl ProxyHttp for GatewayApp {
    type CTX = Ctx;

    fn new_ctx(&self) -> Ctx {
        Ctx::default()
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut Ctx) -> Result<bool> {
        let tunnel = tunnel_of(session);
        let origin = match origin_of(session, tunnel.as_ref()) {
            Ok(o) => o,
            Err(reply) => {
                session.set_keepalive(None);
                self.write_reply(session, reply).await?;
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
                self.write_reply(
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
            let decide = self.stack.clone().oneshot(request);
            // The gateway pulls the body only when it needs it (playback
            // hashes it); feed it from the client concurrently.
            let feed = async {
                feeder.wanted().await;
                if let Err(e) = Self::continue_if_expected(session).await {
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
        match decision {
            Decision::Respond(reply) => {
                if present && !session.is_body_done() {
                    // the body was not read: the connection cannot be reused
                    session.set_keepalive(None);
                }
                self.write_reply(session, reply).await?;
                Ok(true)
            }
            Decision::Forward(forward) => {
                if present {
                    // btrfly forwards the body whatever the upstream would
                    // say first, and drops `Expect` upstream: the client
                    // never waits for a `100` that an HTTP/2 upstream
                    // connection would not pass on.
                    Self::continue_if_expected(session).await?;
                }
                if forward.recording.is_some() {
                    // A client that closes its side early (Go's registry
                    // clients drop the `/v2/` answer unread) must not cut
                    // the upstream body short: it is still recorded whole.
                    session.as_downstream_mut().set_abort_on_close(false);
                }
                ctx.exchange = Some(Exchange::new(url, forward.recording, present));
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
        let addr = self
            .resolver
            .resolve(&origin.host, origin.port)
            .await
            .map_err(|e| Error::explain(ErrorType::ConnectNoRoute, e.to_string()))?;
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
        _ctx: &mut Ctx,
    ) -> Result<()> {
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
            if let Err(we) = self.write_reply(session, reply).await {
                tracing::debug!("writing the error response: {we}");
            }
        }
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
    }

    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut Ctx) {
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
