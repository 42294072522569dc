//! Sessions: who is recording or playing back which tag, right now.
//!
//! A session is created through the control API and identified on the data
//! plane by a credential `id:secret` (the user and password of the proxy URL
//! the CLI hands out). Sessions are persisted in the store, so a restarted
//! server (or another replica on the same store) still recognises them;
//! their counters live in the process that serves them, and are written to
//! the store so that `stop` on any replica sums them (see [`replicas`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use base64::Engine;
use btrfly_core::{Mode, SessionInfo, Tag, TagMeta};
use btrfly_store::{Store, StoreError};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

pub mod replicas;
pub use replicas::ReplicaStats;

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("tag {0} is sealed: its recording is finished. Record under a new tag, or pass --force to record into it again")]
    Sealed(Tag),
    #[error("tag {0} has no recording to play back (`btrfly tags` lists the recorded tags)")]
    UnknownTag(Tag),
    #[error("tag {0} has no recorded entries: nothing to play back. Its recording saw no request (did the build use the session's exports?); record it again")]
    EmptyTag(Tag),
    #[error("tag {tag} is being recorded by session {session}; stop that session first")]
    Busy { tag: Tag, session: String },
    #[error("no session {0} on this server (it was stopped, or never started)")]
    NotFound(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Counters of one session, shared by all its requests.
#[derive(Debug, Default)]
pub struct Stats {
    pub requests: AtomicU64,
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    pub recorded: AtomicU64,
    pub bytes: AtomicU64,
    /// Bodies refused because they did not match their announced digest.
    pub refused: AtomicU64,
    /// Answers that went to the client but could not be recorded.
    pub unrecorded: AtomicU64,
    missed: Mutex<Vec<String>>,
    errors: Mutex<Vec<String>>,
}

/// Lists in a summary are capped so a runaway build cannot grow memory.
const LIST_LIMIT: usize = 1000;

impl Stats {
    pub fn count_request(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    pub fn count_bytes(&self, n: u64) {
        self.bytes.fetch_add(n, Ordering::Relaxed);
    }

    pub fn count_hit(&self) {
        self.hits.fetch_add(1, Ordering::Relaxed);
    }

    pub fn count_miss(&self, what: String) {
        self.misses.fetch_add(1, Ordering::Relaxed);
        push_capped(&self.missed, what);
    }

    pub fn count_recorded(&self) {
        self.recorded.fetch_add(1, Ordering::Relaxed);
    }

    /// An answer the client received (or a failure it saw instead of
    /// one) that is not in the tag: counted, so that `btrfly stop record`
    /// fails, and listed under `problems:`.
    pub fn note_unrecorded(&self, what: String) {
        self.unrecorded.fetch_add(1, Ordering::Relaxed);
        self.note_error(what);
    }

    /// Something that did not get recorded or replayed as it should.
    pub fn note_error(&self, what: String) {
        tracing::warn!("{what}");
        push_capped(&self.errors, what);
    }
}

fn push_capped(list: &Mutex<Vec<String>>, item: String) {
    let mut l = list.lock().unwrap_or_else(|p| p.into_inner());
    if l.len() < LIST_LIMIT && !l.contains(&item) {
        l.push(item);
    }
}

/// What `btrfly stop` prints.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Summary {
    pub id: String,
    pub tag: Tag,
    pub mode: Mode,
    pub requests: u64,
    pub hits: u64,
    pub misses: u64,
    pub recorded: u64,
    pub bytes: u64,
    /// Bodies refused (cut off, not recorded) because they did not match
    /// the digest announced for them; their messages are in `errors`.
    #[serde(default)]
    pub refused: u64,
    /// Answers the build received that could not be recorded (a body cut
    /// short, an upstream that failed, a store that refused the write);
    /// their messages are in `errors`. A recording with any is incomplete.
    #[serde(default)]
    pub unrecorded: u64,
    pub missed: Vec<String>,
    pub errors: Vec<String>,
    /// Record sessions: whether stopping sealed the tag (it is not sealed
    /// when it has no entries, or when the stop asked not to seal).
    #[serde(default)]
    pub sealed: bool,
}

#[derive(Debug)]
pub struct LiveSession {
    pub info: SessionInfo,
    pub stats: Stats,
    active: AtomicBool,
    /// Digests announced by recorded index pages, by canonical URL.
    hints: Mutex<HashMap<String, String>>,
    /// URLs whose body did not match its announced digest, by canonical
    /// URL, with why: a part of such a body (a `Range`, which cannot be
    /// checked) is not served again in this session.
    refusals: Mutex<HashMap<String, String>>,
    /// Redirect targets recorded as the request that redirected to them
    /// (see `Adapter::redirect_alias`), by canonical URL.
    aliases: Mutex<HashMap<String, Alias>>,
    /// Recordings between their response head and their commit/abort.
    inflight: AtomicUsize,
    settled: tokio::sync::Notify,
    /// Playback: the tag's index, loaded on the first request (see
    /// `index_cache`); `None` inside when the tag is not sealed.
    pub(crate) playback_index: tokio::sync::OnceCell<Option<Arc<btrfly_store::TagIndex>>>,
    /// When this replica last saw the session object in the store.
    checked_at: Mutex<std::time::Instant>,
}

/// Held by a recording in progress; `stop` waits until none is left, so a
/// summary (and the sealed tag) includes every response the client already
/// received — the commit runs after the last byte went to the client.
#[derive(Debug)]
pub struct InflightGuard(Arc<LiveSession>);

impl Drop for InflightGuard {
    fn drop(&mut self) {
        if self.0.inflight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.settled.notify_waiters();
        }
    }
}

