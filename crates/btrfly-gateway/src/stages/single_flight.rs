//! The single-flight stage: in record mode, concurrent identical requests
//! (no body, `GET`/`HEAD`) go upstream once; followers are answered from
//! what the leader committed, like a playback hit (see
//! `btrfly_record::flight`). Across replicas nothing is collapsed; the
//! commit protocol of `btrfly-store` makes their concurrent commits safe.

use std::sync::Arc;

use btrfly_record::{FlightGuard, Flights, Role};
use btrfly_store::Store;
use futures::future::BoxFuture;
use http::Method;

use crate::decision::{Decision, Forward};
use crate::lookup::Entries;
use crate::stage::{pass, Classified, Next, Stage};

/// Record mode: identical requests in flight at once go upstream once.
#[derive(Clone)]
pub struct SingleFlight {
    store: Store,
    flights: Arc<Flights>,
}

impl SingleFlight {
    /// Single flight over `store` (where followers find the leader's entry).
    pub fn new(store: Store) -> Self {
        SingleFlight {
            store,
            flights: Arc::new(Flights::default()),
        }
    }
}

impl Stage for SingleFlight {
    type In = Classified;
    type Out = Classified;

    fn run(&self, input: Classified, next: Next<Classified>) -> BoxFuture<'static, Decision> {
        // A token answer is stored with a placeholder instead of its token
        // (btrfly_record::secrets): a follower served from the tag would
        // get a token the upstream refuses. Each asks upstream itself.
        let joins = !input.body.is_present()
            && matches!(input.head.method, Method::GET | Method::HEAD)
            && !input.adapter.is_token_answer(&input.class);
        if !joins {
            return Box::pin(pass(next, input));
        }
        let key = (input.tag.clone(), input.class.key.id());
        let store = self.store.clone();
        let flights = self.flights.clone();
        Box::pin(async move {
            match flights.join(key) {
                Role::Leader(guard) => lead(pass(next, input).await, guard),
                Role::Follower(mut done) => {
                    // Woken when the leader's guard drops (the sender goes).
                    let _ =
                        tokio::time::timeout(btrfly_record::flight::FOLLOW_TIMEOUT, done.changed())
                            .await;
                    match follow(&store, &input).await {
                        Some(decision) => decision,
                        None => pass(next, input).await,
                    }
                }
            }
        })
    }
}

/// The leader's decision, with the guard attached to its record plan (or
/// dropped at once when nothing will be recorded).
fn lead(decision: Decision, guard: FlightGuard) -> Decision {
    match decision {
        Decision::Forward(Forward {
            recording: Some(mut plan),
        }) => {
            plan.flight = Some(guard);
            Decision::Forward(Forward {
                recording: Some(plan),
            })
        }
        other => other,
    }
}

/// A follower's answer from what its leader committed, if anything.
async fn follow(store: &Store, input: &Classified) -> Option<Decision> {
    let head = &input.head;
    // The leader's answer may have been recorded under its `Vary`: the
    // follower gets the representation its own headers select, or goes
    // upstream itself.
    let entries = Entries::uncached(store.clone());
    let entry = match entries
        .find(&input.tag, &input.class.key, &head.headers)
        .await
    {
        Ok(Some(entry)) => entry,
        Ok(None) => return None,
        Err(e) => {
            tracing::warn!("single flight: reading the leader's entry: {e}");
            return None;
        }
    };
    let reply = crate::reply::full_reply(&entry, &head.method);
    let stats = &input.session.stats;
    stats.count_hit();
    stats.count_bytes(reply.body_len());
    Some(Decision::Respond(reply))
}
