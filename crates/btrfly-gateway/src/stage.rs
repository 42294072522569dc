//! Typed stages: each step of the request path takes the previous step's
//! output type, so a missing or out-of-order step does not compile.
//!
//! ```text
//! Request<RequestBody> ─Auth─► Authenticated ─Routing─► Routed ─Classify─► Classified ─ByMode─► Decision
//! ```
//!
//! A [`Stage`] turns its input into its output and hands it on (or answers
//! with a [`Decision`] itself: a rejection is an answer, never an error).
//! [`StageLayer`] makes it a tower layer whose inner service must accept
//! the stage's output type; an [`Answer`] is the innermost service of a
//! chain. The tower plumbing (readiness, the ready-service swap, boxing)
//! lives here once, and the stages hold only their logic.

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use btrfly_core::{Adapter, Classification, Mode, RequestHead, Tag};
use btrfly_session::LiveSession;
use futures::future::BoxFuture;
use http::Request;
use tower::util::BoxCloneSyncService;
use tower::{Layer, Service};

use crate::body::RequestBody;
use crate::decision::Decision;

/// A request whose proxy credential named a live session.
pub struct Authenticated {
    /// The request (its `Proxy-Authorization` removed).
    pub request: Request<RequestBody>,
    /// The session it belongs to.
    pub session: Arc<LiveSession>,
}

/// A request routed to its session's tag and mode (and counted).
pub struct Routed {
    /// The request.
    pub request: Request<RequestBody>,
    /// The session.
    pub session: Arc<LiveSession>,
    /// The session's tag.
    pub tag: Tag,
    /// The session's mode.
    pub mode: Mode,
}

/// A request an adapter claimed: its key, mutability and expected digest.
pub struct Classified {
    /// The request head (absolute URI, no proxy credential).
    pub head: RequestHead,
    /// The request body, pulled only when a stage needs it.
    pub body: RequestBody,
    /// The session.
    pub session: Arc<LiveSession>,
    /// The session's tag.
    pub tag: Tag,
    /// The session's mode.
    pub mode: Mode,
    /// The adapter's verdict (with the session's digest hint or alias).
    pub class: Classification,
    /// The adapter that gave it.
    pub adapter: Arc<dyn Adapter>,
}

/// The rest of the path after a stage, taking `T`.
pub type Next<T> = BoxCloneSyncService<T, Decision, Infallible>;

/// One step of the request path: `In` → `Out`, or an answer.
pub trait Stage: Clone + Send + Sync + 'static {
    /// What this stage takes.
    type In: Send + 'static;
    /// What it hands on.
    type Out: Send + 'static;
    /// Answers `input`, or passes its output on with [`pass`]`(next, out)`.
    fn run(&self, input: Self::In, next: Next<Self::Out>) -> BoxFuture<'static, Decision>;
}

/// The innermost step of a chain: it always answers.
pub trait Answer: Clone + Send + Sync + 'static {
    /// What it takes.
    type In: Send + 'static;
    /// The decision for `input`.
    fn answer(&self, input: Self::In) -> BoxFuture<'static, Decision>;
}

/// Hands `input` to the rest of the path (which was polled ready).
pub async fn pass<T>(mut next: Next<T>, input: T) -> Decision {
    match next.call(input).await {
        Ok(d) => d,
        Err(never) => match never {},
    }
}

/// A [`Stage`] as a tower layer.
#[derive(Clone, Debug)]
pub struct StageLayer<T>(T);

/// Wraps a stage into a layer (`ServiceBuilder::new().layer(stage(Auth::new(..)))`).
pub fn stage<T: Stage>(stage: T) -> StageLayer<T> {
    StageLayer(stage)
}

impl<S, T> Layer<S> for StageLayer<T>
where
    T: Stage,
    S: Service<T::Out, Response = Decision, Error = Infallible> + Clone + Send + Sync + 'static,
    S::Future: Send + 'static,
{
    type Service = StageService<T>;

    fn layer(&self, inner: S) -> StageService<T> {
        StageService {
            stage: self.0.clone(),
            next: BoxCloneSyncService::new(inner),
        }
    }
}

/// A [`Stage`] with the rest of the path: a tower service of `T::In`.
pub struct StageService<T: Stage> {
    stage: T,
    next: Next<T::Out>,
}

impl<T: Stage> Clone for StageService<T> {
    fn clone(&self) -> Self {
        StageService {
            stage: self.stage.clone(),
            next: self.next.clone(),
        }
    }
}

impl<T: Stage> Service<T::In> for StageService<T> {
    type Response = Decision;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Decision, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.next.poll_ready(cx)
    }

    fn call(&mut self, input: T::In) -> Self::Future {
        // The service that was polled ready goes with this request; a clone
        // stays behind for the next one (tower's readiness contract).
        let ready = self.next.clone();
        let next = std::mem::replace(&mut self.next, ready);
        let decided = self.stage.run(input, next);
        Box::pin(async move { Ok(decided.await) })
    }
}

/// An [`Answer`] as a tower service.
#[derive(Clone, Debug)]
pub struct AnswerService<T>(T);

/// Wraps an answer into a service (the innermost of a `ServiceBuilder`).
pub fn answer<T: Answer>(answer: T) -> AnswerService<T> {
    AnswerService(answer)
}

impl<T: Answer> Service<T::In> for AnswerService<T> {
    type Response = Decision;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Decision, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, input: T::In) -> Self::Future {
        let decided = self.0.answer(input);
        Box::pin(async move { Ok(decided.await) })
    }
}
