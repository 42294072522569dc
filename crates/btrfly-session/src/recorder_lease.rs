//! The one-recorder-per-tag rule, held in the store
//! (`tags/<tag>/recorder.json`, see btrfly-store's `RecorderLease`), so
//! that every replica of a store and a restarted server agree on it.
//!
//! The rule:
//! - `start record` creates the tag's lease "if not exists", naming its
//!   session and replica; of two replicas starting at once one wins, the
//!   other is refused with [`SessionError::Busy`] naming the winner.
//! - The lease is removed when its session ends: `stop record`, or its
//!   session lease running out ([`SessionRegistry::expire_idle`]; a
//!   `start record` that finds the holder unheard of for longer than the
//!   lease ends it on the spot, as expiry would).
//! - A lease naming a session that is not in the store (its object removed
//!   by hand, or lost) is stale and taken over; so is one that stays
//!   unreadable (cut short by a crash while created). A session's object is
//!   written before its lease is taken and removed after the lease is given
//!   back, so a session being started is never mistaken for a stale one.

use std::time::Duration;

use btrfly_core::{SessionId, Tag};
use btrfly_store::{RecorderLease, StoreError};
use time::OffsetDateTime;

use crate::error::SessionError;
use crate::registry::SessionRegistry;

/// How often a `start record` tries again after finding a lease it could
/// remove (released, taken over, expired) before giving up.
const TRIES: usize = 4;
/// How long a takeover claim may stand before it is deemed abandoned (its
/// replica died while taking over).
const TAKEOVER_ABANDONED: Duration = Duration::from_secs(60);
/// How long an unreadable lease is given to become readable (a create in
/// progress on a filesystem) before it is taken over.
const UNREADABLE_GRACE: Duration = Duration::from_secs(1);

impl SessionRegistry {
    /// Takes `tag`'s recorder lease for session `id`.
    ///
    /// # Errors
    /// [`SessionError::Busy`] when another session that still exists holds
    /// it; a store error.
    pub(crate) async fn take_recorder(
        &self,
        tag: &Tag,
        id: &SessionId,
    ) -> Result<(), SessionError> {
        let mine = RecorderLease {
            tag: tag.clone(),
            session: id.clone(),
            replica: self.replica().to_owned(),
            since: OffsetDateTime::now_utc(),
        };
        let mut unreadable_since: Option<std::time::Instant> = None;
        for _ in 0..TRIES {
            let other = match self.store().try_take_recorder(&mine).await {
                Ok(None) => return Ok(()),
                Ok(Some(other)) => other,
                Err(StoreError::Malformed { .. }) => {
                    let first = *unreadable_since.get_or_insert_with(std::time::Instant::now);
                    if first.elapsed() < UNREADABLE_GRACE {
                        tokio::time::sleep(UNREADABLE_GRACE).await;
                    } else {
                        self.take_over(&mine, None).await?;
                    }
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            if other.session == *id {
                return Ok(());
            }
            match self.store().get_session(&other.session).await? {
                Some(info) => {
                    if self.end_if_expired(&info).await {
                        continue;
                    }
                    return Err(SessionError::Busy {
                        tag: tag.clone(),
                        session: other.session,
                    });
                }
                None => self.take_over(&mine, Some(&other.session)).await?,
            }
        }
        Err(StoreError::Contended(format!("tags/{tag}/recorder.json")).into())
    }

    /// Removes a stale lease (`stale`: the session it names, `None` for an
    /// unreadable one) if this replica wins the claim to; another replica
    /// winning it is fine (the caller tries again).
    async fn take_over(
        &self,
        mine: &RecorderLease,
        stale: Option<&SessionId>,
    ) -> Result<(), SessionError> {
        let store = self.store();
        let key = stale.map_or("unreadable", SessionId::as_str);
        if !store
            .claim_recorder_takeover(&mine.tag, key, mine, TAKEOVER_ABANDONED)
            .await?
        {
            tokio::time::sleep(Duration::from_millis(100)).await;
            return Ok(());
        }
        // Holding the claim: nobody else removes this stale lease, so if it
        // is still there it is still stale (a gone session never comes back).
        let still_stale = match (store.recorder(&mine.tag).await, stale) {
            (Ok(Some(l)), Some(s)) => l.session == *s,
            (Err(StoreError::Malformed { .. }), None) => true,
            (Err(StoreError::Malformed { .. }), Some(_)) => false,
            (Err(e), _) => {
                let _ = store.end_recorder_takeover(&mine.tag, key).await;
                return Err(e.into());
            }
            _ => false,
        };
        if still_stale {
            store.delete_recorder(&mine.tag).await?;
            tracing::warn!(
                tag = %mine.tag,
                "tag {}: took over the recorder lease of {}, which no longer exists (its server stopped without ending it)",
                mine.tag,
                stale.map_or_else(|| "an unreadable lease".to_owned(), |s| format!("session {s}")),
            );
        }
        store.end_recorder_takeover(&mine.tag, key).await?;
        Ok(())
    }

    /// Gives `tag`'s recorder lease back when session `id` holds it.
    ///
    /// # Errors
    /// A store error.
    pub(crate) async fn release_recorder(
        &self,
        tag: &Tag,
        id: &SessionId,
    ) -> Result<(), SessionError> {
        self.store().release_recorder(tag, id).await?;
        Ok(())
    }
}
