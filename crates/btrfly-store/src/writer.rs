//! Streaming a body into a content-addressed blob.

use btrfly_core::Sha256;
use bytes::Bytes;
use opendal::Writer;
use sha2::Digest;

use crate::error::{io, Result, StoreError};
use crate::layout::{blob_path, random_id};

/// Writes a body to `tmp/`, hashing as it goes; [`BlobWriter::finish`]
/// moves it to its content address. Dropping it without finishing leaves a
/// temp object that [`BlobWriter::abort`] would have removed.
pub struct BlobWriter {
    op: opendal::Operator,
    tmp: String,
    writer: Writer,
    hasher: sha2::Sha256,
    size: u64,
    expected: Option<Sha256>,
}

/// A blob that is safely at its address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredBlob {
    /// Its digest (and address).
    pub sha256: Sha256,
    /// Its length in bytes.
    pub size: u64,
    /// False when identical bytes were already stored (deduplicated).
    pub new: bool,
}

impl BlobWriter {
    pub(crate) async fn start(
        op: opendal::Operator,
        backend: &'static str,
        expected: Option<Sha256>,
    ) -> Result<BlobWriter> {
        let tmp = format!("tmp/{}", random_id());
        // GCS: the temp name is fresh, so "if not exists" costs nothing, and
        // it makes OpenDAL use the JSON API's resumable upload instead of
        // the XML multipart API (which the GCS emulator lacks). The content
        // type is always set: GCS stores null otherwise.
        let writer = op
            .writer_with(&tmp)
            .content_type("application/octet-stream")
            .chunk(4 * 1024 * 1024)
            .if_not_exists(backend == "gcs")
            .await
            .map_err(io("write", &tmp))?;
        Ok(BlobWriter {
            op,
            tmp,
            writer,
            hasher: sha2::Sha256::new(),
            size: 0,
            expected,
        })
    }

    /// Appends a chunk.
    ///
    /// # Errors
    /// The backend refused the write.
    pub async fn write(&mut self, chunk: Bytes) -> Result<()> {
        self.hasher.update(&chunk);
        self.size += chunk.len() as u64;
        self.writer
            .write(chunk)
            .await
            .map_err(io("write", &self.tmp))
    }

    /// Bytes written so far.
    pub fn bytes_written(&self) -> u64 {
        self.size
    }

    /// Closes the temp object and moves it to `blobs/sha256/..`. Fails (and
    /// removes the temp object) when the digest is not the expected one.
    ///
    /// # Errors
    /// [`StoreError::DigestMismatch`], or the backend failed.
    pub async fn finish(mut self) -> Result<StoredBlob> {
        if let Err(e) = self.writer.close().await {
            let _ = self.op.delete(&self.tmp).await;
            return Err(io("write", &self.tmp)(e));
        }
        let sha256 = Sha256::from_bytes(self.hasher.finalize().into());
        let op = &self.op;
        if let Some(expected) = self.expected.take() {
            if expected != sha256 {
                let _ = op.delete(&self.tmp).await;
                return Err(StoreError::DigestMismatch {
                    expected,
                    actual: sha256,
                });
            }
        }
        let dest = blob_path(&sha256);
        let exists = op.exists(&dest).await.map_err(io("stat", &dest))?;
        if exists {
            op.delete(&self.tmp)
                .await
                .map_err(io("delete", &self.tmp))?;
        } else if op.info().capability().rename {
            op.rename(&self.tmp, &dest)
                .await
                .map_err(io("rename", &dest))?;
        } else if op.info().capability().copy {
            op.copy(&self.tmp, &dest).await.map_err(io("copy", &dest))?;
            op.delete(&self.tmp)
                .await
                .map_err(io("delete", &self.tmp))?;
        } else {
            stream_copy(op, &self.tmp, &dest).await?;
            op.delete(&self.tmp)
                .await
                .map_err(io("delete", &self.tmp))?;
        }
        Ok(StoredBlob {
            sha256,
            size: self.size,
            new: !exists,
        })
    }

    /// Drops the partial body.
    pub async fn abort(mut self) {
        let _ = self.writer.abort().await;
        let _ = self.op.delete(&self.tmp).await;
    }
}

/// Copies an object chunk by chunk, for backends with neither rename nor
/// copy (memory).
async fn stream_copy(op: &opendal::Operator, from: &str, to: &str) -> Result<()> {
    use futures::StreamExt;
    let size = op
        .stat(from)
        .await
        .map_err(io("stat", from))?
        .content_length();
    let reader = op.reader(from).await.map_err(io("read", from))?;
    let mut chunks = reader
        .into_bytes_stream(0..size)
        .await
        .map_err(io("read", from))?;
    let mut writer = op
        .writer_with(to)
        .content_type("application/octet-stream")
        .await
        .map_err(io("write", to))?;
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.map_err(|source| StoreError::Read {
            path: from.to_owned(),
            source,
        })?;
        writer.write(chunk).await.map_err(io("write", to))?;
    }
    writer.close().await.map_err(io("write", to))?;
    Ok(())
}
