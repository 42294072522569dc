//! btrfly's storage, through OpenDAL.
//!
//! Layout of the object namespace (the same on every backend):
//!
//! ```text
//! blobs/sha256/<2 hex>/<64 hex>      response bodies, content-addressed, shared by all tags
//! tmp/<random>                       bodies being written; renamed into blobs/ once hashed
//! tags/<tag>/meta.json               TagMeta: created, sealed
//! tags/<tag>/entries/<key id>.json   one Entry per recorded exchange
//! tags/<tag>/index.json              all entries of a sealed tag in one object (a snapshot)
//! tags/<tag>/vary/<key id>/<n>.json  VaryRecord: request headers that select among a key's answers
//! sessions/<id>.json                 SessionInfo of running sessions
//! sessions/<id>/stats/<replica>.json one replica's counters for a session
//! ```
//!
//! Commit protocol: a body is streamed into `tmp/`, hashed on the way; only
//! when the whole body arrived is it moved to its content address, and only
//! after that is the entry that points at it written. A reader therefore
//! never finds an entry whose blob is missing or partial, and a crashed
//! recording leaves at most garbage under `tmp/`. One object per entry means
//! concurrent writers never read-modify-write a shared index.
//!
//! Across replicas on one bucket the same rules make every write safe
//! without locks: two replicas storing the same body write two temp objects
//! and copy identical bytes to the same address (object stores replace an
//! object atomically, so a reader sees one whole copy); two replicas
//! committing the same key write two complete entries and the last one
//! stays; different keys never touch the same object. Sealing writes the
//! snapshot `index.json` first and then `meta.json` with the same
//! `sealed_at`; the snapshot is trusted only when the two agree, so a
//! re-recorded (`--force`) or half-sealed tag falls back to its entries.

use std::collections::HashMap;
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

use btrfly_config::{Backend, Config, GcsConfig, S3Config};
use btrfly_core::{is_sha256_hex, Entry, RecordingKey, SessionInfo, Tag, TagMeta, VaryRecord};
use bytes::Bytes;
use futures::{Stream, StreamExt, TryStreamExt};
use opendal::{ErrorKind, Operator};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

mod counting;
#[cfg(any(test, feature = "test-servers"))]
pub mod test_servers;
mod writer;
pub use counting::{CountingLayer, OpCounts, OpSnapshot};
pub use writer::{BlobWriter, StoredBlob};

/// How many objects are read at once when a whole tag is loaded.
const LOAD_CONCURRENCY: usize = 32;

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
    /// The configuration cannot work (found before any request is made).
    #[error("storage backend {backend}: {message}")]
    Config {
        backend: &'static str,
        message: String,
    },
    /// The start-up probe failed; `message` says what to fix.
    #[error("storage backend {backend} ({location}): {message}")]
    Unusable {
        backend: &'static str,
        location: String,
        message: String,
        source: opendal::Error,
    },
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
    /// Where the data is, for messages: a directory, a bucket and endpoint.
    location: Arc<str>,
}

/// Every entry of one tag, in memory: playback lookups without a round trip.
#[derive(Debug)]
pub struct TagIndex {
    tag: Tag,
    sealed_at: Option<OffsetDateTime>,
    entries: HashMap<String, Entry>,
    /// Per key id, the sets of `Vary` names its answers were recorded with.
    vary: HashMap<String, Vec<VaryRecord>>,
}

impl TagIndex {
    pub fn tag(&self) -> &Tag {
        &self.tag
    }

    /// When the tag was sealed, for a sealed tag's index.
    pub fn sealed_at(&self) -> Option<OffsetDateTime> {
        self.sealed_at
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entry recorded for `key`, like [`Store::get_entry`].
    pub fn get(&self, key: &RecordingKey) -> Option<&Entry> {
        self.entries.get(&key.id()).filter(|e| &e.key == key)
    }

    /// Every entry, in no particular order.
    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.entries.values()
    }

    /// The sets of `Vary` names recorded for `key`, like
    /// [`Store::vary_sets`].
    pub fn vary_sets(&self, key: &RecordingKey) -> Vec<Vec<String>> {
        self.vary
            .get(&key.id())
            .into_iter()
            .flatten()
            .filter(|r| &r.key == key)
            .map(|r| r.vary.clone())
            .collect()
    }

