//! btrfly's storage, through OpenDAL.
//!
//! Layout of the object namespace (the same on every backend):
//!
//! ```text
//! blobs/sha256/<2 hex>/<64 hex>      response bodies, content-addressed, shared by all tags
//! tmp/<random>                       bodies being written; renamed into blobs/ once hashed
//! tags/<tag>/meta.json               TagMeta: created, sealed
//! tags/<tag>/entries/<key id>.json   one Entry per recorded exchange
//! sessions/<id>.json                 SessionInfo of running sessions
//! ```
//!
//! Commit protocol: a body is streamed into `tmp/`, hashed on the way; only
//! when the whole body arrived is it moved to its content address, and only
//! after that is the entry that points at it written. A reader therefore
//! never finds an entry whose blob is missing or partial, and a crashed
//! recording leaves at most garbage under `tmp/`. One object per entry means
//! concurrent writers never read-modify-write a shared index.

use std::ops::Range;
use std::path::Path;

use btrfly_config::{Backend, Config};
use btrfly_core::{is_sha256_hex, Entry, RecordingKey, SessionInfo, Tag, TagMeta};
use bytes::Bytes;
use futures::{Stream, StreamExt, TryStreamExt};
use opendal::{ErrorKind, Operator};
use sha2::{Digest, Sha256};

mod writer;
pub use writer::{BlobWriter, StoredBlob};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage backend {backend}: {source}")]
    Backend {
        backend: &'static str,
        source: opendal::Error,
    },
    #[error("storage {op} {path}: {source}")]
    Io {
        op: &'static str,
        path: String,
        source: opendal::Error,
    },
    #[error("storage: {path} holds malformed data: {message}")]
    Corrupt { path: String, message: String },
    #[error("storage: blob {0} is missing")]
    MissingBlob(String),
    #[error("storage: body digest mismatch: expected sha256 {expected}, got {actual}")]
    DigestMismatch { expected: String, actual: String },
}

impl StoreError {
    /// Whether the backend reported it is out of space or quota.
    pub fn is_full(&self) -> bool {
        let msg = self.to_string().to_ascii_lowercase();
        msg.contains("no space") || msg.contains("quota")
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A stream of body chunks read from a blob.
pub type BlobStream = std::pin::Pin<Box<dyn Stream<Item = std::io::Result<Bytes>> + Send>>;

#[derive(Clone, Debug)]
pub struct Store {
    op: Operator,
    backend: &'static str,
}

fn io<'a>(op: &'static str, path: &'a str) -> impl FnOnce(opendal::Error) -> StoreError + 'a {
    move |source| StoreError::Io {
        op,
        path: path.to_owned(),
        source,
    }
}

impl Store {
    /// Opens the backend the config names. Nothing is checked yet: call
    /// [`Store::check`] before serving.
    pub fn open(config: &Config) -> Result<Store> {
        match config.storage.backend {
            Backend::Fs => Store::fs(&config.storage_root()),
            Backend::Memory => Store::memory(),
        }
    }

    pub fn fs(root: &Path) -> Result<Store> {
        let builder = opendal::services::Fs::default().root(&root.to_string_lossy());
        let op = Operator::new(builder).map_err(|source| StoreError::Backend {
            backend: "fs",
            source,
        })?;
        Ok(Store { op, backend: "fs" })
    }

    pub fn memory() -> Result<Store> {
        let op = Operator::new(opendal::services::Memory::default()).map_err(|source| {
            StoreError::Backend {
                backend: "memory",
                source,
            }
        })?;
        Ok(Store {
            op,
            backend: "memory",
        })
    }

    pub fn backend(&self) -> &'static str {
        self.backend
    }

    /// Proves the backend is usable: writes, reads back and deletes a probe.
    pub async fn check(&self) -> Result<()> {
        let path = format!("tmp/probe-{}", random_id());
        let wrap = |source| StoreError::Backend {
            backend: self.backend,
            source,
        };
        self.op
            .write_with(&path, Bytes::from_static(b"btrfly"))
            .content_type("application/octet-stream")
            .await
            .map_err(wrap)?;
        let back = self.op.read(&path).await.map_err(wrap)?;
        self.op.delete(&path).await.map_err(wrap)?;
        if back.to_bytes().as_ref() != b"btrfly" {
            return Err(StoreError::Corrupt {
                path,
                message: "probe read back different bytes".into(),
            });
        }
        Ok(())
    }

    // === blobs ===

    pub fn blob_path(sha256: &str) -> String {
        format!("blobs/sha256/{}/{}", &sha256[..2], sha256)
    }

    /// Size of a stored blob, or `None` when it is not stored.
    pub async fn blob_size(&self, sha256: &str) -> Result<Option<u64>> {
        if !is_sha256_hex(sha256) {
            return Ok(None);
        }
        let path = Self::blob_path(sha256);
        match self.op.stat(&path).await {
            Ok(meta) => Ok(Some(meta.content_length())),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io("stat", &path)(e)),
        }
    }

