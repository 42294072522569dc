//! The explicit mirror's entries (`mirror/<id>.json`): what was declared,
//! why, by whom, and where its fetch is. Shared by every replica of the
//! store and never purged; the bodies themselves are blobs like any other.

use btrfly_core::mirror::valid_entry_id;
use btrfly_core::MirrorEntry;
use futures::{StreamExt, TryStreamExt};
use opendal::ErrorKind;

use crate::error::{io, Result, StoreError};
use crate::store::{Store, LOAD_CONCURRENCY};

impl Store {
    fn mirror_path(id: &str) -> Result<String> {
        if valid_entry_id(id) {
            Ok(format!("mirror/{id}.json"))
        } else {
            Err(StoreError::InvalidName {
                what: "mirror entry id",
                name: id.to_owned(),
            })
        }
    }

    /// Writes (creates or replaces) a mirror entry.
    ///
    /// # Errors
    /// An invalid id; the backend failed.
    pub async fn put_mirror_entry(&self, entry: &MirrorEntry) -> Result<()> {
        self.put_json(&Self::mirror_path(&entry.id)?, entry).await
    }

    /// A mirror entry, if it is there.
    ///
    /// # Errors
    /// An invalid id; the backend failed, or the object is malformed.
    pub async fn get_mirror_entry(&self, id: &str) -> Result<Option<MirrorEntry>> {
        self.get_json(&Self::mirror_path(id)?).await
    }

    /// Every mirror entry, oldest first.
    ///
    /// # Errors
    /// The backend failed, or an object it read is malformed.
    pub async fn list_mirror_entries(&self) -> Result<Vec<MirrorEntry>> {
        let listed = match self.op.list("mirror/").await {
            Ok(l) => l,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io("list", "mirror/")(e)),
        };
        let paths: Vec<String> = listed
            .into_iter()
            .filter(|item| item.name().ends_with(".json"))
            .map(|item| item.path().to_owned())
            .collect();
        let mut entries: Vec<MirrorEntry> = futures::stream::iter(paths)
            .map(|path| async move { self.get_json::<MirrorEntry>(&path).await })
            .buffer_unordered(LOAD_CONCURRENCY)
            .try_filter_map(|e| async move { Ok(e) })
            .try_collect()
            .await?;
        entries.sort_by(|a, b| (a.added_at, &a.id).cmp(&(b.added_at, &b.id)));
        Ok(entries)
    }
}
