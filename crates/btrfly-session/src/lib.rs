//! Sessions: who is recording or playing back which tag, right now.
//!
//! A session is created through the control API and identified on the data
//! plane by a credential `id:secret` (the user and password of the proxy URL
//! the CLI hands out, see [`credential`]). Sessions are persisted in the
//! store, so a restarted server (or another replica on the same store)
//! still recognises them; their counters ([`stats`]) live in the process
//! that serves them, and are written to the store so that `stop` on any
//! replica sums them (see [`replicas`]). A [`LiveSession`] also keeps what
//! its recordings taught it about later requests ([`live`]).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use btrfly_core::{Mode, SessionId, SessionIdError, SessionInfo, Sha256, Summary, Tag, TagMeta};
use btrfly_store::{Store, StoreError};
use time::OffsetDateTime;

pub mod credential;
pub mod live;
pub mod replicas;
pub mod stats;

pub use credential::parse_basic;
pub use live::{Alias, InflightGuard, LiveSession};
pub use replicas::ReplicaStats;
use replicas::Replication;
pub use stats::Stats;

/// Why a session could not be started or stopped.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// Recording into a sealed tag without `--force`.
    #[error("tag {0} is sealed: its recording is finished. Record under a new tag, or pass --force to record into it again")]
    Sealed(Tag),
    /// Playback of a tag never recorded.
    #[error("tag {0} has no recording to play back (`btrfly tags` lists the recorded tags)")]
    UnknownTag(Tag),
    /// Playback of a tag without entries.
    #[error("tag {0} has no recorded entries: nothing to play back. Its recording saw no request (did the build use the session's exports?); record it again")]
    EmptyTag(Tag),
    /// Another session records the tag.
    #[error("tag {tag} is being recorded by session {session}; stop that session first")]
    Busy {
        /// The tag.
        tag: Tag,
        /// The session recording it.
        session: SessionId,
    },
    /// No such session.
    #[error("no session {0} on this server (it was stopped, or never started)")]
    NotFound(String),
    /// A generated id that is not one (never happens).
    #[error(transparent)]
    Id(SessionIdError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A freshly created session and the secret its client must present.
pub struct NewSession {
    /// The session.
    pub session: Arc<LiveSession>,
    /// Its secret (the password of its proxy URL); only its digest is stored.
    pub secret: String,
}

/// Every session this replica knows: created here, or found in the store
/// when a credential names one.
pub struct SessionRegistry {
    store: Store,
    live: RwLock<HashMap<String, Arc<LiveSession>>>,
    /// Serialises session creation so two record sessions cannot both claim a tag.
    create_lock: tokio::sync::Mutex<()>,
    /// This replica's part of the replica protocol (see [`replicas`]).
    replication: Replication,
}

impl SessionRegistry {
    /// A registry over `store`, with a fresh replica name.
    pub fn new(store: Store) -> SessionRegistry {
        SessionRegistry {
            store,
            live: RwLock::new(HashMap::new()),
            create_lock: tokio::sync::Mutex::new(()),
            replication: Replication::new(credential::random_hex(8)),
        }
    }

    /// The store sessions and tags are kept in.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Starts a session on `tag`.
    ///
    /// # Errors
    /// [`SessionError`]: a sealed tag without `force`, a tag being
    /// recorded by another session, playback of an unknown or empty tag, a
    /// store error.
    pub async fn create(
        &self,
        tag: Tag,
        mode: Mode,
        force: bool,
    ) -> Result<NewSession, SessionError> {
        let _guard = self.create_lock.lock().await;
        let meta = self.store.tag_meta(&tag).await?;
        match mode {
            Mode::Record => {
                if let Some(other) = self
                    .live_sessions()
                    .into_iter()
                    .find(|s| s.is_active() && s.mode() == Mode::Record && s.tag() == &tag)
                {
                    return Err(SessionError::Busy {
                        tag,
                        session: other.info.id.clone(),
                    });
                }
                match meta {
                    Some(m) if m.sealed && !force => return Err(SessionError::Sealed(tag)),
                    Some(mut m) => {
                        if m.sealed {
                            m.sealed = false;
                            m.sealed_at = None;
                            self.store.put_tag_meta(&m).await?;
                        }
                    }
                    None => {
                        self.store
                            .put_tag_meta(&TagMeta {
                                tag: tag.clone(),
                                created_at: OffsetDateTime::now_utc(),
                                sealed: false,
                                sealed_at: None,
                            })
                            .await?;
                    }
                }
            }
            Mode::Playback => {
                if meta.is_none() {
                    return Err(SessionError::UnknownTag(tag));
                }
                if !self.store.has_entries(&tag).await? {
                    return Err(SessionError::EmptyTag(tag));
                }
            }
        }
        let secret = credential::random_hex(24);
        let id = SessionId::new(&credential::random_hex(8)).map_err(SessionError::Id)?;
        let info = SessionInfo {
            id: id.clone(),
            secret_sha256: Sha256::of(secret.as_bytes()),
            tag,
            mode,
            started_at: OffsetDateTime::now_utc(),
        };
        self.store.put_session(&info).await?;
        let session = Arc::new(LiveSession::new(info));
        self.write_live().insert(id.to_string(), session.clone());
        Ok(NewSession { session, secret })
    }

    /// The session a credential belongs to, or `None`. Looks in the store
    /// when this process has not seen the session yet.
    pub async fn authenticate(&self, id: &str, secret: &str) -> Option<Arc<LiveSession>> {
        let session = match self.get(id) {
            Some(s) => s,
            None => {
                let id = SessionId::new(id).ok()?;
                let info = self.store.get_session(&id).await.ok().flatten()?;
                let live = Arc::new(LiveSession::new(info));
                self.write_live()
                    .entry(id.to_string())
                    .or_insert(live)
                    .clone()
            }
        };
        if !(session.is_active() && credential::secret_matches(secret, &session.info.secret_sha256))
        {
            return None;
        }
        // Stopped through another replica? (a store read every few seconds)
        self.revalidate(&session, false).await.then_some(session)
    }

    /// Parses a `Proxy-Authorization: Basic …` value and authenticates it.
    pub async fn authenticate_header(&self, value: Option<&[u8]>) -> Option<Arc<LiveSession>> {
        let (id, secret) = credential::parse_basic(value?)?;
        self.authenticate(&id, &secret).await
    }

    /// A session this replica serves (or served), by id.
    pub fn get(&self, id: &str) -> Option<Arc<LiveSession>> {
        self.live
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned()
    }

    /// Ends a session. Stopping a record session seals its tag, unless
    /// the tag has no entries (an empty recording is not sealed).
    ///
    /// # Errors
    /// See [`SessionRegistry::stop_with`].
    pub async fn stop(&self, id: &str) -> Result<Summary, SessionError> {
        self.stop_with(id, true).await
    }

    /// Ends a session; a record session's tag is sealed only when `seal`
    /// is true and the tag has at least one entry. `summary.sealed` says
    /// which happened.
    ///
    /// # Errors
    /// [`SessionError::NotFound`] for an unknown session; a store error
    /// (the session is then kept, so that the stop can be retried).
    pub async fn stop_with(&self, id: &str, seal: bool) -> Result<Summary, SessionError> {
        let not_found = || SessionError::NotFound(id.to_owned());
        let session = match self.get(id) {
            Some(s) => s,
            None => {
                let sid = SessionId::new(id).map_err(|_| not_found())?;
                let info = self.store.get_session(&sid).await?.ok_or_else(not_found)?;
                Arc::new(LiveSession::new(info))
            }
        };
        let id = session.info.id.clone();
        session.deactivate();
        session.settle().await;
        // Deleting the session object tells the other replicas to stop
        // serving it and write their last counters; `gather` waits for them.
        self.store.delete_session(&id).await?;
        let mut summary = session.summary();
        self.gather(&id, &mut summary).await;
        if session.mode() == Mode::Record && seal && self.store.has_entries(session.tag()).await? {
            let tag = session.tag();
            let meta = self.store.tag_meta(tag).await?.unwrap_or(TagMeta {
                tag: tag.clone(),
                created_at: session.info.started_at,
                sealed: false,
                sealed_at: None,
            });
            if let Err(e) = self.store.seal_tag(meta).await {
                // Put the session back so that `stop` can be retried.
                let _ = self.store.put_session(&session.info).await;
                return Err(e.into());
            }
            summary.sealed = true;
        }
        self.forget_stats(&id).await;
        self.write_live().remove(id.as_str());
        Ok(summary)
    }

    /// Every session this replica serves.
    pub fn live_sessions(&self) -> Vec<Arc<LiveSession>> {
        self.live
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }

    pub(crate) fn write_live(
        &self,
    ) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Arc<LiveSession>>> {
        self.live.write().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    fn basic(user: &str, pass: &str) -> Vec<u8> {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
        )
        .into_bytes()
    }

    #[tokio::test]
    async fn credentials_route_to_their_session_only() {
        let reg = SessionRegistry::new(Store::memory().expect("store"));
        let a = reg
            .create(Tag::new("a").expect("tag"), Mode::Record, false)
            .await
            .expect("a");
        let id = a.session.info.id.clone();
        let got = reg
            .authenticate_header(Some(&basic(&id, &a.secret)))
            .await
            .expect("valid credential");
        assert_eq!(got.tag().as_str(), "a");
        assert!(reg
            .authenticate_header(Some(&basic(&id, "wrong")))
            .await
            .is_none());
        assert!(reg.authenticate_header(Some(b"Bearer x")).await.is_none());
        assert!(reg.authenticate_header(None).await.is_none());
        reg.stop(&id).await.expect("stop");
        assert!(
            reg.authenticate_header(Some(&basic(&id, &a.secret)))
                .await
                .is_none(),
            "a stopped session no longer authenticates"
        );
    }

    #[tokio::test]
    async fn sealed_tags_need_force_and_playback_needs_a_recording() {
        let reg = SessionRegistry::new(Store::memory().expect("store"));
        let tag = Tag::new("t").expect("tag");
        let err = reg
            .create(tag.clone(), Mode::Playback, false)
            .await
            .err()
            .expect("no recording");
        assert!(err.to_string().contains("no recording"), "{err}");
        let s = reg
            .create(tag.clone(), Mode::Record, false)
            .await
            .expect("record");
        let busy = reg
            .create(tag.clone(), Mode::Record, false)
            .await
            .err()
            .expect("busy");
        assert!(busy.to_string().contains("being recorded"), "{busy}");
        // Nothing recorded: the tag is not sealed, and not played back.
        let summary = reg.stop(&s.session.info.id).await.expect("stop");
        assert!(!summary.sealed, "an empty recording is not sealed");
        let empty = reg
            .create(tag.clone(), Mode::Playback, false)
            .await
            .err()
            .expect("empty");
        assert!(matches!(empty, SessionError::EmptyTag(_)), "{empty}");
        // One entry: stopping without sealing leaves it open, stopping
        // seals it.
        let s = reg
            .create(tag.clone(), Mode::Record, false)
            .await
            .expect("record again, no --force");
        let key = btrfly_core::RecordingKey::new("files", "GET https://a.example.test:443/x");
        let entry = btrfly_core::Entry {
            key,
            method: "GET".into(),
            url: "https://a.example.test/x".into(),
            status: 200,
            headers: Vec::new(),
            sha256: btrfly_core::Sha256::of(b""),
            size: 0,
            mutability: btrfly_core::Mutability::Mutable,
            recorded_at: OffsetDateTime::now_utc(),
        };
        reg.store().put_entry(&tag, &entry).await.expect("entry");
        let summary = reg
            .stop_with(&s.session.info.id, false)
            .await
            .expect("stop");
        assert!(!summary.sealed);
        let s = reg
            .create(tag.clone(), Mode::Record, false)
            .await
            .expect("still open");
        let summary = reg.stop(&s.session.info.id).await.expect("stop");
        assert!(summary.sealed);
        let sealed = reg
            .create(tag.clone(), Mode::Record, false)
            .await
            .err()
            .expect("sealed");
        assert!(sealed.to_string().contains("--force"), "{sealed}");
        reg.create(tag.clone(), Mode::Record, true)
            .await
            .expect("forced");
        reg.create(tag, Mode::Playback, false)
            .await
            .expect("playback");
    }

    #[tokio::test]
    async fn sessions_survive_a_restart_through_the_store() {
        let store = Store::memory().expect("store");
        let first = SessionRegistry::new(store.clone());
        let s = first
            .create(Tag::new("t").expect("tag"), Mode::Record, false)
            .await
            .expect("create");
        let second = SessionRegistry::new(store);
        let got = second
            .authenticate(&s.session.info.id, &s.secret)
            .await
            .expect("known through the store");
        assert_eq!(got.mode(), Mode::Record);
    }
}
