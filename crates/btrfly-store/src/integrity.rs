//! Integrity of what is stored: every blob re-hashed against its address
//! (`btrfly verify`), the entries that use each blob, and the sweep of
//! temp objects that crashed writes left under `tmp/`.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use btrfly_core::{Sha256, Tag};
use futures::TryStreamExt;
use opendal::ErrorKind;

use crate::error::{io, Result, StoreError};
use crate::store::Store;

/// How old a temp object must be before a sweep removes it: a write in
/// flight on another replica (a 200 MB body on a slow upstream) keeps
/// writing to its temp object for a while, and a sweep must never remove
/// it under that write. One hour, far longer than any body takes.
pub const DEFAULT_SWEEP_AGE: Duration = Duration::from_secs(3600);

/// A stored blob, as listed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListedBlob {
    /// Its address.
    pub sha256: Sha256,
    /// Its size in bytes, as the backend lists it.
    pub size: u64,
}

/// One entry that uses a blob, for messages: `tag: METHOD URL`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct EntryRef {
    /// The tag holding the entry.
    pub tag: Tag,
    /// The request method.
    pub method: String,
    /// The request URL.
    pub url: String,
}

impl std::fmt::Display for EntryRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {} {}", self.tag, self.method, self.url)
    }
}

/// What a sweep of `tmp/` did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Sweep {
    /// Temp objects removed (older than the sweep's age).
    pub removed: Vec<String>,
    /// Temp objects kept because they are younger (a write may be in flight).
    pub kept: usize,
}

impl Store {
    /// Every blob under `blobs/sha256/`, sorted by digest. An object there
    /// whose name is not a digest is skipped (btrfly never wrote it).
    ///
    /// # Errors
    /// The backend failed to list.
    pub async fn list_blobs(&self) -> Result<Vec<ListedBlob>> {
        let dir = "blobs/sha256/";
        let mut lister = match self.op.lister_with(dir).recursive(true).await {
            Ok(l) => l,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io("list", dir)(e)),
        };
        let mut blobs = Vec::new();
        while let Some(item) = lister.try_next().await.map_err(io("list", dir))? {
            if item.metadata().is_dir() {
                continue;
            }
            let Ok(sha256) = Sha256::new(item.name()) else {
                continue;
            };
            let size = if item.metadata().content_length() > 0 {
                item.metadata().content_length()
            } else {
                // some backends list without sizes; ask
                self.blob_size(&sha256).await?.unwrap_or(0)
            };
            blobs.push(ListedBlob { sha256, size });
        }
        blobs.sort_by(|a, b| a.sha256.cmp(&b.sha256));
        Ok(blobs)
    }

    /// Which entries use which blob, over the given tags (every tag when
    /// `tags` is `None`).
    ///
    /// # Errors
    /// The backend failed, or an entry object is malformed.
    pub async fn blob_users(
        &self,
        tags: Option<&[Tag]>,
    ) -> Result<BTreeMap<Sha256, Vec<EntryRef>>> {
        let tags: Vec<Tag> = match tags {
            Some(t) => t.to_vec(),
            None => self.list_tags().await?.into_iter().map(|m| m.tag).collect(),
        };
        let mut users: BTreeMap<Sha256, Vec<EntryRef>> = BTreeMap::new();
        for tag in tags {
            for entry in self.list_entries(&tag).await? {
                users.entry(entry.sha256).or_default().push(EntryRef {
                    tag: tag.clone(),
                    method: entry.method,
                    url: entry.url,
                });
            }
        }
        Ok(users)
    }

    /// Removes temp objects under `tmp/` last modified more than `min_age`
    /// ago (a crashed write's leftovers); younger ones are kept, since a
    /// replica may still be writing them. An object whose age the backend
    /// does not report is kept.
    ///
    /// # Errors
    /// The backend failed to list or to delete.
    pub async fn sweep_tmp(&self, min_age: Duration) -> Result<Sweep> {
        let dir = "tmp/";
        let listed = match self.op.list(dir).await {
            Ok(l) => l,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Sweep::default()),
            Err(e) => return Err(io("list", dir)(e)),
        };
        let now = SystemTime::now();
        let mut sweep = Sweep::default();
        for item in listed {
            if item.metadata().is_dir() {
                continue;
            }
            let path = item.path().to_owned();
            let modified = match item.metadata().last_modified() {
                Some(t) => Some(t),
                None => match self.op.stat(&path).await {
                    Ok(m) => m.last_modified(),
                    // gone meanwhile: a write finished and moved it
                    Err(e) if e.kind() == ErrorKind::NotFound => continue,
                    Err(e) => return Err(io("stat", &path)(e)),
                },
            };
            let old = modified.is_some_and(|t| {
                now.duration_since(SystemTime::from(t))
                    .is_ok_and(|age| age >= min_age)
            });
            if !old {
                sweep.kept += 1;
                continue;
            }
            match self.op.delete(&path).await {
                Ok(()) => sweep.removed.push(path),
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(io("delete", &path)(e)),
            }
        }
        Ok(sweep)
    }

    /// Temp objects under `tmp/` now, whatever their age (for tests and
    /// `btrfly verify`'s report).
    ///
    /// # Errors
    /// The backend failed to list.
    pub async fn list_tmp(&self) -> Result<Vec<String>> {
        let dir = "tmp/";
        match self.op.list(dir).await {
            Ok(l) => Ok(l
                .into_iter()
                .filter(|i| !i.metadata().is_dir())
                .map(|i| i.path().to_owned())
                .collect()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(io("list", dir)(e)),
        }
    }
}

/// Whether a store error means "this blob is bad" (its bytes do not hash
/// to its address, or it is gone) rather than "the store failed".
pub fn is_blob_fault(e: &StoreError) -> bool {
    matches!(
        e,
        StoreError::DigestMismatch { .. } | StoreError::MissingBlob(_)
    )
}
