//! Blobs: response bodies, content-addressed (`blobs/sha256/…`).

use std::ops::Range;

use btrfly_core::Sha256;
use futures::StreamExt;
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
    /// With a `range` (playback knows every blob's size from the tag's
    /// index) this costs one backend request per 256 KiB read chunk (one
    /// for a small file): no `stat` first. A missing
    /// blob is still an error here, before any byte of an answer is
    /// written: the first chunk is read before the stream is returned.
    ///
    /// # Errors
    /// [`StoreError::MissingBlob`], or the backend failed.
    pub async fn read_blob(
        &self,
        sha256: &Sha256,
        range: Option<Range<u64>>,
    ) -> Result<BlobStream> {
        let path = Self::blob_path(sha256);
        let range = match range {
            Some(range) => range,
            None => {
                let size = self
                    .blob_size(sha256)
                    .await?
                    .ok_or_else(|| StoreError::MissingBlob(sha256.clone()))?;
                0..size
            }
        };
        if range.is_empty() {
            // Nothing to read: whether the blob exists decides the caller's
            // index (an empty body is recorded with its size).
            return Ok(Box::pin(futures::stream::empty()));
        }
        let missing = |e: &opendal::Error| e.kind() == ErrorKind::NotFound;
        let reader = match self.op.reader_with(&path).chunk(256 * 1024).await {
            Ok(reader) => reader,
            Err(e) if missing(&e) => return Err(StoreError::MissingBlob(sha256.clone())),
            Err(e) => return Err(io("read", &path)(e)),
        };
        let mut stream = match reader.into_bytes_stream(range).await {
            Ok(stream) => stream,
            Err(e) if missing(&e) => return Err(StoreError::MissingBlob(sha256.clone())),
            Err(e) => return Err(io("read", &path)(e)),
        };
        match stream.next().await {
            None => Ok(Box::pin(futures::stream::empty())),
            Some(Ok(first)) => Ok(Box::pin(
                futures::stream::once(async move { Ok(first) }).chain(stream),
            )),
            Some(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(StoreError::MissingBlob(sha256.clone()))
            }
            Some(Err(source)) => Err(StoreError::Read { path, source }),
        }
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
