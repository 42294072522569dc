//! What the explicit mirror holds: artifacts declared on purpose
//! (`btrfly mirror add`), each with a note saying why. This module has the
//! vocabulary: what may be declared ([`MirrorSource`], parsed by
//! [`MirrorSource::parse`]) and the states of an entry ([`MirrorState`]).
//!
//! A container image is declared by digest only
//! (`REGISTRY/REPOSITORY@sha256:HEX`, as the OCI distribution spec names a
//! manifest by digest): a tag is a name its publisher can point at other
//! content at any time, so a mirrored tag would not say what a build got.

use serde::{Deserialize, Serialize};

use crate::digest::Sha256;
use crate::session::Tag;

/// The tag the mirror's fetcher records into (a record session of its own
/// per fetch, through the server's proxy listener), and the one playback
/// falls back to: reserved, no user session may record into it.
pub const MIRROR_TAG: &str = "btrfly-mirror";

/// [`MIRROR_TAG`] as a [`Tag`].
pub fn mirror_tag() -> Tag {
    Tag::new(MIRROR_TAG).unwrap_or_else(|_| unreachable!("{MIRROR_TAG} is a valid tag"))
}

/// What a mirror entry declares.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum MirrorSource {
    /// A file at an `http://` or `https://` URL.
    Url {
        /// The URL as given.
        url: String,
        /// The sha256 its body must have (`--sha256`), when pinned.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sha256: Option<Sha256>,
    },
    /// A container image (or image index: every platform) by digest.
    Image {
        /// The registry host, with its port when given
        /// (`registry.example.test:5000`).
        registry: String,
        /// The repository (`team/app`).
        repository: String,
        /// The manifest's digest (`sha256:` left out).
        digest: Sha256,
    },
}

/// A declaration [`MirrorSource::parse`] refuses.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MirrorSourceError {
    /// An image named by tag (or by nothing) instead of by digest.
    #[error("{given}: images are mirrored by digest only, because a tag is a name its publisher can move to other content at any time, and a mirrored tag would not say what a build got. Name the image as REGISTRY/REPOSITORY@sha256:DIGEST (the digest a pull by tag resolves to, e.g. from `skopeo inspect docker://{given}`)")]
    TagOnly {
        /// The reference as given.
        given: String,
    },
    /// `--sha256` given for an image (its digest is in its name).
    #[error("--sha256 pins a file's digest; an image is pinned by its own name (REGISTRY/REPOSITORY@sha256:DIGEST)")]
    Sha256OnImage,
    /// Neither a URL nor an image reference.
    #[error("{given:?} is neither an http(s):// URL nor an image REGISTRY/REPOSITORY@sha256:DIGEST: {why}")]
    Invalid {
        /// The text as given.
        given: String,
        /// What is wrong with it.
        why: String,
    },
}

impl MirrorSource {
    /// Parses what `btrfly mirror add` was given: an `http://` or
    /// `https://` URL (with `sha256`, the digest its body must have), or
    /// an image `REGISTRY/REPOSITORY@sha256:HEX` (a `:TAG` before the
    /// digest is allowed and ignored: the digest decides). The registry is
    /// the first path component and must look like a host (`a.b`,
    /// `host:port` or `localhost`).
    ///
    /// # Errors
    /// [`MirrorSourceError::TagOnly`] for an image without a digest (with
    /// why digests are required), [`MirrorSourceError::Sha256OnImage`],
    /// [`MirrorSourceError::Invalid`] otherwise.
    pub fn parse(text: &str, sha256: Option<&str>) -> Result<MirrorSource, MirrorSourceError> {
        let invalid = |why: &str| MirrorSourceError::Invalid {
            given: text.to_owned(),
            why: why.to_owned(),
        };
        let text = text.trim();
        if let Some((scheme, rest)) = text.split_once("://") {
            if !matches!(scheme, "http" | "https") {
                return Err(invalid("the scheme must be http or https"));
            }
            let uri: http::Uri = text.parse().map_err(|e| invalid(&format!("{e}")))?;
            if uri.host().is_none_or(str::is_empty) || rest.starts_with('/') {
                return Err(invalid("the URL has no host"));
            }
            let sha256 = sha256
                .map(|h| Sha256::parse_lenient(h).map_err(|e| invalid(&format!("--sha256: {e}"))))
                .transpose()?;
            return Ok(MirrorSource::Url {
                url: text.to_owned(),
                sha256,
            });
        }
        let (name, digest) = match text.split_once('@') {
            Some((name, digest)) => (name, Some(digest)),
            None => (text, None),
        };
        let Some((registry, repo_and_tag)) = name.split_once('/') else {
            return Err(invalid("an image reference starts with its registry host"));
        };
        let hostlike = registry == "localhost" || registry.contains('.') || registry.contains(':');
        if !hostlike {
            return Err(invalid(
                "the first part of an image reference must be its registry host (with a dot or a port, or localhost)",
            ));
        }
        let Some(digest) = digest else {
            return Err(MirrorSourceError::TagOnly {
                given: text.to_owned(),
            });
        };
        if sha256.is_some() {
            return Err(MirrorSourceError::Sha256OnImage);
        }
        let hex = digest
            .strip_prefix("sha256:")
            .ok_or_else(|| invalid("the digest must be sha256:HEX"))?;
        let digest = Sha256::new(hex).map_err(|e| invalid(&format!("the digest: {e}")))?;
        // A `:tag` after the last `/` is a tag; a `:` before it is a port.
        let repository = match repo_and_tag.rsplit_once(':') {
            Some((repo, tag)) if !tag.contains('/') => repo,
            _ => repo_and_tag,
        };
        let valid_repo = !repository.is_empty()
            && repository.split('/').all(|part| {
                !part.is_empty()
                    && part.bytes().all(|b| {
                        b.is_ascii_lowercase()
                            || b.is_ascii_digit()
                            || matches!(b, b'.' | b'_' | b'-')
                    })
            });
        if !valid_repo {
            return Err(invalid(
                "the repository is lower-case letters, digits, '.', '_', '-' in '/'-separated parts",
            ));
        }
        Ok(MirrorSource::Image {
            registry: registry.to_owned(),
            repository: repository.to_owned(),
            digest,
        })
    }
}

