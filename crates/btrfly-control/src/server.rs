//! The control API server: an axum router; tokens checked by one
//! middleware ([`crate::auth::authenticate`]), the scope each route needs
//! named by its handler's [`Need`] argument.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use btrfly_core::api::{
    ErrorBody, SessionList, StartRequest, StartResponse, StopRequest, TagList, TagShow,
    TokenCreateRequest, TokenList, WhoAmI,
};
use btrfly_core::{Mode, Tag, TokenId, TokenName};
use btrfly_session::{SessionError, SessionRegistry};
use http::{header, HeaderValue, Method, StatusCode};
use serde::Serialize;
use tokio::net::TcpListener;

use crate::auth::{authenticate, Admin, Need, Read, Record};
use crate::tokens::{TokenError, Tokens};

/// What the control API serves from.
pub struct ControlState {
    /// The sessions of this replica.
    pub sessions: Arc<SessionRegistry>,
    /// The CA certificate, PEM.
    pub ca_pem: String,
    /// What clients put in their proxy URL.
    pub proxy_advertise: String,
    /// The control tokens (`Authorization: Bearer TOKEN`).
    pub tokens: Arc<Tokens>,
    /// What `GET /metrics` shows: the sessions' counters
    /// ([`btrfly_session::Metrics`], registered by `btrfly serve`) and the
    /// store's operations.
    pub metrics: Arc<prometheus_client::registry::Registry>,
    /// The address of btrfly's DNS server that build machines put in their
    /// resolver (transparent mode), when it serves on port 53.
    pub dns_advertise: Option<std::net::IpAddr>,
    /// The gateway's adapter registry, for keying imported exchanges.
    pub classify: crate::archive::Classifier,
    /// Notified when a mirror entry is declared here, so this replica's
    /// fetcher starts on it at once (others find it on their next look).
    pub mirror_added: Arc<tokio::sync::Notify>,
}

/// The control API's listener and router.
pub struct ControlServer {
    listener: TcpListener,
    state: Arc<ControlState>,
    limits: ControlLimits,
}

/// What bounds the control listener, from `[limits]` (the keys the proxy
/// listener uses too).
#[derive(Clone, Copy, Debug)]
pub struct ControlLimits {
    /// Connections served at once (`limits.max_connections`); one more
    /// gets `503 Service Unavailable` with a JSON [`ErrorBody`] and is
    /// closed.
    pub max_connections: usize,
    /// How long a client may take to send a request head
    /// (`limits.tls_handshake_timeout_secs`): the first on a new
    /// connection, and each next one on a kept-alive connection, counted
    /// from when the previous answer was sent. Then the connection is
    /// closed (the slow-loris defence).
    pub opening_timeout: std::time::Duration,
}

impl Default for ControlLimits {
    /// 4096 connections, 10 s: `[limits]`'s defaults.
    fn default() -> ControlLimits {
        ControlLimits {
            max_connections: 4096,
            opening_timeout: std::time::Duration::from_secs(10),
        }
    }
}

type Shared = State<Arc<ControlState>>;

/// Control requests are small JSON documents (an import's WARC body is
/// streamed, not collected, so this limit does not apply to it).
const MAX_BODY: usize = 64 * 1024;

pub(crate) fn json<T: Serialize>(status: StatusCode, value: &T) -> Response {
    let body = serde_json::to_vec_pretty(value).unwrap_or_else(|e| {
        format!("{{\"error\":\"serialising the response: {e}\"}}").into_bytes()
    });
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}

pub(crate) fn error(status: StatusCode, message: impl Into<String>) -> Response {
    json(
        status,
        &ErrorBody {
            error: message.into(),
        },
    )
}

