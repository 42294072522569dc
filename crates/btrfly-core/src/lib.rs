//! Shared vocabulary of btrfly.
//!
//! Every other crate speaks in these types: the [`RecordingKey`] that names a
//! recorded exchange, the [`Mode`] of a session, the [`Entry`] a tag index
//! holds, and the [`Adapter`] trait through which ecosystem adapters
//! (files, pip, OCI, ...) turn a request into a key.

pub mod adapter;
pub mod entry;
pub mod key;
pub mod session;

pub use adapter::{
    canonical_url, Adapter, Classification, DigestHint, Mutability, RequestHead, MAX_INSPECTED_BODY,
};
pub use entry::{Entry, FieldValue, TagMeta, VaryRecord};
pub use key::{vary_names, vary_value, RecordingKey, BODY_VARIANCE, NEVER_VARY, VARY_PREFIX};
pub use session::{Mode, SessionInfo, Tag, TagError};

/// Lower-case hex sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// Whether `s` looks like a lower-case hex sha256 digest.
pub fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}
