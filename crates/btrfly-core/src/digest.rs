//! Validated digests: a [`Sha256`] holds 64 lower-case hex digits and
//! nothing else, so a value that reaches a storage path (`blobs/sha256/…`)
//! or a key was checked once, when it was made.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A sha256 digest as 64 lower-case hex digits (FIPS 180-4).
///
/// Stored and sent as the plain hex string (`"e3b0c4…"`), so entries
/// written before this type existed load unchanged; a string that is not
/// such a digest fails to deserialize.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Sha256(String);

/// A string that is not 64 hex digits.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("not a sha256 digest (64 lower-case hex digits): {0:?}")]
pub struct DigestError(pub String);

impl Sha256 {
    /// Checks `hex`: exactly 64 lower-case hex digits.
    ///
    /// # Errors
    /// [`DigestError`] for anything else (upper case included: use
    /// [`Sha256::parse_lenient`] for digests written by others).
    pub fn new(hex: &str) -> Result<Sha256, DigestError> {
        if is_sha256_hex(hex) {
            Ok(Sha256(hex.to_owned()))
        } else {
            Err(DigestError(hex.to_owned()))
        }
    }

    /// A digest as others write it: surrounding whitespace and upper-case
    /// hex digits are accepted (and normalised).
    ///
    /// # Errors
    /// [`DigestError`] when what remains is not 64 hex digits.
    pub fn parse_lenient(text: &str) -> Result<Sha256, DigestError> {
        Sha256::new(&text.trim().to_ascii_lowercase())
    }

    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Sha256 {
        use sha2::Digest;
        Sha256::from_bytes(sha2::Sha256::digest(bytes).into())
    }

    /// The digest a hasher computed (32 bytes).
    pub fn from_bytes(bytes: [u8; 32]) -> Sha256 {
        Sha256(hex::encode(bytes))
    }

    /// The 64 hex digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Sha256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Sha256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

impl std::str::FromStr for Sha256 {
    type Err = DigestError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Sha256::new(s)
    }
}

impl TryFrom<String> for Sha256 {
    type Error = DigestError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        if is_sha256_hex(&s) {
            Ok(Sha256(s))
        } else {
            Err(DigestError(s))
        }
    }
}

impl From<Sha256> for String {
    fn from(d: Sha256) -> String {
        d.0
    }
}

impl std::ops::Deref for Sha256 {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for Sha256 {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl PartialEq<str> for Sha256 {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for Sha256 {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl PartialEq<String> for Sha256 {
    fn eq(&self, other: &String) -> bool {
        &self.0 == other
    }
}

impl PartialEq<Sha256> for String {
    fn eq(&self, other: &Sha256) -> bool {
        self == &other.0
    }
}

/// Lower-case hex sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::of(bytes).0
}

/// Whether `s` is a lower-case hex sha256 digest.
pub fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_64_lower_hex_digits_are_a_digest() {
        let ok = Sha256::of(b"");
        assert_eq!(
            ok,
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(Sha256::new(ok.as_str()), Ok(ok.clone()));
        for bad in [
            "",
            "00",
            &"A".repeat(64),
            &"0".repeat(63),
            "../../etc/passwd",
        ] {
            assert!(Sha256::new(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            Sha256::parse_lenient(&format!(" {} ", "AB".repeat(32))),
            Sha256::new(&"ab".repeat(32))
        );
        // the stored form is the plain string, and only digests load
        let json = serde_json::to_string(&ok).expect("json");
        assert_eq!(json, format!("\"{ok}\""));
        assert_eq!(serde_json::from_str::<Sha256>(&json).expect("back"), ok);
        assert!(serde_json::from_str::<Sha256>("\"../x\"").is_err());
    }
}
