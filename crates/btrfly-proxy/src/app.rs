//! The Pingora app: thin hooks that ask the tower stack and carry out its
//! decision. The phases, in the order Pingora runs them for one request:
//!
//! - `request_filter`: build the absolute request head, call the stack.
//!   A `Respond` decision (replay hit, miss, 407, error) is written here
//!   and ends the request; a `Forward` keeps the record plan in the context.
//! - `upstream_peer`: resolve the target (overrides, then DNS) and connect
//!   with verified TLS, offering h2 and http/1.1.
//! - `upstream_request_filter`: origin-form URI, Host, no proxy headers, no
//!   conditionals while recording (a 304 would record no body).
//! - `request_body_filter`: hash the request body for the key.
//! - `upstream_response_filter`: start the recorder with the final response
//!   head (interim 1xx answers pass on to the client, never recorded).
//! - `response_filter`: an HTTP/1.0 client gets a close-delimited body,
//!   never chunking it cannot read.
//! - `upstream_response_body_filter`: tee each chunk to the recorder.
//! - `logging`: commit the recording only if the body ended cleanly.

use std::sync::Arc;

use async_trait::async_trait;
use btrfly_layers::{
    Decision, GatewayService, LiveSession, RecordPlan, Recorder, Reply, ReplyBody, RequestBody,
};
use btrfly_store::Store;
use bytes::Bytes;
use futures::StreamExt;
use http::{header, HeaderValue, Method, StatusCode};
use pingora_core::protocols::ALPN;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_error::{Error, ErrorType, Result};
use pingora_http::{RequestHeader, ResponseHeader};
use pingora_proxy::{FailToProxy, ProxyHttp, Session};
use sha2::{Digest, Sha256};
use tower::ServiceExt;

use crate::listener::Tunnel;
use crate::resolve::UpstreamResolver;

pub struct GatewayApp {
    stack: GatewayService,
    store: Store,
    resolver: UpstreamResolver,
    connect_timeout: std::time::Duration,
}

impl GatewayApp {
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

/// Where a request goes upstream.
#[derive(Clone, Debug)]
pub struct Target {
    pub https: bool,
    pub host: String,
    pub port: u16,
}

impl Target {
    fn authority(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        format!("{host}:{}", self.port)
    }

