//! Blobs: response bodies, content-addressed (`blobs/sha256/…`).

use std::ops::Range;

use btrfly_core::Sha256;
use futures::{StreamExt, TryStreamExt};
use opendal::ErrorKind;
use sha2::Digest;

use crate::error::{io, Result, StoreError};
use crate::layout::blob_path;
use crate::store::{BlobStream, Store};
use crate::writer::BlobWriter;

impl Store {
    /// `blobs/sha256/<2 hex>/<64 hex>`: a blob's object.
    pub fn blob_path(sha256: &Sha256) -> String {
        blob_path(sha256)
    }

    /// Size of a stored blob, or `None` when it is not stored.
    ///
    /// # Errors
    /// The backend failed.
    pub async fn blob_size(&self, sha256: &Sha256) -> Result<Option<u64>> {
        let path = Self::blob_path(sha256);
        match self.op.stat(&path).await {
            Ok(meta) => Ok(Some(meta.content_length())),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io("stat", &path)(e)),
        }
    }

    /// Streams a blob (or a byte range of it) without loading it whole.
    ///
    /// # Errors
    /// [`StoreError::MissingBlob`], or the backend failed.
    pub async fn read_blob(
        &self,
        sha256: &Sha256,
        range: Option<Range<u64>>,
    ) -> Result<BlobStream> {
        let path = Self::blob_path(sha256);
        let size = self
            .blob_size(sha256)
            .await?
            .ok_or_else(|| StoreError::MissingBlob(sha256.clone()))?;
        let range = range.unwrap_or(0..size);
        let reader = self
            .op
            .reader_with(&path)
            .chunk(256 * 1024)
            .await
            .map_err(io("read", &path))?;
        let stream = reader
            .into_bytes_stream(range)
            .await
            .map_err(io("read", &path))?;
        Ok(Box::pin(stream.map_err(std::io::Error::other)))
    }

    /// Starts writing a new blob; see [`BlobWriter`].
    ///
    /// # Errors
    /// The backend cannot open a temp object.
    pub async fn blob_writer(&self, expected_sha256: Option<Sha256>) -> Result<BlobWriter> {
        BlobWriter::start(self.op.clone(), self.backend, expected_sha256).await
    }

    /// Reads a whole blob and checks it against its address (for `verify`).
    ///
    /// # Errors
    /// [`StoreError::DigestMismatch`] for a blob whose bytes changed; a
    /// missing blob; the backend failed.
    pub async fn verify_blob(&self, sha256: &Sha256) -> Result<u64> {
        self.verify_blob_with(sha256, |_| {}).await
    }

    /// [`Store::verify_blob`], calling `progress` with the length of each
    /// chunk read (for a progress bar).
    ///
    /// # Errors
    /// As [`Store::verify_blob`].
    pub async fn verify_blob_with(
        &self,
        sha256: &Sha256,
        mut progress: impl FnMut(u64),
    ) -> Result<u64> {
        let mut stream = self.read_blob(sha256, None).await?;
        let mut hasher = sha2::Sha256::new();
        let mut size = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|source| StoreError::Read {
                path: Self::blob_path(sha256),
                source,
            })?;
            size += chunk.len() as u64;
            progress(chunk.len() as u64);
            hasher.update(&chunk);
        }
        let actual = Sha256::from_bytes(hasher.finalize().into());
        if &actual != sha256 {
            return Err(StoreError::DigestMismatch {
                expected: sha256.clone(),
                actual,
            });
        }
        Ok(size)
    }
}
