//! The Go modules adapter: what the `go` command asks a module proxy, a
//! checksum database and (in direct mode) a version control host for,
//! recorded and replayed exactly.
//!
//! - Module proxy protocol: `@v/list` and `@latest` are mutable (frozen
//!   per tag); `@v/<version>.info|.mod|.zip` are immutable, keyed by the
//!   decoded module and version. Error answers (404, 410) are recorded and
//!   replayed as they came: `go` relies on them to fall through a
//!   `GOPROXY` list.
//! - Checksum database: `lookup` answers and `latest` mutable, tiles
//!   immutable, so that `GOSUMDB` verification works in playback.
//! - Verification: a `lookup` answer recorded in a session announces the
//!   `h1:` hashes of the module version's zip and go.mod; in that session
//!   a download of either that does not have that hash (Go's dirhash,
//!   computed while the body streams) is cut off and not recorded.
//! - Direct mode (`GOPROXY=direct`): `?go-get=1` pages and git's smart and
//!   dumb HTTP, keyed by the exact URL (a `POST …/git-upload-pack` also by
//!   its request body).
//!
//! Hosts come from `[adapters.go]` ([`GoConfig`]); no public host is built
//! in, and path shapes recognise the rest ([`key`]).

pub mod config;
pub mod key;

use btrfly_core::{Adapter, Classification, DigestHint, Entry, RequestHead};
pub use config::GoConfig;
pub use key::NAME;

/// The Go modules adapter (see the crate docs).
#[derive(Clone, Debug, Default)]
pub struct GoAdapter {
    config: GoConfig,
}

impl GoAdapter {
    /// The adapter with `config`'s hosts.
    pub fn new(config: GoConfig) -> GoAdapter {
        GoAdapter { config }
    }
}

impl Adapter for GoAdapter {
    fn name(&self) -> &'static str {
        NAME
    }

    fn classify(&self, req: &RequestHead) -> Option<Classification> {
        key::classify(&self.config, req)
    }

    /// Checksum database lookups are read for the hashes they announce.
    fn inspects(&self, class: &Classification, status: u16) -> bool {
        status == 200 && key::is_lookup(class)
    }

    fn digest_hints(&self, req: &RequestHead, entry: &Entry, body: &[u8]) -> Vec<DigestHint> {
        let Some(key::Resource::Lookup { module, version }) = key::resource(&self.config, req)
        else {
            return Vec::new();
        };
        match btrfly_core::coding::decode_content(
            entry.header("content-encoding"),
            body,
            MAX_LOOKUP,
        ) {
            Some(text) => key::lookup_hints(&module, &version, &text),
            None => Vec::new(),
        }
    }
}

/// Largest decoded lookup answer read for hashes (real ones are under a
/// kilobyte).
const MAX_LOOKUP: u64 = 64 * 1024;

#[cfg(test)]
mod tests;
