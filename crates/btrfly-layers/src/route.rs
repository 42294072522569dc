//! Tag routing: a session's tag and mode decide where a request goes.

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use btrfly_core::{Mode, Tag};
use futures::future::BoxFuture;
use http::{Request, StatusCode};
use tower::{Layer, Service};

use crate::decision::Decision;
use crate::sessions::LiveSession;
use crate::RequestBody;

/// Where a request is routed: typed, so inner layers never re-parse.
#[derive(Clone, Debug)]
pub struct Route {
    pub session: Arc<LiveSession>,
    pub tag: Tag,
    pub mode: Mode,
}

#[derive(Clone, Copy, Debug, Default)]
pub struct RouteLayer;

impl<S> Layer<S> for RouteLayer {
    type Service = RouteService<S>;
    fn layer(&self, inner: S) -> RouteService<S> {
        RouteService { inner }
    }
}

#[derive(Clone)]
pub struct RouteService<S> {
    inner: S,
}

impl<S> Service<Request<RequestBody>> for RouteService<S>
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
        let mut inner = self.inner.clone();
        std::mem::swap(&mut inner, &mut self.inner);
        Box::pin(async move {
            let Some(session) = req.extensions().get::<Arc<LiveSession>>().cloned() else {
                return Ok(Decision::text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "btrfly: request reached tag routing without a session (auth layer missing)",
                ));
            };
            session.stats.count_request();
            let route = Route {
                tag: session.tag().clone(),
                mode: session.mode(),
                session,
            };
            req.extensions_mut().insert(route);
            inner.call(req).await
        })
    }
}
