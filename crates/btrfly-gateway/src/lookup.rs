//! Finding a recorded answer: the playback index cache (a tag's entries
//! loaded once, looked up in memory) and the selection among a key's
//! answers by `Vary` and content coding.
//!
//! Without it, every playback request reads
//! `tags/<tag>/entries/<key id>.json`: one object-store round trip per
//! request before the body even starts. With it, a playback session loads
//! its tag's index on its first request — for a sealed tag one read of the
//! snapshot written at sealing (`tags/<tag>/index.json`) — and every lookup
//! after that is a hash-map probe.
//!
//! Validity: a sealed tag does not change until it is re-recorded with
//! `--force`, which unseals it and, when stopped, seals it again with a new
//! `sealed_at`. An index is kept per tag (shared by every session of that
//! tag on this replica, [`CAPACITY`] tags at most) together with the
//! `sealed_at` it was loaded for; each new session reads `meta.json` once
//! and reuses the index only when the seal is the same. A session keeps the
//! index it started with. An unsealed tag (a recording still running, or
//! one that crashed) may still change: its lookups go to the store per
//! request, as before.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use btrfly_core::{Entry, RecordingKey, Tag};
use btrfly_store::{Store, StoreError, TagIndex};

use btrfly_session::LiveSession;

/// Sealed tags whose index stays in memory; the oldest is dropped first.
pub const CAPACITY: usize = 16;

/// The indexes of sealed tags this replica plays back, shared by every
/// session of a tag.
pub struct IndexCache {
    store: Store,
    tags: Mutex<VecDeque<Arc<TagIndex>>>,
}

impl IndexCache {
    /// An empty cache over `store`.
    pub fn new(store: Store) -> IndexCache {
        IndexCache {
            store,
            tags: Mutex::new(VecDeque::new()),
        }
    }

    /// The index of a sealed tag (cached, or loaded now); `None` for a tag
    /// that is not sealed.
    ///
    /// # Errors
    /// The store failed reading the tag's meta or snapshot.
    pub async fn load(&self, tag: &Tag) -> Result<Option<Arc<TagIndex>>, StoreError> {
        let Some(meta) = self.store.tag_meta(tag).await? else {
            return Ok(None);
        };
        let Some(sealed_at) = meta.sealed_at.filter(|_| meta.sealed) else {
            return Ok(None);
        };
        if let Some(hit) = self
            .lock()
            .iter()
            .find(|i| i.tag() == tag && i.sealed_at() == Some(sealed_at))
        {
            return Ok(Some(hit.clone()));
        }
        let index = Arc::new(self.store.load_index(&meta).await?);
        tracing::debug!(tag = %tag, entries = index.len(), "playback index loaded");
        let mut tags = self.lock();
        tags.retain(|i| i.tag() != tag);
        tags.push_back(index.clone());
        while tags.len() > CAPACITY {
            tags.pop_front();
        }
        Ok(Some(index))
    }

    /// Where a playback request of `session` looks its entries up: the
    /// session's index (loaded on its first request), or the store when the
    /// tag is not sealed or the index could not be loaded (retried on the
    /// next request).
    pub async fn entries(&self, session: &LiveSession) -> Entries {
        let loaded = session
            .playback_index()
            .get_or_try_init(|| self.load(session.tag()))
            .await;
        let index = match loaded {
            Ok(index) => index.clone(),
            Err(e) => {
                tracing::warn!(
                    "loading the index of tag {}: {e}; looking entries up one by one",
                    session.tag()
                );
                None
            }
        };
        Entries {
            store: self.store.clone(),
            index,
        }
    }

    /// Lookups in another tag than a session's (the explicit mirror's):
    /// from its cached index when it is sealed, from the store while it is
    /// being recorded; `None` when the tag does not exist.
    ///
    /// # Errors
    /// The store failed reading the tag's meta or snapshot.
    pub async fn other_tag(&self, tag: &Tag) -> Result<Option<Entries>, StoreError> {
        if self.store.tag_meta(tag).await?.is_none() {
            return Ok(None);
        }
        Ok(Some(Entries {
            store: self.store.clone(),
            index: self.load(tag).await?,
        }))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Arc<TagIndex>>> {
        self.tags.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Entry lookups for one request: from memory when an index is loaded.
pub struct Entries {
    store: Store,
    index: Option<Arc<TagIndex>>,
}

impl Entries {
    /// Lookups that always go to the store (a tag still being recorded).
    pub fn uncached(store: Store) -> Entries {
        Entries { store, index: None }
    }

    /// Like [`Store::get_entry`], without a round trip when the tag's index
    /// is loaded.
    ///
    /// # Errors
    /// The store failed.
    pub async fn get_entry(
        &self,
        tag: &Tag,
        key: &RecordingKey,
    ) -> Result<Option<Entry>, StoreError> {
        match &self.index {
            Some(index) if index.tag() == tag => Ok(index.get(key).cloned()),
            _ => self.store.get_entry(tag, key).await,
        }
    }

    /// Like [`Store::vary_sets`], without a round trip when the tag's index
    /// is loaded.
    ///
    /// # Errors
    /// The store failed.
    pub async fn vary_sets(
        &self,
        tag: &Tag,
        key: &RecordingKey,
    ) -> Result<Vec<Vec<String>>, StoreError> {
        match &self.index {
            Some(index) if index.tag() == tag => Ok(index.vary_sets(key)),
            _ => self.store.vary_sets(tag, key).await,
        }
    }

    /// The answer recorded for a request whose adapter key (with any body
    /// variance) is `key`: first the representation its headers select
    /// among answers recorded with `Vary` (RFC 9110 §12.5.5), then an
    /// answer recorded without `Vary`. An answer in a content coding the
    /// request does not accept is never returned.
    ///
    /// # Errors
    /// The store failed.
    pub async fn find(
        &self,
        tag: &Tag,
        key: &RecordingKey,
        request: &http::HeaderMap,
    ) -> Result<Option<Entry>, StoreError> {
        let mut candidates: Vec<RecordingKey> = self
            .vary_sets(tag, key)
            .await?
            .iter()
            .map(|names| key.with_vary(names, request))
            .collect();
        candidates.push(key.clone());
        for candidate in candidates {
            if let Some(entry) = self.get_entry(tag, &candidate).await? {
                if crate::coding::accepts(request, &entry) {
                    return Ok(Some(entry));
                }
            }
        }
        Ok(None)
    }

    /// Whether lookups are served from memory.
    pub fn is_cached(&self) -> bool {
        self.index.is_some()
    }
}
