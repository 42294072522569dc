//! The session registry: every session this replica knows.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use btrfly_core::api::SessionListing;
use btrfly_core::{Mode, SessionId, SessionInfo, Sha256, Summary, Tag, TagMeta};
use btrfly_store::Store;
use time::OffsetDateTime;

use crate::address::AddressBindings;
use crate::credential;
use crate::error::SessionError;
use crate::live::LiveSession;
use crate::metrics::Metrics;
use crate::replicas::{ReplicaStats, Replication, FLUSH_EVERY, SHUTDOWN_SETTLE, SWEEP_EVERY};

/// A freshly created session and the secret its client must present.
pub struct NewSession {
    /// The session.
    pub session: Arc<LiveSession>,
    /// Its secret (the password of its proxy URL); only its digest is stored.
    pub secret: String,
}

/// Every session this replica knows: created here, or found in the store
/// when a credential names one.
pub struct SessionRegistry {
    store: Store,
    live: RwLock<HashMap<String, Arc<LiveSession>>>,
    /// Serialises session creation so two record sessions cannot both claim a tag.
    create_lock: tokio::sync::Mutex<()>,
    /// This replica's part of the replica protocol (see [`replicas`]).
    replication: Replication,
    /// Client addresses bound to sessions (transparent mode).
    addresses: AddressBindings,
    /// Session ids recently looked up in the store and not found, so that
    /// an unauthenticated client cannot cause a store read per request.
    unknown: std::sync::Mutex<HashMap<String, Instant>>,
    /// The `/metrics` counters every session counts into.
    metrics: Arc<Metrics>,
    /// How long a session may go unheard of before it is ended.
    lease: Duration,
}

/// The lease of [`SessionRegistry::new`]: 24 hours.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(24 * 60 * 60);

/// How long an id not found in the store is answered "unknown" without
/// looking again.
const UNKNOWN_TTL: std::time::Duration = std::time::Duration::from_secs(5);
/// Ids remembered as unknown at most (the memory is cleared when full).
const UNKNOWN_LIMIT: usize = 10_000;

impl SessionRegistry {
    /// A registry over `store`, with a fresh replica name.
    pub fn new(store: Store) -> SessionRegistry {
        SessionRegistry {
            store,
            live: RwLock::new(HashMap::new()),
            create_lock: tokio::sync::Mutex::new(()),
            replication: Replication::new(credential::random_hex(8)),
            addresses: AddressBindings::default(),
            unknown: std::sync::Mutex::new(HashMap::new()),
            metrics: Arc::new(Metrics::default()),
            lease: DEFAULT_LEASE,
        }
    }

    /// The same registry with sessions ending after `lease` unheard of
    /// (instead of [`DEFAULT_LEASE`]); see [`SessionRegistry::expire_idle`].
    pub fn with_lease(mut self, lease: Duration) -> SessionRegistry {
        self.lease = lease;
        self
    }

    /// How long a session may go unheard of.
    pub fn lease(&self) -> Duration {
        self.lease
    }

    /// The `/metrics` counters of this replica's sessions; `active_sessions`
    /// is brought up to date here.
    pub fn metrics(&self) -> &Metrics {
        for mode in [Mode::Record, Mode::Playback] {
            let n = self
                .live_sessions()
                .iter()
                .filter(|s| s.is_active() && s.mode() == mode)
                .count();
            self.metrics.set_active(mode, n as u64);
        }
        &self.metrics
    }

