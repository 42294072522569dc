//! One forwarded exchange, from the gateway's decision to forward it to the
//! end of its response: the per-request state the proxy's hooks carry, and
//! every rule about it (body completeness, the request body's digest,
//! interim answers, upgrades, bodies closed without `close_notify`).
//!
//! The proxy translates each Pingora phase into one call here:
//!
//! ```text
//! request_filter (Forward)      → Exchange::new
//! request_body_filter           → Exchange::request_body_chunk
//! upstream_response_filter      → Exchange::response_head
//! upstream_response_body_filter → Exchange::response_chunk
//! fail_to_proxy                 → Exchange::end_by_close | Exchange::failure
//! logging                       → Exchange::finish
//! ```

use std::sync::Arc;
use std::time::Duration;

use btrfly_core::Sha256;
use btrfly_session::LiveSession;
use bytes::Bytes;
use http::{header, HeaderMap};
use sha2::Digest;

use crate::plan::RecordPlan;
use crate::recorder::{Mismatch, Recorder};

/// How long the rest of a request body may take to arrive once the answer
/// is complete (its digest is part of the key).
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// The state of one forwarded request.
pub struct Exchange {
    /// `scheme://host:port/path?query`, for messages.
    url: String,
    /// The recording plan, until the response head arrives.
    plan: Option<Box<RecordPlan>>,
    /// The recording session (record mode only).
    session: Option<Arc<LiveSession>>,
    recorder: Option<Recorder>,
    /// The request body's digest so far, when the request has a body and is
    /// being recorded.
    request_body: Option<(sha2::Sha256, u64)>,
    /// The request's `Content-Length`, when it declared one: a body that
    /// reached it is whole even if the client's end-of-stream never came
    /// (an HTTP/2 client may reset its stream once the answer is complete).
    request_body_len: Option<u64>,
    framing: Framing,
    /// Why the body was refused (it did not match its expected digest).
    refused: Option<Mismatch>,
    /// When the request was decided to go upstream (for the upstream
    /// latency of `/metrics`).
    started: std::time::Instant,
}

/// What the response head said about its body, and how it ended.
#[derive(Debug, Default)]
struct Framing {
    /// The upstream body ended (end of stream seen).
    upstream_done: bool,
    /// `Content-Length`, when given.
    expected_len: Option<u64>,
    /// No body: a `HEAD`, a `204` or a `304`.
    bodiless: bool,
    /// The body ends when the connection closes (HTTP/1.x without
    /// `Content-Length` or chunking).
    close_delimited: bool,
    /// A close-delimited body ended with a TLS close that lacked
    /// `close_notify`: taken as the end of the body, as clients do.
    closed_without_notify: bool,
}

/// The parts of a response head [`Exchange::response_head`] reads.
pub struct ResponseHead<'a> {
    /// Whether the request was a `HEAD`.
    pub request_is_head: bool,
    /// The response status.
    pub status: u16,
    /// Whether the upstream connection is HTTP/2 or later (no close
    /// delimiting there).
    pub http2: bool,
    /// The response headers; an adapter may normalise them here, and the
    /// client gets them as they are afterwards.
    pub headers: &'a mut HeaderMap,
}

/// How the proxying of a request ended, for [`Exchange::finish`].
#[derive(Debug, Default)]
pub struct Ending {
    /// The error that ended it, if any (for messages).
    pub error: Option<String>,
    /// Whether that error was the client's side going away.
    pub client_left: bool,
}

/// The answer a failed exchange gets, when its head has not gone out.
#[derive(Debug)]
pub struct Failure {
    /// What happened, for the client (plain text).
    pub message: String,
    /// `digest-mismatch` or `upstream`: the `x-btrfly-error` header.
    pub kind: &'static str,
}

/// Where the rest of a request body comes from (the proxy's client side).
#[allow(async_fn_in_trait)]
pub trait RequestBodySource {
    /// Whether the client's body has been read to its end.
    fn is_done(&mut self) -> bool;
    /// The next chunk, `None` at the end.
    ///
    /// # Errors
    /// The client connection failed.
    async fn next_chunk(&mut self) -> std::io::Result<Option<Bytes>>;
}

