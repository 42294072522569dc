//! The OCI registry adapter: container images pulled through btrfly are
//! recorded by digest and replayed offline, and a tag keeps resolving to
//! the digest it had when it was recorded.
//!
//! It claims `GET` and `HEAD` of the distribution API (`/v2/…`) on hosts
//! configured as registries or, with `detect` on, on any host whose request
//! has the API's shape; and bearer-token requests on configured token hosts
//! or with the token protocol's `scope` query. No registry name is built in.
//!
//! The rules (keys in [`key`]):
//!
//! * **Tags are frozen per tag.** A manifest by tag is mutable upstream,
//!   so each btrfly tag keeps the answer it recorded; the negotiated
//!   `Accept` is part of the key (Docker schema 2, OCI manifest, OCI index,
//!   Docker manifest list are different answers).
//! * **Content by digest is immutable and verified.** Manifests and blobs
//!   by sha256 digest are keyed by the digest alone, so one recording
//!   serves every repository, registry and tag; the recorder checks the body
//!   against the digest while it streams and records nothing on a mismatch.
//!   A partial answer (`206`) cannot be checked and is never recorded: in
//!   playback a `Range` is cut from the verified whole.
//! * **Redirects to storage are followed, not recorded.** A registry that
//!   redirects a blob download (a signed, expiring URL on another host) has
//!   its redirect passed to the client unrecorded, and the download it
//!   leads to is recorded under the blob's digest key; playback answers the
//!   registry's URL with the body and never needs the signed URL.
//! * **Authentication replays without secrets.** `Authorization` is never
//!   part of a key, so playback accepts any token. The `401` of the version
//!   check is recorded with its `WWW-Authenticate` challenge, and token
//!   answers are keyed by realm and service, so a client starting without a
//!   token gets one from the tag. Within one recording an error answer never
//!   replaces a success recorded under the same key (a `401` for an expired
//!   token after the content was fetched): that rule holds for every
//!   adapter.
//! * A `HEAD` not recorded is answered from the recorded `GET`.
//! * The version check's body is not content: when a client hangs up
//!   before it arrived (Go's clients close it unread), its status and
//!   headers are recorded alone.

pub mod config;
pub mod key;
pub mod route;

use btrfly_core::{canonical_url, Adapter, Classification, Mutability, RequestHead};
use http::{HeaderMap, Method, Uri};
pub use key::NAME;

pub use config::{HostPattern, OciConfig, OciConfigError};
use route::Endpoint;

/// The OCI distribution adapter (see the crate docs).
#[derive(Clone, Debug)]
pub struct OciAdapter {
    registries: Vec<HostPattern>,
    auth_hosts: Vec<HostPattern>,
    detect: bool,
}

impl OciAdapter {
    /// The adapter for `config`.
    ///
    /// # Errors
    /// [`OciConfigError`] naming the first host that does not parse.
    pub fn new(config: &OciConfig) -> Result<OciAdapter, OciConfigError> {
        Ok(OciAdapter {
            registries: config::parse_hosts("registries", &config.registries)?,
            auth_hosts: config::parse_hosts("auth_hosts", &config.auth_hosts)?,
            detect: config.detect,
        })
    }

    fn is_registry(&self, req: &RequestHead) -> bool {
        self.registries
            .iter()
            .any(|h| h.matches(req.host(), req.port()))
    }

    fn is_auth_host(&self, req: &RequestHead) -> bool {
        self.auth_hosts
            .iter()
            .any(|h| h.matches(req.host(), req.port()))
    }
}

impl Default for OciAdapter {
    fn default() -> Self {
        OciAdapter {
            registries: Vec::new(),
            auth_hosts: Vec::new(),
            detect: true,
        }
    }
}

fn mutable(key: btrfly_core::RecordingKey) -> Classification {
    Classification::new(key, Mutability::Mutable)
}

