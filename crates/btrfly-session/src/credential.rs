//! Session credentials: `Proxy-Authorization: Basic base64(id:secret)`
//! (RFC 7617), the secret compared in constant time with the digest the
//! store keeps.

use base64::Engine;
use btrfly_core::Sha256;
use subtle::ConstantTimeEq;

/// Random lower-case hex of `bytes` random bytes.
pub(crate) fn random_hex(bytes: usize) -> String {
    use rand::RngCore;
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    hex::encode(buf)
}

/// Random bytes of a session secret (it is their lower-case hex).
pub(crate) const SECRET_BYTES: usize = 24;

/// Whether `secret` has the shape of a secret btrfly issues (48 lower-case
/// hex digits): anything else cannot authenticate, and is refused without
/// a store read.
pub fn is_secret_shaped(secret: &str) -> bool {
    secret.len() == SECRET_BYTES * 2
        && secret
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Whether `secret` hashes to `stored`, compared in constant time (the
/// digests have one length, so nothing about the stored one leaks through
/// timing).
pub fn secret_matches(secret: &str, stored: &Sha256) -> bool {
    let presented = Sha256::of(secret.as_bytes());
    presented.as_bytes().ct_eq(stored.as_bytes()).into()
}

/// `Basic base64(user:password)` → (user, password); `None` for another
/// scheme or a value that does not decode.
pub fn parse_basic(value: &[u8]) -> Option<(String, String)> {
    let value = std::str::from_utf8(value).ok()?.trim();
    let (scheme, rest) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(rest.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (user, pass) = decoded.split_once(':')?;
    Some((user.to_owned(), pass.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_and_secrets() {
        let v = format!(
            "basic {}",
            base64::engine::general_purpose::STANDARD.encode("abc:s3:cr")
        );
        assert_eq!(
            parse_basic(v.as_bytes()),
            Some(("abc".into(), "s3:cr".into()))
        );
        assert_eq!(parse_basic(b"Bearer abc"), None);
        assert_eq!(parse_basic(b"Basic !!!"), None);
        let stored = Sha256::of(b"right");
        assert!(secret_matches("right", &stored));
        assert!(!secret_matches("wrong", &stored));
    }
}
