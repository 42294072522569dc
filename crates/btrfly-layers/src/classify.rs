//! Classification: the first adapter that claims a request builds its key.

use std::sync::Arc;

use btrfly_core::{Adapter, Classification, RequestHead};
use futures::future::BoxFuture;
use http::{Request, StatusCode};

use crate::decision::Decision;
use crate::step::{pass, Next, Step};
use crate::RequestBody;

/// The enabled adapters, most specific first; `files` (when enabled) last.
#[derive(Clone, Default)]
pub struct Adapters {
    list: Vec<Arc<dyn Adapter>>,
}

impl Adapters {
    pub fn new(list: Vec<Arc<dyn Adapter>>) -> Self {
        Adapters { list }
    }

    pub fn names(&self) -> Vec<&'static str> {
        self.list.iter().map(|a| a.name()).collect()
    }

    /// The first adapter that claims the request, and its verdict.
    pub fn classify(&self, head: &RequestHead) -> Option<(Arc<dyn Adapter>, Classification)> {
        self.list
            .iter()
            .find_map(|a| a.classify(head).map(|c| (a.clone(), c)))
    }

    pub fn by_name(&self, name: &str) -> Option<Arc<dyn Adapter>> {
        self.list.iter().find(|a| a.name() == name).cloned()
    }
}

/// Which adapter classified a request (a request extension).
#[derive(Clone)]
pub struct ClassifiedBy(pub Arc<dyn Adapter>);

/// Adapter → recording key, mutability and expected digest.
#[derive(Clone)]
pub struct Classify {
    adapters: Adapters,
}

impl Classify {
    pub fn new(adapters: Adapters) -> Self {
        Classify { adapters }
    }
}

impl Step for Classify {
    fn handle(&self, mut req: Request<RequestBody>, next: Next) -> BoxFuture<'static, Decision> {
        let head = RequestHead {
            method: req.method().clone(),
            uri: req.uri().clone(),
            headers: req.headers().clone(),
        };
        // A redirect recorded earlier in this session may have said that
        // this URL is another request's resource (`Adapter::redirect_alias`).
        let aliased = req
            .extensions()
            .get::<crate::route::Route>()
            .and_then(|route| route.session.alias(&head.canonical_url()))
            .and_then(|a| Some((self.adapters.by_name(a.adapter)?, a.classification)));
        let Some((adapter, mut class)) = aliased.or_else(|| self.adapters.classify(&head)) else {
            let msg = format!(
                "btrfly: no enabled adapter handles {} {} (enabled: {:?}); enable [adapters.files] to record plain URLs",
                head.method,
                head.uri,
                self.adapters.names()
            );
            return Box::pin(async move { Decision::text(StatusCode::FORBIDDEN, msg) });
        };
        if class.expected_sha256.is_none() && !head.headers.contains_key(http::header::RANGE) {
            // An index page recorded earlier in this session may have
            // announced this URL's digest (of the whole body: a part of it,
            // as a `Range` asks for, cannot be checked against it).
            if let Some(route) = req.extensions().get::<crate::route::Route>() {
                class.expected_sha256 = route.session.hint(&head.canonical_url());
            }
        }
        if head.headers.contains_key(http::header::RANGE) {
            // A part of a body that failed its digest in this session (a
            // client resuming the download that was cut off) cannot be
            // checked: refuse it rather than complete a tampered file. The
            // refusal stands for the session, so it is a 409 that clients
            // do not retry (a 502 would be retried, and reported as a
            // network problem).
            let refused = req
                .extensions()
                .get::<crate::route::Route>()
                .and_then(|route| route.session.refusal(&head.canonical_url()));
            if let Some(why) = refused {
                let reply = crate::Reply::text(
                    StatusCode::CONFLICT,
                    format!(
                        "btrfly: refused a part of a body that did not match its digest: {why}"
                    ),
                )
                .with_header("x-btrfly-error", "digest-mismatch");
                return Box::pin(async move { Decision::Respond(reply) });
            }
        }
        req.extensions_mut().insert(class);
        req.extensions_mut().insert(head);
        req.extensions_mut().insert(ClassifiedBy(adapter));
        Box::pin(pass(next, req))
    }
}
