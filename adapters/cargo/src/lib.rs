//! The cargo adapter: what cargo asks a sparse registry for (cargo's
//! registry index format and its `sparse+` protocol), recorded and
//! replayed exactly.
//!
//! - Index documents (`config.json`, the index files `1/{name}`,
//!   `2/{name}`, `3/{n}/{name}`, `{ab}/{cd}/{name}`) are mutable: frozen
//!   per tag.
//! - `.crate` downloads are immutable (stored once across tags), keyed by
//!   crate and version when the URL names them.
//! - Verification: every index file recorded in a session announces the
//!   `cksum` (sha256) of each version's `.crate`; in that session a
//!   download that does not have it is cut off and not recorded. The
//!   download URL comes from the index's `config.json` `dl` template
//!   ([`index`]), so downloads on any host and of any URL form are
//!   checked.
//! - Each download's package identity is `pkg:cargo/{name}@{version}`.
//!
//! Hosts come from `[adapters.cargo]` ([`CargoConfig`]); no public host is
//! built in, and cargo's `cargo-protocol` request header and path shapes
//! recognise the rest ([`key`]).

pub mod config;
pub mod index;
pub mod key;

use btrfly_core::{Adapter, Classification, DigestHint, Entry, Mutability, RequestHead};
use http::HeaderMap;

pub use config::CargoConfig;
pub use key::NAME;

/// The cargo adapter (see the crate docs).
#[derive(Clone, Debug, Default)]
pub struct CargoAdapter {
    config: CargoConfig,
}

impl CargoAdapter {
    /// The adapter with `config`'s hosts.
    pub fn new(config: CargoConfig) -> CargoAdapter {
        CargoAdapter { config }
    }
}

/// Response headers of an index document that describe the fetch, not
/// the document: dropped, since the document is frozen per tag and a
/// replay must not offer validators of another fetch.
const VOLATILE: &[&str] = &[
    "date",
    "age",
    "expires",
    "etag",
    "last-modified",
    "set-cookie",
    "via",
    "alt-svc",
];

impl Adapter for CargoAdapter {
    fn name(&self) -> &'static str {
        NAME
    }

    fn classify(&self, req: &RequestHead) -> Option<Classification> {
        key::classify(&self.config, req)
    }

    /// `config.json` and index files are read for the template and the
    /// checksums they announce.
    fn inspects(&self, class: &Classification, status: u16) -> bool {
        status == 200 && class.mutability == Mutability::Mutable
    }

    fn session_notes(
        &self,
        req: &RequestHead,
        entry: &Entry,
        body: &[u8],
    ) -> Vec<(String, String)> {
        let Some(body) = btrfly_core::coding::decode_content(
            entry.header("content-encoding"),
            body,
            index::MAX_DOCUMENT,
        ) else {
            return Vec::new();
        };
        match key::resource(&self.config, req) {
            Some(key::Resource::Config { root }) => index::dl_template(&body)
                .map(|t| vec![(index::notes::template(&root), t)])
                .unwrap_or_default(),
            Some(key::Resource::IndexFile { root, .. }) => index::lines(&body)
                .into_iter()
                .map(|l| (index::notes::line(&root, &l.name, &l.vers), l.cksum))
                .collect(),
            _ => Vec::new(),
        }
    }

    fn digest_hints_noted(
        &self,
        req: &RequestHead,
        entry: &Entry,
        body: &[u8],
        notes: &dyn Fn(&str) -> Vec<(String, String)>,
    ) -> Vec<DigestHint> {
        let Some(body) = btrfly_core::coding::decode_content(
            entry.header("content-encoding"),
            body,
            index::MAX_DOCUMENT,
        ) else {
            return Vec::new();
        };
        match key::resource(&self.config, req) {
            // The template arrived: announce the download URLs of the
            // lines this session recorded from the same index before.
            Some(key::Resource::Config { root }) => {
                let Some(template) = index::dl_template(&body) else {
                    return Vec::new();
                };
                let prefix = index::notes::lines_of(&root);
                let lines: Vec<index::Line> = notes(&prefix)
                    .into_iter()
                    .filter_map(|(name, cksum)| {
                        let (crate_name, vers) = name.strip_prefix(&prefix)?.split_once(' ')?;
                        Some(index::Line {
                            name: crate_name.to_owned(),
                            vers: vers.to_owned(),
                            cksum,
                        })
                    })
                    .collect();
                index::hints(&lines, Some(&template))
            }
            Some(key::Resource::IndexFile { root, .. }) => {
                let name = index::notes::template(&root);
                let template = notes(&name)
                    .into_iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, t)| t);
                index::hints(&index::lines(&body), template.as_deref())
            }
            _ => Vec::new(),
        }
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
}

#[cfg(test)]
mod tests;