impl std::fmt::Display for MirrorSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MirrorSource::Url { url, .. } => f.write_str(url),
            MirrorSource::Image {
                registry,
                repository,
                digest,
            } => write!(f, "{registry}/{repository}@sha256:{digest}"),
        }
    }
}

/// Where a mirror entry is: declared, being fetched, in the store, or
/// given up on (with the reason kept beside it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MirrorState {
    /// Declared; the fetcher has not finished it yet (retries included).
    Pending,
    /// Everything it names is in the store, digests verified.
    Stored,
    /// The fetcher gave up: a digest mismatch, or retries exhausted.
    Failed,
}

impl MirrorState {
    /// `pending`, `stored` or `failed`.
    pub fn as_str(self) -> &'static str {
        match self {
            MirrorState::Pending => "pending",
            MirrorState::Stored => "stored",
            MirrorState::Failed => "failed",
        }
    }
}

impl std::fmt::Display for MirrorState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One declared artifact, as the store keeps it (`mirror/<id>.json`) and
/// the API shows it. Entries are never purged.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MirrorEntry {
    /// Its id: 16 lower-case hex digits.
    pub id: String,
    /// What it declares.
    pub source: MirrorSource,
    /// Why it is needed (mandatory, not empty).
    pub note: String,
    /// The name of the token that added it.
    pub added_by: String,
    /// When it was added.
    #[serde(with = "time::serde::rfc3339")]
    pub added_at: time::OffsetDateTime,
    /// Where it is.
    pub state: MirrorState,
    /// Why it failed (`failed`), or the last attempt's error (`pending`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Fetch attempts so far.
    #[serde(default)]
    pub attempts: u32,
    /// When its state last changed.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: time::OffsetDateTime,
}

/// Whether `id` can be a [`MirrorEntry::id`] (1-64 ASCII letters and
/// digits; it names a storage object).
pub fn valid_entry_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn urls_with_and_without_a_digest() {
        let u = MirrorSource::parse("https://files.example.test/a.tar.gz", None).expect("url");
        assert_eq!(
            u,
            MirrorSource::Url {
                url: "https://files.example.test/a.tar.gz".into(),
                sha256: None
            }
        );
        let pinned =
            MirrorSource::parse("http://files.example.test:8080/b", Some(D)).expect("pinned");
        assert!(matches!(pinned, MirrorSource::Url { sha256: Some(d), .. } if d == D));
        assert!(MirrorSource::parse("https://files.example.test/b", Some("xyz")).is_err());
        assert!(MirrorSource::parse("ftp://files.example.test/b", None).is_err());
        assert!(MirrorSource::parse("https:///nohost", None).is_err());
        let json = serde_json::to_value(&u).expect("json");
        assert_eq!(json["kind"], "url");
    }

    #[test]
    fn images_by_digest_only() {
        let img = MirrorSource::parse(
            &format!("registry.example.test:5000/team/app@sha256:{D}"),
            None,
        )
        .expect("image");
        assert_eq!(
            img,
            MirrorSource::Image {
                registry: "registry.example.test:5000".into(),
                repository: "team/app".into(),
                digest: Sha256::new(D).expect("digest"),
            }
        );
        assert_eq!(
            img.to_string(),
            format!("registry.example.test:5000/team/app@sha256:{D}")
        );
        // A tag beside the digest: the digest decides.
        let tagged =
            MirrorSource::parse(&format!("localhost/app:1.0@sha256:{D}"), None).expect("ok");
        assert!(
            matches!(tagged, MirrorSource::Image { ref repository, .. } if repository == "app")
        );

        let refused = MirrorSource::parse("registry.example.test/team/app:1.0", None)
            .expect_err("a tag only");
        assert!(matches!(refused, MirrorSourceError::TagOnly { .. }));
        let msg = refused.to_string();
        assert!(msg.contains("images are mirrored by digest only"), "{msg}");
        assert!(msg.contains("publisher can move"), "{msg}");
        assert!(matches!(
            MirrorSource::parse("registry.example.test/team/app", None),
            Err(MirrorSourceError::TagOnly { .. })
        ));
        assert_eq!(
            MirrorSource::parse(&format!("registry.example.test/app@sha256:{D}"), Some(D)),
            Err(MirrorSourceError::Sha256OnImage)
        );
        for bad in [
            format!("app@sha256:{D}"),
            format!("team/app@sha256:{D}"),
            "registry.example.test/App@sha256:00".to_owned(),
            format!("registry.example.test/app@md5:{D}"),
            format!("registry.example.test/@sha256:{D}"),
        ] {
            assert!(
                matches!(
                    MirrorSource::parse(&bad, None),
                    Err(MirrorSourceError::Invalid { .. })
                ),
                "{bad}"
            );
        }
    }
}