    /// Streams a blob (or a byte range of it) without loading it whole.
    pub async fn read_blob(&self, sha256: &str, range: Option<Range<u64>>) -> Result<BlobStream> {
        let path = Self::blob_path(sha256);
        let size = self
            .blob_size(sha256)
            .await?
            .ok_or_else(|| StoreError::MissingBlob(sha256.to_owned()))?;
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
    pub async fn blob_writer(&self, expected_sha256: Option<String>) -> Result<BlobWriter> {
        BlobWriter::start(self.clone(), expected_sha256).await
    }

    /// Reads a whole blob and checks it against its address (for `verify`).
    pub async fn verify_blob(&self, sha256: &str) -> Result<u64> {
        let mut stream = self.read_blob(sha256, None).await?;
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| StoreError::Corrupt {
                path: Self::blob_path(sha256),
                message: e.to_string(),
            })?;
            size += chunk.len() as u64;
            hasher.update(&chunk);
        }
        let actual = hex::encode(hasher.finalize());
        if actual != sha256 {
            return Err(StoreError::DigestMismatch {
                expected: sha256.to_owned(),
                actual,
            });
        }
        Ok(size)
    }

    // === tags ===

    fn tag_meta_path(tag: &Tag) -> String {
        format!("tags/{tag}/meta.json")
    }

    fn entry_path(tag: &Tag, key_id: &str) -> String {
        format!("tags/{tag}/entries/{key_id}.json")
    }

    pub async fn tag_meta(&self, tag: &Tag) -> Result<Option<TagMeta>> {
        self.get_json(&Self::tag_meta_path(tag)).await
    }

    pub async fn put_tag_meta(&self, meta: &TagMeta) -> Result<()> {
        self.put_json(&Self::tag_meta_path(&meta.tag), meta).await
    }

    pub async fn list_tags(&self) -> Result<Vec<TagMeta>> {
        let entries = match self.op.list("tags/").await {
            Ok(e) => e,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io("list", "tags/")(e)),
        };
        let mut tags = Vec::new();
        for e in entries {
            let name = e.name().trim_end_matches('/');
            let Ok(tag) = Tag::new(name) else { continue };
            if let Some(meta) = self.tag_meta(&tag).await? {
                tags.push(meta);
            }
        }
        tags.sort_by(|a, b| a.tag.cmp(&b.tag));
        Ok(tags)
    }

    pub async fn put_entry(&self, tag: &Tag, entry: &Entry) -> Result<()> {
        self.put_json(&Self::entry_path(tag, &entry.key.id()), entry)
            .await
    }

    pub async fn get_entry(&self, tag: &Tag, key: &RecordingKey) -> Result<Option<Entry>> {
        let entry: Option<Entry> = self.get_json(&Self::entry_path(tag, &key.id())).await?;
        // The id is a hash; make sure the entry really is for this key.
        Ok(entry.filter(|e| &e.key == key))
    }

    /// Every entry of a tag, sorted by URL then method.
    pub async fn list_entries(&self, tag: &Tag) -> Result<Vec<Entry>> {
        let dir = format!("tags/{tag}/entries/");
        let listed = match self.op.list(&dir).await {
            Ok(l) => l,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io("list", &dir)(e)),
        };
        let mut entries = Vec::with_capacity(listed.len());
        for item in listed {
            if !item.name().ends_with(".json") {
                continue;
            }
            if let Some(entry) = self.get_json::<Entry>(item.path()).await? {
                entries.push(entry);
            }
        }
        entries.sort_by(|a, b| (&a.url, &a.method).cmp(&(&b.url, &b.method)));
        Ok(entries)
    }

    // === sessions ===

    fn session_path(id: &str) -> String {
        format!("sessions/{id}.json")
    }

    pub async fn put_session(&self, s: &SessionInfo) -> Result<()> {
        self.put_json(&Self::session_path(&s.id), s).await
    }

    pub async fn get_session(&self, id: &str) -> Result<Option<SessionInfo>> {
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Ok(None);
        }
        self.get_json(&Self::session_path(id)).await
    }

    pub async fn delete_session(&self, id: &str) -> Result<()> {
        let path = Self::session_path(id);
        self.op.delete(&path).await.map_err(io("delete", &path))
    }

    // === helpers ===

    async fn get_json<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<Option<T>> {
        let buf = match self.op.read(path).await {
            Ok(b) => b,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io("read", path)(e)),
        };
        serde_json::from_slice(&buf.to_bytes())
            .map(Some)
            .map_err(|e| StoreError::Corrupt {
                path: path.to_owned(),
                message: e.to_string(),
            })
    }

    async fn put_json<T: serde::Serialize>(&self, path: &str, value: &T) -> Result<()> {
        let body = serde_json::to_vec_pretty(value).map_err(|e| StoreError::Corrupt {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        self.op
            .write_with(path, body)
            .content_type("application/json")
            .await
            .map_err(io("write", path))?;
        Ok(())
    }

    pub(crate) fn operator(&self) -> &Operator {
        &self.op
    }
}

pub(crate) fn random_id() -> String {
    use rand::Rng;
    let bytes: [u8; 16] = rand::rng().random();
    hex::encode(bytes)
}

#[cfg(test)]
mod tests;
