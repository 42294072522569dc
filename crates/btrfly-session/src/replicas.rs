//! Sessions across replicas: each replica's counters live in the backend,
//! and `stop` adds them up.
//!
//! Several `btrfly serve` replicas on one bucket share sessions (the
//! session object is in the store) but count requests in memory. So that
//! `btrfly stop` — answered by whichever replica the load balancer picks —
//! reports the whole session:
//!
//! 1. Every replica writes its counters of each session it serves to
//!    `sessions/<id>/stats/<replica>.json` every [`FLUSH_EVERY`] when they
//!    changed (one small PUT per busy session; a replica only ever writes
//!    its own object, so nothing is read-modified-written), and once more
//!    with `last: true` when it shuts down (after the recordings in
//!    progress were committed).
//! 2. `stop` on replica R deletes `sessions/<id>.json`. Every replica checks
//!    the session objects of its live sessions every [`SWEEP_EVERY`] (and
//!    before serving a request, at most that often): when the object is
//!    gone, it refuses further requests for the session, waits for its
//!    recordings in progress to be committed, and writes its counters with
//!    `last: true`.
//! 3. R waits until every other replica's counters say `last` (at most
//!    [`GATHER_TIMEOUT`]), adds them to its own, seals the tag (recordings
//!    committed through other replicas are in the snapshot) and deletes the
//!    counters. A replica that never confirms (it crashed) is named in the
//!    summary's problems, with whatever it had last written.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use btrfly_core::{SessionId, Summary};
use btrfly_store::Store;
use serde::{Deserialize, Serialize};

use crate::live::LiveSession;

/// How often a replica writes the counters that changed.
pub const FLUSH_EVERY: Duration = Duration::from_millis(500);
/// How often a replica checks that its live sessions were not stopped
/// through another replica.
pub const SWEEP_EVERY: Duration = Duration::from_secs(2);
/// How long `stop` waits for the other replicas' last counters.
pub const GATHER_TIMEOUT: Duration = Duration::from_secs(8);
const GATHER_POLL: Duration = Duration::from_millis(200);
/// How long a replica shutting down waits for recordings in progress.
pub(crate) const SHUTDOWN_SETTLE: Duration = Duration::from_secs(4);

/// This replica's side of the protocol: its name and the counters it last
/// wrote per session.
pub(crate) struct Replication {
    /// This process's name among the replicas sharing the store.
    replica: String,
    /// The counters last written per session; held while they are
    /// written.
    flushed: tokio::sync::Mutex<HashMap<SessionId, ReplicaStats>>,
}

impl Replication {
    pub(crate) fn new(replica: String) -> Replication {
        Replication {
            replica,
            flushed: tokio::sync::Mutex::new(HashMap::new()),
        }
    }

    /// This replica's name in `sessions/<id>/stats/<replica>.json`.
    pub(crate) fn replica(&self) -> &str {
        &self.replica
    }

    /// Writes the counters of every active session in `sessions` that
    /// changed since they were last written; `last` marks them final
    /// (shutdown).
    pub(crate) async fn flush(&self, store: &Store, sessions: &[Arc<LiveSession>], last: bool) {
        // Held while writing: `stop` takes it before deleting the counters,
        // so none is written after (see `forget`).
        let mut flushed = self.flushed.lock().await;
        for s in sessions.iter().filter(|s| s.is_active()) {
            let stats = ReplicaStats::of(s, last);
            let id = s.info.id.clone();
            let before = flushed.get(&id);
            let never_seen = s.last_seen_ms() <= crate::live::unix_ms(s.info.started_at);
            if before == Some(&stats)
                || (before.is_none() && stats.is_zero() && never_seen && !last)
            {
                continue;
            }
            match store.put_session_stats(&id, &self.replica, &stats).await {
                Ok(()) => {
                    flushed.insert(id, stats);
                }
                Err(e) => tracing::warn!("writing the counters of session {id}: {e}"),
            }
        }
    }

    /// At `stop`, once the session is inactive here: deletes every
    /// replica's counters of it.
    pub(crate) async fn forget(&self, store: &Store, id: &SessionId) {
        let mut flushed = self.flushed.lock().await;
        flushed.remove(id);
        if let Err(e) = store.delete_session_stats(id).await {
            tracing::warn!("deleting the counters of session {id}: {e}");
        }
    }

    /// A session stopped elsewhere and settled here: its last counters.
    pub(crate) async fn write_last(&self, store: &Store, s: &LiveSession) {
        let id = &s.info.id;
        let stats = ReplicaStats::of(s, true);
        let mut flushed = self.flushed.lock().await;
        let known = flushed.remove(id).is_some();
        if known || !stats.is_zero() {
            if let Err(e) = store.put_session_stats(id, &self.replica, &stats).await {
                tracing::warn!("writing the last counters of session {id}: {e}");
            }
        }
    }