    /// The store sessions and tags are kept in.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Starts a session on `tag`.
    ///
    /// # Errors
    /// [`SessionError`]: a sealed tag without `force`, a tag being
    /// recorded by another session, playback of an unknown or empty tag, a
    /// store error.
    pub async fn create(
        &self,
        tag: Tag,
        mode: Mode,
        force: bool,
    ) -> Result<NewSession, SessionError> {
        let _guard = self.create_lock.lock().await;
        let meta = self.store.tag_meta(&tag).await?;
        match mode {
            Mode::Record => {
                if let Some(other) = self
                    .live_sessions()
                    .into_iter()
                    .find(|s| s.is_active() && s.mode() == Mode::Record && s.tag() == &tag)
                {
                    return Err(SessionError::Busy {
                        tag,
                        session: other.info.id.clone(),
                    });
                }
                if matches!(&meta, Some(m) if m.sealed && !force) {
                    return Err(SessionError::Sealed(tag));
                }
            }
            Mode::Playback => {
                if meta.is_none() {
                    return Err(SessionError::UnknownTag(tag));
                }
                if !self.store.has_entries(&tag).await? {
                    return Err(SessionError::EmptyTag(tag));
                }
            }
        }
        let secret = credential::random_hex(credential::SECRET_BYTES);
        let id = SessionId::new(&credential::random_hex(8)).map_err(SessionError::Id)?;
        let info = SessionInfo {
            id: id.clone(),
            secret_sha256: Sha256::of(secret.as_bytes()),
            tag,
            mode,
            started_at: OffsetDateTime::now_utc(),
        };
        // The session object is written before the tag's recorder lease is
        // taken and removed after it is given back, so a lease naming a
        // session that is not in the store is stale, never one being born.
        self.store.put_session(&info).await?;
        if mode == Mode::Record {
            // The rule across replicas and restarts (README: "Recording
            // rules"); the check above only spares a store round trip.
            if let Err(e) = self.take_recorder(&info.tag, &id).await {
                let _ = self.store.delete_session(&id).await;
                return Err(e);
            }
            if let Err(e) = self.open_tag(&info.tag, meta).await {
                let _ = self.release_recorder(&info.tag, &id).await;
                let _ = self.store.delete_session(&id).await;
                return Err(e);
            }
        }
        let session = Arc::new(LiveSession::new(info, &self.metrics));
        self.write_live().insert(id.to_string(), session.clone());
        Ok(NewSession { session, secret })
    }

    /// Makes `tag` recordable: creates its meta, or unseals it (`--force`).
    async fn open_tag(&self, tag: &Tag, meta: Option<TagMeta>) -> Result<(), SessionError> {
        match meta {
            Some(mut m) => {
                if m.sealed {
                    m.sealed = false;
                    m.sealed_at = None;
                    self.store.put_tag_meta(&m).await?;
                }
            }
            None => {
                self.store
                    .put_tag_meta(&TagMeta {
                        tag: tag.clone(),
                        created_at: OffsetDateTime::now_utc(),
                        sealed: false,
                        sealed_at: None,
                    })
                    .await?;
            }
        }
        Ok(())
    }

    /// The session a credential belongs to, or `None`. Looks in the store
    /// when this process has not seen the session yet — only for a secret
    /// of the shape btrfly issues, and not again within 5 s for an id the
    /// store did not have: an unauthenticated client cannot cause store
    /// reads at will.
    pub async fn authenticate(&self, id: &str, secret: &str) -> Option<Arc<LiveSession>> {
        let session = match self.get(id) {
            Some(s) => s,
            None => {
                if !credential::is_secret_shaped(secret) {
                    return None;
                }
                let id = SessionId::new(id).ok()?;
                if self.recently_unknown(id.as_str()) {
                    return None;
                }
                let info = match self.store.get_session(&id).await {
                    Ok(Some(info)) => info,
                    Ok(None) => {
                        self.remember_unknown(id.as_str());
                        return None;
                    }
                    Err(_) => return None,
                };
                let live = Arc::new(LiveSession::new(info, &self.metrics));
                self.write_live()
                    .entry(id.to_string())
                    .or_insert(live)
                    .clone()
            }
        };
        if !(session.is_active() && credential::secret_matches(secret, &session.info.secret_sha256))
        {
            return None;
        }
        // Stopped through another replica? (a store read every few seconds)
        if !self.revalidate(&session, false).await {
            return None;
        }
        session.touch();
        Some(session)
    }

    /// Notes a control call naming session `id` (renews its lease here).
    pub fn touch(&self, id: &str) {
        if let Some(s) = self.get(id) {
            s.touch();
        }
    }

    /// Whether `secret` is session `id`'s (the caller started it).
    ///
    /// # Errors
    /// [`SessionError::NotFound`] for an unknown session; a store error.
    pub async fn secret_matches(&self, id: &str, secret: &str) -> Result<bool, SessionError> {
        let info = match self.get(id) {
            Some(s) => s.info.clone(),
            None => {
                let sid = SessionId::new(id).map_err(|_| SessionError::NotFound(id.to_owned()))?;
                self.store
                    .get_session(&sid)
                    .await?
                    .ok_or_else(|| SessionError::NotFound(id.to_owned()))?
            }
        };
        Ok(credential::secret_matches(secret, &info.secret_sha256))
    }

    /// When session `info` was last heard of by any replica: this one's
    /// memory, the others' counters in the store, its start; `None` when
    /// the others' counters cannot be read.
    async fn last_seen_ms(&self, info: &SessionInfo) -> Option<i64> {
        let mut last = crate::live::unix_ms(info.started_at);
        if let Some(s) = self.get(info.id.as_str()) {
            last = last.max(s.last_seen_ms());
        }
        match self
            .store
            .list_session_stats::<ReplicaStats>(&info.id)
            .await
        {
            Ok(all) => {
                for (_, stats) in all {
                    last = last.max(stats.last_seen_ms);
                }
                Some(last)
            }
            Err(e) => {
                tracing::warn!(session = %info.id, "reading when the session was last heard of: {e}");
                None
            }
        }
    }