pub(crate) fn session_error(e: SessionError) -> Response {
    let status = match &e {
        SessionError::Sealed(_)
        | SessionError::Busy { .. }
        | SessionError::EmptyTag(_)
        | SessionError::AddressTaken { .. } => StatusCode::CONFLICT,
        SessionError::UnknownTag(_) | SessionError::NotFound(_) => StatusCode::NOT_FOUND,
        SessionError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
        SessionError::Id(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    error(status, e.to_string())
}

/// The routes (see the crate docs), with the token check around them,
/// and the web UI's ([`crate::ui::routes`]).
pub fn router(state: Arc<ControlState>) -> Router {
    Router::new()
        .route("/v1/health", get(health))
        .route("/metrics", get(metrics))
        .route("/v1/ca", get(ca))
        .route("/v1/sessions", post(start).get(sessions))
        .route("/v1/sessions/{id}", get(session))
        .route("/v1/sessions/{id}/stop", post(stop))
        .route("/v1/sessions/{id}/bind", post(crate::transparent::bind))
        .route("/v1/tags", get(tags))
        .route("/v1/tags/{tag}", get(tag))
        .merge(crate::archive::routes())
        .merge(crate::mirror::routes())
        .route("/v1/whoami", get(whoami))
        .route("/v1/tokens", get(token_list).post(token_create))
        .route("/v1/tokens/{id}/revoke", post(token_revoke))
        .fallback(not_found)
        .method_not_allowed_fallback(not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(middleware::from_fn_with_state(state.clone(), authenticate))
        // The web UI: its own session cookie instead of a bearer token.
        .merge(crate::ui::routes(state.clone()))
        .with_state(state)
}

async fn not_found(method: Method, uri: http::Uri) -> Response {
    error(
        StatusCode::NOT_FOUND,
        format!("no such control endpoint: {method} {}", uri.path()),
    )
}

async fn health() -> Response {
    json(StatusCode::OK, &serde_json::json!({"ok": true}))
}

/// `GET /metrics`: the OpenMetrics text exposition (what Prometheus
/// scrapes), no token needed: counts and durations only.
async fn metrics(State(state): Shared) -> Response {
    // Brings the active-session gauges up to date.
    let _ = state.sessions.metrics();
    let mut text = String::new();
    if let Err(e) = prometheus_client::encoding::text::encode(&mut text, &state.metrics) {
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("encoding the metrics: {e}"),
        );
    }
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
        )],
        text,
    )
        .into_response()
}

async fn ca(State(state): Shared) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-pem-file"),
        )],
        state.ca_pem.clone(),
    )
        .into_response()
}

/// A JSON body; an empty one is `T::default()` when `default` is given.
pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(
    body: Result<Bytes, BytesRejection>,
    default: Option<T>,
) -> Result<T, Response> {
    let bytes = body.map_err(|e| {
        error(
            StatusCode::BAD_REQUEST,
            format!("reading the request body: {}", e.body_text()),
        )
    })?;
    if let Some(d) = default {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(d);
        }
    }
    serde_json::from_slice(&bytes)
        .map_err(|e| error(StatusCode::BAD_REQUEST, format!("malformed request: {e}")))
}

/// What a client starting a session should be told: playback of a tag
/// whose recording was never sealed (a failed `btrfly run --record`, or a
/// recording still running).
async fn start_warnings(
    state: &ControlState,
    tag: &Tag,
    mode: Mode,
) -> Result<Vec<String>, Response> {
    if mode != Mode::Playback {
        return Ok(Vec::new());
    }
    match state.sessions.store().tag_meta(tag).await {
        Ok(Some(meta)) if !meta.sealed => Ok(vec![format!(
            "tag {tag} is not sealed: its recording did not finish (a failed `btrfly run --record`, or a record session still running); playback answers from what was recorded so far"
        )]),
        Ok(_) => Ok(Vec::new()),
        Err(e) => Err(error(StatusCode::SERVICE_UNAVAILABLE, e.to_string())),
    }
}

async fn start(
    _: Need<Record>,
    State(state): Shared,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let start: StartRequest = match parse_json(body, None) {
        Ok(s) => s,
        Err(resp) => return resp,
    };
    let tag = match Tag::new(&start.tag) {
        Ok(t) => t,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.to_string()),
    };
    if start.mode == Mode::Record && tag.as_str() == btrfly_core::mirror::MIRROR_TAG {
        return error(
            StatusCode::FORBIDDEN,
            format!("tag {tag} is the explicit mirror's own: it is recorded by the server's mirror fetcher only (declare artifacts with `btrfly mirror add`)"),
        );
    }
    let warnings = match start_warnings(&state, &tag, start.mode).await {
        Ok(w) => w,
        Err(resp) => return resp,
    };
    match state.sessions.create(tag, start.mode, start.force).await {
        Ok(new) => json(
            StatusCode::CREATED,
            &StartResponse {
                id: new.session.info.id.to_string(),
                secret: new.secret,
                tag: new.session.tag().to_string(),
                mode: new.session.mode(),
                proxy: state.proxy_advertise.clone(),
                ca_pem: state.ca_pem.clone(),
                warnings,
            },
        ),
        Err(e) => session_error(e),
    }
}

/// `GET /v1/sessions`: every active session, with its lease.
async fn sessions(_: Need<Read>, State(state): Shared) -> Response {
    match state.sessions.listing().await {
        Ok(sessions) => json(
            StatusCode::OK,
            &SessionList {
                lease_secs: state.sessions.lease().as_secs(),
                sessions,
            },
        ),
        Err(e) => session_error(e),
    }
}