    /// At `stop`: adds the other replicas' counters to `summary`, waiting
    /// (bounded) until each says it is final.
    pub(crate) async fn gather(&self, store: &Store, id: &SessionId, summary: &mut Summary) {
        let deadline = Instant::now() + GATHER_TIMEOUT;
        loop {
            let others: Vec<(String, ReplicaStats)> = match store.list_session_stats(id).await {
                Ok(all) => all
                    .into_iter()
                    .filter(|(r, _)| r != &self.replica)
                    .collect(),
                Err(e) => {
                    summary
                        .errors
                        .push(format!("reading the other replicas' counters: {e}"));
                    return;
                }
            };
            let waiting = others.iter().any(|(_, s)| !s.last);
            if !waiting || Instant::now() >= deadline {
                for (replica, stats) in &others {
                    stats.add_to(summary);
                    if !stats.last {
                        summary.errors.push(format!(
                            "replica {replica} did not confirm its final counts within {GATHER_TIMEOUT:?} (stopped or unreachable): they may be incomplete"
                        ));
                    }
                }
                return;
            }
            tokio::time::sleep(GATHER_POLL).await;
        }
    }
}

/// One replica's counters of one session, as stored
/// (`sessions/<id>/stats/<replica>.json`); the fields are those of
/// [`Summary`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaStats {
    /// See [`Summary::requests`].
    pub requests: u64,
    /// See [`Summary::hits`].
    pub hits: u64,
    /// See [`Summary::misses`].
    pub misses: u64,
    /// See [`Summary::mirror_hits`].
    #[serde(default)]
    pub mirror_hits: u64,
    /// See [`Summary::recorded`].
    pub recorded: u64,
    /// See [`Summary::bytes`].
    pub bytes: u64,
    /// See [`Summary::refused`].
    #[serde(default)]
    pub refused: u64,
    /// See [`Summary::unrecorded`].
    #[serde(default)]
    pub unrecorded: u64,
    /// See [`Summary::egress_refused`].
    #[serde(default)]
    pub egress_refused: u64,
    /// See [`Summary::unserved`].
    #[serde(default)]
    pub unserved: u64,
    /// See [`Summary::missed`].
    #[serde(default)]
    pub missed: Vec<String>,
    /// See [`Summary::errors`].
    #[serde(default)]
    pub errors: Vec<String>,
    /// The replica will add nothing more: it saw the session end, or it
    /// shut down.
    #[serde(default)]
    pub last: bool,
    /// When the replica last heard of the session, in Unix milliseconds
    /// (for its lease; see `SessionRegistry::expire_idle`).
    #[serde(default)]
    pub last_seen_ms: i64,
}

impl ReplicaStats {
    /// Adds `other`'s counts (not its lists) to these.
    pub(crate) fn add(&mut self, other: &ReplicaStats) {
        self.requests += other.requests;
        self.hits += other.hits;
        self.misses += other.misses;
        self.recorded += other.recorded;
        self.bytes += other.bytes;
    }

    pub(crate) fn of(s: &LiveSession, last: bool) -> ReplicaStats {
        let sum = s.summary();
        ReplicaStats {
            requests: sum.requests,
            hits: sum.hits,
            misses: sum.misses,
            mirror_hits: sum.mirror_hits,
            recorded: sum.recorded,
            bytes: sum.bytes,
            refused: sum.refused,
            unrecorded: sum.unrecorded,
            egress_refused: sum.egress_refused,
            unserved: sum.unserved,
            missed: sum.missed,
            errors: sum.errors,
            last,
            last_seen_ms: s.last_seen_ms(),
        }
    }

    fn is_zero(&self) -> bool {
        self.requests == 0 && self.errors.is_empty()
    }

    /// Adds these counters to a summary (lists without duplicates).
    pub fn add_to(&self, summary: &mut Summary) {
        summary.requests += self.requests;
        summary.hits += self.hits;
        summary.misses += self.misses;
        summary.mirror_hits += self.mirror_hits;
        summary.recorded += self.recorded;
        summary.bytes += self.bytes;
        summary.refused += self.refused;
        summary.unrecorded += self.unrecorded;
        summary.egress_refused += self.egress_refused;
        summary.unserved += self.unserved;
        for m in &self.missed {
            if !summary.missed.contains(m) {
                summary.missed.push(m.clone());
            }
        }
        for e in &self.errors {
            if !summary.errors.contains(e) {
                summary.errors.push(e.clone());
            }
        }
    }
}
