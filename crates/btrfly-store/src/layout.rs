//! Object names of the store's layout (see the crate docs).

use btrfly_core::Sha256;

/// `blobs/sha256/<2 hex>/<64 hex>`: a blob's object.
pub(crate) fn blob_path(sha256: &Sha256) -> String {
    format!("blobs/sha256/{}/{}", &sha256[..2], sha256)
}

/// A random name for a temp object: 32 hex digits.
pub(crate) fn random_id() -> String {
    use rand::Rng;
    let bytes: [u8; 16] = rand::rng().random();
    hex::encode(bytes)
}
