//! What a packument says about tarballs: each version's `dist` (the npm
//! registry's package document, abbreviated or full).
//!
//! Of each entry of `versions` the adapter reads `dist.tarball` (the
//! tarball's URL, resolved against the packument's own URL when
//! relative), `dist.integrity` (a Subresource Integrity value; of several
//! hashes the strongest, sha512 before sha256, others ignored) and, when
//! there is no usable integrity, `dist.shasum` (sha1, 40 hex digits). A
//! version without either announces nothing.
//!
//! Within a recording session each version's digest is announced for the
//! URL of `dist.tarball` (so a registry that lays its tarballs out
//! otherwise is checked too, whichever adapter claims the URL) and for the
//! version's hint subject (`npm:{name}@{version}`, for a client that
//! downloads the tarball from another URL, as npm does when it rewrites a
//! tarball's host to the configured registry's).

use btrfly_core::{DigestHint, ExpectedDigest};
use serde::Deserialize;

use crate::key;

/// Largest decoded packument read (the full document of a package with
/// thousands of versions is tens of MiB; a body cut at this size does not
/// parse and announces nothing).
pub(crate) const MAX_DOCUMENT: u64 = 64 * 1024 * 1024;

/// One version's announcement: where its tarball is and the digest it
/// must have.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Announced {
    /// The version.
    pub version: String,
    /// `dist.tarball`, absolute, when it is an `http(s)` URL.
    pub tarball: Option<http::Uri>,
    /// The digest from `dist.integrity`, else from `dist.shasum`.
    pub digest: ExpectedDigest,
}

/// The digest a version's `dist` object announces: the strongest hash of
/// `integrity`, else `shasum`.
pub fn dist_digest(dist: &serde_json::Value) -> Option<ExpectedDigest> {
    let text = |field: &str| dist.get(field).and_then(serde_json::Value::as_str);
    text("integrity")
        .and_then(|sri| ExpectedDigest::from_sri(sri).ok())
        .or_else(|| text("shasum").and_then(|s| ExpectedDigest::sha1_hex(s).ok()))
}

/// The versions of a packument `body` fetched from `url`, each with its
/// digest; empty when the body is not a packument.
pub fn announced(url: &str, body: &[u8]) -> Vec<Announced> {
    #[derive(Deserialize)]
    struct Document {
        #[serde(default)]
        versions: serde_json::Map<String, serde_json::Value>,
    }
    let Ok(doc) = serde_json::from_slice::<Document>(body) else {
        return Vec::new();
    };
    let base = url::Url::parse(url).ok();
    let mut out = Vec::new();
    for (version, manifest) in doc.versions {
        let Some(dist) = manifest.get("dist") else {
            continue;
        };
        let Some(digest) = dist_digest(dist) else {
            continue;
        };
        let tarball = dist
            .get("tarball")
            .and_then(serde_json::Value::as_str)
            .and_then(|t| match &base {
                Some(base) => base.join(t.trim()).ok(),
                None => url::Url::parse(t.trim()).ok(),
            })
            .filter(|u| matches!(u.scheme(), "http" | "https"))
            .and_then(|u| u.as_str().parse::<http::Uri>().ok());
        out.push(Announced {
            version,
            tarball,
            digest,
        });
    }
    out
}

/// The hints of a packument of package `name` fetched from `url`: by
/// tarball URL (in canonical form) and by subject, for every version.
pub fn hints(name: &str, url: &str, body: &[u8]) -> Vec<DigestHint> {
    let mut out = Vec::new();
    for a in announced(url, body) {
        if let Some(t) = &a.tarball {
            out.push(DigestHint {
                url: btrfly_core::canonical_url(t),
                digest: a.digest.clone(),
            });
        }
        out.push(DigestHint {
            url: key::subject(name, &a.version),
            digest: a.digest,
        });
    }
    out
}
