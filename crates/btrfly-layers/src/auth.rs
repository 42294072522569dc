//! Auth: the proxy credential decides which session a request belongs to.
//!
//! The gateway is never an open relay: a request without a valid session
//! credential is answered 407 here and goes nowhere.

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::future::BoxFuture;
use http::{header, Request, StatusCode};
use tower::{Layer, Service};

use crate::decision::{Decision, Reply};
use crate::sessions::SessionRegistry;
use crate::RequestBody;

#[derive(Clone)]
pub struct AuthLayer {
    sessions: Arc<SessionRegistry>,
}

impl AuthLayer {
    pub fn new(sessions: Arc<SessionRegistry>) -> Self {
        AuthLayer { sessions }
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = Auth<S>;
    fn layer(&self, inner: S) -> Auth<S> {
        Auth {
            inner,
            sessions: self.sessions.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Auth<S> {
    inner: S,
    sessions: Arc<SessionRegistry>,
}

/// The 407 every unauthenticated request gets.
pub fn proxy_auth_required(detail: &str) -> Reply {
    Reply::text(
        StatusCode::PROXY_AUTHENTICATION_REQUIRED,
        format!("btrfly: {detail}: start a session with `btrfly start record|playback --tag=TAG` and use the proxy URL it prints"),
    )
    .with_header("proxy-authenticate", "Basic realm=\"btrfly\"")
}

impl<S> Service<Request<RequestBody>> for Auth<S>
where
    S: Service<Request<RequestBody>, Response = Decision, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send,
{
    type Response = Decision;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Decision, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<RequestBody>) -> Self::Future {
        let sessions = self.sessions.clone();
        let mut inner = self.inner.clone();
        std::mem::swap(&mut inner, &mut self.inner);
        Box::pin(async move {
            let credential = req
                .headers_mut()
                .remove(header::PROXY_AUTHORIZATION)
                .map(|v| v.as_bytes().to_vec());
            let Some(session) = sessions.authenticate_header(credential.as_deref()).await else {
                let detail = if credential.is_some() {
                    "the proxy credential is not valid (wrong, or its session was stopped)"
                } else {
                    "this proxy needs a session credential"
                };
                return Ok(Decision::Respond(proxy_auth_required(detail)));
            };
            req.extensions_mut().insert(session);
            inner.call(req).await
        })
    }
}