/// How long `stop` waits for recordings still being committed.
const SETTLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

/// A URL to classify as another request was: by that adapter, that way.
#[derive(Clone, Debug)]
pub struct Alias {
    pub adapter: &'static str,
    pub classification: btrfly_core::Classification,
}

/// Digest hints kept per session; index pages of a big build can announce
/// many files, but not unboundedly many.
const HINT_LIMIT: usize = 500_000;

impl LiveSession {
    pub fn tag(&self) -> &Tag {
        &self.info.tag
    }

    pub fn mode(&self) -> Mode {
        self.info.mode
    }

    pub fn is_active(&self) -> bool {
        self.active.load(Ordering::Acquire)
    }

    fn new(info: SessionInfo) -> LiveSession {
        LiveSession {
            info,
            stats: Stats::default(),
            active: AtomicBool::new(true),
            hints: Mutex::new(HashMap::new()),
            refusals: Mutex::new(HashMap::new()),
            aliases: Mutex::new(HashMap::new()),
            inflight: AtomicUsize::new(0),
            settled: tokio::sync::Notify::new(),
            playback_index: tokio::sync::OnceCell::new(),
            checked_at: Mutex::new(std::time::Instant::now()),
        }
    }

    /// Marks a recording as in progress until the guard is dropped.
    pub fn recording_started(self: &Arc<Self>) -> InflightGuard {
        self.inflight.fetch_add(1, Ordering::AcqRel);
        InflightGuard(self.clone())
    }

    /// Waits until no recording of this session is in progress (bounded).
    pub async fn settle(&self) {
        let wait = async {
            loop {
                let notified = self.settled.notified();
                if self.inflight.load(Ordering::Acquire) == 0 {
                    return;
                }
                notified.await;
            }
        };
        if tokio::time::timeout(SETTLE_TIMEOUT, wait).await.is_err() {
            self.stats.note_error(format!(
                "{} recording(s) still in progress when the session stopped",
                self.inflight.load(Ordering::Acquire)
            ));
        }
    }

    /// Remembers that a request for `url` is the same as one already
    /// classified (a redirect the client is about to follow).
    pub fn add_alias(&self, url: String, alias: Alias) {
        let mut map = self.aliases.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() < HINT_LIMIT || map.contains_key(&url) {
            map.insert(url, alias);
        }
    }

    /// How a request for a canonical URL must be classified, if a recorded
    /// redirect said so.
    pub fn alias(&self, url: &str) -> Option<Alias> {
        self.aliases
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(url)
            .cloned()
    }

    /// Remembers digests an index page announced for other URLs.
    pub fn add_hints(&self, hints: Vec<btrfly_core::DigestHint>) {
        let mut map = self.hints.lock().unwrap_or_else(|p| p.into_inner());
        for h in hints {
            if map.len() >= HINT_LIMIT && !map.contains_key(&h.url) {
                break;
            }
            map.insert(h.url, h.sha256);
        }
    }

    /// The digest announced for a canonical URL, if any.
    pub fn hint(&self, url: &str) -> Option<String> {
        self.hints
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(url)
            .cloned()
    }

    /// A body for `url` (canonical form) did not match its announced
    /// digest: counted, noted, and remembered for [`LiveSession::refusal`].
    pub fn refuse(&self, url: String, why: String) {
        self.stats.refused.fetch_add(1, Ordering::Relaxed);
        self.stats.note_error(why.clone());
        let mut map = self.refusals.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() < LIST_LIMIT {
            map.insert(url, why);
        }
    }

    /// Why a body for `url` (canonical form) was refused in this session.
    pub fn refusal(&self, url: &str) -> Option<String> {
        self.refusals
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(url)
            .cloned()
    }

