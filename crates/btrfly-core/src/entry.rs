//! What a tag index stores.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::{Mutability, RecordingKey, Tag};

/// One recorded exchange in a tag: the response head and where its body is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub key: RecordingKey,
    pub method: String,
    pub url: String,
    pub status: u16,
    /// Response headers as received (hop-by-hop headers removed), in order.
    pub headers: Vec<(String, String)>,
    /// sha256 of the response body; the blob's address in the store.
    pub sha256: String,
    pub size: u64,
    pub mutability: Mutability,
    #[serde(with = "time::serde::rfc3339")]
    pub recorded_at: OffsetDateTime,
}

/// State of a tag.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TagMeta {
    pub tag: Tag,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// A sealed tag is a finished recording: recording into it again needs `--force`.
    pub sealed: bool,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub sealed_at: Option<OffsetDateTime>,
}
