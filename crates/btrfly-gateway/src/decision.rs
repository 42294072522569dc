//! What the gateway tells the Pingora hooks to do.

use std::sync::Arc;

use btrfly_core::Sha256;
use btrfly_record::RecordPlan;
use btrfly_session::LiveSession;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode};

/// The gateway's verdict on a request. (A `Reply` is a little over
/// clippy's size limit; a decision is moved a few times per request, and
/// boxing it would cost an allocation on every replay.)
#[allow(clippy::large_enum_variant)]
pub enum Decision {
    /// Answer the client from btrfly: a replay hit, a miss, a rejection.
    Respond(Reply),
    /// Go upstream, recording the response when a plan is given.
    Forward(Forward),
}

/// Go upstream.
pub struct Forward {
    /// How to record the answer (record mode).
    pub recording: Option<Box<RecordPlan>>,
}

/// An answer btrfly writes itself.
pub struct Reply {
    /// The status.
    pub status: StatusCode,
    /// The headers (`Content-Length` is set by the writer for bytes).
    pub headers: HeaderMap,
    /// The body.
    pub body: ReplyBody,
    /// An HTTP/1 reason phrase other than the status's own (HTTP/1
    /// clients print it with the status).
    pub reason: Option<&'static str>,
    /// For an answer from the tag: who to tell when its body cannot be
    /// served (see [`Replayed`]).
    pub replayed: Option<Replayed>,
}

/// A playback hit on its way to the client. When its body cannot be
/// served whole and intact (the blob is missing from the store, or its
/// bytes no longer hash to its address), the writer calls
/// [`Replayed::failed`]: the hit is taken back and the session lists the
/// problem, so `btrfly stop playback` fails.
/// One pointer wide, since every [`Reply`] carries the field.
#[derive(Clone)]
pub struct Replayed(Arc<ReplayedHit>);

struct ReplayedHit {
    session: Arc<LiveSession>,
    what: String,
}

impl Replayed {
    /// A hit of `session` for `what` (`METHOD URL`).
    pub fn new(session: Arc<LiveSession>, what: String) -> Replayed {
        Replayed(Arc::new(ReplayedHit { session, what }))
    }

    /// The request, as `METHOD URL`.
    pub fn what(&self) -> &str {
        &self.0.what
    }

    /// The body could not be served: `why` names the blob and the fault.
    pub fn failed(&self, why: &str) {
        let hit = &self.0;
        hit.session
            .stats
            .note_unserved(format!("replaying {} failed: {why}", hit.what));
    }
}

/// Where a reply's body comes from.
pub enum ReplyBody {
    /// These bytes.
    Bytes(Bytes),
    /// A stored body, streamed from the blob store: `len` bytes from `offset`.
    Blob {
        /// The blob.
        sha256: Sha256,
        /// First byte.
        offset: u64,
        /// Number of bytes.
        len: u64,
        /// The bytes are the whole blob: the writer hashes them as they
        /// stream and cuts the response (no end of body) when they do not
        /// hash to `sha256`. A range cannot be checked without reading the
        /// whole blob; `btrfly verify` checks those.
        whole: bool,
    },
    /// Several byte ranges of a stored body, each after its own part head,
    /// then `tail` (a `multipart/byteranges` body, RFC 9110 §14.6).
    Parts {
        /// The blob.
        sha256: Sha256,
        /// The parts, in order.
        parts: Vec<Part>,
        /// The closing delimiter.
        tail: Bytes,
    },
}

/// One part of a [`ReplyBody::Parts`]: `head`, then `len` bytes of the
/// body from `offset`.
pub struct Part {
    /// The part's delimiter and headers.
    pub head: Bytes,
    /// First byte of the blob.
    pub offset: u64,
    /// Number of bytes.
    pub len: u64,
}

impl Reply {
    /// A plain-text answer written by btrfly itself.
    pub fn text(status: StatusCode, message: impl Into<String>) -> Reply {
        let mut message = message.into();
        if !message.ends_with('\n') {
            message.push('\n');
        }
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        Reply {
            status,
            headers,
            body: ReplyBody::Bytes(Bytes::from(message)),
            reason: None,
            replayed: None,
        }
    }

    /// A refusal of a body that does not match the digest announced for
    /// it: `x-btrfly-error: digest-mismatch`, and a reason phrase that
    /// says so (pip prints "409 Client Error: … for url: …").
    pub fn digest_mismatch(status: StatusCode, message: impl Into<String>) -> Reply {
        let mut reply =
            Reply::text(status, message).with_header("x-btrfly-error", "digest-mismatch");
        reply.reason = Some("Body Does Not Match Its Announced Digest");
        reply
    }

    /// This reply with one more header (skipped when `value` is not one).
    pub fn with_header(mut self, name: &'static str, value: &str) -> Reply {
        if let Ok(v) = HeaderValue::from_str(value) {
            self.headers.insert(name, v);
        }
        self
    }

    /// The body's length in bytes.
    pub fn body_len(&self) -> u64 {
        match &self.body {
            ReplyBody::Bytes(b) => b.len() as u64,
            ReplyBody::Blob { len, .. } => *len,
            ReplyBody::Parts { parts, tail, .. } => {
                parts
                    .iter()
                    .map(|p| p.head.len() as u64 + p.len)
                    .sum::<u64>()
                    + tail.len() as u64
            }
        }
    }
}

impl Decision {
    /// A plain-text answer (see [`Reply::text`]).
    pub fn text(status: StatusCode, message: impl Into<String>) -> Decision {
        Decision::Respond(Reply::text(status, message))
    }
}
