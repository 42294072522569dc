//! The request log: one line per request (written by the proxy when the
//! request ends), whose fields the stages fill in as they learn them.
//!
//! The proxy opens [`request_span`] around the gateway's decision; each
//! stage calls [`note`] with what it knows (the session and tag when
//! routed, the adapter and key when classified); the proxy sets the
//! outcome from the decision. With `btrfly serve --log-format json` the line is one JSON
//! object whose `span` holds these fields.

use std::fmt::Display;

use tracing::field::Empty;

/// The fields of the request span, by name.
pub mod field {
    /// The session's id.
    pub const SESSION: &str = "session";
    /// The session's tag.
    pub const TAG: &str = "tag";
    /// `record` or `playback`.
    pub const MODE: &str = "mode";
    /// The adapter that claimed the request (`files`, `pip`, `oci`, …).
    pub const ADAPTER: &str = "adapter";
    /// The recording key.
    pub const KEY: &str = "key";
    /// `hit` or `miss` (playback), `upstream` (forwarded; recorded when
    /// the answer can be), `refused` (an error status of btrfly's own:
    /// no session, no adapter, a refused body) or `answered`.
    pub const OUTCOME: &str = "outcome";
}

/// The span a request's decision runs in (`request`, with `method` and
/// `url`, and empty fields for [`note`]).
pub fn request_span(method: &http::Method, url: &str) -> tracing::Span {
    tracing::info_span!(
        "request",
        method = %method,
        url = %url,
        session = Empty,
        tag = Empty,
        mode = Empty,
        adapter = Empty,
        key = Empty,
        outcome = Empty,
    )
}

/// Sets `field` (one of [`field`]'s names) of the current request span.
pub fn note(field: &'static str, value: impl Display) {
    tracing::Span::current().record(field, tracing::field::display(value));
}
