//! Record: in record mode a request goes upstream with a plan to tee its
//! answer into the tag (see `btrfly-record`).

use btrfly_record::RecordPlan;
use btrfly_store::Store;
use futures::future::BoxFuture;

use http::StatusCode;

use crate::decision::{Decision, Forward, Reply};
use crate::stage::{Answer, Classified};

/// Forward upstream with a [`RecordPlan`].
#[derive(Clone)]
pub struct Record {
    store: Store,
}

impl Record {
    /// Records into `store`.
    pub fn new(store: Store) -> Self {
        Record { store }
    }
}

impl Answer for Record {
    type In = Classified;

    fn answer(&self, input: Classified) -> BoxFuture<'static, Decision> {
        // Admitted only while the session is active; a `stop record` that
        // began waits for this recording before it seals the tag.
        let Some(admitted) = input.session.admit_recording() else {
            let reply = Reply::text(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "btrfly: session {} is stopping (its tag {} is being sealed): {} {} was not forwarded; start a new session to record it",
                    input.session.info.id,
                    input.session.tag(),
                    input.head.method,
                    input.head.uri
                ),
            )
            .with_header("x-btrfly-error", "session-stopping");
            return Box::pin(async move { Decision::Respond(reply) });
        };
        let plan = Box::new(RecordPlan {
            session: input.session,
            classification: input.class,
            adapter: input.adapter,
            method: input.head.method.to_string(),
            url: input.head.uri.to_string(),
            head: input.head,
            store: self.store.clone(),
            flight: None,
            admitted: Some(admitted),
        });
        Box::pin(async move {
            Decision::Forward(Forward {
                recording: Some(plan),
            })
        })
    }
}
