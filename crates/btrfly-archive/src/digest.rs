//! WARC digests: `WARC-Block-Digest` and `WARC-Payload-Digest` values.
//!
//! WARC 1.1 (§5.8, §5.9) writes a digest as `algorithm:value` and leaves the
//! encoding of the value open. What tools write, and what this module reads:
//!
//! | algorithm | encodings read | written by |
//! |---|---|---|
//! | `sha1` (`sha-1`) | base32 (RFC 4648, any case, padding optional), hex, base64 | wget, Heritrix, warcio (default) |
//! | `sha256` (`sha-256`) | the same | warcio (`--digest sha256`), btrfly |
//!
//! btrfly writes `sha256:` followed by the RFC 4648 base32 of the digest,
//! upper case, padded with `=` to 56 characters: the form warcio computes
//! and compares against (it converts hex and base64 values to that form
//! by their length, so an unpadded 52-character value would be misread).
//! Other algorithms (`md5`, …) cannot be checked: such a digest is ignored.

use data_encoding::{BASE32, BASE32_NOPAD, BASE64, BASE64URL, BASE64URL_NOPAD, BASE64_NOPAD};
use sha1::Digest as _;

/// A digest algorithm btrfly can compute.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    /// SHA-1 (what most WARC tools write).
    Sha1,
    /// SHA-256 (what btrfly writes).
    Sha256,
}

impl Algorithm {
    /// The label WARC files use (`sha1`, `sha256`).
    pub fn label(self) -> &'static str {
        match self {
            Algorithm::Sha1 => "sha1",
            Algorithm::Sha256 => "sha256",
        }
    }

    fn len(self) -> usize {
        match self {
            Algorithm::Sha1 => 20,
            Algorithm::Sha256 => 32,
        }
    }
}

/// A checkable digest: an algorithm and the raw digest bytes.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WarcDigest {
    /// The hash function.
    pub algorithm: Algorithm,
    /// The raw digest bytes (20 or 32).
    pub bytes: Vec<u8>,
}

/// A digest value that names a known algorithm but cannot be decoded.
#[derive(Debug, Clone, thiserror::Error)]
#[error("malformed digest {value:?}: expected {algorithm}:<base32, hex or base64 of {len} bytes>")]
pub struct MalformedDigest {
    /// The field value as written.
    pub value: String,
    /// The algorithm label it named.
    pub algorithm: &'static str,
    /// How many digest bytes it decoded to.
    pub len: usize,
}

impl WarcDigest {
    /// The sha256 digest whose lower-case hex is `hex`; `None` when `hex`
    /// is not 64 hex digits.
    pub fn sha256_from_hex(hex: &str) -> Option<WarcDigest> {
        let bytes = hex::decode(hex).ok().filter(|b| b.len() == 32)?;
        Some(WarcDigest {
            algorithm: Algorithm::Sha256,
            bytes,
        })
    }

    /// Parses a field value (`sha1:…`, `sha256:…`).
    ///
    /// # Errors
    /// `Ok(None)` for a value without an algorithm btrfly can compute (it
    /// cannot be checked); [`MalformedDigest`] for a sha1/sha256 value that
    /// is not 20/32 bytes in base32, hex or base64.
    pub fn parse(value: &str) -> Result<Option<WarcDigest>, MalformedDigest> {
        let value = value.trim();
        let Some((label, encoded)) = value.split_once(':') else {
            return Ok(None);
        };
        let algorithm = match label.trim().to_ascii_lowercase().as_str() {
            "sha1" | "sha-1" => Algorithm::Sha1,
            "sha256" | "sha-256" => Algorithm::Sha256,
            _ => return Ok(None),
        };
        let encoded = encoded.trim();
        let len = algorithm.len();
        decode(encoded, len)
            .map(|bytes| Some(WarcDigest { algorithm, bytes }))
            .ok_or_else(|| MalformedDigest {
                value: value.to_owned(),
                algorithm: algorithm.label(),
                len,
            })
    }

    /// `algorithm:BASE32` (upper case, padded): the form WARC tools write.
    pub fn to_warc(&self) -> String {
        format!("{}:{}", self.algorithm.label(), BASE32.encode(&self.bytes))
    }

    /// Lower-case hex of the digest bytes.
    pub fn hex(&self) -> String {
        hex::encode(&self.bytes)
    }
}

impl std::fmt::Display for WarcDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_warc())
    }
}

