//! The control API server (hyper, with tower-http guarding the token).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use btrfly_core::Tag;
use btrfly_layers::{SessionError, SessionRegistry};
use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use serde::Serialize;
use tokio::net::TcpListener;
use tower::ServiceBuilder;
use tower_http::validate_request::ValidateRequestHeaderLayer;

use crate::api::{ErrorBody, StartRequest, StartResponse, StopRequest, TagList, TagShow};

pub struct ControlState {
    pub sessions: Arc<SessionRegistry>,
    pub ca_pem: String,
    /// What clients put in their proxy URL.
    pub proxy_advertise: String,
    pub token: String,
}

pub struct ControlServer {
    listener: TcpListener,
    state: Arc<ControlState>,
}

type Body = Full<Bytes>;

fn json<T: Serialize>(status: StatusCode, value: &T) -> Response<Body> {
    let body = serde_json::to_vec_pretty(value).unwrap_or_else(|e| {
        format!("{{\"error\":\"serialising the response: {e}\"}}").into_bytes()
    });
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    resp
}

fn error(status: StatusCode, message: impl Into<String>) -> Response<Body> {
    json(
        status,
        &ErrorBody {
            error: message.into(),
        },
    )
}

fn session_error(e: SessionError) -> Response<Body> {
    let status = match &e {
        SessionError::Sealed(_) | SessionError::Busy { .. } | SessionError::EmptyTag(_) => {
            StatusCode::CONFLICT
        }
        SessionError::UnknownTag(_) | SessionError::NotFound(_) => StatusCode::NOT_FOUND,
        SessionError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
    };
    error(status, e.to_string())
}

/// Control requests are small JSON documents.
const MAX_BODY: usize = 64 * 1024;

impl ControlServer {
    pub async fn bind(addr: SocketAddr, state: ControlState) -> std::io::Result<ControlServer> {
        Ok(ControlServer {
            listener: TcpListener::bind(addr).await?,
            state: Arc::new(state),
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    pub async fn run(self, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        let token = format!("Bearer {}", self.state.token);
        let state = self.state.clone();
        let svc = ServiceBuilder::new()
            .layer(ValidateRequestHeaderLayer::custom(
                move |req: &mut Request<Incoming>| -> Result<(), Response<Body>> {
                    let open = req.method() == Method::GET
                        && matches!(req.uri().path(), "/v1/health" | "/v1/ca");
                    let presented = req
                        .headers()
                        .get(header::AUTHORIZATION)
                        .map(|v| v.as_bytes());
                    if open || presented == Some(token.as_bytes()) {
                        Ok(())
                    } else {
                        Err(error(
                            StatusCode::UNAUTHORIZED,
                            "wrong or missing control token: pass --token or BTRFLY_TOKEN (the server writes it to <data_dir>/token)",
                        ))
                    }
                },
            ))
            .service_fn(move |req| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(route(&state, req).await) }
            });
        loop {
            tokio::select! {
                accepted = self.listener.accept() => {
                    let Ok((tcp, _)) = accepted else { continue };
                    let svc = TowerToHyperService::new(svc.clone());
                    tokio::spawn(async move {
                        let conn = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(tcp), svc);
                        if let Err(e) = conn.await {
                            tracing::debug!("control connection: {e}");
                        }
                    });
                }
                _ = shutdown.changed() => {
                    if *shutdown.borrow() {
                        return;
                    }
                }
            }
        }
    }
}

async fn read_json<T: serde::de::DeserializeOwned>(
    req: Request<Incoming>,
) -> Result<T, Response<Body>> {
    let bytes = Limited::new(req.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| {
            error(
                StatusCode::BAD_REQUEST,
                format!("reading the request body: {e}"),
            )
        })?
        .to_bytes();
    serde_json::from_slice(&bytes)
        .map_err(|e| error(StatusCode::BAD_REQUEST, format!("malformed request: {e}")))
}

/// Like [`read_json`], but an empty body is `T::default()`.
async fn read_json_or_default<T: serde::de::DeserializeOwned + Default>(
    req: Request<Incoming>,
) -> Result<T, Response<Body>> {
    let bytes = Limited::new(req.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| {
            error(
                StatusCode::BAD_REQUEST,
                format!("reading the request body: {e}"),
            )
        })?
        .to_bytes();
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
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
    mode: btrfly_core::Mode,
) -> Result<Vec<String>, Response<Body>> {
    if mode != btrfly_core::Mode::Playback {
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

async fn route(state: &ControlState, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().to_owned();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (req.method().clone(), segments.as_slice()) {
        (Method::GET, ["v1", "health"]) => json(StatusCode::OK, &serde_json::json!({"ok": true})),
        (Method::GET, ["v1", "ca"]) => {
            let mut resp = Response::new(Full::new(Bytes::from(state.ca_pem.clone())));
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                http::HeaderValue::from_static("application/x-pem-file"),
            );
            resp
        }
        (Method::POST, ["v1", "sessions"]) => {
            let start: StartRequest = match read_json(req).await {
                Ok(s) => s,
                Err(resp) => return resp,
            };
            let tag = match Tag::new(&start.tag) {
                Ok(t) => t,
                Err(e) => return error(StatusCode::BAD_REQUEST, e.to_string()),
            };
            let warnings = match start_warnings(state, &tag, start.mode).await {
                Ok(w) => w,
                Err(resp) => return resp,
            };
            match state.sessions.create(tag, start.mode, start.force).await {
                Ok(new) => json(
                    StatusCode::CREATED,
                    &StartResponse {
                        id: new.session.info.id.clone(),
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
        (Method::GET, ["v1", "sessions", id]) => match state.sessions.get(id) {
            Some(s) => json(StatusCode::OK, &s.summary()),
            None => error(
                StatusCode::NOT_FOUND,
                format!("no running session {id} on this server"),
            ),
        },
        (Method::POST, ["v1", "sessions", id, "stop"]) => {
            let id = (*id).to_owned();
            let stop: StopRequest = match read_json_or_default(req).await {
                Ok(s) => s,
                Err(resp) => return resp,
            };
            match state.sessions.stop_with(&id, stop.seal).await {
                Ok(summary) => json(StatusCode::OK, &summary),
                Err(e) => session_error(e),
            }
        }
        (Method::GET, ["v1", "tags"]) => match state.sessions.store().list_tags().await {
            Ok(tags) => json(StatusCode::OK, &TagList { tags }),
            Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
        },
        (Method::GET, ["v1", "tags", name]) => {
            let tag = match Tag::new(name) {
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
        _ => error(
            StatusCode::NOT_FOUND,
            format!("no such control endpoint: {} {path}", req.method()),
        ),
    }
}
