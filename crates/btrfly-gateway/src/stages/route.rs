//! Tag routing: a session's tag and mode decide where a request goes.

use futures::future::BoxFuture;

use crate::decision::Decision;
use crate::log::{field, note};
use crate::stage::{pass, Authenticated, Next, Routed, Stage};

/// Session → tag and mode; counts the request.
#[derive(Clone, Copy, Debug, Default)]
pub struct Routing;

impl Stage for Routing {
    type In = Authenticated;
    type Out = Routed;

    fn run(&self, input: Authenticated, next: Next<Routed>) -> BoxFuture<'static, Decision> {
        let Authenticated { request, session } = input;
        session.stats.count_request();
        note(field::SESSION, &session.info.id);
        note(field::TAG, session.tag());
        note(field::MODE, session.mode());
        let routed = Routed {
            tag: session.tag().clone(),
            mode: session.mode(),
            request,
            session,
        };
        Box::pin(pass(next, routed))
    }
}