/// Manifests and blobs by digest: keyed by the digest when it is a sha256
/// (which the recorder can verify), else by the exact URL.
fn by_digest(req: &RequestHead, what: &str, digest: &oci_spec::image::Digest) -> Classification {
    match route::sha256_hex(digest) {
        Some(hex) => Classification {
            key: key::by_digest(req, what, digest),
            mutability: Mutability::Immutable,
            expected: Some(hex.into()),
            package: key::purl(req, digest),
            subject: None,
        },
        None => mutable(key::exact(req)),
    }
}

/// Whether a classification is one of this adapter's digest keys.
fn is_digest_key(class: &Classification) -> bool {
    class.key.namespace == NAME && class.mutability == Mutability::Immutable
}

fn is_redirect(status: u16) -> bool {
    matches!(status, 301 | 302 | 303 | 307 | 308)
}

/// Where a `Location` points, in canonical form, resolved against the
/// request's URL.
pub fn resolve_location(base: &Uri, location: &str) -> Option<String> {
    let base = url::Url::parse(&base.to_string()).ok()?;
    let target = base.join(location.trim()).ok()?;
    let uri: Uri = target.as_str().parse().ok()?;
    (uri.scheme().is_some() && uri.authority().is_some()).then(|| canonical_url(&uri))
}

impl Adapter for OciAdapter {
    fn name(&self) -> &'static str {
        NAME
    }

    fn classify(&self, req: &RequestHead) -> Option<Classification> {
        if req.method != Method::GET && req.method != Method::HEAD {
            return None;
        }
        if let Some(endpoint) = route::parse(req.uri.path()) {
            if !(self.is_registry(req) || (self.detect && endpoint.is_known())) {
                return None;
            }
            return Some(match endpoint {
                Endpoint::Ping => mutable(key::ping(req)),
                Endpoint::ManifestByTag { .. } => mutable(key::manifest_by_tag(req)),
                Endpoint::ManifestByDigest { digest, .. } => by_digest(req, "manifest", &digest),
                Endpoint::Blob { digest, .. } => by_digest(req, "blob", &digest),
                Endpoint::Catalog
                | Endpoint::TagsList { .. }
                | Endpoint::Referrers { .. }
                | Endpoint::Other => mutable(key::exact(req)),
            });
        }
        if self.is_auth_host(req) || (self.detect && key::is_token_query(req.uri.query())) {
            return Some(mutable(key::token(req)));
        }
        None
    }

    fn records(
        &self,
        _req: &RequestHead,
        class: &Classification,
        status: u16,
        _headers: &HeaderMap,
    ) -> bool {
        // Content by digest enters a tag only whole and verified: a redirect
        // is followed instead (see `redirect_alias`), a part is not checkable.
        !(is_digest_key(class) && (is_redirect(status) || status == 206))
    }

    fn redirect_alias(
        &self,
        req: &RequestHead,
        class: &Classification,
        status: u16,
        headers: &HeaderMap,
    ) -> Option<String> {
        if !is_digest_key(class) || !is_redirect(status) {
            return None;
        }
        let location = headers.get(http::header::LOCATION)?.to_str().ok()?;
        resolve_location(&req.uri, location)
    }

    /// Token answers hand out bearer tokens: stored with placeholders.
    fn is_token_answer(&self, class: &Classification) -> bool {
        key::is_token_key(&class.key)
    }

    fn head_suffices(&self, class: &Classification, _status: u16) -> bool {
        // Clients read the version check's status and headers (the
        // authentication challenge) and often drop its body unread.
        class.key.namespace == NAME && key::is_ping(&class.key)
    }

    fn vary_headers(&self, class: &Classification, names: Vec<String>) -> Vec<String> {
        if is_digest_key(class) {
            // the body is verified against the digest: one answer
            return Vec::new();
        }
        // a manifest by tag keys its `Accept` set its own way
        names.into_iter().filter(|n| n != "accept").collect()
    }

    fn replay_fallbacks(&self, class: &Classification) -> Vec<btrfly_core::RecordingKey> {
        key::get_of_head(&class.key).into_iter().collect()
    }
}

#[cfg(test)]
mod tests;
