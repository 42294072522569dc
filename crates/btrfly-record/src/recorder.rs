//! The recorder: in record mode the response body is teed into the store
//! while it streams to the client.
//!
//! Chunks go through a bounded channel to a writer task that streams them
//! into a temp blob; memory is bounded by the channel, never by the size of
//! the body. The entry is written only after the whole body arrived and was
//! hashed (and matched the adapter's expected digest, when there is one),
//! so a half-finished download is never replayed.

use std::collections::VecDeque;
use std::time::Duration;

use btrfly_core::{Entry, FieldValue, Sha256, VaryRecord, BODY_VARIANCE, MAX_INSPECTED_BODY};

use crate::verify::Checker;
use btrfly_store::{BlobWriter, StoreError, StoredBlob};
use bytes::Bytes;
use http::HeaderMap;
use time::OffsetDateTime;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use btrfly_session::LiveSession;

use crate::plan::RecordPlan;
use crate::secrets;

/// A body whose digest is not the one announced for it: the client must
/// not get it whole, and it is not recorded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("not recorded: {what}: body {algorithm} {actual} does not match the expected {expected}")]
pub struct Mismatch {
    /// `METHOD URL`.
    pub what: String,
    /// The algorithm (`sha256`, `sha512`, `sha1`, `h1`).
    pub algorithm: &'static str,
    /// The digest the protocol announced, as the protocol writes it.
    pub expected: String,
    /// The digest of the body that arrived, in the same form (or why it
    /// has none: a Go module zip that cannot be read).
    pub actual: String,
}

/// Why a whole answer could not be recorded.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// The store refused a write (or a read it needed).
    #[error("not recorded: {what}: {source}")]
    Store {
        /// `METHOD URL`.
        what: String,
        /// What the store said.
        source: StoreError,
    },
    /// The task writing the body ended abnormally.
    #[error("not recorded: {what}: {source}")]
    Writer {
        /// `METHOD URL`.
        what: String,
        /// How it ended.
        source: tokio::task::JoinError,
    },
}

/// Headers that describe one connection, not the resource: never recorded.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

enum Msg {
    Chunk(Bytes),
    Finish,
}

/// Chunks in flight to the writer task; with pingora's ≤64 KiB body chunks
/// this bounds the tee's memory to a few MiB per download.
const CHANNEL_CHUNKS: usize = 32;
/// Body bytes waiting in front of the writer at most. Upstream reads pause
/// while chunks wait; a store so slow that this much still piles up makes
/// the recording be abandoned (with a note) — the client's download goes
/// on, memory does not grow with the body.
pub const MAX_PENDING_BYTES: usize = 16 * 1024 * 1024;

/// The tee of one response being recorded: from its head to its commit or
/// abort. See the crate docs.
pub struct Recorder {
    plan: RecordPlan,
    status: u16,
    headers: Vec<(String, FieldValue)>,
    /// The request headers this answer's `Vary` names that enter its key.
    vary: Vec<String>,
    tx: Option<mpsc::Sender<Msg>>,
    pending: VecDeque<Bytes>,
    /// Bytes in `pending`.
    pending_bytes: usize,
    task: JoinHandle<Result<StoredBlob, StoreError>>,
    seen: u64,
    content_length: Option<u64>,
    verify: Option<Verify>,
    /// Dropped when this recording is committed or abandoned.
    _inflight: btrfly_session::InflightGuard,
    /// An index page: held until its hints are registered.
    _page: Option<btrfly_session::PageGuard>,
}

/// Inline check of a body against the digest the protocol announced. The
/// newest chunk is held back from the client until the digest is known, so
/// a body that does not match never reaches the client whole.
struct Verify {
    checker: Option<Checker>,
    held: Option<Bytes>,
}

