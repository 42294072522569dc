//! Tag routing: a session's tag and mode decide where a request goes.

use std::sync::Arc;

use btrfly_core::{Mode, Tag};
use futures::future::BoxFuture;
use http::{Request, StatusCode};

use crate::decision::Decision;
use crate::sessions::LiveSession;
use crate::step::{pass, Next, Step};
use crate::RequestBody;

/// Where a request is routed: typed, so inner layers never re-parse.
#[derive(Clone, Debug)]
pub struct Route {
    pub session: Arc<LiveSession>,
    pub tag: Tag,
    pub mode: Mode,
}

/// Session → tag and mode (the `Route` extension); counts the request.
#[derive(Clone, Copy, Debug, Default)]
pub struct Routing;

impl Step for Routing {
    fn handle(&self, mut req: Request<RequestBody>, next: Next) -> BoxFuture<'static, Decision> {
        Box::pin(async move {
            let Some(session) = req.extensions().get::<Arc<LiveSession>>().cloned() else {
                return Decision::text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "btrfly: request reached tag routing without a session (auth layer missing)",
                );
            };
            session.stats.count_request();
            let route = Route {
                tag: session.tag().clone(),
                mode: session.mode(),
                session,
            };
            req.extensions_mut().insert(route);
            pass(next, req).await
        })
    }
}