    /// The Host header value: the port only when it is not the default.
    fn host_header(&self) -> String {
        let default = if self.https { 443 } else { 80 };
        if self.port == default {
            if self.host.contains(':') {
                format!("[{}]", self.host)
            } else {
                self.host.clone()
            }
        } else {
            self.authority()
        }
    }
}

#[derive(Default)]
pub struct Ctx {
    target: Option<Target>,
    url: String,
    /// Origin-form path and query for the upstream request.
    path_and_query: String,
    plan: Option<Box<RecordPlan>>,
    recorder: Option<Recorder>,
    session: Option<Arc<LiveSession>>,
    body_hasher: Option<Sha256>,
    body_size: u64,
    upstream_done: bool,
    expected_len: Option<u64>,
    bodiless: bool,
    /// Why the body was refused (it did not match its expected digest).
    refused: Option<String>,
    /// The upstream answer's body ends when the connection closes (HTTP/1.x
    /// without `Content-Length` or chunking).
    close_delimited: bool,
    /// A close-delimited body ended with a TLS close that lacked
    /// `close_notify`: taken as the end of the body, as clients do.
    closed_without_notify: bool,
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

/// Works out the upstream of a request, or the reply that refuses it.
fn target_of(session: &Session, tunnel: Option<&Tunnel>) -> std::result::Result<Target, Reply> {
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
        return Ok(Target {
            https: t.tls,
            host: t.host.clone(),
            port: t.port,
        });
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
    Ok(Target { https, host, port })
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

impl GatewayApp {
    async fn write_reply(&self, session: &mut Session, reply: Reply) -> Result<()> {
        let is_head = session.req_header().method == Method::HEAD;
        let mut resp = ResponseHeader::build(reply.status, Some(reply.headers.len() + 1))?;
        for (name, value) in reply.headers.iter() {
            resp.append_header(name.clone(), value.clone())?;
        }
        if reply
            .headers
            .get("x-btrfly-error")
            .is_some_and(|v| v == "digest-mismatch")
        {
            // HTTP/1 clients print the reason phrase with the status
            // (pip: "409 Client Error: … for url: …"): make it say why.
            resp.set_reason_phrase(Some("Body Does Not Match Its Announced Digest"))?;
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

/// Whether an error ended a close-delimited body the way a TLS peer that
/// skips `close_notify` does: the connection closed (unexpected EOF) while
/// the body was read.
fn is_unnotified_close(e: &Error) -> bool {
    if e.esource() != &pingora_error::ErrorSource::Upstream {
        return false;
    }
    e.root_cause()
        .downcast_ref::<std::io::Error>()
        .is_some_and(|io| io.kind() == std::io::ErrorKind::UnexpectedEof)
}

#[async_trait]
impl ProxyHttp for GatewayApp {
    type CTX = Ctx;

    fn new_ctx(&self) -> Ctx {
        Ctx::default()
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut Ctx) -> Result<bool> {
        let tunnel = tunnel_of(session);
        let target = match target_of(session, tunnel.as_ref()) {
            Ok(t) => t,
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
        let scheme = if target.https { "https" } else { "http" };
        let url = format!("{scheme}://{}{pq}", target.authority());
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
            // The stack pulls the body only when it needs it (playback
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
                ctx.url = url;
                ctx.path_and_query = pq;
                ctx.target = Some(target);
                if let Some(plan) = forward.recording {
                    ctx.session = Some(plan.session.clone());
                    // A client that closes its side early (Go's registry
                    // clients drop the `/v2/` answer unread) must not cut
                    // the upstream body short: it is still recorded whole.
                    session.as_downstream_mut().set_abort_on_close(false);
                    if present {
                        ctx.body_hasher = Some(Sha256::new());
                    }
                    ctx.plan = Some(plan);
                }
                Ok(false)
            }
        }
    }

    async fn upstream_peer(&self, session: &mut Session, ctx: &mut Ctx) -> Result<Box<HttpPeer>> {
        let target = ctx
            .target
            .clone()
            .ok_or_else(|| internal("no upstream target for a forwarded request"))?;
        let addr = self
            .resolver
            .resolve(&target.host, target.port)
            .await
            .map_err(|e| Error::explain(ErrorType::ConnectNoRoute, e.to_string()))?;
        let mut peer = HttpPeer::new(addr, target.https, target.host.clone());
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
        let pq = &ctx.path_and_query;
        let uri: http::Uri = pq
            .parse()
            .map_err(|e| Error::explain(ErrorType::InvalidHTTPHeader, format!("path {pq}: {e}")))?;
        upstream.set_uri(uri);
        upstream.insert_header(header::HOST, target.host_header())?;
        upstream.remove_header(&header::PROXY_AUTHORIZATION);
        upstream.remove_header("proxy-connection");
        // Answered by btrfly itself (`continue_if_expected`).
        upstream.remove_header(&header::EXPECT);
        if ctx.plan.is_some() {
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
        if let (Some(hasher), Some(chunk)) = (ctx.body_hasher.as_mut(), body.as_ref()) {
            hasher.update(chunk);
            ctx.body_size += chunk.len() as u64;
        }
        Ok(())
    }

    async fn upstream_response_filter(
        &self,
        session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        let status = resp.status.as_u16();
        if resp.status.is_informational() && status != 101 {
            // An interim answer (100 Continue, 102 Processing, 103 Early
            // Hints): Pingora passes it to an HTTP/1.1 client; the final
            // answer follows and is the one recorded.
            return Ok(());
        }
        ctx.bodiless = session.req_header().method == Method::HEAD || matches!(status, 204 | 304);
        ctx.expected_len = resp
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        let chunked = resp
            .headers
            .get_all(header::TRANSFER_ENCODING)
            .iter()
            .any(|v| {
                v.to_str()
                    .is_ok_and(|v| v.to_ascii_lowercase().contains("chunked"))
            });
        ctx.close_delimited = !ctx.bodiless
            && resp.version < http::Version::HTTP_2
            && ctx.expected_len.is_none()
            && !chunked;
        if status == 101 {
            if let Some(plan) = ctx.plan.take() {
                plan.session.stats.note_unrecorded(format!(
                    "not recorded: {}: an upgraded connection (101 Switching Protocols) cannot be replayed",
                    ctx.url
                ));
            }
            return Ok(());
        }
        if let Some(plan) = ctx.plan.as_ref() {
            // Redirect aliases and digests carried over redirects.
            plan.admit(status, &resp.headers);
            // The adapter's normalised head is what the client gets now and
            // what every replay gets later.
            let mut headers = resp.headers.clone();
            plan.adapter
                .normalize_response_headers(&plan.classification, status, &mut headers);
            replace_headers(resp, &headers)?;
            if !plan
                .adapter
                .records(&plan.head, &plan.classification, status, &resp.headers)
            {
                ctx.plan = None;
            }
        }
        if let Some(plan) = ctx.plan.take() {
            let session_ref = plan.session.clone();
            match Recorder::begin(*plan, status, &resp.headers).await {
                Ok(r) => ctx.recorder = Some(r),
                Err(e) => session_ref
                    .stats
                    .note_unrecorded(format!("not recorded: {}: {e}", ctx.url)),
            }
        }
        Ok(())
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
        if end_of_stream {
            ctx.upstream_done = true;
        }
        if let (Some(s), Some(chunk)) = (&ctx.session, body.as_ref()) {
            s.stats.count_bytes(chunk.len() as u64);
        }
        let Some(recorder) = ctx.recorder.as_mut() else {
            return Ok(None);
        };
        match recorder.offer(body, end_of_stream) {
            Ok(pause) => Ok(pause),
            Err(msg) => {
                // The body is not what the protocol announced: the client
                // must not get it whole, and it is not recorded.
                if let Some(r) = ctx.recorder.take() {
                    r.refuse(msg.clone());
                }
                ctx.refused = Some(format!("btrfly: {msg}"));
                Err(Error::explain(
                    ErrorType::Custom("BodyDigestMismatch"),
                    format!("btrfly: {msg}"),
                ))
            }
        }
    }

    async fn fail_to_proxy(&self, session: &mut Session, e: &Error, ctx: &mut Ctx) -> FailToProxy {
        if ctx.close_delimited
            && !ctx.upstream_done
            && session.response_written().is_some()
            && is_unnotified_close(e)
        {
            // A close-delimited body ends when the connection closes; a TLS
            // peer that closes without `close_notify` (Python's ssl servers)
            // is taken at its word, as curl and browsers take it.
            ctx.upstream_done = true;
            ctx.closed_without_notify = true;
            let mut last = None;
            if let Some(recorder) = ctx.recorder.as_mut() {
                if let Err(msg) = recorder.offer(&mut last, true) {
                    if let Some(r) = ctx.recorder.take() {
                        r.refuse(msg);
                    }
                    ctx.closed_without_notify = false;
                    return FailToProxy {
                        error_code: 0,
                        can_reuse_downstream: false,
                    };
                }
            }
            let ended = session.write_response_body(last, true).await;
            if let Err(we) = ended {
                tracing::debug!("ending a close-delimited body: {we}");
            }
            return FailToProxy {
                error_code: 0,
                can_reuse_downstream: false,
            };
        }
        let code = match e.etype() {
            ErrorType::HTTPStatus(code) => *code,
            ErrorType::ConnectTimedout | ErrorType::ReadTimedout | ErrorType::WriteTimedout => 504,
            _ => match e.esource() {
                pingora_error::ErrorSource::Upstream => 502,
                pingora_error::ErrorSource::Downstream => match e.etype() {
                    ErrorType::WriteError | ErrorType::ReadError | ErrorType::ConnectionClosed => 0,
                    _ => 400,
                },
                _ => 502,
            },
        };
        let target = ctx
            .target
            .as_ref()
            .map(Target::authority)
            .unwrap_or_default();
        let what = if ctx.url.is_empty() {
            session.req_header().uri.to_string()
        } else {
            ctx.url.clone()
        };
        let message = format!("btrfly: upstream {target} failed for {what}: {e}");
        // A refused body was noted by the session already; its reply (when
        // the head has not gone out yet) says why in btrfly's own words.
        let (message, kind) = match ctx.refused.take() {
            Some(why) => (why, "digest-mismatch"),
            None => {
                // Once a recording started, `logging` (which runs next)
                // decides whether it is whole and notes it if not.
                if let (Some(s), None) = (ctx.session.as_ref(), ctx.recorder.as_ref()) {
                    s.stats
                        .note_unrecorded(format!("not recorded: {what}: {e}"));
                }
                (message, "upstream")
            }
        };
        if code > 0 && session.response_written().is_none() {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_GATEWAY);
            let reply = Reply::text(status, message).with_header("x-btrfly-error", kind);
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
        let Some(recorder) = ctx.recorder.take() else {
            return;
        };
        // An upstream may answer before it read the request body (a 405 for
        // a POST to a static file); the key needs the digest of the whole
        // body the client sent, so hash whatever pingora did not forward.
        if let Some(hasher) = ctx.body_hasher.as_mut() {
            let drain = async {
                while !session.is_body_done() {
                    match session.read_request_body().await {
                        Ok(Some(chunk)) => {
                            hasher.update(&chunk);
                            ctx.body_size += chunk.len() as u64;
                        }
                        Ok(None) => break,
                        Err(_) => return false,
                    }
                }
                true
            };
            let drained = tokio::time::timeout(std::time::Duration::from_secs(30), drain)
                .await
                .unwrap_or(false);
            if !drained {
                recorder.session().stats.note_unrecorded(format!(
                    "not recorded: {}: the request body did not arrive whole",
                    ctx.url
                ));
                recorder.abort();
                return;
            }
        }
        // A client that hung up once the whole body had arrived from
        // upstream (Go's registry clients close the `/v2/` answer unread)
        // still leaves a whole recording.
        let client_left = e.is_some_and(|e| e.esource() == &pingora_error::ErrorSource::Downstream);
        let e = e.filter(|_| !ctx.closed_without_notify);
        let complete = (e.is_none() || client_left)
            && (ctx.upstream_done
                || ctx.bodiless
                || ctx.expected_len == Some(recorder.bytes_seen()));
        let length_ok = ctx.bodiless
            || ctx
                .expected_len
                .is_none_or(|len| len == recorder.bytes_seen());
        if complete && length_ok {
            let digest = ctx
                .body_hasher
                .take()
                .filter(|_| ctx.body_size > 0)
                .map(|h| hex::encode(h.finalize()));
            if let Err(msg) = recorder.commit(digest).await {
                if let Some(s) = &ctx.session {
                    s.stats.note_unrecorded(msg);
                }
            }
        } else if client_left && recorder.head_suffices() {
            if let Err(msg) = recorder.commit_head_alone().await {
                if let Some(s) = &ctx.session {
                    s.stats.note_unrecorded(msg);
                }
            }
        } else {
            let why = match e {
                Some(e) => e.to_string(),
                None => format!(
                    "the body ended after {} of {:?} bytes",
                    recorder.bytes_seen(),
                    ctx.expected_len
                ),
            };
            recorder
                .session()
                .stats
                .note_unrecorded(format!("not recorded: {}: {why}", ctx.url));
            recorder.abort();
        }
    }
}
