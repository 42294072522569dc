//! A request body the stack pulls only when it needs it.
//!
//! Record mode never reads the body in the stack (Pingora streams it
//! upstream and the recorder hashes it on the way); playback must hash it
//! to find the recording. So the stack gets a [`RequestBody`] and the hook
//! keeps the matching [`BodyFeeder`], which reads from the client only
//! after the stack asked for the body.

use btrfly_core::Sha256;
use bytes::Bytes;
use sha2::Digest;
use tokio::sync::{mpsc, oneshot};

/// The request body as the gateway sees it: pulled on demand.
pub struct RequestBody {
    present: bool,
    demand: Option<oneshot::Sender<()>>,
    rx: mpsc::Receiver<std::io::Result<Bytes>>,
}

/// The hook's side of a [`RequestBody`].
pub struct BodyFeeder {
    demand: oneshot::Receiver<()>,
    tx: mpsc::Sender<std::io::Result<Bytes>>,
}

impl RequestBody {
    /// A body and its feeder. `present` is false when the request is known
    /// to have no body (no content-length, or zero, and not chunked).
    pub fn channel(present: bool) -> (RequestBody, BodyFeeder) {
        let (dtx, drx) = oneshot::channel();
        let (tx, rx) = mpsc::channel(4);
        (
            RequestBody {
                present,
                demand: Some(dtx),
                rx,
            },
            BodyFeeder { demand: drx, tx },
        )
    }

    /// A request without a body.
    pub fn empty() -> RequestBody {
        Self::channel(false).0
    }

    /// Whether the request has a body.
    pub fn is_present(&self) -> bool {
        self.present
    }

    /// Reads the whole body, hashing it without keeping it. `None` when the
    /// request has no body (an empty body counts as none).
    ///
    /// # Errors
    /// The client's body could not be read.
    pub async fn sha256(mut self) -> std::io::Result<Option<Sha256>> {
        if !self.present {
            return Ok(None);
        }
        if let Some(d) = self.demand.take() {
            let _ = d.send(());
        }
        let mut hasher = sha2::Sha256::new();
        let mut size = 0usize;
        while let Some(chunk) = self.rx.recv().await {
            let chunk = chunk?;
            size += chunk.len();
            hasher.update(&chunk);
        }
        Ok((size > 0).then(|| Sha256::from_bytes(hasher.finalize().into())))
    }
}

impl BodyFeeder {
    /// Resolves when the stack asked for the body; never if it did not.
    pub async fn wanted(&mut self) {
        if (&mut self.demand).await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    /// Hands one chunk to the stack; false when it stopped listening.
    pub async fn send(&self, chunk: std::io::Result<Bytes>) -> bool {
        self.tx.send(chunk).await.is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn body_is_pulled_only_on_demand_and_hashed() {
        let (body, mut feeder) = RequestBody::channel(true);
        let feed = async move {
            feeder.wanted().await;
            feeder.send(Ok(Bytes::from_static(b"hello "))).await;
            feeder.send(Ok(Bytes::from_static(b"world"))).await;
        };
        let (digest, ()) = tokio::join!(body.sha256(), feed);
        assert_eq!(
            digest.expect("read").map(String::from),
            Some(btrfly_core::sha256_hex(b"hello world"))
        );
    }

    #[tokio::test]
    async fn absent_body_is_never_demanded() {
        let (body, mut feeder) = RequestBody::channel(false);
        assert_eq!(body.sha256().await.expect("read"), None);
        let waited =
            tokio::time::timeout(std::time::Duration::from_millis(50), feeder.wanted()).await;
        assert!(waited.is_err(), "feeder must not be woken");
    }
}
