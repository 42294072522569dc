//! Record: in record mode a request goes upstream with a plan to tee its
//! answer into the tag (see `btrfly-record`).

use btrfly_record::RecordPlan;
use btrfly_store::Store;
use futures::future::BoxFuture;

use crate::decision::{Decision, Forward};
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
        let plan = Box::new(RecordPlan {
            session: input.session,
            classification: input.class,
            adapter: input.adapter,
            method: input.head.method.to_string(),
            url: input.head.uri.to_string(),
            head: input.head,
            store: self.store.clone(),
            flight: None,
        });
        Box::pin(async move {
            Decision::Forward(Forward {
                recording: Some(plan),
            })
        })
    }
}
