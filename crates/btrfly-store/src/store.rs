//! The store: one backend, one layout (see the crate docs).

use std::collections::HashMap;
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

use btrfly_core::{Entry, RecordingKey, SessionId, SessionInfo, Sha256, Tag, TagMeta, VaryRecord};
use bytes::Bytes;
use futures::{Stream, StreamExt, TryStreamExt};
use opendal::{ErrorKind, Operator};
use sha2::Digest;
use time::OffsetDateTime;

use crate::error::{io, Advice, ConfigProblem, Result, StoreError};
use crate::layout::{blob_path, random_id};
use crate::options::{GcsOptions, S3Options, StoreOptions};
use crate::writer::BlobWriter;

/// How many objects are read at once when a whole tag is loaded.
pub(crate) const LOAD_CONCURRENCY: usize = 32;

/// A stream of body chunks read from a blob.
pub type BlobStream = std::pin::Pin<Box<dyn Stream<Item = std::io::Result<Bytes>> + Send>>;

/// A handle on the store (cheap to clone): one backend, one layout.
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
    /// The tag.
    pub fn tag(&self) -> &Tag {
        &self.tag
    }

    /// When the tag was sealed, for a sealed tag's index.
    pub fn sealed_at(&self) -> Option<OffsetDateTime> {
        self.sealed_at
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether it has no entry.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entry recorded for `key`, like [`Store::get_entry`].
    pub fn get(&self, key: &RecordingKey) -> Option<&Entry> {
        self.entries.get(&key.id()).filter(|e| &e.key == key)
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

impl Store {
    /// Opens the backend `options` name. Nothing is checked yet: call
    /// [`Store::check`] before serving.
    ///
    /// # Errors
    /// A configuration that cannot work (see [`ConfigProblem`]), or a
    /// backend OpenDAL cannot set up.
    pub fn open(options: &StoreOptions) -> Result<Store> {
        match options {
            StoreOptions::Fs { root } => Store::fs(root),
            StoreOptions::Memory => Store::memory(),
            StoreOptions::S3(o) => Store::s3(o),
            StoreOptions::Gcs(o) => Store::gcs(o),
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

    /// A directory.
    ///
    /// # Errors
    /// OpenDAL cannot set up the backend.
    pub fn fs(root: &Path) -> Result<Store> {
        let builder = opendal::services::Fs::default().root(&root.to_string_lossy());
        Store::with_operator("fs", root.display().to_string(), builder)
    }

    /// Process memory (tests, throwaway servers).
    ///
    /// # Errors
    /// OpenDAL cannot set up the backend.
    pub fn memory() -> Result<Store> {
        Store::with_operator(
            "memory",
            "process memory".into(),
            opendal::services::Memory::default(),
        )
    }

    /// An S3 bucket. Settings left out of `c` come from the AWS environment.
    ///
    /// # Errors
    /// No region anywhere, or a backend OpenDAL cannot set up.
    pub fn s3(c: &S3Options) -> Result<Store> {
        let region = c
            .region
            .clone()
            .or_else(|| env_var("AWS_REGION"))
            .or_else(|| env_var("AWS_DEFAULT_REGION"))
            .ok_or(StoreError::Config {
                backend: "s3",
                problem: ConfigProblem::NoRegion,
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
    ///
    /// # Errors
    /// A credential file that cannot be read or is not one, or a backend
    /// OpenDAL cannot set up.
    pub fn gcs(c: &GcsOptions) -> Result<Store> {
        let config_err = |problem: ConfigProblem| StoreError::Config {
            backend: "gcs",
            problem,
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
                let text = std::fs::read_to_string(&path).map_err(|source| {
                    config_err(ConfigProblem::CredentialFile {
                        key,
                        path: path.clone(),
                        source,
                    })
                })?;
                let kind = serde_json::from_str::<serde_json::Value>(&text)
                    .ok()
                    .and_then(|v| v.get("type")?.as_str().map(str::to_owned));
                if kind.is_none() {
                    return Err(config_err(ConfigProblem::NotCredentialFile {
                        key,
                        path: path.clone(),
                    }));
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

    /// This store (and its clones made afterwards) with every backend
    /// operation going through an OpenDAL `layer`: metrics, tracing, or
    /// the operation counting of tests.
    pub fn layer<L: opendal::raw::Layer>(self, layer: L) -> Store {
        Store {
            op: self.op.layer(layer),
            ..self
        }
    }

    /// `fs`, `memory`, `s3` or `gcs`.
    pub fn backend(&self) -> &'static str {
        self.backend
    }

    /// Where the data is: a directory, or a bucket at an endpoint.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// Turns a failed probe into advice naming what to fix, by the
    /// backend and OpenDAL's error kind. (OpenDAL files S3's
    /// `NoSuchBucket` under `ConfigInvalid`: the probe's request is valid,
    /// so for S3 that kind means the bucket.)
    fn unusable(&self, doing: &'static str, source: opendal::Error) -> StoreError {
        let b = self.backend;
        let advice = match (b, source.kind()) {
            ("s3" | "gcs", ErrorKind::NotFound) => Advice::NoBucket(b),
            ("s3", ErrorKind::ConfigInvalid) => Advice::NoBucket(b),
            ("s3", ErrorKind::PermissionDenied) => Advice::S3Credentials,
            ("gcs", ErrorKind::PermissionDenied) => Advice::GcsCredentials,
            ("gcs", ErrorKind::ConfigInvalid) => Advice::Settings(b),
            ("fs", ErrorKind::PermissionDenied) => Advice::FsPermission,
            _ => Advice::Failed,
        };
        StoreError::Unusable {
            backend: b,
            location: self.location.to_string(),
            doing,
            advice,
            source,
        }
    }

    /// Proves the backend is usable: writes, reads back and deletes a probe.
    ///
    /// # Errors
    /// [`StoreError::Unusable`], saying what to fix (a missing bucket,
    /// refused credentials).
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
            return Err(StoreError::ProbeMismatch { path });
        }
        Ok(())
    }

    // === blobs ===

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
        let mut stream = self.read_blob(sha256, None).await?;
        let mut hasher = sha2::Sha256::new();
        let mut size = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|source| StoreError::Read {
                path: Self::blob_path(sha256),
                source,
            })?;
            size += chunk.len() as u64;
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

    // === tags ===

    fn tag_meta_path(tag: &Tag) -> String {
        format!("tags/{tag}/meta.json")
    }

    fn entry_path(tag: &Tag, key_id: &str) -> String {
        format!("tags/{tag}/entries/{key_id}.json")
    }

    /// See the module docs for the layout.
    ///
    /// # Errors
    /// The backend failed, or an object it read is malformed.
    pub async fn tag_meta(&self, tag: &Tag) -> Result<Option<TagMeta>> {
        self.get_json(&Self::tag_meta_path(tag)).await
    }

    /// See the module docs for the layout.
    ///
    /// # Errors
    /// The backend failed, or an object it read is malformed.
    pub async fn put_tag_meta(&self, meta: &TagMeta) -> Result<()> {
        self.put_json(&Self::tag_meta_path(&meta.tag), meta).await
    }

    /// See the module docs for the layout.
    ///
    /// # Errors
    /// The backend failed, or an object it read is malformed.
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

    /// See the module docs for the layout.
    ///
    /// # Errors
    /// The backend failed, or an object it read is malformed.
    pub async fn put_entry(&self, tag: &Tag, entry: &Entry) -> Result<()> {
        self.put_json(&Self::entry_path(tag, &entry.key.id()), entry)
            .await
    }

    /// See the module docs for the layout.
    ///
    /// # Errors
    /// The backend failed, or an object it read is malformed.
    pub async fn get_entry(&self, tag: &Tag, key: &RecordingKey) -> Result<Option<Entry>> {
        let entry: Option<Entry> = self.get_json(&Self::entry_path(tag, &key.id())).await?;
        // The id is a hash; make sure the entry really is for this key.
        Ok(entry.filter(|e| &e.key == key))
    }

    /// Whether a tag has at least one entry (reads one listing page, no
    /// entry object).
    ///
    /// # Errors
    /// A backend error while listing `tags/<tag>/entries/`.
    pub async fn has_entries(&self, tag: &Tag) -> Result<bool> {
        let dir = format!("tags/{tag}/entries/");
        let mut lister = match self.op.lister(&dir).await {
            Ok(l) => l,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(io("list", &dir)(e)),
        };
        while let Some(item) = lister.try_next().await.map_err(io("list", &dir))? {
            if item.name().ends_with(".json") {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Every entry of a tag, sorted by URL then method.
    ///
    /// # Errors
    /// The backend failed, or an object it read is malformed.
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
    ///
    /// # Errors
    /// The backend failed, or an object it read is malformed.
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
    ///
    /// # Errors
    /// The backend failed, or an object it read is malformed.
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
    ///
    /// # Errors
    /// The backend failed, or an object it read is malformed.
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
    ///
    /// # Errors
    /// The backend failed, or an object it read is malformed.
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
    ///
    /// # Errors
    /// The backend failed, or an object it read is malformed.
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

    fn session_path(id: &SessionId) -> String {
        format!("sessions/{id}.json")
    }

    /// Writes a session object.
    ///
    /// # Errors
    /// The backend failed.
    pub async fn put_session(&self, s: &SessionInfo) -> Result<()> {
        self.put_json(&Self::session_path(&s.id), s).await
    }

    /// A session object, if it is there.
    ///
    /// # Errors
    /// The backend failed, or the object is malformed.
    pub async fn get_session(&self, id: &SessionId) -> Result<Option<SessionInfo>> {
        self.get_json(&Self::session_path(id)).await
    }

    /// Removes a session object (its counters stay: see
    /// [`Store::delete_session_stats`]).
    ///
    /// # Errors
    /// The backend failed.
    pub async fn delete_session(&self, id: &SessionId) -> Result<()> {
        let path = Self::session_path(id);
        self.op.delete(&path).await.map_err(io("delete", &path))
    }

    /// Every stored session.
    ///
    /// # Errors
    /// The backend failed, or an object it read is malformed.
    pub async fn list_sessions(&self) -> Result<Vec<SessionInfo>> {
        let listed = match self.op.list("sessions/").await {
            Ok(l) => l,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io("list", "sessions/")(e)),
        };
        let ids: Vec<SessionId> = listed
            .iter()
            .filter_map(|e| e.name().strip_suffix(".json"))
            .filter_map(|name| SessionId::new(name).ok())
            .collect();
        let mut out = Vec::new();
        for id in ids {
            if let Some(s) = self.get_session(&id).await? {
                out.push(s);
            }
        }
        Ok(out)
    }

    fn session_stats_dir(id: &SessionId) -> String {
        format!("sessions/{id}/stats/")
    }

    /// One replica's counters for a session (any serialisable value).
    ///
    /// # Errors
    /// The backend failed.
    pub async fn put_session_stats<T: serde::Serialize>(
        &self,
        id: &SessionId,
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
    ///
    /// # Errors
    /// The backend failed, or an object is malformed.
    pub async fn list_session_stats<T: serde::de::DeserializeOwned>(
        &self,
        id: &SessionId,
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
    ///
    /// # Errors
    /// The backend failed.
    pub async fn delete_session_stats(&self, id: &SessionId) -> Result<()> {
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
        // On a filesystem the folders stay behind once empty; object
        // stores have none (deleting a missing object is not an error).
        for folder in [dir.clone(), format!("sessions/{id}/")] {
            self.op
                .delete(&folder)
                .await
                .map_err(io("delete", &folder))?;
        }
        Ok(())
    }

    // === helpers ===

    pub(crate) async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
    ) -> Result<Option<T>> {
        let read = if self.backend == "fs" {
            // OpenDAL's fs reader fills a zeroed buffer of up to 2 MiB for
            // a read of unknown length, and pools 16 of them: a tag's
            // entries read 32 at a time once cost the server ~40 MB of RSS
            // for good. A bounded read allocates what the object needs.
            match self.op.stat(path).await {
                Ok(meta) => {
                    self.op
                        .read_with(path)
                        .range(0..meta.content_length())
                        .await
                }
                Err(e) => Err(e),
            }
        } else {
            self.op.read(path).await
        };
        let buf = match read {
            Ok(b) => b,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io("read", path)(e)),
        };
        serde_json::from_slice(&buf.to_bytes())
            .map(Some)
            .map_err(|source| StoreError::Malformed {
                path: path.to_owned(),
                source,
            })
    }

    /// Writes a small JSON object so that readers see the old or the new
    /// one whole, never a mix, even with concurrent writers (replicas): an
    /// object store's PUT is atomic; on a filesystem the object is written
    /// under `tmp/` and renamed into place.
    pub(crate) async fn put_json<T: serde::Serialize>(&self, path: &str, value: &T) -> Result<()> {
        let body = serde_json::to_vec_pretty(value).map_err(|source| StoreError::Malformed {
            path: path.to_owned(),
            source,
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

    #[cfg(test)]
    pub(crate) fn operator(&self) -> &Operator {
        &self.op
    }
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
