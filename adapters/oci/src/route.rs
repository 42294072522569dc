//! The shapes of the distribution API: which endpoint a path names.

use std::str::FromStr;

use oci_spec::image::{Digest, DigestAlgorithm};

/// A request path of the distribution API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint<'a> {
    /// `/v2/`: the version check, where authentication starts.
    Ping,
    /// `/v2/_catalog`
    Catalog,
    /// `/v2/<name>/manifests/<tag>`: mutable upstream.
    ManifestByTag {
        /// The repository.
        name: &'a str,
        /// The tag.
        tag: &'a str,
    },
    /// `/v2/<name>/manifests/<digest>`
    ManifestByDigest {
        /// The repository.
        name: &'a str,
        /// The digest.
        digest: Digest,
    },
    /// `/v2/<name>/blobs/<digest>`
    Blob {
        /// The repository.
        name: &'a str,
        /// The digest.
        digest: Digest,
    },
    /// `/v2/<name>/tags/list`
    TagsList {
        /// The repository.
        name: &'a str,
    },
    /// `/v2/<name>/referrers/<digest>`
    Referrers {
        /// The repository.
        name: &'a str,
        /// The subject's digest.
        digest: Digest,
    },
    /// Anything else under `/v2/`: uploads, extensions, malformed names.
    Other,
}

impl Endpoint<'_> {
    /// A known endpoint of the API (what shape detection accepts).
    pub fn is_known(&self) -> bool {
        !matches!(self, Endpoint::Other)
    }
}

/// The endpoint a path names, or `None` when it is not under `/v2/`.
pub fn parse(path: &str) -> Option<Endpoint<'_>> {
    let rest = if path == "/v2" {
        ""
    } else {
        path.strip_prefix("/v2/")?
    };
    if rest.is_empty() {
        return Some(Endpoint::Ping);
    }
    if rest == "_catalog" {
        return Some(Endpoint::Catalog);
    }
    if let Some(name) = rest.strip_suffix("/tags/list") {
        return Some(if valid_name(name) {
            Endpoint::TagsList { name }
        } else {
            Endpoint::Other
        });
    }
    let Some((name, kind, reference)) = rest
        .rsplit_once('/')
        .and_then(|(front, reference)| front.rsplit_once('/').map(|(n, k)| (n, k, reference)))
    else {
        return Some(Endpoint::Other);
    };
    if !valid_name(name) {
        return Some(Endpoint::Other);
    }
    let digest = Digest::from_str(reference).ok();
    Some(match (kind, digest) {
        ("manifests", Some(digest)) => Endpoint::ManifestByDigest { name, digest },
        ("manifests", None) if valid_tag(reference) => Endpoint::ManifestByTag {
            name,
            tag: reference,
        },
        ("blobs", Some(digest)) => Endpoint::Blob { name, digest },
        ("referrers", Some(digest)) => Endpoint::Referrers { name, digest },
        _ => Endpoint::Other,
    })
}

/// A sha256 digest's value: what the recorder can verify a body against.
pub fn sha256_hex(digest: &Digest) -> Option<btrfly_core::Sha256> {
    if digest.algorithm() != &DigestAlgorithm::Sha256 {
        return None;
    }
    btrfly_core::Sha256::new(digest.digest()).ok()
}

/// A repository name: `/`-separated components of `[a-z0-9]` runs joined by
/// `.`, `_`, `__` or dashes (the distribution spec's grammar, loosely).
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && name.split('/').all(|c| {
            let b = c.as_bytes();
            !b.is_empty()
                && b[0].is_ascii_alphanumeric()
                && b[b.len() - 1].is_ascii_alphanumeric()
                && b.iter()
                    .all(|x| x.is_ascii_lowercase() || x.is_ascii_digit() || b"._-".contains(x))
        })
}

/// A tag: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
pub fn valid_tag(tag: &str) -> bool {
    let b = tag.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|x| x.is_ascii_alphanumeric() || b"_.-".contains(x))
}