impl Recorder {
    /// Starts recording a response whose head just arrived.
    ///
    /// # Errors
    /// The store cannot start a blob.
    pub async fn begin(
        plan: RecordPlan,
        status: u16,
        headers: &HeaderMap,
    ) -> Result<Recorder, StoreError> {
        let inflight = plan.session.recording_started();
        // From now on a file request of this session waits for the page's
        // hints: the client cannot ask for a file the page names before it
        // got the page's body, which starts after this head.
        let page = plan
            .adapter
            .inspects(&plan.classification, status)
            .then(|| plan.session.page_started());
        // A digest describes the body of the resource: only a successful
        // GET carries it. A redirect, a HEAD, an error answer is recorded as
        // it came.
        let verified = (plan.method == "GET" && (200..300).contains(&status) && status != 204)
            .then(|| plan.classification.expected.clone())
            .flatten();
        let writer = plan
            .store
            .blob_writer(verified.as_ref().and_then(|d| d.as_sha256()).cloned())
            .await?;
        let (tx, rx) = mpsc::channel(CHANNEL_CHUNKS);
        let token_answer =
            (200..300).contains(&status) && plan.adapter.is_token_answer(&plan.classification);
        let task = if token_answer {
            tokio::spawn(write_token_answer(writer, rx))
        } else {
            tokio::spawn(write_body(writer, rx))
        };
        let content_length = headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok());
        // Credentials never enter a key, whatever a `Vary` names.
        let vary = plan
            .adapter
            .vary_headers(&plan.classification, btrfly_core::vary_names(headers))
            .into_iter()
            .filter(|n| !secrets::UNKEYED_REQUEST_HEADERS.contains(&n.as_str()))
            .collect();
        let headers = headers
            .iter()
            .filter(|(k, _)| {
                !HOP_BY_HOP.contains(&k.as_str())
                    && !secrets::UNSTORED_RESPONSE_HEADERS.contains(&k.as_str())
            })
            .filter(|(k, _)| !token_answer || *k != http::header::CONTENT_LENGTH)
            .map(|(k, v)| (k.as_str().to_owned(), FieldValue::from(v)))
            .collect();
        let verify = verified.map(|expected| Verify {
            checker: Some(Checker::new(expected)),
            held: None,
        });
        Ok(Recorder {
            plan,
            status,
            headers,
            vary,
            tx: Some(tx),
            pending: VecDeque::new(),
            pending_bytes: 0,
            task,
            seen: 0,
            content_length,
            verify,
            _inflight: inflight,
            _page: page,
        })
    }

    /// Tees one body chunk (synchronous, for pingora's body filter) and may
    /// change what goes on to the client: with an expected digest the newest
    /// chunk is held back until the body is complete and verified. Returns
    /// how long the proxy should pause reading upstream when the store is
    /// slower than the network (memory stays bounded), or an error when the
    /// body does not match its expected digest: the response must then be
    /// aborted, and nothing is recorded.
    ///
    /// # Errors
    /// [`Mismatch`] when the complete body does not have its expected digest.
    pub fn offer(
        &mut self,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
    ) -> Result<Option<Duration>, Mismatch> {
        let incoming = body.take();
        if let Some(chunk) = incoming.as_ref().filter(|c| !c.is_empty()) {
            self.seen += chunk.len() as u64;
            if self.tx.is_some() {
                self.pending_bytes += chunk.len();
                self.pending.push_back(chunk.clone());
            }
        }
        *body = match self.verify.as_mut() {
            None => incoming,
            Some(v) => {
                let mut release = None;
                if let Some(chunk) = incoming.filter(|c| !c.is_empty()) {
                    if let Some(c) = v.checker.as_mut() {
                        c.update(&chunk);
                    }
                    release = v.held.replace(chunk);
                }
                let complete = end_of_stream || self.content_length == Some(self.seen);
                if complete {
                    let outcome = match v.checker.take() {
                        Some(c) => {
                            let expected = c.expected().to_string();
                            c.finish().map_err(|computed| (expected, computed))
                        }
                        None => Ok(()),
                    };
                    if let Err((expected, computed)) = outcome {
                        let mismatch = Mismatch {
                            what: format!("{} {}", self.plan.method, self.plan.url),
                            algorithm: computed.algorithm,
                            expected,
                            actual: computed.actual,
                        };
                        self.verify = None;
                        self.pending.clear();
                        self.pending_bytes = 0;
                        self.tx = None;
                        return Err(mismatch);
                    }
                    let last = v.held.take();
                    self.verify = None;
                    match (release, last) {
                        (Some(a), Some(b)) => {
                            let mut joined = bytes::BytesMut::with_capacity(a.len() + b.len());
                            joined.extend_from_slice(&a);
                            joined.extend_from_slice(&b);
                            Some(joined.freeze())
                        }
                        (a, b) => a.or(b),
                    }
                } else {
                    release
                }
            }
        };
        self.flush();
        if self.pending_bytes > MAX_PENDING_BYTES {
            // The store cannot keep up: give the recording up rather than
            // hold the body in memory (the writer aborts its temp blob).
            self.plan.session.stats.note_error(format!(
                "not recorded: {} {}: the store took more than {} MiB behind the upstream; the recording was abandoned (the client got the whole answer)",
                self.plan.method,
                self.plan.url,
                MAX_PENDING_BYTES / (1024 * 1024)
            ));
            self.pending.clear();
            self.pending_bytes = 0;
            self.tx = None;
        }
        if self.pending.is_empty() {
            Ok(None)
        } else {
            Ok(Some(Duration::from_millis(
                (self.pending.len() as u64 * 2).min(50),
            )))
        }
    }

    fn flush(&mut self) {
        let Some(tx) = &self.tx else { return };
        while let Some(front) = self.pending.front() {
            match tx.try_send(Msg::Chunk(front.clone())) {
                Ok(()) => {
                    if let Some(sent) = self.pending.pop_front() {
                        self.pending_bytes -= sent.len();
                    }
                }
                Err(mpsc::error::TrySendError::Full(_)) => break,
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    // The writer failed; its error surfaces at commit.
                    self.pending.clear();
                    self.pending_bytes = 0;
                    self.tx = None;
                    break;
                }
            }
        }
    }

    /// Body bytes offered so far.
    pub fn bytes_seen(&self) -> u64 {
        self.seen
    }

    /// The whole body arrived: store it and write the tag entry.
    /// `body_sha256` is the digest of the request body, when it had one.
    ///
    /// # Errors
    /// [`RecordError`]: the writer task or the store failed.
    pub async fn commit(mut self, body_sha256: Option<Sha256>) -> Result<Entry, RecordError> {
        let what = format!("{} {}", self.plan.method, self.plan.url);
        let fail = |source: StoreError| RecordError::Store {
            what: what.clone(),
            source,
        };
        if let Some(tx) = self.tx.take() {
            for chunk in self.pending.drain(..) {
                if tx.send(Msg::Chunk(chunk)).await.is_err() {
                    break;
                }
            }
            let _ = tx.send(Msg::Finish).await;
        }
        let blob = match (&mut self.task).await {
            Ok(Ok(blob)) => blob,
            Ok(Err(e)) => return Err(fail(e)),
            Err(source) => {
                return Err(RecordError::Writer {
                    what: what.clone(),
                    source,
                })
            }
        };
        let mut base = self.plan.classification.key.clone();
        if let Some(d) = body_sha256 {
            base.variance.insert(BODY_VARIANCE.into(), d.to_string());
        }
        let key = base.with_vary(&self.vary, &self.plan.head.headers);
        let session = &self.plan.session;
        if self.status >= 400 {
            // The first good answer stands: within one recording, a later
            // error (a retry that failed, a re-check) never replaces a
            // success under the same key.
            match self.plan.store.get_entry(session.tag(), &key).await {
                Ok(Some(old)) if old.status < 400 && old.recorded_at >= session.info.started_at => {
                    tracing::debug!(
                        "not recording {} for {what}: the tag keeps the {} this recording got first",
                        self.status,
                        old.status
                    );
                    return Ok(old);
                }
                Ok(_) => {}
                Err(e) => return Err(fail(e)),
            }
        }
        if !self.vary.is_empty() {
            let record = VaryRecord {
                key: base,
                vary: self.vary.clone(),
            };
            self.plan
                .store
                .put_vary(session.tag(), &record)
                .await
                .map_err(fail)?;
        }
        let entry = Entry {
            key,
            method: self.plan.method.clone(),
            url: secrets::stored_url(&self.plan.url, &self.plan.classification.key),
            status: self.status,
            headers: std::mem::take(&mut self.headers),
            sha256: blob.sha256,
            size: blob.size,
            mutability: self.plan.classification.mutability,
            recorded_at: OffsetDateTime::now_utc(),
            purl: self.plan.classification.package.clone(),
        };
        self.plan
            .store
            .put_entry(session.tag(), &entry)
            .await
            .map_err(fail)?;
        session.stats.count_recorded(entry.size);
        self.inspect(&entry).await;
        Ok(entry)
    }

    /// Lets the adapter read an index page it asked to see and remember the
    /// digests it announces.
    async fn inspect(&self, entry: &Entry) {
        let plan = &self.plan;
        if entry.size > MAX_INSPECTED_BODY
            || !plan.adapter.inspects(&plan.classification, entry.status)
        {
            return;
        }
        let mut body = Vec::with_capacity(entry.size as usize);
        match plan.store.read_blob(&entry.sha256, None).await {
            Ok(mut stream) => {
                use futures::StreamExt;
                while let Some(chunk) = stream.next().await {
                    match chunk {
                        Ok(c) => body.extend_from_slice(&c),
                        Err(e) => {
                            plan.session.stats.note_error(format!(
                                "reading back {} to inspect it: {e}",
                                plan.url
                            ));
                            return;
                        }
                    }
                }
            }
            Err(e) => {
                plan.session
                    .stats
                    .note_error(format!("reading back {} to inspect it: {e}", plan.url));
                return;
            }
        }
        let session = &plan.session;
        session.add_notes(plan.adapter.session_notes(&plan.head, entry, &body));
        let hints = plan
            .adapter
            .digest_hints_noted(&plan.head, entry, &body, &|prefix| session.notes(prefix));
        session.add_hints(hints);
    }

    /// The recording session.
    pub fn session(&self) -> &LiveSession {
        &self.plan.session
    }

    /// The body did not match its expected digest (`why`, from
    /// [`Recorder::offer`]): counted and remembered by the session, which
    /// then refuses to serve a part of it; nothing is recorded.
    pub fn refuse(self, why: &Mismatch) {
        self.plan
            .session
            .refuse(self.plan.head.canonical_url(), why.to_string());
        self.abort();
    }

    /// Whether the adapter accepts this answer's head without its body
    /// ([`btrfly_core::Adapter::head_suffices`]).
    pub fn head_suffices(&self) -> bool {
        self.plan
            .adapter
            .head_suffices(&self.plan.classification, self.status)
    }

    /// The client left before the body arrived, and the head suffices:
    /// records the head with an empty body.
    ///
    /// # Errors
    /// As [`Recorder::commit`].
    pub async fn commit_head_alone(mut self) -> Result<Entry, RecordError> {
        // Closing the channel makes the writer discard what arrived.
        self.tx = None;
        self.pending.clear();
        self.pending_bytes = 0;
        self.verify = None;
        let _ = (&mut self.task).await;
        let writer =
            self.plan
                .store
                .blob_writer(None)
                .await
                .map_err(|source| RecordError::Store {
                    what: format!("{} {}", self.plan.method, self.plan.url),
                    source,
                })?;
        self.task = tokio::spawn(writer.finish());
        self.commit(None).await
    }

    /// The body did not arrive whole: forget it.
    pub fn abort(mut self) {
        // Closing the channel without `Finish` makes the writer discard the
        // temp object.
        self.tx = None;
        self.pending.clear();
        self.pending_bytes = 0;
    }
}

