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
use serde::{Deserialize, Serialize};

use crate::{LiveSession, SessionRegistry};

/// How often a replica writes the counters that changed.
pub const FLUSH_EVERY: Duration = Duration::from_millis(500);
/// How often a replica checks that its live sessions were not stopped
/// through another replica.
pub const SWEEP_EVERY: Duration = Duration::from_secs(2);
/// How long `stop` waits for the other replicas' last counters.
pub const GATHER_TIMEOUT: Duration = Duration::from_secs(8);
const GATHER_POLL: Duration = Duration::from_millis(200);
/// How long a replica shutting down waits for recordings in progress.
const SHUTDOWN_SETTLE: Duration = Duration::from_secs(4);

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
}

impl ReplicaStats {
    fn of(s: &LiveSession, last: bool) -> ReplicaStats {
        let sum = s.summary();
        ReplicaStats {
            requests: sum.requests,
            hits: sum.hits,
            misses: sum.misses,
            recorded: sum.recorded,
            bytes: sum.bytes,
            refused: sum.refused,
            unrecorded: sum.unrecorded,
            missed: sum.missed,
            errors: sum.errors,
            last,
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
        summary.recorded += self.recorded;
        summary.bytes += self.bytes;
        summary.refused += self.refused;
        summary.unrecorded += self.unrecorded;
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

impl SessionRegistry {
    /// This replica's name in `sessions/<id>/stats/<replica>.json`.
    pub fn replica(&self) -> &str {
        &self.replication.replica
    }

    /// Writes this replica's counters of every active session that changed
    /// since they were last written; `last` marks them final (shutdown).
    pub async fn flush_stats(&self, last: bool) {
        // Held while writing: `stop` takes it before deleting the counters,
        // so none is written after (see `forget_stats`).
        let mut flushed = self.replication.flushed.lock().await;
        for s in self.live_sessions() {
            if !s.is_active() {
                continue;
            }
            let stats = ReplicaStats::of(&s, last);
            let id = s.info.id.clone();
            let before = flushed.get(&id);
            if before == Some(&stats) || (before.is_none() && stats.is_zero() && !last) {
                continue;
            }
            match self
                .store
                .put_session_stats(&id, self.replica(), &stats)
                .await
            {
                Ok(()) => {
                    flushed.insert(id, stats);
                }
                Err(e) => tracing::warn!("writing the counters of session {id}: {e}"),
            }
        }
    }

    /// At `stop`, once the session is inactive here: deletes every
    /// replica's counters of it.
    pub(crate) async fn forget_stats(&self, id: &SessionId) {
        let mut flushed = self.replication.flushed.lock().await;
        flushed.remove(id);
        if let Err(e) = self.store().delete_session_stats(id).await {
            tracing::warn!("deleting the counters of session {id}: {e}");
        }
    }

    /// Ends here the live sessions that were stopped through another
    /// replica (their session object is gone).
    async fn sweep_stopped(&self) {
        for s in self.live_sessions() {
            if s.is_active() {
                self.revalidate(&s, true).await;
            }
        }
    }

    /// Whether `s` may still be served: checks its session object (at most
    /// once per [`SWEEP_EVERY`] unless `force`). A store error keeps the
    /// session: a flaky backend must not fail a build's requests.
    pub(crate) async fn revalidate(&self, s: &Arc<LiveSession>, force: bool) -> bool {
        if !s.check_due(SWEEP_EVERY, force) {
            return true;
        }
        match self.store().get_session(&s.info.id).await {
            Ok(None) if s.is_active() => {
                self.end_here(s).await;
                false
            }
            Ok(None) => false,
            Ok(Some(_)) | Err(_) => true,
        }
    }

    /// The session was stopped elsewhere: stop serving it, let recordings
    /// in progress commit, write the last counters, forget it.
    async fn end_here(&self, s: &Arc<LiveSession>) {
        if !s.deactivate() {
            return;
        }
        s.settle().await;
        let id = &s.info.id;
        let stats = ReplicaStats::of(s, true);
        let mut flushed = self.replication.flushed.lock().await;
        let known = flushed.remove(id).is_some();
        if known || !stats.is_zero() {
            if let Err(e) = self
                .store
                .put_session_stats(id, self.replica(), &stats)
                .await
            {
                tracing::warn!("writing the last counters of session {id}: {e}");
            }
        }
        drop(flushed);
        self.write_live().remove(id.as_str());
        tracing::info!(session = %id, "session stopped through another replica");
    }

    /// Runs until `shutdown`: writes counters, notices sessions stopped
    /// elsewhere; on shutdown writes every active session's last counters.
    pub async fn run_replication(
        self: Arc<Self>,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        let mut flush = tokio::time::interval(FLUSH_EVERY);
        flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_sweep = Instant::now();
        loop {
            tokio::select! {
                _ = flush.tick() => {}
                _ = shutdown.changed() => break,
            }
            if *shutdown.borrow() {
                break;
            }
            self.flush_stats(false).await;
            if last_sweep.elapsed() >= SWEEP_EVERY {
                last_sweep = Instant::now();
                self.sweep_stopped().await;
            }
        }
        // Shutting down: recordings still being committed are counted
        // first (bounded: the server gives its tasks a few seconds).
        let settle_all = async {
            for s in self.live_sessions() {
                if s.is_active() {
                    s.settle().await;
                }
            }
        };
        let _ = tokio::time::timeout(SHUTDOWN_SETTLE, settle_all).await;
        self.flush_stats(true).await;
    }

    /// At `stop`: adds the other replicas' counters to `summary`, waiting
    /// (bounded) until each says it is final.
    pub(crate) async fn gather(&self, id: &SessionId, summary: &mut Summary) {
        let deadline = Instant::now() + GATHER_TIMEOUT;
        loop {
            let others: Vec<(String, ReplicaStats)> =
                match self.store().list_session_stats(id).await {
                    Ok(all) => all
                        .into_iter()
                        .filter(|(r, _)| r != self.replica())
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
