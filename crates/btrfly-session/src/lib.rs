//! Sessions: who is recording or playing back which tag, right now.
//!
//! A session is created through the control API and identified on the data
//! plane by a credential `id:secret` (the user and password of the proxy URL
//! the CLI hands out, see [`credential`]). Sessions are persisted in the
//! store, so a restarted server (or another replica on the same store)
//! still recognises them; their counters ([`stats`]) live in the process
//! that serves them, and are written to the store so that `stop` on any
//! replica sums them (see [`replicas`]). A [`LiveSession`] also keeps what
//! its recordings taught it about later requests ([`live`]). Every
//! session's counters also count into the replica's `/metrics`
//! ([`metrics`]).

pub mod address;
pub mod credential;
pub mod error;
pub mod live;
pub mod metrics;
mod recorder_lease;
pub mod registry;
pub mod replicas;
pub mod stats;

pub use credential::parse_basic;
pub use error::SessionError;
pub use live::{Alias, InflightGuard, LiveSession, PageGuard};
pub use metrics::Metrics;
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

    /// The one-recorder-per-tag rule is the store's, not a replica's: two
    /// registries on one store (two replicas, or a server and its restart)
    /// refuse a second recorder naming the first, until it stops, its
    /// lease runs out, or its session is gone from the store (taken over).
    #[tokio::test]
    async fn one_recorder_per_tag_across_replicas_and_restarts() {
        let store = Store::memory().expect("store");
        let lease = std::time::Duration::from_millis(400);
        let a = SessionRegistry::new(store.clone()).with_lease(lease);
        let b = SessionRegistry::new(store.clone()).with_lease(lease);
        let tag = Tag::new("shared").expect("tag");
        let first = a.create(tag.clone(), Mode::Record, false).await.expect("a");
        let id = first.session.info.id.clone();
        let held = store.recorder(&tag).await.expect("read").expect("a lease");
        assert_eq!((&held.session, held.replica.as_str()), (&id, a.replica()));
        let err = b
            .create(tag.clone(), Mode::Record, true)
            .await
            .err()
            .expect("refused on the other replica, --force or not");
        assert_eq!(
            err.to_string(),
            format!("tag shared is being recorded by session {id}; stop that session first")
        );
        // Another tag and playback are not held up.
        b.create(Tag::new("else").expect("tag"), Mode::Record, false)
            .await
            .expect("another tag");
        a.stop_with(id.as_str(), false).await.expect("stop");
        assert_eq!(store.recorder(&tag).await.expect("read"), None, "released");
        let second = b
            .create(tag.clone(), Mode::Record, false)
            .await
            .expect("b after a");
        let id2 = second.session.info.id.clone();

        // B "crashes" (forgotten, its session left in the store): a
        // restarted server waits for the lease to run out.
        drop(second);
        drop(b);
        let c = SessionRegistry::new(store.clone()).with_lease(lease);
        let err = c
            .create(tag.clone(), Mode::Record, false)
            .await
            .err()
            .expect("busy");
        assert!(err.to_string().contains(id2.as_str()), "{err}");
        tokio::time::sleep(lease + std::time::Duration::from_millis(200)).await;
        let third = c
            .create(tag.clone(), Mode::Record, false)
            .await
            .expect("after the lease");
        assert!(
            store.get_session(&id2).await.expect("read").is_none(),
            "expired session ended"
        );
        let id3 = third.session.info.id.clone();
        assert_eq!(
            store.recorder(&tag).await.expect("read").map(|l| l.session),
            Some(id3.clone())
        );

        // A lease naming a session gone from the store is stale: taken over.
        store.delete_session(&id3).await.expect("gone");
        let d = SessionRegistry::new(store.clone()).with_lease(lease);
        let fourth = d
            .create(tag.clone(), Mode::Record, false)
            .await
            .expect("taken over");
        assert_eq!(
            store.recorder(&tag).await.expect("read").map(|l| l.session),
            Some(fourth.session.info.id.clone())
        );
    }

    #[tokio::test]
    async fn sessions_not_heard_of_for_the_lease_end_unsealed() {
        let lease = std::time::Duration::from_millis(300);
        let reg = SessionRegistry::new(Store::memory().expect("store")).with_lease(lease);
        let idle = reg
            .create(Tag::new("idle").expect("tag"), Mode::Record, false)
            .await
            .expect("idle");
        let busy = reg
            .create(Tag::new("busy").expect("tag"), Mode::Record, false)
            .await
            .expect("busy");
        let tag = Tag::new("idle").expect("tag");
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
        assert!(reg.expire_idle().await.is_empty(), "nothing expires early");
        let listed = reg.listing().await.expect("listing");
        assert_eq!(listed.len(), 2);
        assert!(listed.iter().all(|s| s.expires_at > s.last_seen));
        for _ in 0..5 {
            tokio::time::sleep(lease / 3).await;
            busy.session.touch();
        }
        let ended = reg.expire_idle().await;
        assert_eq!(ended, vec![idle.session.info.id.clone()]);
        assert!(!idle.session.is_active());
        assert!(
            busy.session.is_active(),
            "a session heard of keeps its lease"
        );
        let meta = reg
            .store()
            .tag_meta(&tag)
            .await
            .expect("meta")
            .expect("tag");
        assert!(!meta.sealed, "an expired recording is not sealed");
        assert!(reg.store().has_entries(&tag).await.expect("entries"));
        let listed = reg.listing().await.expect("listing");
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].tag, "busy");
    }

    #[tokio::test]
    async fn stop_waits_for_admitted_recordings_and_admits_no_more() {
        let reg = std::sync::Arc::new(SessionRegistry::new(Store::memory().expect("store")));
        let s = reg
            .create(Tag::new("race").expect("tag"), Mode::Record, false)
            .await
            .expect("record");
        let id = s.session.info.id.to_string();
        let admitted = s.session.admit_recording().expect("active: admitted");
        let stopping = {
            let (reg, id) = (reg.clone(), id.clone());
            tokio::spawn(async move { reg.stop(&id).await })
        };
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        assert!(
            !stopping.is_finished(),
            "stop waits for the admitted request"
        );
        assert!(
            s.session.admit_recording().is_none(),
            "a stopping session admits no new recording"
        );
        drop(admitted);
        let summary = tokio::time::timeout(std::time::Duration::from_secs(5), stopping)
            .await
            .expect("stop ends once the request ended")
            .expect("join")
            .expect("stop");
        assert!(summary.errors.is_empty(), "{:?}", summary.errors);
    }

    #[tokio::test]
    async fn notes_are_listed_by_prefix_and_replaced_by_name() {
        let reg = SessionRegistry::new(Store::memory().expect("store"));
        let s = reg
            .create(Tag::new("notes").expect("tag"), Mode::Record, false)
            .await
            .expect("record");
        let note = |k: &str, v: &str| (k.to_owned(), v.to_owned());
        s.session.add_notes(vec![
            note("cargo:line a b", "1"),
            note("cargo:dl a", "t"),
            note("cargo:line a c", "2"),
            note("cargo:linear", "x"),
        ]);
        s.session.add_notes(vec![note("cargo:line a b", "3")]);
        assert_eq!(
            s.session.notes("cargo:line a "),
            [note("cargo:line a b", "3"), note("cargo:line a c", "2")]
        );
        assert_eq!(s.session.notes("cargo:dl a"), [note("cargo:dl a", "t")]);
        assert!(s.session.notes("go:").is_empty());
    }

    #[tokio::test]
    async fn file_requests_wait_for_pages_being_recorded() {
        let reg = SessionRegistry::new(Store::memory().expect("store"));
        let s = reg
            .create(Tag::new("pages").expect("tag"), Mode::Record, false)
            .await
            .expect("record");
        let session = s.session.clone();
        assert!(!session.pages_pending());
        let page = session.page_started();
        assert!(session.pages_pending());
        let waiter = {
            let session = session.clone();
            tokio::spawn(async move { session.pages_settled().await })
        };
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(!waiter.is_finished(), "waits while the page is recorded");
        drop(page);
        tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
            .await
            .expect("released when the page's hints are in")
            .expect("join");
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

    #[tokio::test]
    async fn unknown_ids_and_malformed_secrets_cost_no_store_read() {
        let store = Store::memory().expect("store");
        let first = SessionRegistry::new(store.clone());
        let s = first
            .create(Tag::new("t").expect("tag"), Mode::Record, false)
            .await
            .expect("create");
        let second = SessionRegistry::new(store);
        let id = s.session.info.id.to_string();
        assert!(credential::is_secret_shaped(&s.secret));
        // a secret btrfly never issues is refused before the store
        assert!(second.authenticate(&id, "guess").await.is_none());
        assert!(second.get(&id).is_none(), "nothing was loaded for it");
        // an id the store does not have is remembered as unknown
        let nobody = "0123456789abcdef";
        assert!(second.authenticate(nobody, &s.secret).await.is_none());
        assert!(second.recently_unknown(nobody));
        // the real credential still works
        assert!(second.authenticate(&id, &s.secret).await.is_some());
    }
}