impl Exchange {
    /// A forwarded request to `url`; `recording` when its answer is to be
    /// recorded, `request_has_body` when the client sends a body.
    pub fn new(
        url: String,
        recording: Option<Box<RecordPlan>>,
        request_has_body: bool,
    ) -> Exchange {
        let session = recording.as_ref().map(|p| p.session.clone());
        let request_body =
            (recording.is_some() && request_has_body).then(|| (sha2::Sha256::new(), 0));
        Exchange {
            url,
            plan: recording,
            session,
            recorder: None,
            request_body,
            request_body_len: None,
            framing: Framing::default(),
            refused: None,
            started: std::time::Instant::now(),
        }
    }

    /// The request body's declared length in bytes (its `Content-Length`).
    #[must_use]
    pub fn with_request_body_len(mut self, len: Option<u64>) -> Exchange {
        self.request_body_len = len;
        self
    }

    /// The request's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Whether the answer is to be recorded (the upstream request then
    /// carries no conditionals: a `304` would record no body).
    pub fn is_recording(&self) -> bool {
        self.plan.is_some()
    }

    /// A chunk of the request body on its way upstream: hashed for the key.
    pub fn request_body_chunk(&mut self, chunk: &[u8]) {
        if let Some((hasher, size)) = self.request_body.as_mut() {
            hasher.update(chunk);
            *size += chunk.len() as u64;
        }
    }

    /// The upstream's response head. An interim answer (1xx but `101`)
    /// passes on and is never recorded; the final one is shown to the
    /// adapter (redirect aliases, digests carried over redirects, its
    /// normalised head, whether it is recorded at all) and starts the
    /// recorder.
    pub async fn response_head(&mut self, head: ResponseHead<'_>) {
        let status = head.status;
        if (100..200).contains(&status) && status != 101 {
            return;
        }
        if let Some(s) = &self.session {
            s.stats.observe_upstream(self.started.elapsed());
        }
        let headers = head.headers;
        let f = &mut self.framing;
        f.bodiless = head.request_is_head || matches!(status, 204 | 304);
        f.expected_len = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        let chunked = headers.get_all(header::TRANSFER_ENCODING).iter().any(|v| {
            v.to_str()
                .is_ok_and(|v| v.to_ascii_lowercase().contains("chunked"))
        });
        f.close_delimited = !f.bodiless && !head.http2 && f.expected_len.is_none() && !chunked;
        if status == 101 {
            if let Some(plan) = self.plan.take() {
                plan.session.stats.note_unrecorded(format!(
                    "not recorded: {}: an upgraded connection (101 Switching Protocols) cannot be replayed",
                    self.url
                ));
            }
            return;
        }
        if let Some(plan) = self.plan.as_ref() {
            plan.admit(status, headers);
            // The adapter's normalised head is what the client gets now and
            // what every replay gets later.
            plan.adapter
                .normalize_response_headers(&plan.classification, status, headers);
            if !plan
                .adapter
                .records(&plan.head, &plan.classification, status, headers)
            {
                self.plan = None;
            }
        }
        if let Some(plan) = self.plan.take() {
            let session = plan.session.clone();
            match Recorder::begin(*plan, status, headers).await {
                Ok(r) => self.recorder = Some(r),
                Err(e) => session
                    .stats
                    .note_unrecorded(format!("not recorded: {}: {e}", self.url)),
            }
        }
    }