/// Decodes `encoded` as exactly `len` bytes: hex when it has `2 * len` hex
/// digits, else base32, else base64 (standard or URL-safe alphabet).
fn decode(encoded: &str, len: usize) -> Option<Vec<u8>> {
    if encoded.len() == 2 * len {
        if let Ok(bytes) = hex::decode(encoded) {
            return Some(bytes);
        }
    }
    let upper = encoded.trim_end_matches('=').to_ascii_uppercase();
    if let Ok(bytes) = BASE32_NOPAD.decode(upper.as_bytes()) {
        if bytes.len() == len {
            return Some(bytes);
        }
    }
    [&BASE64, &BASE64_NOPAD, &BASE64URL, &BASE64URL_NOPAD]
        .iter()
        .filter_map(|e| e.decode(encoded.as_bytes()).ok())
        .find(|b| b.len() == len)
}

/// sha1 and sha256 of the same bytes, computed together (a reader does not
/// know in advance which one a record declares, and a `revisit` may name a
/// payload by either).
#[derive(Clone, Default)]
pub struct Digester {
    sha1: sha1::Sha1,
    sha256: sha2::Sha256,
    len: u64,
}

/// What a [`Digester`] computed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Digests {
    /// The SHA-1 digest.
    pub sha1: WarcDigest,
    /// The SHA-256 digest.
    pub sha256: WarcDigest,
    /// Bytes hashed.
    pub len: u64,
}

impl Digester {
    /// A digester that has seen nothing.
    pub fn new() -> Digester {
        Digester::default()
    }

    /// Hashes the next bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        self.sha1.update(bytes);
        self.sha256.update(bytes);
        self.len += bytes.len() as u64;
    }

    /// The digests of everything seen.
    pub fn finish(self) -> Digests {
        Digests {
            sha1: WarcDigest {
                algorithm: Algorithm::Sha1,
                bytes: self.sha1.finalize().to_vec(),
            },
            sha256: WarcDigest {
                algorithm: Algorithm::Sha256,
                bytes: self.sha256.finalize().to_vec(),
            },
            len: self.len,
        }
    }
}

impl Digests {
    /// The computed digest of `d`'s algorithm.
    pub fn of(&self, algorithm: Algorithm) -> &WarcDigest {
        match algorithm {
            Algorithm::Sha1 => &self.sha1,
            Algorithm::Sha256 => &self.sha256,
        }
    }

    /// Whether `declared` is the digest of these bytes.
    pub fn matches(&self, declared: &WarcDigest) -> bool {
        self.of(declared.algorithm) == declared
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_encoding_of_one_digest_parses_to_it() {
        let mut d = Digester::new();
        d.update(b"hello world");
        let got = d.finish();
        let sha1 = &got.sha1;
        let sha256 = &got.sha256;
        // what warcio and wget write
        assert_eq!(sha1.to_warc(), "sha1:FKXGYNOJJ7H3IFO35FPUBC445EPOQRXN");
        assert_eq!(
            sha256.to_warc(),
            "sha256:XFGSPOMTJU7ARJJOKLL5U7NL7LCIJ37DPJJYB3UQRD32ZYXPZXUQ===="
        );
        for text in [
            "sha1:FKXGYNOJJ7H3IFO35FPUBC445EPOQRXN",
            "SHA-1:fkxgynojj7h3ifo35fpubc445epoqrxn",
            "sha1:2aae6c35c94fcfb415dbe95f408b9ce91ee846ed",
            "sha1:Kq5sNclPz7QV2+lfQIuc6R7oRu0=",
        ] {
            assert_eq!(WarcDigest::parse(text).expect(text).as_ref(), Some(sha1));
        }
        for text in [
            "sha256:XFGSPOMTJU7ARJJOKLL5U7NL7LCIJ37DPJJYB3UQRD32ZYXPZXUQ====",
            "sha256:XFGSPOMTJU7ARJJOKLL5U7NL7LCIJ37DPJJYB3UQRD32ZYXPZXUQ",
            "sha-256:b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9",
            "sha256:uU0nuZNNPgilLlLX2n2r+sSE7+N6U4DukIj3rOLvzek=",
        ] {
            assert_eq!(WarcDigest::parse(text).expect(text).as_ref(), Some(sha256));
        }
        assert!(got.matches(sha1) && got.matches(sha256));
        assert_eq!(got.len, 11);
    }

    #[test]
    fn unknown_algorithms_are_not_checked_and_bad_values_are_errors() {
        assert_eq!(WarcDigest::parse("md5:XYZ").expect("unknown"), None);
        assert_eq!(WarcDigest::parse("nonsense").expect("unknown"), None);
        let err = WarcDigest::parse("sha1:TOOSHORT").expect_err("malformed");
        assert!(err.to_string().contains("sha1:TOOSHORT"), "{err}");
        assert!(WarcDigest::parse("sha256:FKXGYNOJJ7H3IFO35FPUBC445EPOQRXN").is_err());
    }
}