async fn session(_: Need<Read>, State(state): Shared, Path(id): Path<String>) -> Response {
    state.sessions.touch(&id);
    match state.sessions.get(&id) {
        Some(s) => json(StatusCode::OK, &s.summary()),
        None => error(
            StatusCode::NOT_FOUND,
            format!("no running session {id} on this server"),
        ),
    }
}

/// Stopping needs the `record` scope and the session's secret (the caller
/// started it), or the `admin` scope (ending someone else's session).
async fn stop(
    need: Need<Record>,
    State(state): Shared,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let stop: StopRequest = match parse_json(body, Some(StopRequest::default())) {
        Ok(s) => s,
        Err(resp) => return resp,
    };
    if !need.caller.scope.allows(btrfly_core::Scope::Admin) {
        let owner = match &stop.secret {
            Some(secret) => match state.sessions.secret_matches(&id, secret).await {
                Ok(m) => m,
                Err(e) => return session_error(e),
            },
            None => false,
        };
        if !owner {
            let c = &need.caller;
            return error(
                StatusCode::FORBIDDEN,
                format!(
                    "session {id} was not started with this client's credential: stopping another's session needs a token with the admin scope (`btrfly stop --session {id}`); the token {} ({}) has {}",
                    c.name, c.id, c.scope
                ),
            );
        }
    }
    match state.sessions.stop_with(&id, stop.seal).await {
        Ok(summary) => json(StatusCode::OK, &summary),
        Err(e) => session_error(e),
    }
}