    /// A chunk of the response body on its way to the client: counted, and
    /// teed into the recorder, which may hold it back (see
    /// [`Recorder::offer`]). Returns how long to pause reading upstream.
    ///
    /// # Errors
    /// [`Mismatch`]: the body is not what the protocol announced; the
    /// response must be aborted (the session was told, nothing is
    /// recorded).
    pub fn response_chunk(
        &mut self,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
    ) -> Result<Option<Duration>, Mismatch> {
        if end_of_stream {
            self.framing.upstream_done = true;
        }
        if let (Some(s), Some(chunk)) = (&self.session, body.as_ref()) {
            s.stats.count_bytes(chunk.len() as u64);
        }
        let Some(recorder) = self.recorder.as_mut() else {
            return Ok(None);
        };
        match recorder.offer(body, end_of_stream) {
            Ok(pause) => Ok(pause),
            Err(mismatch) => {
                if let Some(r) = self.recorder.take() {
                    r.refuse(&mismatch);
                }
                self.refused = Some(mismatch.clone());
                Err(mismatch)
            }
        }
    }

    /// Whether the body ends when the connection closes and has not ended
    /// yet: a connection closed now (even without TLS `close_notify`)
    /// ends it.
    pub fn can_end_by_close(&self) -> bool {
        self.framing.close_delimited && !self.framing.upstream_done
    }

    /// The connection of a close-delimited body closed: that is its end
    /// (as curl and browsers take it). Returns the last bytes to send the
    /// client before ending its body, or `None` when the body turned out
    /// not to match its digest (the client's body is then left cut).
    pub fn end_by_close(&mut self) -> Option<Option<Bytes>> {
        self.framing.upstream_done = true;
        self.framing.closed_without_notify = true;
        let mut last = None;
        if let Some(recorder) = self.recorder.as_mut() {
            if let Err(mismatch) = recorder.offer(&mut last, true) {
                if let Some(r) = self.recorder.take() {
                    r.refuse(&mismatch);
                }
                self.framing.closed_without_notify = false;
                return None;
            }
        }
        Some(last)
    }

    /// Proxying failed with `error` (upstream `target`): the answer the
    /// client gets when its head has not gone out. A refused body says why
    /// in btrfly's words; any other failure of a recording that had not
    /// started is noted as unrecorded (once a recording started,
    /// [`Exchange::finish`] decides).
    pub fn failure(&mut self, error: &dyn std::fmt::Display, target: &str) -> Failure {
        if let Some(why) = self.refused.take() {
            return Failure {
                message: format!("btrfly: {why}"),
                kind: "digest-mismatch",
            };
        }
        if let (Some(s), None) = (self.session.as_ref(), self.recorder.as_ref()) {
            s.stats
                .note_unrecorded(format!("not recorded: {}: {error}", self.url));
        }
        Failure {
            message: format!("btrfly: upstream {target} failed for {}: {error}", self.url),
            kind: "upstream",
        }
    }

    /// The exchange is over: the recording is committed when the body
    /// arrived whole (by its end of stream, its `Content-Length`, or a
    /// bodiless status), else noted as unrecorded. The rest of the request
    /// body is read first (`body`): an upstream may answer before it read
    /// it, and the key needs the digest of all of it.
    pub async fn finish<B: RequestBodySource>(&mut self, ending: Ending, body: &mut B) {
        let Some(recorder) = self.recorder.take() else {
            return;
        };
        let declared = self.request_body_len;
        if let Some((hasher, size)) = self.request_body.as_mut() {
            let drained = tokio::time::timeout(
                DRAIN_TIMEOUT,
                drain_request_body(hasher, size, declared, body),
            )
            .await
            .unwrap_or_else(|_| Err(format!("no more of it came in {DRAIN_TIMEOUT:?}")));
            if let Err(why) = drained {
                let of = declared.map_or_else(String::new, |len| format!(" of {len}"));
                recorder.session().stats.note_unrecorded(format!(
                    "not recorded: {}: the request body did not arrive whole ({}{of} bytes: {why})",
                    self.url, size
                ));
                recorder.abort();
                return;
            }
        }
        let f = &self.framing;
        // A client that hung up once the whole body had arrived from
        // upstream (Go's registry clients close the `/v2/` answer unread)
        // still leaves a whole recording.
        let client_left = ending.client_left;
        let error = ending.error.filter(|_| !f.closed_without_notify);
        let seen = recorder.bytes_seen();
        let complete = (error.is_none() || client_left)
            && (f.upstream_done || f.bodiless || f.expected_len == Some(seen));
        let length_ok = f.bodiless || f.expected_len.is_none_or(|len| len == seen);
        let session = self.session.clone();
        let note = |msg: String| {
            if let Some(s) = &session {
                s.stats.note_unrecorded(msg);
            }
        };
        if complete && length_ok {
            let digest = self
                .request_body
                .take()
                .filter(|(_, size)| *size > 0)
                .map(|(h, _)| Sha256::from_bytes(h.finalize().into()));
            if let Err(e) = recorder.commit(digest).await {
                note(e.to_string());
            }
        } else if client_left && recorder.head_suffices() {
            if let Err(e) = recorder.commit_head_alone().await {
                note(e.to_string());
            }
        } else {
            let why = error.unwrap_or_else(|| {
                format!("the body ended after {seen} of {:?} bytes", f.expected_len)
            });
            note(format!("not recorded: {}: {why}", self.url));
            recorder.abort();
        }
    }
}

