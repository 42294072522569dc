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

pub mod credential;
pub mod error;
pub mod live;
pub mod registry;
pub mod replicas;
pub mod stats;

pub use credential::parse_basic;
pub use error::SessionError;
pub use live::{Alias, InflightGuard, LiveSession};
pub use registry::{NewSession, SessionRegistry};
pub use replicas::ReplicaStats;
pub use stats::Stats;

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use btrfly_core::{Mode, Tag};
    use btrfly_store::Store;
    use time::OffsetDateTime;

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
            purl: None,
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
