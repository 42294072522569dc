//! The Python package index adapter: what pip (and any client of the
//! simple repository API) asks an index for, recorded and replayed exactly.
//!
//! It understands:
//!
//! - the simple API in both forms, HTML (PEP 503) and JSON (PEP 691),
//!   negotiated by `Accept`: the negotiated forms are part of the key, so a
//!   replay answers each client in the form it asked for;
//! - project names normalised per PEP 503 (`Foo_Bar.baz` ≡ `foo-bar-baz`);
//! - the per-project JSON API (`/pypi/<project>[/<version>]/json`);
//! - PEP 658/714 metadata files (`<file>.metadata`), wheels and sdists.
//!
//! Which hosts are an index and which serve files comes from
//! `[adapters.pip]` ([`PipConfig`]); no public host is built in, and path
//! shapes recognise the rest ([`key`]).
//!
//! Pages are mutable (frozen per tag); files are immutable (their bodies
//! are content-addressed, so stored once across tags). Every page recorded
//! with status 200 is read for the sha256 it announces for each file
//! ([`index`]); within the session a later download of that file must have
//! that digest, or it is cut off and not recorded. Response heads are
//! normalised ([`headers`]), and a redirect to a URL with the same key is
//! not recorded (a replay could only answer it with itself).

pub mod config;
pub mod headers;
pub mod index;
pub mod key;
pub mod purl;

use btrfly_core::{Adapter, Classification, DigestHint, Entry, Mutability, RequestHead};
use http::HeaderMap;
pub use key::NAME;

pub use config::PipConfig;

#[derive(Clone, Debug, Default)]
/// The pip adapter (see the crate docs).
pub struct PipAdapter {
    config: PipConfig,
}

impl PipAdapter {
    /// The adapter with `config`'s hosts.
    pub fn new(config: PipConfig) -> PipAdapter {
        PipAdapter { config }
    }
}

impl Adapter for PipAdapter {
    fn name(&self) -> &'static str {
        NAME
    }

    fn classify(&self, req: &RequestHead) -> Option<Classification> {
        key::classify(&self.config, req)
    }

    /// Pages (simple API, JSON API, other index pages) are read for the
    /// digests they announce.
    fn inspects(&self, class: &Classification, status: u16) -> bool {
        status == 200 && class.mutability == Mutability::Mutable
    }

    fn digest_hints(&self, req: &RequestHead, entry: &Entry, body: &[u8]) -> Vec<DigestHint> {
        index::digest_hints(
            &req.uri.to_string(),
            entry.header("content-type"),
            entry.header("content-encoding"),
            body,
        )
    }

    fn normalize_response_headers(
        &self,
        class: &Classification,
        status: u16,
        headers: &mut HeaderMap,
    ) {
        headers::normalize(class.mutability, status, headers);
    }

    /// Pages key the `Accept` they negotiate their own way; other
    /// headers a `Vary` names (`Accept-Encoding`) enter keys as everywhere.
    fn vary_headers(&self, class: &Classification, names: Vec<String>) -> Vec<String> {
        if class.mutability == Mutability::Immutable {
            return names;
        }
        names.into_iter().filter(|n| n != "accept").collect()
    }

    fn records(
        &self,
        req: &RequestHead,
        class: &Classification,
        status: u16,
        headers: &HeaderMap,
    ) -> bool {
        !redirects_to_itself(&self.config, req, class, status, headers)
    }
}

/// A redirect whose target has the same key as its request: `/simple/Foo/`
/// to `/simple/foo/`, or a file URL to itself with another query. Recording
/// it could overwrite the target's recording with a redirect to itself.
pub fn redirects_to_itself(
    config: &PipConfig,
    req: &RequestHead,
    class: &Classification,
    status: u16,
    headers: &HeaderMap,
) -> bool {
    if !(300..400).contains(&status) {
        return false;
    }
    let Some(location) = headers
        .get(http::header::LOCATION)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let Some(mut target) = url::Url::parse(&req.uri.to_string())
        .ok()
        .and_then(|base| base.join(location.trim()).ok())
    else {
        return false;
    };
    target.set_fragment(None);
    let Ok(uri) = target.as_str().parse::<http::Uri>() else {
        return false;
    };
    let next = RequestHead {
        method: req.method.clone(),
        uri,
        headers: req.headers.clone(),
    };
    key::classify(config, &next).is_some_and(|c| c.key == class.key)
}

#[cfg(test)]
mod tests;
