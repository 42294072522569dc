//! The npm adapter: what npm (and the clients that speak its registry
//! protocol) asks a registry for, recorded and replayed exactly.
//!
//! - Packuments (`GET /{name}`, `/@scope%2f{name}`, `/@scope/{name}`) are
//!   mutable: frozen per tag, keyed by the form `Accept` negotiates
//!   (abbreviated `application/vnd.npm.install-v1+json` or full JSON),
//!   not by the header's text.
//! - Tarballs (`/{name}/-/{name}-{version}.tgz`, scoped
//!   `/@scope/{name}/-/{name}-{version}.tgz`) are immutable (stored once
//!   across tags), keyed by package and version.
//! - Verification: every packument recorded in a session announces each
//!   version's `dist.integrity` (the strongest SRI hash) or `dist.shasum`
//!   for the URL its `dist.tarball` names ([`packument`]); in that session
//!   a tarball that does not have it is cut off and not recorded.
//! - Each tarball's package identity is `pkg:npm/{name}@{version}` or
//!   `pkg:npm/%40{scope}/{name}@{version}`.
//!
//! Hosts come from `[adapters.npm]` ([`NpmConfig`]); no public host is
//! built in, and npm's request headers and path shapes recognise the rest
//! ([`key`]).

pub mod config;
pub mod key;
pub mod packument;

use btrfly_core::{Adapter, Classification, DigestHint, Entry, Mutability, RequestHead};
use http::HeaderMap;

pub use config::{NpmConfig, NpmConfigError};
pub use key::NAME;

/// The npm adapter (see the crate docs).
#[derive(Clone, Debug, Default)]
pub struct NpmAdapter {
    config: NpmConfig,
}

impl NpmAdapter {
    /// The adapter with `config`'s hosts.
    pub fn new(config: NpmConfig) -> NpmAdapter {
        NpmAdapter { config }
    }
}

/// Response headers of a packument or page that describe the fetch, not
/// the document: dropped, since the document is frozen per tag and a
/// replay must not offer validators of another fetch.
pub const VOLATILE: &[&str] = &[
    "date",
    "age",
    "expires",
    "etag",
    "last-modified",
    "set-cookie",
    "via",
    "alt-svc",
];

/// Whether a classification is a packument's (the only key with the
/// negotiated form as variance).
fn is_packument(class: &Classification) -> bool {
    class.key.variance.contains_key("accept")
}

impl Adapter for NpmAdapter {
    fn name(&self) -> &'static str {
        NAME
    }

    fn classify(&self, req: &RequestHead) -> Option<Classification> {
        key::classify(&self.config, req)
    }

    /// Packuments are read for the digests they announce.
    fn inspects(&self, class: &Classification, status: u16) -> bool {
        status == 200 && is_packument(class)
    }

    fn digest_hints(&self, req: &RequestHead, entry: &Entry, body: &[u8]) -> Vec<DigestHint> {
        let Some(key::Resource::Packument { name, .. }) = key::resource(&self.config, req) else {
            return Vec::new();
        };
        let Some(body) = btrfly_core::coding::decode_content(
            entry.header("content-encoding"),
            body,
            packument::MAX_DOCUMENT,
        ) else {
            return Vec::new();
        };
        packument::hints(&name, &req.canonical_url(), &body)
    }

    fn normalize_response_headers(
        &self,
        class: &Classification,
        _status: u16,
        headers: &mut HeaderMap,
    ) {
        if class.mutability == Mutability::Mutable {
            for name in VOLATILE {
                headers.remove(*name);
            }
        }
    }

    /// Packuments key the `Accept` they negotiate their own way; other
    /// headers a `Vary` names (`Accept-Encoding`) enter keys as everywhere.
    fn vary_headers(&self, class: &Classification, names: Vec<String>) -> Vec<String> {
        if !is_packument(class) {
            return names;
        }
        names.into_iter().filter(|n| n != "accept").collect()
    }
}

#[cfg(test)]
mod tests;
