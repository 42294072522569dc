//! Single flight: concurrent identical upstream fetches in record mode go
//! upstream once.
//!
//! A build often asks for the same file from several processes at once.
//! Within one replica, the first request for a (tag, recording key) is the
//! *leader*: it is forwarded as usual, and its [`RecordPlan`](crate::RecordPlan) carries a
//! [`FlightGuard`]. The guard is released when the recording is committed
//! or abandoned (the recorder, or the plan, is dropped). Requests for the
//! same tag and key arriving meanwhile are *followers*: they wait for the
//! guard, then are answered from the committed entry like a playback hit
//! (counted as hits). If the leader recorded nothing (an upstream error, a
//! body cut short), a follower goes upstream itself.
//!
//! Only requests without a body take part: a body is part of the key and is
//! only hashed while it streams upstream. Across replicas nothing is
//! collapsed (each replica may fetch once); the commit protocol in
//! `btrfly-store` makes those concurrent commits safe.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use btrfly_core::{Classification, Mode, RequestHead, Tag};
use btrfly_store::Store;
use futures::future::BoxFuture;
use http::{Method, Request};
use tokio::sync::watch;

use crate::decision::{Decision, Forward};
use crate::route::Route;
use crate::step::{pass, Next, Step};
use crate::RequestBody;

/// How long a follower waits for its leader before going upstream itself.
pub const FOLLOW_TIMEOUT: Duration = Duration::from_secs(600);

type FlightKey = (Tag, String);

/// The flights in progress in this replica.
#[derive(Default)]
pub struct Flights {
    map: Mutex<HashMap<FlightKey, Flight>>,
    next: std::sync::atomic::AtomicU64,
}

struct Flight {
    id: u64,
    done: watch::Receiver<()>,
}

/// Held by a leader's record plan; dropping it releases the followers.
pub struct FlightGuard {
    flights: Arc<Flights>,
    key: FlightKey,
    id: u64,
    _done: watch::Sender<()>,
}

impl std::fmt::Debug for FlightGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FlightGuard({} {})", self.key.0, self.key.1)
    }
}

impl Drop for FlightGuard {
    fn drop(&mut self) {
        let mut map = self.flights.lock();
        if map.get(&self.key).is_some_and(|f| f.id == self.id) {
            map.remove(&self.key);
        }
        // `_done` drops after this: followers wake up.
    }
}

enum Role {
    Leader(FlightGuard),
    Follower(watch::Receiver<()>),
}

impl Flights {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<FlightKey, Flight>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn join(self: &Arc<Self>, key: FlightKey) -> Role {
        let mut map = self.lock();
        if let Some(f) = map.get(&key) {
            return Role::Follower(f.done.clone());
        }
        let id = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (tx, rx) = watch::channel(());
        map.insert(key.clone(), Flight { id, done: rx });
        Role::Leader(FlightGuard {
            flights: self.clone(),
            key,
            id,
            _done: tx,
        })
    }

    /// Flights in progress (for tests and diagnostics).
    pub fn in_flight(&self) -> usize {
        self.lock().len()
    }
}

/// Record mode: identical requests in flight at once go upstream once.
#[derive(Clone)]
pub struct SingleFlight {
    store: Store,
    flights: Arc<Flights>,
}

impl SingleFlight {
    pub fn new(store: Store) -> Self {
        SingleFlight {
            store,
            flights: Arc::new(Flights::default()),
        }
    }
}

impl Step for SingleFlight {
    fn handle(&self, req: Request<RequestBody>, next: Next) -> BoxFuture<'static, Decision> {
        let ext = req.extensions();
        let flight = match (ext.get::<Route>(), ext.get::<Classification>()) {
            (Some(route), Some(class))
                if route.mode == Mode::Record
                    && !req.body().is_present()
                    && matches!(*req.method(), Method::GET | Method::HEAD) =>
            {
                Some((route.clone(), (route.tag.clone(), class.key.id())))
            }
            _ => None,
        };
        let Some((route, key)) = flight else {
            return Box::pin(pass(next, req));
        };
        let store = self.store.clone();
        let flights = self.flights.clone();
        Box::pin(async move {
            match flights.join(key) {
                Role::Leader(guard) => lead(pass(next, req).await, guard),
                Role::Follower(mut done) => {
                    // Woken when the leader's guard drops (the sender goes).
                    let _ = tokio::time::timeout(FOLLOW_TIMEOUT, done.changed()).await;
                    match follow(&store, &route, &req).await {
                        Some(decision) => decision,
                        None => pass(next, req).await,
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
async fn follow(store: &Store, route: &Route, req: &Request<RequestBody>) -> Option<Decision> {
    let class = req.extensions().get::<Classification>()?;
    let head = req.extensions().get::<RequestHead>()?;
    // The leader's answer may have been recorded under its `Vary`: the
    // follower gets the representation its own headers select, or goes
    // upstream itself.
    let entries = crate::index_cache::Entries::uncached(store.clone());
    let entry = match entries.find(&route.tag, &class.key, &head.headers).await {
        Ok(Some(entry)) => entry,
        Ok(None) => return None,
        Err(e) => {
            tracing::warn!("single flight: reading the leader's entry: {e}");
            return None;
        }
    };
    let reply = crate::replay::full_reply(&entry, &head.method);
    let stats = &route.session.stats;
    stats.count_hit();
    stats.count_bytes(reply.body_len());
    Some(Decision::Respond(reply))
}
