//! A live session: its counters, what its recordings taught it about later
//! requests (digests announced by index pages, redirect aliases, refused
//! bodies), its recordings in progress, and its playback index slot.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use btrfly_core::{ExpectedDigest, Mode, SessionInfo, Summary, Tag};

use crate::stats::{Stats, LIST_LIMIT};

/// A session this replica serves.
#[derive(Debug)]
pub struct LiveSession {
    /// What the store holds about it.
    pub info: SessionInfo,
    /// Its counters here.
    pub stats: Stats,
    active: AtomicBool,
    /// Digests announced by recorded index pages, by canonical URL.
    hints: Mutex<HashMap<String, ExpectedDigest>>,
    /// What inspected bodies told their adapter for later inspections
    /// (`Adapter::session_notes`), by name.
    notes: Mutex<std::collections::BTreeMap<String, String>>,
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
    /// Index pages being recorded whose digest hints are not registered
    /// yet (from their response head to the end of their inspection).
    pages: AtomicUsize,
    pages_done: tokio::sync::Notify,
    /// Playback: the tag's index, loaded on the first request (see
    /// `index_cache`); `None` inside when the tag is not sealed.
    playback_index: tokio::sync::OnceCell<Option<Arc<btrfly_store::TagIndex>>>,
    /// When this replica last saw the session object in the store.
    checked_at: Mutex<std::time::Instant>,
    /// When this replica last heard of the session (a request, a control
    /// call naming it), in Unix milliseconds; its start before that.
    last_seen_ms: AtomicI64,
}

/// `t` in Unix milliseconds.
pub(crate) fn unix_ms(t: time::OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

/// Unix milliseconds as a time (the epoch for an impossible value).
pub(crate) fn from_unix_ms(ms: i64) -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
}

/// Held by a recording in progress; `stop` waits until none is left, so a
/// summary (and the sealed tag) includes every response the client already
/// received — the commit runs after the last byte went to the client.
#[derive(Debug)]
pub struct InflightGuard(Arc<LiveSession>);

impl Drop for InflightGuard {
    fn drop(&mut self) {
        if self.0.inflight.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.settled.notify_waiters();
        }
    }
}

/// Held by the recording of an index page from its response head until
/// its digest hints are registered: a file request of the same session
/// waits for it (see [`LiveSession::pages_settled`]), so a file fetched
/// right after its page is checked against the digest the page announced.
#[derive(Debug)]
pub struct PageGuard(Arc<LiveSession>);

impl Drop for PageGuard {
    fn drop(&mut self) {
        if self.0.pages.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.pages_done.notify_waiters();
        }
    }
}

/// How long a file request waits for index pages' hints at most.
const PAGES_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// How long `stop` waits for recordings still being committed.
const SETTLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

/// A URL to classify as another request was: by that adapter, that way.
#[derive(Clone, Debug)]
pub struct Alias {
    /// The adapter that classified the original request.
    pub adapter: &'static str,
    /// Its classification, which the follow-up request gets.
    pub classification: btrfly_core::Classification,
}

/// Digest hints kept per session; index pages of a big build can announce
/// many files, but not unboundedly many.
const HINT_LIMIT: usize = 500_000;

impl LiveSession {
    /// The session's tag.
    pub fn tag(&self) -> &Tag {
        &self.info.tag
    }

    /// Record or playback.
    pub fn mode(&self) -> Mode {
        self.info.mode
    }

    /// Whether it may still be served (not stopped here or elsewhere).
    pub fn is_active(&self) -> bool {
        self.active.load(Ordering::SeqCst)
    }

    /// Ends serving it here; whether it was active until now.
    pub(crate) fn deactivate(&self) -> bool {
        self.active.swap(false, Ordering::SeqCst)
    }

    /// Whether its session object is due for a check (at most once per
    /// `every`, unless `force`); marks the check as done now.
    pub(crate) fn check_due(&self, every: std::time::Duration, force: bool) -> bool {
        let mut at = self.checked_at.lock().unwrap_or_else(|p| p.into_inner());
        if !force && at.elapsed() < every {
            return false;
        }
        *at = std::time::Instant::now();
        true
    }

    /// The slot for the tag's index during playback: filled on the first
    /// request (`None` inside when the tag is not sealed) and kept for the
    /// session's life. The gateway's index cache fills it.
    pub fn playback_index(&self) -> &tokio::sync::OnceCell<Option<Arc<btrfly_store::TagIndex>>> {
        &self.playback_index
    }

    pub(crate) fn new(info: SessionInfo, metrics: &crate::metrics::Metrics) -> LiveSession {
        let stats = Stats::with_metrics(metrics.for_mode(info.mode));
        let info_started = info.started_at;
        LiveSession {
            info,
            stats,
            active: AtomicBool::new(true),
            hints: Mutex::new(HashMap::new()),
            notes: Mutex::new(std::collections::BTreeMap::new()),
            refusals: Mutex::new(HashMap::new()),
            aliases: Mutex::new(HashMap::new()),
            inflight: AtomicUsize::new(0),
            settled: tokio::sync::Notify::new(),
            pages: AtomicUsize::new(0),
            pages_done: tokio::sync::Notify::new(),
            playback_index: tokio::sync::OnceCell::new(),
            checked_at: Mutex::new(std::time::Instant::now()),
            last_seen_ms: AtomicI64::new(unix_ms(info_started)),
        }
    }