    pub fn summary(&self) -> Summary {
        let s = &self.stats;
        let list = |m: &Mutex<Vec<String>>| m.lock().unwrap_or_else(|p| p.into_inner()).clone();
        Summary {
            id: self.info.id.clone(),
            tag: self.info.tag.clone(),
            mode: self.info.mode,
            requests: s.requests.load(Ordering::Relaxed),
            hits: s.hits.load(Ordering::Relaxed),
            misses: s.misses.load(Ordering::Relaxed),
            recorded: s.recorded.load(Ordering::Relaxed),
            bytes: s.bytes.load(Ordering::Relaxed),
            refused: s.refused.load(Ordering::Relaxed),
            unrecorded: s.unrecorded.load(Ordering::Relaxed),
            missed: list(&s.missed),
            errors: list(&s.errors),
            sealed: false,
        }
    }
}

/// A freshly created session and the secret its client must present.
pub struct NewSession {
    pub session: Arc<LiveSession>,
    pub secret: String,
}

pub struct SessionRegistry {
    store: Store,
    live: RwLock<HashMap<String, Arc<LiveSession>>>,
    /// Serialises session creation so two record sessions cannot both claim a tag.
    create_lock: tokio::sync::Mutex<()>,
    /// This process's name among the replicas sharing the store.
    replica: String,
    /// The counters last written per session (see [`replicas`]); held
    /// while they are written.
    flushed: tokio::sync::Mutex<HashMap<String, ReplicaStats>>,
}

impl SessionRegistry {
    pub fn new(store: Store) -> SessionRegistry {
        SessionRegistry {
            store,
            live: RwLock::new(HashMap::new()),
            create_lock: tokio::sync::Mutex::new(()),
            replica: random_hex(8),
            flushed: tokio::sync::Mutex::new(HashMap::new()),
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

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
                match meta {
                    Some(m) if m.sealed && !force => return Err(SessionError::Sealed(tag)),
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
        let id = random_hex(8);
        let secret = random_hex(24);
        let info = SessionInfo {
            id: id.clone(),
            secret_sha256: sha256_hex(&secret),
            tag,
            mode,
            started_at: OffsetDateTime::now_utc(),
        };
        self.store.put_session(&info).await?;
        let session = Arc::new(LiveSession::new(info));
        self.write_live().insert(id, session.clone());
        Ok(NewSession { session, secret })
    }

    /// The session a credential belongs to, or `None`. Looks in the store
    /// when this process has not seen the session yet.
    pub async fn authenticate(&self, id: &str, secret: &str) -> Option<Arc<LiveSession>> {
        let session = match self.get(id) {
            Some(s) => s,
            None => {
                let info = self.store.get_session(id).await.ok().flatten()?;
                let live = Arc::new(LiveSession::new(info));
                self.write_live()
                    .entry(id.to_owned())
                    .or_insert(live)
                    .clone()
            }
        };
        let presented = sha256_hex(secret);
        if !(session.is_active() && constant_time_eq(&presented, &session.info.secret_sha256)) {
            return None;
        }
        // Stopped through another replica? (a store read every few seconds)
        self.revalidate(&session, false).await.then_some(session)
    }

    /// Parses a `Proxy-Authorization: Basic …` value and authenticates it.
    pub async fn authenticate_header(&self, value: Option<&[u8]>) -> Option<Arc<LiveSession>> {
        let (id, secret) = parse_basic(value?)?;
        self.authenticate(&id, &secret).await
    }

    pub fn get(&self, id: &str) -> Option<Arc<LiveSession>> {
        self.live
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned()
    }

    /// Ends a session. Stopping a record session seals its tag, unless
    /// the tag has no entries (an empty recording is not sealed).
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
        let session = match self.get(id) {
            Some(s) => s,
            None => {
                let info = self
                    .store
                    .get_session(id)
                    .await?
                    .ok_or_else(|| SessionError::NotFound(id.to_owned()))?;
                Arc::new(LiveSession::new(info))
            }
        };
        session.active.store(false, Ordering::Release);
        session.settle().await;
        // Deleting the session object tells the other replicas to stop
        // serving it and write their last counters; `gather` waits for them.
        self.store.delete_session(id).await?;
        let mut summary = session.summary();
        self.gather(id, &mut summary).await;
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
                return Err(e.into());
            }
            summary.sealed = true;
        }
        self.forget_stats(id).await;
        self.write_live().remove(id);
        Ok(summary)
    }

    pub fn live_sessions(&self) -> Vec<Arc<LiveSession>> {
        self.live
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }

    fn write_live(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Arc<LiveSession>>> {
        self.live.write().unwrap_or_else(|p| p.into_inner())
    }
}

