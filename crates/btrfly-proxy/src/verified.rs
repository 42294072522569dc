//! Bodies replayed from the store, checked on the way out.
//!
//! A whole body is hashed while it streams, and its last chunk is held
//! back until the digest is known: when the bytes do not hash to the
//! blob's address (the stored object was altered or damaged) the last
//! chunk and the end of body are never sent. The client then sees a cut
//! response — fewer bytes than `Content-Length` on HTTP/1.1, a reset
//! stream on HTTP/2 — never a complete one. A blob missing from the store
//! is found before the head goes out and answered with a clear error.

use btrfly_core::Sha256;
use btrfly_gateway::Replayed;
use btrfly_store::{BlobStream, Store, StoreError};
use bytes::Bytes;
use futures::StreamExt;
use http::StatusCode;
use pingora_error::{Error, ErrorType, Result};
use pingora_proxy::Session;
use sha2::Digest;

/// `x-btrfly-error` of a replay whose blob is not in the store.
pub(crate) const BLOB_MISSING: &str = "blob-missing";
/// `x-btrfly-error` of a replay the store could not serve.
pub(crate) const STORE_FAILED: &str = "store-unavailable";

/// Why a stored body could not be opened, as the answer the client gets
/// instead: its status, reason phrase, `x-btrfly-error` and message.
pub(crate) struct OpenFailure {
    pub status: StatusCode,
    pub reason: &'static str,
    pub kind: &'static str,
    pub message: String,
}

/// Opens `len` bytes of blob `sha256` from `offset`. On failure the
/// replay is reported (not a hit, a problem of the session) and the
/// answer to send instead is returned.
pub(crate) async fn open(
    store: &Store,
    sha256: &Sha256,
    offset: u64,
    len: u64,
    replayed: Option<&Replayed>,
) -> std::result::Result<BlobStream, OpenFailure> {
    match store.read_blob(sha256, Some(offset..offset + len)).await {
        Ok(s) => Ok(s),
        Err(e) => {
            let what = replayed.map_or("a recorded answer", Replayed::what);
            let (status, reason, kind, why) = match &e {
                StoreError::MissingBlob(_) => (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Recorded Body Missing From Store",
                    BLOB_MISSING,
                    format!(
                        "the recorded body (blob {sha256}) is missing from the store; run `btrfly verify` on the store"
                    ),
                ),
                _ => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Store Unavailable",
                    STORE_FAILED,
                    format!("reading the recorded body (blob {sha256}): {e}"),
                ),
            };
            if let Some(r) = replayed {
                r.failed(&why);
            } else {
                tracing::warn!("replaying {what} failed: {why}");
            }
            Err(OpenFailure {
                status,
                reason,
                kind,
                message: format!("btrfly: cannot replay {what}: {why}"),
            })
        }
    }
}

fn cut(replayed: Option<&Replayed>, why: String) -> Box<Error> {
    match replayed {
        Some(r) => r.failed(&why),
        None => tracing::warn!("replaying a recorded answer failed: {why}"),
    }
    Error::explain(ErrorType::Custom("ReplayCut"), format!("btrfly: {why}"))
}

/// Streams `len` bytes of blob `sha256` to the client (the head is
/// written already) and ends the body. With `whole`, the bytes are the
/// whole blob and are checked against its address; on a mismatch, a
/// short blob or a read error the body is left unfinished and an error
/// is returned (the connection is then closed, not reused).
///
/// # Errors
/// The body could not be served intact, or the client went away.
pub(crate) async fn stream(
    session: &mut Session,
    mut body: BlobStream,
    sha256: &Sha256,
    len: u64,
    whole: bool,
    replayed: Option<&Replayed>,
) -> Result<()> {
    let mut hasher = whole.then(sha2::Sha256::new);
    let mut held: Option<Bytes> = None;
    let mut sent = 0u64;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| cut(replayed, format!("reading blob {sha256}: {e}")))?;
        sent += chunk.len() as u64;
        if let Some(h) = hasher.as_mut() {
            h.update(&chunk);
        }
        if let Some(previous) = held.replace(chunk) {
            session.write_response_body(Some(previous), false).await?;
        }
    }
    if sent != len {
        return Err(cut(
            replayed,
            format!(
                "blob {sha256} ended after {sent} of {len} bytes; run `btrfly verify` on the store"
            ),
        ));
    }
    if let Some(h) = hasher {
        let actual = Sha256::from_bytes(h.finalize().into());
        if &actual != sha256 {
            return Err(cut(
                replayed,
                format!(
                    "blob {sha256} in the store does not hash to its address (its bytes hash to {actual}): the stored body was altered or damaged, and the response was cut; run `btrfly verify` on the store"
                ),
            ));
        }
    }
    if let Some(last) = held {
        session.write_response_body(Some(last), false).await?;
    }
    session.write_response_body(None, true).await
}