    /// Notes that the session was heard of now (renews its lease).
    pub fn touch(&self) {
        self.last_seen_ms
            .fetch_max(unix_ms(time::OffsetDateTime::now_utc()), Ordering::Relaxed);
    }

    /// When this replica last heard of the session (its start when never).
    pub fn last_seen(&self) -> time::OffsetDateTime {
        from_unix_ms(self.last_seen_ms())
    }

    pub(crate) fn last_seen_ms(&self) -> i64 {
        self.last_seen_ms.load(Ordering::Relaxed)
    }

    /// Marks a recording as in progress until the guard is dropped.
    pub fn recording_started(self: &Arc<Self>) -> InflightGuard {
        self.inflight.fetch_add(1, Ordering::SeqCst);
        InflightGuard(self.clone())
    }

    /// Marks an index page as being recorded: its hints are not known
    /// until the guard is dropped.
    pub fn page_started(self: &Arc<Self>) -> PageGuard {
        self.pages.fetch_add(1, Ordering::SeqCst);
        PageGuard(self.clone())
    }

    /// Whether index pages are being recorded (their hints still unknown).
    pub fn pages_pending(&self) -> bool {
        self.pages.load(Ordering::SeqCst) > 0
    }

    /// Waits until no index page of this session is between its response
    /// head and its registered hints (at most 30 s; then the request goes
    /// on with what is known, and the wait is noted).
    pub async fn pages_settled(&self) {
        let wait = async {
            loop {
                let notified = self.pages_done.notified();
                if self.pages.load(Ordering::SeqCst) == 0 {
                    return;
                }
                notified.await;
            }
        };
        if tokio::time::timeout(PAGES_TIMEOUT, wait).await.is_err() {
            self.stats.note_error(
                "a file request waited 30s for index pages still being recorded; it went on without their digests".to_owned(),
            );
        }
    }

    /// Admits a request to be recorded: `None` once the session is
    /// stopping. The guard is held from admission to the commit (or the
    /// abandonment) of its recording, and `stop` first deactivates, then
    /// waits for every guard: a request is either admitted before the stop
    /// and committed before the seal, or refused — never committed after
    /// the seal. (Both sides use sequentially consistent operations: the
    /// admission increments then reads `active`, the stop clears `active`
    /// then reads the count, so at least one of them sees the other.)
    pub fn admit_recording(self: &Arc<Self>) -> Option<InflightGuard> {
        let guard = self.recording_started();
        self.is_active().then_some(guard)
    }

    /// Waits until no recording of this session is in progress (bounded).
    pub async fn settle(&self) {
        let wait = async {
            loop {
                let notified = self.settled.notified();
                if self.inflight.load(Ordering::SeqCst) == 0 {
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
            map.insert(h.url, h.digest);
        }
    }

    /// Keeps an adapter's notes (`Adapter::session_notes`); a note of the
    /// same name is replaced. At most as many as digest hints.
    pub fn add_notes(&self, notes: Vec<(String, String)>) {
        let mut map = self.notes.lock().unwrap_or_else(|p| p.into_inner());
        for (name, value) in notes {
            if map.len() >= HINT_LIMIT && !map.contains_key(&name) {
                break;
            }
            map.insert(name, value);
        }
    }

    /// The notes whose name starts with `prefix`, in name order.
    pub fn notes(&self, prefix: &str) -> Vec<(String, String)> {
        self.notes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .range(prefix.to_owned()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// The digest announced for a canonical URL, if any.
    pub fn hint(&self, url: &str) -> Option<ExpectedDigest> {
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

    /// Its counters so far, as a summary.
    pub fn summary(&self) -> Summary {
        let s = &self.stats;
        let (missed, errors) = s.lists();
        Summary {
            id: self.info.id.clone(),
            tag: self.info.tag.clone(),
            mode: self.info.mode,
            requests: s.requests.load(Ordering::Relaxed),
            hits: s.hits.load(Ordering::Relaxed),
            misses: s.misses.load(Ordering::Relaxed),
            mirror_hits: s.mirror_hits.load(Ordering::Relaxed),
            recorded: s.recorded.load(Ordering::Relaxed),
            bytes: s.bytes.load(Ordering::Relaxed),
            refused: s.refused.load(Ordering::Relaxed),
            unrecorded: s.unrecorded.load(Ordering::Relaxed),
            egress_refused: s.egress_refused.load(Ordering::Relaxed),
            unserved: s.unserved.load(Ordering::Relaxed),
            missed,
            errors,
            sealed: false,
        }
    }
}
