//! The store: one backend, one layout (see the crate docs).

use std::collections::HashMap;
use std::sync::Arc;

use btrfly_core::{Entry, RecordingKey, Tag, TagMeta, VaryRecord};
use bytes::Bytes;
use futures::{Stream, StreamExt, TryStreamExt};
use opendal::{ErrorKind, Operator};
use time::OffsetDateTime;

use crate::error::{io, Result, StoreError};
use crate::layout::random_id;

/// How many objects are read at once when a whole tag is loaded.
pub(crate) const LOAD_CONCURRENCY: usize = 32;

/// A stream of body chunks read from a blob.
pub type BlobStream = std::pin::Pin<Box<dyn Stream<Item = std::io::Result<Bytes>> + Send>>;

/// A handle on the store (cheap to clone): one backend, one layout.
#[derive(Clone, Debug)]
pub struct Store {
    pub(crate) op: Operator,
    pub(crate) backend: &'static str,
    /// Where the data is, for messages: a directory, a bucket and endpoint.
    pub(crate) location: Arc<str>,
}

/// Every entry of one tag, in memory: playback lookups without a round trip.
#[derive(Debug)]
pub struct TagIndex {
    tag: Tag,
    sealed_at: Option<OffsetDateTime>,
    /// Keyed by the key itself: a lookup hashes the key's fields, it does
    /// not compute the key's SHA-256 id (`cargo bench -p btrfly-gateway`).
    entries: HashMap<RecordingKey, Entry>,
    /// Per base key, the sets of `Vary` names its answers were recorded with.
    vary: HashMap<RecordingKey, Vec<VaryRecord>>,
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
        self.entries.get(key)
    }

    /// Every entry, in no particular order.
    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.entries.values()
    }

    /// The sets of `Vary` names recorded for `key`, like
    /// [`Store::vary_sets`].
    pub fn vary_sets(&self, key: &RecordingKey) -> Vec<Vec<String>> {
        self.vary
            .get(key)
            .into_iter()
            .flatten()
            .map(|r| r.vary.clone())
            .collect()
    }

    fn new(
        tag: Tag,
        sealed_at: Option<OffsetDateTime>,
        entries: Vec<Entry>,
        vary: Vec<VaryRecord>,
    ) -> TagIndex {
        let mut by_key: HashMap<RecordingKey, Vec<VaryRecord>> = HashMap::new();
        for r in vary {
            let list = by_key.entry(r.key.clone()).or_default();
            if !list.contains(&r) {
                list.push(r);
            }
        }
        TagIndex {
            tag,
            sealed_at,
            entries: entries.into_iter().map(|e| (e.key.clone(), e)).collect(),
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

impl Store {
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

    // === helpers ===

    pub(crate) async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
    ) -> Result<Option<T>> {
        // On a filesystem the length is stat'ed first (see below), and a
        // writer may replace the object (rename) between the stat and the
        // read: the read then sees a part of the new object. Another try
        // sees it whole.
        let tries = if self.backend == "fs" { 3 } else { 1 };
        let mut last = None;
        for _ in 0..tries {
            match self.get_json_once(path).await {
                Ok(v) => return Ok(v),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| unreachable!("at least one try")))
    }

    async fn get_json_once<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<Option<T>> {
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