async fn tags(_: Need<Read>, State(state): Shared) -> Response {
    match state.sessions.store().list_tags().await {
        Ok(tags) => json(StatusCode::OK, &TagList { tags }),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

async fn tag(_: Need<Read>, State(state): Shared, Path(name): Path<String>) -> Response {
    let tag = match Tag::new(&name) {
        Ok(t) => t,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.to_string()),
    };
    let store = state.sessions.store();
    let meta = match store.tag_meta(&tag).await {
        Ok(Some(m)) => m,
        Ok(None) => return error(StatusCode::NOT_FOUND, format!("no tag {tag}")),
        Err(e) => return error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    };
    match store.list_entries(&tag).await {
        Ok(entries) => json(StatusCode::OK, &TagShow { meta, entries }),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

async fn whoami(need: Need<Read>) -> Response {
    let c = need.caller;
    json(
        StatusCode::OK,
        &WhoAmI {
            id: c.id,
            name: c.name,
            scope: c.scope,
        },
    )
}

fn token_error(e: TokenError) -> Response {
    let status = match &e {
        TokenError::NameTaken(_) | TokenError::AlreadyRevoked(_) => StatusCode::CONFLICT,
        TokenError::NotFound(_) => StatusCode::NOT_FOUND,
        TokenError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
    };
    error(status, e.to_string())
}

async fn token_list(_: Need<Admin>, State(state): Shared) -> Response {
    match state.tokens.list().await {
        Ok(tokens) => json(StatusCode::OK, &TokenList { tokens }),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

async fn token_create(
    need: Need<Admin>,
    State(state): Shared,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let req: TokenCreateRequest = match parse_json(body, None) {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let name = match TokenName::new(&req.name) {
        Ok(n) => n,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.to_string()),
    };
    match state
        .tokens
        .create(name, req.scope, &need.caller.name)
        .await
    {
        Ok(created) => {
            tracing::info!(id = %created.info.id, name = %created.info.name, scope = %created.info.scope, by = %need.caller.name, "control token created");
            json(StatusCode::CREATED, &created)
        }
        Err(e) => token_error(e),
    }
}

async fn token_revoke(need: Need<Admin>, State(state): Shared, Path(id): Path<String>) -> Response {
    let id = match TokenId::new(&id) {
        Ok(i) => i,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.to_string()),
    };
    match state.tokens.revoke(&id).await {
        Ok(info) => {
            tracing::info!(id = %info.id, name = %info.name, by = %need.caller.name, "control token revoked");
            json(StatusCode::OK, &info)
        }
        Err(e) => token_error(e),
    }
}

impl ControlServer {
    /// Binds `addr`.
    ///
    /// # Errors
    /// The address cannot be bound.
    pub async fn bind(addr: SocketAddr, state: ControlState) -> std::io::Result<ControlServer> {
        Ok(ControlServer {
            listener: TcpListener::bind(addr).await?,
            state: Arc::new(state),
            limits: ControlLimits::default(),
        })
    }

    /// Bounds connections with `limits` instead of the defaults.
    #[must_use]
    pub fn with_limits(mut self, limits: ControlLimits) -> ControlServer {
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

    /// Serves HTTP/1.1 until `shutdown` turns true: at most
    /// [`ControlLimits::max_connections`] connections at once, each closed
    /// when a request head takes longer than
    /// [`ControlLimits::opening_timeout`]. On shutdown, idle connections
    /// close at once and requests in flight get up to 30 s to finish.
    pub async fn run(self, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        let app = router(self.state);
        let ControlLimits {
            max_connections: max,
            opening_timeout,
        } = self.limits;
        let permits = Arc::new(tokio::sync::Semaphore::new(max));
        let (closing, _) = tokio::sync::watch::channel(false);
        let mut connections = tokio::task::JoinSet::new();
        loop {
            tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok((tcp, peer)) => {
                        let Ok(permit) = permits.clone().try_acquire_owned() else {
                            tracing::warn!(%peer, "control: refused a connection: {max} connections open (limits.max_connections)");
                            tokio::spawn(async move {
                                let _ = tokio::time::timeout(
                                    std::time::Duration::from_secs(1),
                                    refuse_over_limit(tcp, max),
                                )
                                .await;
                            });
                            continue;
                        };
                        let app = app.clone();
                        let closing = closing.subscribe();
                        connections.spawn(async move {
                            serve_connection(app, tcp, peer, opening_timeout, closing).await;
                            drop(permit);
                        });
                    }
                    Err(e) => {
                        // Out of file descriptors and the like: back off, keep serving.
                        tracing::warn!("control: accepting a connection: {e}");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    }
                },
                // Reap finished connections as they end.
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
                changed = shutdown.changed() => {
                    if changed.is_err() || *shutdown.borrow() {
                        break;
                    }
                }
            }
        }
        drop(self.listener);
        let _ = closing.send(true);
        let drained = tokio::time::timeout(std::time::Duration::from_secs(30), async {
            while connections.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                open = connections.len(),
                "control: requests still in flight 30 s after shutdown; closing them"
            );
            connections.abort_all();
        }
    }
}

/// One control connection: HTTP/1.1 with a deadline on every request head.
async fn serve_connection(
    app: Router,
    tcp: tokio::net::TcpStream,
    peer: SocketAddr,
    opening_timeout: std::time::Duration,
    mut closing: tokio::sync::watch::Receiver<bool>,
) {
    use tower::ServiceExt as _;
    let _ = tcp.set_nodelay(true);
    // What `ConnectInfo<SocketAddr>` extracts (transparent-mode binding
    // reads the caller's address).
    let service = app.map_request(move |mut req: http::Request<hyper::body::Incoming>| {
        req.extensions_mut()
            .insert(axum::extract::ConnectInfo(peer));
        req
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(opening_timeout);
    let connection = builder.serve_connection(
        hyper_util::rt::TokioIo::new(tcp),
        hyper_util::service::TowerToHyperService::new(service),
    );
    tokio::pin!(connection);
    let ended = tokio::select! {
        ended = connection.as_mut() => ended,
        () = async { let _ = closing.wait_for(|c| *c).await; } => {
            connection.as_mut().graceful_shutdown();
            connection.as_mut().await
        }
    };
    if let Err(e) = ended {
        if e.is_timeout() {
            tracing::info!(
                %peer,
                "control: closed a connection that sent no complete request head within {:.1}s (limits.tls_handshake_timeout_secs)",
                opening_timeout.as_secs_f64()
            );
        } else {
            tracing::debug!(%peer, "control: connection ended: {e}");
        }
    }
}

/// Answers a connection over the limit with a 503 and closes it. What the
/// client already sent is read first: a socket closed with unread bytes
/// sends a reset, which can overtake the answer.
async fn refuse_over_limit(mut tcp: tokio::net::TcpStream, max: usize) -> std::io::Result<()> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let body = serde_json::to_string(&ErrorBody {
        error: format!(
            "the control API serves {max} connections at once (limits.max_connections); try again later"
        ),
    })
    .unwrap_or_default();
    let answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut scratch = [0u8; 4096];
    let _ = tokio::time::timeout(
        std::time::Duration::from_millis(200),
        tcp.read(&mut scratch),
    )
    .await;
    tcp.write_all(answer.as_bytes()).await?;
    tcp.shutdown().await?;
    while tcp.read(&mut scratch).await? > 0 {}
    Ok(())
}
