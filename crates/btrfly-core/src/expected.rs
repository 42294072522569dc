//! The digest a protocol announces for a body before it is downloaded,
//! parsed and validated once: [`ExpectedDigest`].
//!
//! | form | who announces it | parsed by |
//! |---|---|---|
//! | sha256, 64 hex digits | PEP 503/691 pages, OCI digests, cargo's `cksum` | [`ExpectedDigest::sha256_hex`] |
//! | SRI `sha512-<base64>` (W3C Subresource Integrity) | npm's `dist.integrity` | [`ExpectedDigest::from_sri`] |
//! | sha1, 40 hex digits | npm's legacy `dist.shasum` | [`ExpectedDigest::sha1_hex`] |
//! | `h1:<base64>` (Go's dirhash `Hash1`) | Go's checksum database, `go.sum` | [`ExpectedDigest::go_h1`] |
//!
//! Go's `h1` hash is not a hash of the body's bytes: it is the sha256 of the
//! lines `"<hex sha256 of a file>  <file name>\n"` of every file, sorted by
//! name (golang.org/x/mod/sumdb/dirhash). For a `go.mod` the one file is
//! named `go.mod`; for a module zip the files are the zip's entries, named
//! as in the zip (`module@version/…`). [`H1Of`] says which.

use std::fmt;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

use crate::digest::Sha256;

/// What a Go `h1:` hash was computed over.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum H1Of {
    /// A `go.mod` file: the body is the one file, named `go.mod`.
    GoMod,
    /// A module zip: every file in it, under its name in the zip.
    ModuleZip,
}

/// A digest the body of a response must have, by algorithm.
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum ExpectedDigest {
    /// sha256 of the body (FIPS 180-4).
    Sha256(Sha256),
    /// sha512 of the body (FIPS 180-4), 64 bytes.
    Sha512(Box<[u8; 64]>),
    /// sha1 of the body (FIPS 180-4), 20 bytes: only npm's legacy
    /// `shasum` announces it.
    Sha1([u8; 20]),
    /// Go's dirhash `Hash1` (32 bytes) of a `go.mod` or a module zip.
    GoH1 {
        /// The sha256 the `h1:` text carries.
        hash: [u8; 32],
        /// What it was computed over.
        of: H1Of,
    },
}

/// A digest text that is not in the form its protocol defines.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("not a {form} digest: {text:?}")]
pub struct ExpectedDigestError {
    /// The form that was expected (`sha512 SRI`, `sha1 hex`, `Go h1`, …).
    pub form: &'static str,
    /// The text as given.
    pub text: String,
}

fn err(form: &'static str, text: &str) -> ExpectedDigestError {
    ExpectedDigestError {
        form,
        text: text.chars().take(120).collect(),
    }
}

impl ExpectedDigest {
    /// A sha256 as others write it (whitespace, either case).
    ///
    /// # Errors
    /// [`ExpectedDigestError`] unless it is 64 hex digits.
    pub fn sha256_hex(text: &str) -> Result<ExpectedDigest, ExpectedDigestError> {
        Sha256::parse_lenient(text)
            .map(ExpectedDigest::Sha256)
            .map_err(|_| err("sha256 hex", text))
    }

    /// A sha1 as 40 hex digits (npm's `shasum`).
    ///
    /// # Errors
    /// [`ExpectedDigestError`] for anything else.
    pub fn sha1_hex(text: &str) -> Result<ExpectedDigest, ExpectedDigestError> {
        let mut out = [0u8; 20];
        hex::decode_to_slice(text.trim(), &mut out).map_err(|_| err("sha1 hex", text))?;
        Ok(ExpectedDigest::Sha1(out))
    }

    /// The strongest digest of a Subresource Integrity value (W3C SRI:
    /// space-separated `alg-base64` items, options after `?` ignored): a
    /// sha512 when one is given, else a sha256; other algorithms
    /// (sha1, sha384) are not used.
    ///
    /// # Errors
    /// [`ExpectedDigestError`] when no item is a well-formed sha512 or
    /// sha256.
    pub fn from_sri(text: &str) -> Result<ExpectedDigest, ExpectedDigestError> {
        let mut best = None;
        for item in text.split_ascii_whitespace() {
            let item = item.split('?').next().unwrap_or(item);
            let Some((alg, b64)) = item.split_once('-') else {
                continue;
            };
            let Ok(bytes) = STANDARD.decode(b64) else {
                continue;
            };
            match alg {
                "sha512" => {
                    if let Ok(arr) = <[u8; 64]>::try_from(bytes.as_slice()) {
                        best = Some(ExpectedDigest::Sha512(Box::new(arr)));
                    }
                }
                "sha256" if best.is_none() => {
                    if let Ok(arr) = <[u8; 32]>::try_from(bytes.as_slice()) {
                        best = Some(ExpectedDigest::Sha256(Sha256::from_bytes(arr)));
                    }
                }
                _ => {}
            }
        }
        best.ok_or_else(|| err("sha512 or sha256 SRI", text))
    }