/// A token answer (see [`crate::secrets`]): read whole (it is small), its
/// tokens replaced, then stored; the real token never reaches the store.
async fn write_token_answer(
    mut writer: BlobWriter,
    mut rx: mpsc::Receiver<Msg>,
) -> Result<StoredBlob, StoreError> {
    let mut body = Vec::new();
    loop {
        match rx.recv().await {
            Some(Msg::Chunk(chunk)) => {
                if body.len() + chunk.len() > secrets::MAX_TOKEN_ANSWER {
                    writer.abort().await;
                    return Err(StoreError::TokenAnswerTooLarge(
                        secrets::MAX_TOKEN_ANSWER as u64,
                    ));
                }
                body.extend_from_slice(&chunk);
            }
            Some(Msg::Finish) => {
                let redacted = secrets::redact_token_answer(&body);
                if let Err(e) = writer.write(Bytes::from(redacted)).await {
                    writer.abort().await;
                    return Err(e);
                }
                return writer.finish().await;
            }
            None => {
                writer.abort().await;
                return Err(StoreError::Aborted);
            }
        }
    }
}

async fn write_body(
    mut writer: BlobWriter,
    mut rx: mpsc::Receiver<Msg>,
) -> Result<StoredBlob, StoreError> {
    loop {
        match rx.recv().await {
            Some(Msg::Chunk(chunk)) => {
                if let Err(e) = writer.write(chunk).await {
                    writer.abort().await;
                    return Err(e);
                }
            }
            Some(Msg::Finish) => return writer.finish().await,
            None => {
                writer.abort().await;
                return Err(StoreError::Aborted);
            }
        }
    }
}