    /// Every active session in the store, oldest first, with when it was
    /// last heard of and its counters summed over the replicas.
    ///
    /// # Errors
    /// The store could not list the sessions.
    pub async fn listing(&self) -> Result<Vec<SessionListing>, SessionError> {
        let mut infos = self.store.list_sessions().await?;
        infos.sort_by_key(|i| i.started_at);
        let mut out = Vec::with_capacity(infos.len());
        for info in infos {
            let mut summary = ReplicaStats::default();
            let mut last = crate::live::unix_ms(info.started_at);
            let here = self.get(info.id.as_str());
            if let Some(s) = &here {
                let own = ReplicaStats::of(s, false);
                summary.add(&own);
                last = last.max(own.last_seen_ms);
            }
            if let Ok(all) = self
                .store
                .list_session_stats::<ReplicaStats>(&info.id)
                .await
            {
                for (replica, stats) in all {
                    last = last.max(stats.last_seen_ms);
                    if here.is_none() || replica != self.replica() {
                        summary.add(&stats);
                    }
                }
            }
            let last_seen = crate::live::from_unix_ms(last);
            out.push(SessionListing {
                id: info.id.to_string(),
                tag: info.tag.to_string(),
                mode: info.mode,
                started_at: info.started_at,
                last_seen,
                expires_at: last_seen + self.lease,
                requests: summary.requests,
                hits: summary.hits,
                misses: summary.misses,
                recorded: summary.recorded,
                bytes: summary.bytes,
            });
        }
        Ok(out)
    }

    /// Ends every session in the store not heard of for longer than the
    /// lease, by any replica. An expired record session is ended **without
    /// sealing** its tag: what it committed stays (each entry is a whole
    /// answer), but a recording nobody finished is not passed off as
    /// complete — the tag stays open, playback of it warns that it is not
    /// sealed, and `btrfly start record` continues it without `--force`.
    /// Returns the ids ended. Store errors are logged and skipped (a flaky
    /// backend must not end sessions).
    pub async fn expire_idle(&self) -> Vec<SessionId> {
        let infos = match self.store.list_sessions().await {
            Ok(i) => i,
            Err(e) => {
                tracing::warn!("listing sessions for their leases: {e}");
                return Vec::new();
            }
        };
        let mut ended = Vec::new();
        for info in infos {
            if self.end_if_expired(&info).await {
                ended.push(info.id);
            }
        }
        ended
    }

    /// Ends session `info` if no replica heard of it for longer than the
    /// lease (see [`SessionRegistry::expire_idle`]); whether it is over
    /// now (ended here, or meanwhile elsewhere).
    pub(crate) async fn end_if_expired(&self, info: &SessionInfo) -> bool {
        let now = crate::live::unix_ms(OffsetDateTime::now_utc());
        let lease_ms = i64::try_from(self.lease.as_millis()).unwrap_or(i64::MAX);
        let Some(last) = self.last_seen_ms(info).await else {
            return false;
        };
        let idle_ms = now.saturating_sub(last);
        if idle_ms <= lease_ms {
            return false;
        }
        match self.stop_with(info.id.as_str(), false).await {
            Ok(summary) => {
                tracing::warn!(
                    session = %info.id,
                    tag = %info.tag,
                    mode = %info.mode,
                    "session {} expired: not heard of for {:.0}s, longer than its lease (sessions.lease, {}s); ended{} after {} requests",
                    info.id,
                    idle_ms as f64 / 1000.0,
                    self.lease.as_secs(),
                    if info.mode == Mode::Record { " without sealing tag ".to_owned() + info.tag.as_str() } else { String::new() },
                    summary.requests,
                );
                true
            }
            // Ended meanwhile (by its owner, or by another replica).
            Err(SessionError::NotFound(_)) => true,
            Err(e) => {
                tracing::warn!(session = %info.id, "ending an expired session: {e}");
                false
            }
        }
    }

    pub(crate) fn recently_unknown(&self, id: &str) -> bool {
        let unknown = self.unknown.lock().unwrap_or_else(|p| p.into_inner());
        unknown.get(id).is_some_and(|at| at.elapsed() < UNKNOWN_TTL)
    }

    fn remember_unknown(&self, id: &str) {
        let mut unknown = self.unknown.lock().unwrap_or_else(|p| p.into_inner());
        if unknown.len() >= UNKNOWN_LIMIT {
            unknown.retain(|_, at| at.elapsed() < UNKNOWN_TTL);
            if unknown.len() >= UNKNOWN_LIMIT {
                unknown.clear();
            }
        }
        unknown.insert(id.to_owned(), Instant::now());
    }

