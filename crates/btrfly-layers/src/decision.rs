//! What the stack tells the Pingora hooks to do.

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode};

use crate::record::RecordPlan;

pub enum Decision {
    /// Answer the client from btrfly: a replay hit, a miss, a rejection.
    Respond(Reply),
    /// Go upstream, recording the response when a plan is given.
    Forward(Forward),
}

pub struct Forward {
    pub recording: Option<Box<RecordPlan>>,
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: ReplyBody,
}

pub enum ReplyBody {
    Bytes(Bytes),
    /// A stored body, streamed from the blob store: `len` bytes from `offset`.
    Blob {
        sha256: String,
        offset: u64,
        len: u64,
    },
    /// Several byte ranges of a stored body, each after its own part head,
    /// then `tail` (a `multipart/byteranges` body, RFC 9110 §14.6).
    Parts {
        sha256: String,
        parts: Vec<Part>,
        tail: Bytes,
    },
}

/// One part of a [`ReplyBody::Parts`]: `head`, then `len` bytes of the
/// body from `offset`.
pub struct Part {
    pub head: Bytes,
    pub offset: u64,
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
        }
    }

    pub fn with_header(mut self, name: &'static str, value: &str) -> Reply {
        if let Ok(v) = HeaderValue::from_str(value) {
            self.headers.insert(name, v);
        }
        self
    }

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
    pub fn text(status: StatusCode, message: impl Into<String>) -> Decision {
        Decision::Respond(Reply::text(status, message))
    }
}
