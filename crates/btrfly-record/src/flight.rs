//! Single flight: concurrent identical upstream fetches in record mode go
//! upstream once (the gateway's single-flight stage decides who leads).
//!
//! Within one replica, the first request for a (tag, recording key) is the
//! *leader*: it is forwarded as usual, and its [`RecordPlan`](crate::RecordPlan)
//! carries a [`FlightGuard`]. The guard is released when the recording is
//! committed or abandoned (the recorder, or the plan, is dropped). Requests
//! for the same tag and key arriving meanwhile are *followers*: they wait
//! for the guard, then are answered from the committed entry.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use btrfly_core::Tag;
use tokio::sync::watch;

/// How long a follower waits for its leader before going upstream itself.
pub const FOLLOW_TIMEOUT: Duration = Duration::from_secs(600);

/// A flight: the tag and the recording key's id.
pub type FlightKey = (Tag, String);

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

/// What a request is in its flight.
pub enum Role {
    /// The first: it goes upstream and carries the guard in its plan.
    Leader(FlightGuard),
    /// A later one: it waits until the receiver sees the sender go.
    Follower(watch::Receiver<()>),
}

impl Flights {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<FlightKey, Flight>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Joins the flight of `(tag, key id)`: the first is its leader.
    pub fn join(self: &Arc<Self>, key: FlightKey) -> Role {
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