    fn new(
        tag: Tag,
        sealed_at: Option<OffsetDateTime>,
        entries: Vec<Entry>,
        vary: Vec<VaryRecord>,
    ) -> TagIndex {
        let mut by_key: HashMap<String, Vec<VaryRecord>> = HashMap::new();
        for r in vary {
            let list = by_key.entry(r.key.id()).or_default();
            if !list.contains(&r) {
                list.push(r);
            }
        }
        TagIndex {
            tag,
            sealed_at,
            entries: entries.into_iter().map(|e| (e.key.id(), e)).collect(),
            vary: by_key,
        }
    }
}

/// The snapshot written when a tag is sealed: `tags/<tag>/index.json`.
#[derive(serde::Serialize, serde::Deserialize)]
struct IndexSnapshot {
    #[serde(with = "time::serde::rfc3339")]
    sealed_at: OffsetDateTime,
    entries: Vec<Entry>,
    /// Absent in snapshots written before answers were keyed by `Vary`.
    #[serde(default)]
    vary: Vec<VaryRecord>,
}

/// OpenDAL's HTTP services need a process-wide transport; btrfly's is
/// reqwest over rustls with ring (installed here when nothing else was).
fn install_http_transport() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    opendal_http_transport_reqwest::install_default();
}

fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// A prefix as an OpenDAL root: `/a/b/`.
fn prefix_root(prefix: Option<&str>) -> String {
    match prefix
        .map(|p| p.trim_matches('/'))
        .filter(|p| !p.is_empty())
    {
        Some(p) => format!("/{p}/"),
        None => "/".to_owned(),
    }
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
        let missing = |backend: Backend| StoreError::Config {
            backend: backend.as_str(),
            message: format!("no [storage.{}] table", backend.as_str()),
        };
        match config.storage.backend {
            Backend::Fs => Store::fs(&config.storage_root()),
            Backend::Memory => Store::memory(),
            Backend::S3 => Store::s3(config.storage.s3.as_ref().ok_or(missing(Backend::S3))?),
            Backend::Gcs => Store::gcs(config.storage.gcs.as_ref().ok_or(missing(Backend::Gcs))?),
        }
    }

    fn with_operator(
        backend: &'static str,
        location: String,
        builder: impl opendal::Builder,
    ) -> Result<Store> {
        let mut op =
            Operator::new(builder).map_err(|source| StoreError::Backend { backend, source })?;
        if matches!(backend, "s3" | "gcs") {
            // Object stores answer 500/503 (SlowDown) now and then; OpenDAL
            // marks those temporary and this retries them with backoff.
            op = op.layer(
                opendal::layers::RetryLayer::new()
                    .with_jitter()
                    .with_max_times(5),
            );
        }
        Ok(Store {
            op,
            backend,
            location: location.into(),
        })
    }

    pub fn fs(root: &Path) -> Result<Store> {
        let builder = opendal::services::Fs::default().root(&root.to_string_lossy());
        Store::with_operator("fs", root.display().to_string(), builder)
    }

    pub fn memory() -> Result<Store> {
        Store::with_operator(
            "memory",
            "process memory".into(),
            opendal::services::Memory::default(),
        )
    }

    /// An S3 bucket. Settings left out of `c` come from the AWS environment.
    pub fn s3(c: &S3Config) -> Result<Store> {
        let config_err = |message: String| StoreError::Config {
            backend: "s3",
            message,
        };
        let region = c
            .region
            .clone()
            .or_else(|| env_var("AWS_REGION"))
            .or_else(|| env_var("AWS_DEFAULT_REGION"))
            .ok_or_else(|| {
                config_err(
                    "no region: set storage.s3.region, or AWS_REGION in the environment".into(),
                )
            })?;
        let endpoint = c.endpoint.clone().or_else(|| env_var("AWS_ENDPOINT_URL"));
        install_http_transport();
        let mut b = opendal::services::S3::default()
            .bucket(&c.bucket)
            .region(&region)
            .root(&prefix_root(c.prefix.as_deref()));
        if let Some(e) = &endpoint {
            b = b.endpoint(e);
        }
        if let (Some(ak), Some(sk)) = (&c.access_key_id, &c.secret_access_key) {
            b = b.access_key_id(ak).secret_access_key(sk);
            if let Some(t) = &c.session_token {
                b = b.session_token(t);
            }
        }
        if c.virtual_host_style {
            b = b.enable_virtual_host_style();
        }
        let location = format!(
            "bucket {} at {}{}",
            c.bucket,
            endpoint.as_deref().unwrap_or("AWS"),
            c.prefix
                .as_deref()
                .map(|p| format!(", prefix {p}"))
                .unwrap_or_default()
        );
        Store::with_operator("s3", location, b)
    }

    /// A GCS bucket. Credentials left out of `c` come from the Google
    /// environment.
    pub fn gcs(c: &GcsConfig) -> Result<Store> {
        let config_err = |message: String| StoreError::Config {
            backend: "gcs",
            message,
        };
        install_http_transport();
        let mut b = opendal::services::Gcs::default()
            .bucket(&c.bucket)
            .root(&prefix_root(c.prefix.as_deref()));
        if let Some(e) = &c.endpoint {
            b = b.endpoint(e);
        }
        if c.allow_anonymous {
            b = b
                .skip_signature()
                .disable_vm_metadata()
                .disable_config_load();
        } else {
            let (key, path) = match &c.credential_path {
                Some(p) => ("storage.gcs.credential_path", Some(p.clone())),
                None => (
                    "GOOGLE_APPLICATION_CREDENTIALS",
                    env_var("GOOGLE_APPLICATION_CREDENTIALS").map(Into::into),
                ),
            };
            if let Some(path) = path {
                // Read it here: a bad key file is a clear error at start,
                // not a failed request later.
                let text = std::fs::read_to_string(&path).map_err(|e| {
                    config_err(format!("{key} {}: cannot read it: {e}", path.display()))
                })?;
                let kind = serde_json::from_str::<serde_json::Value>(&text)
                    .ok()
                    .and_then(|v| v.get("type")?.as_str().map(str::to_owned));
                if kind.is_none() {
                    return Err(config_err(format!(
                        "{key} {}: not a Google credential file (JSON with a \"type\", e.g. a service-account key)",
                        path.display()
                    )));
                }
                b = b.credential_path(&path.to_string_lossy());
            }
        }
        let location = format!(
            "bucket {} at {}{}",
            c.bucket,
            c.endpoint.as_deref().unwrap_or("Google Cloud Storage"),
            c.prefix
                .as_deref()
                .map(|p| format!(", prefix {p}"))
                .unwrap_or_default()
        );
        Store::with_operator("gcs", location, b)
    }

    /// Counts every operation this store (and its clones made afterwards)
    /// sends to the backend.
    pub fn counted(self) -> (Store, Arc<OpCounts>) {
        let counts = Arc::new(OpCounts::default());
        let op = self.op.layer(CountingLayer::new(counts.clone()));
        (Store { op, ..self }, counts)
    }

    pub fn backend(&self) -> &'static str {
        self.backend
    }

    /// Where the data is: a directory, or a bucket at an endpoint.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// Turns a failed probe into advice naming what to fix.
    fn unusable(&self, doing: &str, source: opendal::Error) -> StoreError {
        let b = self.backend;
        // S3 answers a missing bucket 404 NoSuchBucket, which OpenDAL
        // files under ConfigInvalid.
        let kind = if source.to_string().contains("NoSuchBucket") {
            ErrorKind::NotFound
        } else {
            source.kind()
        };
        let message = match (b, kind) {
            ("s3" | "gcs", ErrorKind::NotFound) => format!(
                "{doing}: the bucket does not exist (create it, or fix storage.{b}.bucket)"
            ),
            ("s3", ErrorKind::PermissionDenied) => format!(
                "{doing}: the credentials were refused (check storage.s3.access_key_id and secret_access_key, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)"
            ),
            ("gcs", ErrorKind::PermissionDenied) => format!(
                "{doing}: the credentials were refused (check storage.gcs.credential_path or GOOGLE_APPLICATION_CREDENTIALS)"
            ),
            ("s3" | "gcs", ErrorKind::ConfigInvalid) => {
                format!("{doing}: the [storage.{b}] settings do not work")
            }
            ("fs", ErrorKind::PermissionDenied) => {
                format!("{doing}: permission denied (fix storage.root or its permissions)")
            }
            _ => format!("{doing} failed"),
        };
        StoreError::Unusable {
            backend: b,
            location: self.location.to_string(),
            message,
            source,
        }
    }

    /// Proves the backend is usable: writes, reads back and deletes a probe.
    /// Errors say what to fix (a missing bucket, refused credentials).
    pub async fn check(&self) -> Result<()> {
        let path = format!("tmp/probe-{}", random_id());
        self.op
            .write_with(&path, Bytes::from_static(b"btrfly"))
            .content_type("application/octet-stream")
            .await
            .map_err(|e| self.unusable("writing a probe object", e))?;
        let back = self
            .op
            .read(&path)
            .await
            .map_err(|e| self.unusable("reading the probe object back", e))?;
        self.op
            .delete(&path)
            .await
            .map_err(|e| self.unusable("deleting the probe object", e))?;
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
        let paths: Vec<String> = listed
            .into_iter()
            .filter(|item| item.name().ends_with(".json"))
            .map(|item| item.path().to_owned())
            .collect();
        let mut entries: Vec<Entry> = futures::stream::iter(paths)
            .map(|path| async move { self.get_json::<Entry>(&path).await })
            .buffer_unordered(LOAD_CONCURRENCY)
            .try_filter_map(|e| async move { Ok(e) })
            .try_collect()
            .await?;
        entries.sort_by(|a, b| (&a.url, &a.method).cmp(&(&b.url, &b.method)));
        Ok(entries)
    }

    fn vary_dir(tag: &Tag, key: &RecordingKey) -> String {
        format!("tags/{tag}/vary/{}/", key.id())
    }

    /// Records which request headers select among the answers of a key (a
    /// response named them in `Vary`). One object per key and set of names,
    /// written whole and never read-modified-written: replicas recording
    /// the same key write the same object. Written before the entry it
    /// describes, so an entry is never unreachable.
    pub async fn put_vary(&self, tag: &Tag, record: &VaryRecord) -> Result<()> {
        let path = format!(
            "{}{}.json",
            Self::vary_dir(tag, &record.key),
            record.names_id()
        );
        self.put_json(&path, record).await
    }

    /// The sets of `Vary` names answers for `key` were recorded with (one
    /// listing; empty for a key whose answers named none).
    pub async fn vary_sets(&self, tag: &Tag, key: &RecordingKey) -> Result<Vec<Vec<String>>> {
        let dir = Self::vary_dir(tag, key);
        let listed = match self.op.list(&dir).await {
            Ok(l) => l,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io("list", &dir)(e)),
        };
        let mut sets = Vec::new();
        for item in listed.iter().filter(|i| i.name().ends_with(".json")) {
            if let Some(r) = self.get_json::<VaryRecord>(item.path()).await? {
                if &r.key == key && !sets.contains(&r.vary) {
                    sets.push(r.vary);
                }
            }
        }
        Ok(sets)
    }

    /// Every vary record of a tag.
    pub async fn list_vary(&self, tag: &Tag) -> Result<Vec<VaryRecord>> {
        let dir = format!("tags/{tag}/vary/");
        let listed = match self.op.list_with(&dir).recursive(true).await {
            Ok(l) => l,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io("list", &dir)(e)),
        };
        let paths: Vec<String> = listed
            .into_iter()
            .filter(|item| item.name().ends_with(".json"))
            .map(|item| item.path().to_owned())
            .collect();
        futures::stream::iter(paths)
            .map(|path| async move { self.get_json::<VaryRecord>(&path).await })
            .buffer_unordered(LOAD_CONCURRENCY)
            .try_filter_map(|r| async move { Ok(r) })
            .try_collect()
            .await
    }

    fn index_path(tag: &Tag) -> String {
        format!("tags/{tag}/index.json")
    }

    /// Loads every entry of a tag into memory. A sealed tag is one read (its
    /// snapshot), when the snapshot belongs to this seal; otherwise every
    /// entry object is read.
    pub async fn load_index(&self, meta: &TagMeta) -> Result<TagIndex> {
        let tag = &meta.tag;
        if let (true, Some(sealed_at)) = (meta.sealed, meta.sealed_at) {
            if let Some(snap) = self
                .get_json::<IndexSnapshot>(&Self::index_path(tag))
                .await?
                .filter(|s| s.sealed_at == sealed_at)
            {
                return Ok(TagIndex::new(
                    tag.clone(),
                    Some(sealed_at),
                    snap.entries,
                    snap.vary,
                ));
            }
        }
        let entries = self.list_entries(tag).await?;
        let vary = self.list_vary(tag).await?;
        Ok(TagIndex::new(
            tag.clone(),
            meta.sealed.then_some(meta.sealed_at).flatten(),
            entries,
            vary,
        ))
    }

    /// Seals a tag: writes the snapshot of its entries, then the meta that
    /// marks it sealed (see the commit protocol above).
    pub async fn seal_tag(&self, mut meta: TagMeta) -> Result<TagMeta> {
        let sealed_at = OffsetDateTime::now_utc();
        let entries = self.list_entries(&meta.tag).await?;
        let vary = self.list_vary(&meta.tag).await?;
        let path = Self::index_path(&meta.tag);
        self.put_json(
            &path,
            &IndexSnapshot {
                sealed_at,
                entries,
                vary,
            },
        )
        .await?;
        meta.sealed = true;
        meta.sealed_at = Some(sealed_at);
        self.put_tag_meta(&meta).await?;
        Ok(meta)
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

    /// Every stored session.
    pub async fn list_sessions(&self) -> Result<Vec<SessionInfo>> {
        let listed = match self.op.list("sessions/").await {
            Ok(l) => l,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io("list", "sessions/")(e)),
        };
        let ids: Vec<String> = listed
            .iter()
            .filter_map(|e| e.name().strip_suffix(".json").map(str::to_owned))
            .collect();
        let mut out = Vec::new();
        for id in ids {
            if let Some(s) = self.get_session(&id).await? {
                out.push(s);
            }
        }
        Ok(out)
    }

    fn session_stats_dir(id: &str) -> String {
        format!("sessions/{id}/stats/")
    }

    /// One replica's counters for a session (any serialisable value).
    pub async fn put_session_stats<T: serde::Serialize>(
        &self,
        id: &str,
        replica: &str,
        stats: &T,
    ) -> Result<()> {
        self.put_json(
            &format!("{}{replica}.json", Self::session_stats_dir(id)),
            stats,
        )
        .await
    }

    /// Every replica's counters for a session: (replica, counters).
    pub async fn list_session_stats<T: serde::de::DeserializeOwned>(
        &self,
        id: &str,
    ) -> Result<Vec<(String, T)>> {
        let dir = Self::session_stats_dir(id);
        let listed = match self.op.list(&dir).await {
            Ok(l) => l,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io("list", &dir)(e)),
        };
        let mut out = Vec::new();
        for item in listed {
            let Some(replica) = item.name().strip_suffix(".json") else {
                continue;
            };
            if let Some(stats) = self.get_json::<T>(item.path()).await? {
                out.push((replica.to_owned(), stats));
            }
        }
        Ok(out)
    }

    /// Removes every replica's counters of a session.
    pub async fn delete_session_stats(&self, id: &str) -> Result<()> {
        let dir = Self::session_stats_dir(id);
        let listed = match self.op.list(&dir).await {
            Ok(l) => l,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io("list", &dir)(e)),
        };
        for item in listed.iter().filter(|i| i.name().ends_with(".json")) {
            self.op
                .delete(item.path())
                .await
                .map_err(io("delete", item.path()))?;
        }
        Ok(())
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

    /// Writes a small JSON object so that readers see the old or the new
    /// one whole, never a mix, even with concurrent writers (replicas): an
    /// object store's PUT is atomic; on a filesystem the object is written
    /// under `tmp/` and renamed into place.
    async fn put_json<T: serde::Serialize>(&self, path: &str, value: &T) -> Result<()> {
        let body = serde_json::to_vec_pretty(value).map_err(|e| StoreError::Corrupt {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        if self.backend == "fs" {
            let tmp = format!("tmp/{}", random_id());
            self.op
                .write_with(&tmp, body)
                .content_type("application/json")
                .await
                .map_err(io("write", &tmp))?;
            if let Err(e) = self.op.rename(&tmp, path).await {
                let _ = self.op.delete(&tmp).await;
                return Err(io("rename", path)(e));
            }
            return Ok(());
        }
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
