//! One tower layer for every step of the request path.
//!
//! Each step (auth, route, classify, replay, single flight, record) looks at
//! a request and either answers it with a [`Decision`] or hands it to the
//! next step. [`StepLayer`] turns such a [`Step`] into a tower layer, so the
//! service plumbing (readiness, the ready-service swap, boxing) lives here
//! once and the steps hold only their logic.

use std::convert::Infallible;
use std::task::{Context, Poll};

use futures::future::BoxFuture;
use http::Request;
use tower::util::BoxCloneSyncService;
use tower::{Layer, Service};

use crate::decision::Decision;
use crate::RequestBody;

/// The rest of the request path after a step.
pub type Next = BoxCloneSyncService<Request<RequestBody>, Decision, Infallible>;

/// One step of the request path.
pub trait Step: Clone + Send + Sync + 'static {
    /// Answers `req`, or passes it on with [`pass`]`(next, req)`.
    fn handle(&self, req: Request<RequestBody>, next: Next) -> BoxFuture<'static, Decision>;
}

/// Hands a request to the rest of the path (which was polled ready).
pub async fn pass(mut next: Next, req: Request<RequestBody>) -> Decision {
    match next.call(req).await {
        Ok(d) => d,
        Err(never) => match never {},
    }
}

/// A [`Step`] as a tower layer.
#[derive(Clone, Debug)]
pub struct StepLayer<T>(T);

/// Wraps a step into a layer (`ServiceBuilder::new().layer(step(Auth::new(..)))`).
pub fn step<T: Step>(step: T) -> StepLayer<T> {
    StepLayer(step)
}

impl<S, T> Layer<S> for StepLayer<T>
where
    T: Step,
    S: tower::Service<Request<RequestBody>, Response = Decision, Error = Infallible>
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
{
    type Service = StepService<T>;

    fn layer(&self, inner: S) -> StepService<T> {
        StepService {
            step: self.0.clone(),
            next: BoxCloneSyncService::new(inner),
        }
    }
}

#[derive(Clone)]
pub struct StepService<T> {
    step: T,
    next: Next,
}

impl<T: Step> Service<Request<RequestBody>> for StepService<T> {
    type Response = Decision;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Decision, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.next.poll_ready(cx)
    }

    fn call(&mut self, req: Request<RequestBody>) -> Self::Future {
        // The service that was polled ready goes with this request; a clone
        // stays behind for the next one (tower's readiness contract).
        let ready = self.next.clone();
        let next = std::mem::replace(&mut self.next, ready);
        let decided = self.step.handle(req, next);
        Box::pin(async move { Ok(decided.await) })
    }
}
