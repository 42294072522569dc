//! The one-recorder-per-tag lease (`tags/<tag>/recorder.json`): which
//! record session holds a tag, shared by every replica of the store and
//! surviving restarts.
//!
//! The object is created "if not exists" (OpenDAL's `if_not_exists`: an
//! `O_CREAT|O_EXCL` open on fs — the store's fs operator has no
//! `atomic_write_dir`, with which the check would not be atomic — and a
//! conditional write on S3, GCS and memory), so of two replicas creating
//! it at once exactly one succeeds. Taking over a stale lease (its session
//! is gone from the store) goes through a second create-if-not-exists
//! object, `tags/<tag>/recorder-takeover/<stale session>.json`, so that
//! only one replica deletes a given stale lease.

use btrfly_core::{SessionId, Tag};
use opendal::ErrorKind;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::error::{io, Result, StoreError};
use crate::store::Store;

/// Who records a tag: the content of `tags/<tag>/recorder.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecorderLease {
    /// The tag recorded.
    pub tag: Tag,
    /// The record session holding it.
    pub session: SessionId,
    /// The replica that started the session (its name in
    /// `sessions/<id>/stats/<replica>.json`).
    pub replica: String,
    /// When the lease was taken (RFC 3339, UTC).
    #[serde(with = "time::serde::rfc3339")]
    pub since: OffsetDateTime,
}

impl Store {
    fn recorder_path(tag: &Tag) -> String {
        format!("tags/{tag}/recorder.json")
    }

    fn takeover_path(tag: &Tag, stale: &str) -> String {
        format!("tags/{tag}/recorder-takeover/{stale}.json")
    }

    /// Creates `path` with `body` only if no object is there: `Ok(false)`
    /// when one is.
    async fn create_json_if_absent<T: Serialize>(&self, path: &str, value: &T) -> Result<bool> {
        let body = serde_json::to_vec_pretty(value).map_err(|source| StoreError::Malformed {
            path: path.to_owned(),
            source,
        })?;
        // Written in place, never through `tmp/` and a rename: a rename
        // replaces what is there, which is what this must not do.
        match self
            .op
            .write_with(path, body)
            .content_type("application/json")
            .if_not_exists(true)
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == ErrorKind::ConditionNotMatch => Ok(false),
            Err(e) => Err(io("write", path)(e)),
        }
    }

    /// Takes the recorder lease of `lease.tag` if nobody holds it.
    /// Returns `None` when taken, else the lease that is there.
    ///
    /// # Errors
    /// The backend failed; the lease there is malformed
    /// ([`StoreError::Malformed`]: an object cut short by a crash while
    /// it was being created, or one still being written);
    /// [`StoreError::Contended`] when the lease kept being released and
    /// taken again while this tried.
    pub async fn try_take_recorder(&self, lease: &RecorderLease) -> Result<Option<RecorderLease>> {
        let path = Self::recorder_path(&lease.tag);
        for _ in 0..5 {
            if self.create_json_if_absent(&path, lease).await? {
                return Ok(None);
            }
            if let Some(other) = self.recorder_settled(&lease.tag).await? {
                return Ok(Some(other));
            }
            // Released between the two calls: try again.
        }
        Err(StoreError::Contended(path))
    }

    /// [`Store::recorder`], read again for a moment while it is
    /// malformed: on a filesystem a lease just created is empty until its
    /// creator's write lands (the create and the write are two calls).
    async fn recorder_settled(&self, tag: &Tag) -> Result<Option<RecorderLease>> {
        let mut tries = 0;
        loop {
            match self.recorder(tag).await {
                Err(StoreError::Malformed { .. }) if tries < 10 => {
                    tries += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
                other => return other,
            }
        }
    }

    /// The recorder lease of `tag`, if any.
    ///
    /// # Errors
    /// The backend failed, or the object is malformed.
    pub async fn recorder(&self, tag: &Tag) -> Result<Option<RecorderLease>> {
        self.get_json(&Self::recorder_path(tag)).await
    }

    /// Removes the recorder lease of `tag` when `session` holds it (a lease
    /// another session took meanwhile is left alone). Returns whether it
    /// was removed.
    ///
    /// # Errors
    /// The backend failed.
    pub async fn release_recorder(&self, tag: &Tag, session: &SessionId) -> Result<bool> {
        match self.recorder(tag).await {
            Ok(Some(l)) if &l.session == session => {}
            Ok(_) => return Ok(false),
            // Unreadable: not provably someone else's; left for takeover.
            Err(StoreError::Malformed { .. }) => return Ok(false),
            Err(e) => return Err(e),
        }
        let path = Self::recorder_path(tag);
        self.op.delete(&path).await.map_err(io("delete", &path))?;
        Ok(true)
    }

    /// Removes the recorder lease of `tag` whatever it names. Only for a
    /// lease shown stale while holding its takeover claim
    /// ([`Store::claim_recorder_takeover`]).
    ///
    /// # Errors
    /// The backend failed.
    pub async fn delete_recorder(&self, tag: &Tag) -> Result<()> {
        let path = Self::recorder_path(tag);
        self.op.delete(&path).await.map_err(io("delete", &path))
    }

    /// Claims the right to remove the stale lease `stale` on `tag` (the
    /// stale session's id, or `unreadable` for a malformed lease):
    /// `Ok(true)` for exactly one caller until
    /// [`Store::end_recorder_takeover`]. A claim older than `abandoned`
    /// (its replica died while taking over) is removed and claimed anew.
    ///
    /// # Errors
    /// The backend failed.
    pub async fn claim_recorder_takeover(
        &self,
        tag: &Tag,
        stale: &str,
        by: &RecorderLease,
        abandoned: std::time::Duration,
    ) -> Result<bool> {
        let path = Self::takeover_path(tag, stale);
        if self.create_json_if_absent(&path, by).await? {
            return Ok(true);
        }
        let old = match self.get_json::<RecorderLease>(&path).await {
            Ok(Some(c)) => OffsetDateTime::now_utc() - c.since > abandoned,
            Ok(None) => false,
            // Cut short by a crash, or still being written: judged by age
            // on the next try only if it became readable.
            Err(StoreError::Malformed { .. }) => false,
            Err(e) => return Err(e),
        };
        if old {
            self.op.delete(&path).await.map_err(io("delete", &path))?;
            return self.create_json_if_absent(&path, by).await;
        }
        Ok(false)
    }

    /// Drops a takeover claim (and, on a filesystem, its empty folder).
    ///
    /// # Errors
    /// The backend failed.
    pub async fn end_recorder_takeover(&self, tag: &Tag, stale: &str) -> Result<()> {
        let path = Self::takeover_path(tag, stale);
        self.op.delete(&path).await.map_err(io("delete", &path))?;
        if self.backend == "fs" {
            let dir = format!("tags/{tag}/recorder-takeover/");
            // Not empty when another takeover runs: that one removes it.
            let _ = self.op.delete(&dir).await;
        }
        Ok(())
    }
}