    /// A Go `h1:<base64 of 32 bytes>` hash of what `of` says.
    ///
    /// # Errors
    /// [`ExpectedDigestError`] for another prefix or a wrong length.
    pub fn go_h1(text: &str, of: H1Of) -> Result<ExpectedDigest, ExpectedDigestError> {
        let b64 = text
            .trim()
            .strip_prefix("h1:")
            .ok_or_else(|| err("Go h1", text))?;
        let bytes = STANDARD.decode(b64).map_err(|_| err("Go h1", text))?;
        let hash = <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| err("Go h1", text))?;
        Ok(ExpectedDigest::GoH1 { hash, of })
    }

    /// The algorithm's name as messages show it: `sha256`, `sha512`,
    /// `sha1`, `h1`.
    pub fn algorithm(&self) -> &'static str {
        match self {
            ExpectedDigest::Sha256(_) => "sha256",
            ExpectedDigest::Sha512(_) => "sha512",
            ExpectedDigest::Sha1(_) => "sha1",
            ExpectedDigest::GoH1 { .. } => "h1",
        }
    }

    /// The sha256, when that is the algorithm (the store checks those
    /// itself, as a blob's address).
    pub fn as_sha256(&self) -> Option<&Sha256> {
        match self {
            ExpectedDigest::Sha256(s) => Some(s),
            _ => None,
        }
    }

    /// Computed digest bytes of `algorithm` (see [`Self::algorithm`]) in
    /// the form [`fmt::Display`] shows an expected one: so a message puts
    /// both side by side.
    pub fn render(algorithm: &str, bytes: &[u8]) -> String {
        match algorithm {
            "sha512" => format!("sha512-{}", STANDARD.encode(bytes)),
            "h1" => format!("h1:{}", STANDARD.encode(bytes)),
            _ => hex::encode(bytes),
        }
    }
}

impl From<Sha256> for ExpectedDigest {
    fn from(s: Sha256) -> ExpectedDigest {
        ExpectedDigest::Sha256(s)
    }
}

/// sha256 and sha1 as hex, sha512 as SRI (`sha512-…`), Go's as `h1:…`:
/// each in the form its protocol writes it.
impl fmt::Display for ExpectedDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExpectedDigest::Sha256(s) => f.write_str(s.as_str()),
            ExpectedDigest::Sha512(b) => f.write_str(&ExpectedDigest::render("sha512", &b[..])),
            ExpectedDigest::Sha1(b) => f.write_str(&hex::encode(b)),
            ExpectedDigest::GoH1 { hash, .. } => f.write_str(&ExpectedDigest::render("h1", hash)),
        }
    }
}

impl fmt::Debug for ExpectedDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{self}", self.algorithm())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_form_parses_once_and_shows_as_written() {
        let sha = "ab".repeat(32);
        assert_eq!(
            ExpectedDigest::sha256_hex(&sha.to_uppercase())
                .expect("sha256")
                .to_string(),
            sha
        );
        let sri = format!("sha512-{}", STANDARD.encode([7u8; 64]));
        let d = ExpectedDigest::from_sri(&format!("sha1-{} {sri}?opt", STANDARD.encode([1u8; 20])))
            .expect("sri");
        assert_eq!(d.algorithm(), "sha512");
        assert_eq!(d.to_string(), sri);
        let s256 = ExpectedDigest::from_sri(&format!("sha256-{}", STANDARD.encode([9u8; 32])))
            .expect("sri256");
        assert_eq!(s256.to_string(), "09".repeat(32));
        assert_eq!(
            ExpectedDigest::sha1_hex(&"0f".repeat(20))
                .expect("sha1")
                .to_string(),
            "0f".repeat(20)
        );
        let h1 = format!("h1:{}", STANDARD.encode([3u8; 32]));
        let g = ExpectedDigest::go_h1(&h1, H1Of::ModuleZip).expect("h1");
        assert_eq!(g.to_string(), h1);
        for (bad, parsed) in [
            ("sha512-short", ExpectedDigest::from_sri("sha512-short")),
            (
                "sha384 only",
                ExpectedDigest::from_sri(&format!("sha384-{}", STANDARD.encode([0u8; 48]))),
            ),
            ("sha1 39", ExpectedDigest::sha1_hex(&"0".repeat(39))),
            (
                "h2",
                ExpectedDigest::go_h1(&h1.replace("h1:", "h2:"), H1Of::GoMod),
            ),
            ("h1 short", ExpectedDigest::go_h1("h1:AAAA", H1Of::GoMod)),
            ("sha256 63", ExpectedDigest::sha256_hex(&"0".repeat(63))),
        ] {
            assert!(parsed.is_err(), "{bad}");
        }
    }
}