fn random_hex(bytes: usize) -> String {
    use rand::RngCore;
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    hex::encode(buf)
}

fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// `Basic base64(user:password)` → (user, password).
pub fn parse_basic(value: &[u8]) -> Option<(String, String)> {
    let value = std::str::from_utf8(value).ok()?.trim();
    let (scheme, rest) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(rest.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (user, pass) = decoded.split_once(':')?;
    Some((user.to_owned(), pass.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(user: &str, pass: &str) -> Vec<u8> {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
        )
        .into_bytes()
    }

    #[tokio::test]
    async fn credentials_route_to_their_session_only() {
        let reg = SessionRegistry::new(Store::memory().expect("store"));
        let a = reg
            .create(Tag::new("a").expect("tag"), Mode::Record, false)
            .await
            .expect("a");
        let id = a.session.info.id.clone();
        let got = reg
            .authenticate_header(Some(&basic(&id, &a.secret)))
            .await
            .expect("valid credential");
        assert_eq!(got.tag().as_str(), "a");
        assert!(reg
            .authenticate_header(Some(&basic(&id, "wrong")))
            .await
            .is_none());
        assert!(reg.authenticate_header(Some(b"Bearer x")).await.is_none());
        assert!(reg.authenticate_header(None).await.is_none());
        reg.stop(&id).await.expect("stop");
        assert!(
            reg.authenticate_header(Some(&basic(&id, &a.secret)))
                .await
                .is_none(),
            "a stopped session no longer authenticates"
        );
    }

    #[tokio::test]
    async fn sealed_tags_need_force_and_playback_needs_a_recording() {
        let reg = SessionRegistry::new(Store::memory().expect("store"));
        let tag = Tag::new("t").expect("tag");
        let err = reg
            .create(tag.clone(), Mode::Playback, false)
            .await
            .err()
            .expect("no recording");
        assert!(err.to_string().contains("no recording"), "{err}");
        let s = reg
            .create(tag.clone(), Mode::Record, false)
            .await
            .expect("record");
        let busy = reg
            .create(tag.clone(), Mode::Record, false)
            .await
            .err()
            .expect("busy");
        assert!(busy.to_string().contains("being recorded"), "{busy}");
        // Nothing recorded: the tag is not sealed, and not played back.
        let summary = reg.stop(&s.session.info.id).await.expect("stop");
        assert!(!summary.sealed, "an empty recording is not sealed");
        let empty = reg
            .create(tag.clone(), Mode::Playback, false)
            .await
            .err()
            .expect("empty");
        assert!(matches!(empty, SessionError::EmptyTag(_)), "{empty}");
        // One entry: stopping without sealing leaves it open, stopping
        // seals it.
        let s = reg
            .create(tag.clone(), Mode::Record, false)
            .await
            .expect("record again, no --force");
        let key = btrfly_core::RecordingKey::new("files", "GET https://a.example.test:443/x");
        let entry = btrfly_core::Entry {
            key,
            method: "GET".into(),
            url: "https://a.example.test/x".into(),
            status: 200,
            headers: Vec::new(),
            sha256: btrfly_core::sha256_hex(b""),
            size: 0,
            mutability: btrfly_core::Mutability::Mutable,
            recorded_at: OffsetDateTime::now_utc(),
        };
        reg.store().put_entry(&tag, &entry).await.expect("entry");
        let summary = reg
            .stop_with(&s.session.info.id, false)
            .await
            .expect("stop");
        assert!(!summary.sealed);
        let s = reg
            .create(tag.clone(), Mode::Record, false)
            .await
            .expect("still open");
        let summary = reg.stop(&s.session.info.id).await.expect("stop");
        assert!(summary.sealed);
        let sealed = reg
            .create(tag.clone(), Mode::Record, false)
            .await
            .err()
            .expect("sealed");
        assert!(sealed.to_string().contains("--force"), "{sealed}");
        reg.create(tag.clone(), Mode::Record, true)
            .await
            .expect("forced");
        reg.create(tag, Mode::Playback, false)
            .await
            .expect("playback");
    }

    #[tokio::test]
    async fn sessions_survive_a_restart_through_the_store() {
        let store = Store::memory().expect("store");
        let first = SessionRegistry::new(store.clone());
        let s = first
            .create(Tag::new("t").expect("tag"), Mode::Record, false)
            .await
            .expect("create");
        let second = SessionRegistry::new(store);
        let got = second
            .authenticate(&s.session.info.id, &s.secret)
            .await
            .expect("known through the store");
        assert_eq!(got.mode(), Mode::Record);
    }
}