    /// Parses a `Proxy-Authorization: Basic …` value and authenticates it.
    pub async fn authenticate_header(&self, value: Option<&[u8]>) -> Option<Arc<LiveSession>> {
        let (id, secret) = credential::parse_basic(value?)?;
        self.authenticate(&id, &secret).await
    }

    /// A session this replica serves (or served), by id.
    pub fn get(&self, id: &str) -> Option<Arc<LiveSession>> {
        self.live
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned()
    }

    /// Ends a session. Stopping a record session seals its tag, unless
    /// the tag has no entries (an empty recording is not sealed).
    ///
    /// # Errors
    /// See [`SessionRegistry::stop_with`].
    pub async fn stop(&self, id: &str) -> Result<Summary, SessionError> {
        self.stop_with(id, true).await
    }

    /// Ends a session; a record session's tag is sealed only when `seal`
    /// is true and the tag has at least one entry. `summary.sealed` says
    /// which happened.
    ///
    /// # Errors
    /// [`SessionError::NotFound`] for an unknown session; a store error
    /// (the session is then kept, so that the stop can be retried).
    pub async fn stop_with(&self, id: &str, seal: bool) -> Result<Summary, SessionError> {
        let not_found = || SessionError::NotFound(id.to_owned());
        let session = match self.get(id) {
            Some(s) => s,
            None => {
                let sid = SessionId::new(id).map_err(|_| not_found())?;
                let info = self.store.get_session(&sid).await?.ok_or_else(not_found)?;
                Arc::new(LiveSession::new(info, &self.metrics))
            }
        };
        let id = session.info.id.clone();
        session.deactivate();
        self.unbind_session(id.as_str());
        session.settle().await;
        // The tag's recorder lease goes first: while the session object
        // is there, no replica takes the lease over as stale.
        if session.mode() == Mode::Record {
            self.release_recorder(session.tag(), &id).await?;
        }
        // Deleting the session object tells the other replicas to stop
        // serving it and write their last counters; `gather` waits for them.
        self.store.delete_session(&id).await?;
        let mut summary = session.summary();
        self.replication
            .gather(&self.store, &id, &mut summary)
            .await;
        if session.mode() == Mode::Record && seal && self.store.has_entries(session.tag()).await? {
            let tag = session.tag();
            let meta = self.store.tag_meta(tag).await?.unwrap_or(TagMeta {
                tag: tag.clone(),
                created_at: session.info.started_at,
                sealed: false,
                sealed_at: None,
            });
            if let Err(e) = self.store.seal_tag(meta).await {
                // Put the session back so that `stop` can be retried.
                let _ = self.store.put_session(&session.info).await;
                let _ = self
                    .store
                    .try_take_recorder(&btrfly_store::RecorderLease {
                        tag: tag.clone(),
                        session: id.clone(),
                        replica: self.replica().to_owned(),
                        since: OffsetDateTime::now_utc(),
                    })
                    .await;
                return Err(e.into());
            }
            summary.sealed = true;
        }
        self.replication.forget(&self.store, &id).await;
        self.write_live().remove(id.as_str());
        Ok(summary)
    }

    /// Every session this replica serves.
    pub fn live_sessions(&self) -> Vec<Arc<LiveSession>> {
        self.live
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }

    pub(crate) fn write_live(
        &self,
    ) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Arc<LiveSession>>> {
        self.live.write().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn addresses(&self) -> &AddressBindings {
        &self.addresses
    }

    /// This replica's name in `sessions/<id>/stats/<replica>.json`.
    pub fn replica(&self) -> &str {
        self.replication.replica()
    }

    /// Writes this replica's counters of every active session that changed
    /// since they were last written; `last` marks them final (shutdown).
    pub async fn flush_stats(&self, last: bool) {
        let sessions = self.live_sessions();
        self.replication.flush(&self.store, &sessions, last).await;
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
        match self.store.get_session(&s.info.id).await {
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
        self.replication.write_last(&self.store, s).await;
        self.write_live().remove(s.info.id.as_str());
        tracing::info!(session = %s.info.id, "session stopped through another replica");
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
        let mut last_expiry = Instant::now();
        // Leases are checked a few times per lease, at most once a minute.
        let expiry_every = (self.lease / 4).clamp(FLUSH_EVERY, Duration::from_secs(60));
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
            if last_expiry.elapsed() >= expiry_every {
                last_expiry = Instant::now();
                self.expire_idle().await;
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
}