/// Reads the rest of a request body into `hasher` and `size` (bytes).
/// `Ok` when the body is whole: it reached its declared length
/// (`declared`, its `Content-Length`: an HTTP/2 client may reset the
/// stream instead of ending it once it has the answer), or it ended when no
/// length was declared.
///
/// # Errors
/// What cut it short (for the session's problems).
async fn drain_request_body<B: RequestBodySource>(
    hasher: &mut sha2::Sha256,
    size: &mut u64,
    declared: Option<u64>,
    body: &mut B,
) -> Result<(), String> {
    let mut cut = None;
    while !body.is_done() && declared != Some(*size) {
        match body.next_chunk().await {
            Ok(Some(chunk)) => {
                hasher.update(&chunk);
                *size += chunk.len() as u64;
            }
            Ok(None) => break,
            Err(e) => {
                cut = Some(e.to_string());
                break;
            }
        }
    }
    match (declared, cut) {
        (Some(len), _) if len == *size => Ok(()),
        (None, None) => Ok(()),
        (_, Some(e)) => Err(e),
        (Some(_), None) => Err("the client ended it early".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A client body: its chunks, then an end or a reset.
    struct Scripted {
        chunks: Vec<&'static [u8]>,
        then_reset: bool,
        done: bool,
    }

    impl RequestBodySource for Scripted {
        fn is_done(&mut self) -> bool {
            self.done
        }

        async fn next_chunk(&mut self) -> std::io::Result<Option<Bytes>> {
            if !self.chunks.is_empty() {
                return Ok(Some(Bytes::from_static(self.chunks.remove(0))));
            }
            if self.then_reset {
                return Err(std::io::Error::other("stream reset"));
            }
            self.done = true;
            Ok(None)
        }
    }

    async fn drain(chunks: Vec<&'static [u8]>, then_reset: bool, declared: Option<u64>) -> bool {
        let mut body = Scripted {
            chunks,
            then_reset,
            done: false,
        };
        let (mut hasher, mut size) = (sha2::Sha256::new(), 0);
        drain_request_body(&mut hasher, &mut size, declared, &mut body)
            .await
            .is_ok()
    }

    #[tokio::test]
    async fn a_body_that_reached_its_length_is_whole_even_if_reset() {
        assert!(drain(vec![b"al", b"pha"], true, Some(5)).await);
        assert!(drain(vec![b"alpha"], false, Some(5)).await);
    }

    #[tokio::test]
    async fn a_short_or_reset_body_is_not_whole() {
        assert!(!drain(vec![b"al"], true, Some(5)).await);
        assert!(!drain(vec![b"al"], false, Some(5)).await);
        assert!(!drain(vec![b"alpha"], true, None).await);
        assert!(drain(vec![b"alpha"], false, None).await);
    }
}
