//! The storage behaviour suite: every behaviour runs against every backend
//! (memory, fs, S3 through moto, GCS through gcp-storage-emulator), each
//! behaviour on a fresh random root. The S3 and GCS servers are real
//! protocol servers started by the tests on free loopback ports; when they
//! are not installed the tests fail and say how to install them.

use std::sync::Arc;

use super::*;
use crate::{GcsOptions, Identity, IdentityCheck, S3Options, StoredBlob};
use btrfly_core::Mutability;
use btrfly_core::{SessionId, SessionInfo, Sha256};
use btrfly_test_support::counting::{CountingLayer, OpCounts};
use btrfly_test_support::storage::{
    random_name, GcsEmulator, Moto, TEST_ACCESS_KEY, TEST_REGION, TEST_SECRET_KEY,
};
use std::ops::Range;
use time::OffsetDateTime;

/// `store` with every backend operation counted.
fn counted(store: Store) -> (Store, Arc<OpCounts>) {
    let ops = Arc::new(OpCounts::default());
    (store.layer(CountingLayer::new(ops.clone())), ops)
}

/// `[storage.s3]` for `bucket` on `moto`, with the test credentials.
fn s3_options(moto: &Moto, bucket: &str, prefix: Option<&str>) -> S3Options {
    S3Options {
        bucket: bucket.to_owned(),
        endpoint: Some(moto.endpoint()),
        region: Some(TEST_REGION.to_owned()),
        prefix: prefix.map(str::to_owned),
        access_key_id: Some(TEST_ACCESS_KEY.to_owned()),
        secret_access_key: Some(TEST_SECRET_KEY.to_owned()),
        session_token: None,
        virtual_host_style: false,
    }
}

/// `[storage.gcs]` for `bucket` on the emulator (unsigned requests).
fn gcs_options(gcs: &GcsEmulator, bucket: &str, prefix: Option<&str>) -> GcsOptions {
    GcsOptions {
        bucket: bucket.to_owned(),
        endpoint: Some(gcs.endpoint()),
        prefix: prefix.map(str::to_owned),
        credential_path: None,
        allow_anonymous: true,
    }
}

/// A store under test; `_dir` keeps an fs root alive.
struct Fixture {
    store: Store,
    _dir: Option<tempfile::TempDir>,
}

fn memory_fixture() -> Fixture {
    Fixture {
        store: Store::memory().expect("memory"),
        _dir: None,
    }
}

fn fs_fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    Fixture {
        store: Store::fs(dir.path()).expect("fs"),
        _dir: Some(dir),
    }
}

fn s3_fixture(moto: &Moto, bucket: &str) -> Fixture {
    let prefix = random_name("run");
    Fixture {
        store: Store::s3(&s3_options(moto, bucket, Some(&prefix))).expect("s3"),
        _dir: None,
    }
}

fn gcs_fixture(gcs: &GcsEmulator, bucket: &str) -> Fixture {
    let prefix = random_name("run");
    Fixture {
        store: Store::gcs(&gcs_options(gcs, bucket, Some(&prefix))).expect("gcs"),
        _dir: None,
    }
}

/// Runs each behaviour on a fresh fixture from `$make`, naming the
/// behaviour and backend in the log (and so in any failure).
macro_rules! suite {
    ($backend:expr, $make:expr) => {
        suite!(@run $backend, $make,
            blobs_are_content_addressed_and_deduplicated,
            wrong_digest_is_refused_and_leaves_nothing,
            aborted_writes_leave_nothing,
            large_bodies_stream_through_multipart_writes,
            tag_entries_round_trip,
            sealed_tags_load_from_one_snapshot,
            sessions_and_replica_stats_round_trip,
            concurrent_identical_commits_lose_nothing,
            vary_records_round_trip_and_seal,
            the_first_identity_claims_the_store,
            a_ranged_read_is_one_backend_request,
            blobs_are_listed_with_their_users_and_old_temp_objects_swept,
            mirror_entries_round_trip,
            one_recorder_lease_per_tag
        )
    };
    (@run $backend:expr, $make:expr, $($behaviour:ident),*) => {
        $(
            eprintln!("--- {} on {}", stringify!($behaviour), $backend);
            let fixture = $make;
            fixture.store.check().await.unwrap_or_else(|e| panic!("check {}: {e}", $backend));
            $behaviour(&fixture.store).await;
        )*
    };
}

#[tokio::test]
async fn suite_memory() {
    suite!("memory", memory_fixture());
}

#[tokio::test]
async fn suite_fs() {
    suite!("fs", fs_fixture());
}

#[tokio::test]
async fn suite_s3() {
    let moto = Moto::start();
    let bucket = moto.new_bucket();
    suite!("s3 (moto)", s3_fixture(&moto, &bucket));
}

#[tokio::test]
async fn suite_gcs() {
    let gcs = GcsEmulator::start();
    let bucket = gcs.new_bucket();
    suite!("gcs (gcp-storage-emulator)", gcs_fixture(&gcs, &bucket));
}

// === behaviours ===

fn lease(tag: &Tag, session: &str) -> crate::RecorderLease {
    crate::RecorderLease {
        tag: tag.clone(),
        session: SessionId::new(session).expect("id"),
        replica: format!("replica-{session}"),
        since: OffsetDateTime::now_utc(),
    }
}

/// `tags/<tag>/recorder.json`: of eight replicas taking a tag's lease at
/// once exactly one gets it and the others are shown that one; only its
/// holder releases it; a takeover claim is won once, and an abandoned one
/// can be claimed anew.
///
/// Not on GCS here: gcp-storage-emulator implements no preconditions (it
/// ignores `ifGenerationMatch=0`, which OpenDAL sends for `if_not_exists`
/// and GCS itself honours), so every create would "win".
async fn one_recorder_lease_per_tag(store: &Store) {
    if store.backend == "gcs" {
        eprintln!("    not run: the GCS emulator ignores ifGenerationMatch");
        return;
    }
    let tag = Tag::new("leased").expect("tag");
    let ids: Vec<String> = (0..8).map(|i| format!("{i:016x}")).collect();
    let results = futures::future::join_all(ids.iter().map(|id| {
        let l = lease(&tag, id);
        async move { (l.clone(), store.try_take_recorder(&l).await.expect("take")) }
    }))
    .await;
    let winners: Vec<_> = results.iter().filter(|(_, r)| r.is_none()).collect();
    assert_eq!(winners.len(), 1, "exactly one holder: {results:?}");
    let holder = winners[0].0.clone();
    for (_, r) in &results {
        if let Some(shown) = r {
            assert_eq!(shown, &holder, "the losers are shown the holder");
        }
    }
    assert_eq!(
        store.recorder(&tag).await.expect("read"),
        Some(holder.clone())
    );
    // Another tag is independent.
    let other = Tag::new("other").expect("tag");
    assert_eq!(
        store
            .try_take_recorder(&lease(&other, &ids[0]))
            .await
            .expect("other"),
        None
    );

    // Only the holder releases it.
    let loser = results
        .iter()
        .find(|(l, _)| l.session != holder.session)
        .expect("a loser");
    assert!(!store
        .release_recorder(&tag, &loser.0.session)
        .await
        .expect("release"));
    assert_eq!(
        store.recorder(&tag).await.expect("read"),
        Some(holder.clone())
    );
    assert!(store
        .release_recorder(&tag, &holder.session)
        .await
        .expect("release"));
    assert_eq!(store.recorder(&tag).await.expect("read"), None);
    assert_eq!(
        store.try_take_recorder(&loser.0).await.expect("retake"),
        None
    );

    // Takeover claims of one stale lease: one winner at a time.
    let minute = std::time::Duration::from_secs(60);
    let claims = futures::future::join_all(ids.iter().map(|id| {
        let l = lease(&tag, id);
        let tag = tag.clone();
        async move {
            store
                .claim_recorder_takeover(&tag, "0123456789abcdef", &l, minute)
                .await
                .expect("claim")
        }
    }))
    .await;
    assert_eq!(claims.iter().filter(|c| **c).count(), 1, "{claims:?}");
    store
        .end_recorder_takeover(&tag, "0123456789abcdef")
        .await
        .expect("end");
    let mut old = lease(&tag, &ids[1]);
    old.since -= time::Duration::minutes(5);
    assert!(store
        .claim_recorder_takeover(&tag, "fedcba9876543210", &old, minute)
        .await
        .expect("claim"));
    assert!(
        store
            .claim_recorder_takeover(&tag, "fedcba9876543210", &lease(&tag, &ids[2]), minute)
            .await
            .expect("claim"),
        "a claim five minutes old is abandoned"
    );
    assert!(!store
        .claim_recorder_takeover(&tag, "fedcba9876543210", &lease(&tag, &ids[3]), minute)
        .await
        .expect("claim"));
    store
        .end_recorder_takeover(&tag, "fedcba9876543210")
        .await
        .expect("end");
    store.delete_recorder(&tag).await.expect("delete");
    assert_eq!(store.recorder(&tag).await.expect("read"), None);
}

async fn mirror_entries_round_trip(store: &Store) {
    use btrfly_core::{MirrorEntry, MirrorSource, MirrorState};
    assert!(store.list_mirror_entries().await.expect("empty").is_empty());
    let at = time::OffsetDateTime::now_utc();
    let mut entries = Vec::new();
    for (i, id) in ["b1", "a2"].into_iter().enumerate() {
        let e = MirrorEntry {
            id: id.to_owned(),
            source: MirrorSource::parse(&format!("https://files.example.test/{id}"), None)
                .expect("source"),
            note: format!("needed by build {i}"),
            added_by: "ci".to_owned(),
            added_at: at + time::Duration::seconds(i as i64),
            state: MirrorState::Pending,
            reason: None,
            attempts: 0,
            updated_at: at,
        };
        store.put_mirror_entry(&e).await.expect("put");
        entries.push(e);
    }
    // Oldest first, whatever the ids.
    assert_eq!(store.list_mirror_entries().await.expect("list"), entries);
    let mut failed = entries[0].clone();
    failed.state = MirrorState::Failed;
    failed.reason = Some("sha256 mismatch".to_owned());
    store.put_mirror_entry(&failed).await.expect("update");
    assert_eq!(
        store.get_mirror_entry("b1").await.expect("get"),
        Some(failed)
    );
    assert_eq!(store.get_mirror_entry("zz").await.expect("get"), None);
    assert!(store.get_mirror_entry("../x").await.is_err());
}

async fn write_blob(
    store: &Store,
    chunks: &[&[u8]],
    expected: Option<String>,
) -> Result<StoredBlob> {
    let expected = expected.map(|e| Sha256::new(&e).expect("a digest"));
    let mut w = store.blob_writer(expected).await?;
    for c in chunks {
        w.write(Bytes::copy_from_slice(c)).await?;
    }
    w.finish().await
}

async fn read_all(store: &Store, sha: &Sha256, range: Option<Range<u64>>) -> Vec<u8> {
    let mut s = store.read_blob(sha, range).await.expect("read");
    let mut out = Vec::new();
    while let Some(c) = s.next().await {
        out.extend_from_slice(&c.expect("chunk"));
    }
    out
}

async fn tmp_is_empty(store: &Store) -> bool {
    let tmp = store.operator().list("tmp/").await.unwrap_or_default();
    tmp.iter().all(|e| e.path() == "tmp/")
}

fn entry_for(key: &RecordingKey, url: &str, sha256: &str, size: u64) -> Entry {
    let sha256 = Sha256::new(sha256).expect("a digest");
    Entry {
        key: key.clone(),
        method: "GET".into(),
        url: url.into(),
        status: 200,
        headers: vec![("content-type".into(), "text/plain".into())],
        sha256,
        size,
        mutability: Mutability::Mutable,
        recorded_at: OffsetDateTime::now_utc(),
        purl: None,
    }
}

fn meta(tag: &Tag) -> TagMeta {
    TagMeta {
        tag: tag.clone(),
        created_at: OffsetDateTime::now_utc(),
        sealed: false,
        sealed_at: None,
    }
}

async fn blobs_are_content_addressed_and_deduplicated(store: &Store) {
    let a = write_blob(store, &[b"hello ", b"world"], None)
        .await
        .expect("a");
    assert_eq!(a.sha256, btrfly_core::sha256_hex(b"hello world"));
    assert_eq!(a.size, 11);
    assert!(a.new);
    let b = write_blob(store, &[b"hello world"], None).await.expect("b");
    assert_eq!(b.sha256, a.sha256);
    assert!(!b.new, "second copy must be deduplicated");
    assert_eq!(read_all(store, &a.sha256, None).await, b"hello world");
    assert_eq!(read_all(store, &a.sha256, Some(6..11)).await, b"world");
    assert_eq!(store.blob_size(&a.sha256).await.expect("size"), Some(11));
    assert_eq!(store.verify_blob(&a.sha256).await.expect("verify"), 11);
    let empty = write_blob(store, &[], None).await.expect("empty body");
    assert_eq!(empty.size, 0);
    assert_eq!(store.blob_size(&empty.sha256).await.expect("size"), Some(0));
    assert!(tmp_is_empty(store).await, "nothing left behind in tmp/");
}

async fn wrong_digest_is_refused_and_leaves_nothing(store: &Store) {
    let err = write_blob(store, &[b"tampered"], Some("0".repeat(64)))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::DigestMismatch { .. }), "{err}");
    let sha = Sha256::of(b"tampered");
    assert_eq!(store.blob_size(&sha).await.expect("size"), None);
    let missing = store.read_blob(&sha, None).await.err().expect("missing");
    assert!(missing.to_string().contains("missing"), "{missing}");
    assert!(tmp_is_empty(store).await);
}

/// Playback knows a blob's size from the tag's index: reading it (or a
/// range of it) is one request to the backend (per 256 KiB read chunk),
/// not a `stat` and a read; a missing blob is still reported before any
/// byte is returned.
async fn a_ranged_read_is_one_backend_request(store: &Store) {
    let body = vec![7u8; 200 * 1024];
    let blob = write_blob(store, &[&body], None).await.expect("blob");
    let (counted, ops) = counted(store.clone());
    assert_eq!(
        read_all(&counted, &blob.sha256, Some(0..blob.size)).await,
        body
    );
    assert_eq!(
        read_all(&counted, &blob.sha256, Some(10..20)).await,
        &body[10..20]
    );
    let cost = ops.snapshot();
    assert_eq!((cost.stat, cost.read), (0, 2), "{cost:?}");
    let gone = Sha256::of(b"never stored");
    let err = counted
        .read_blob(&gone, Some(0..5))
        .await
        .err()
        .expect("missing");
    assert!(matches!(err, StoreError::MissingBlob(_)), "{err}");
}

/// `btrfly verify`'s view: every blob listed with its size, the entries
/// that use each, a damaged blob found; temp objects removed only once
/// older than the sweep's age (a younger one may be a write in flight).
async fn blobs_are_listed_with_their_users_and_old_temp_objects_swept(store: &Store) {
    let a = write_blob(store, &[b"listed body"], None).await.expect("a");
    let tag = Tag::new("verify1").expect("tag");
    let key = RecordingKey::new("files", "GET https://files.example.test:443/a");
    let e = entry_for(
        &key,
        "https://files.example.test/a",
        a.sha256.as_str(),
        a.size,
    );
    store.put_entry(&tag, &e).await.expect("entry");
    store.put_tag_meta(&meta(&tag)).await.expect("meta");
    let blobs = store.list_blobs().await.expect("list");
    assert!(
        blobs
            .iter()
            .any(|b| b.sha256 == a.sha256 && b.size == a.size),
        "{blobs:?}"
    );
    let users = store
        .blob_users(Some(std::slice::from_ref(&tag)))
        .await
        .expect("users");
    assert_eq!(users[&a.sha256].len(), 1);
    assert_eq!(users[&a.sha256][0].url, "https://files.example.test/a");

    // a crashed write's leftover
    store
        .op
        .write_with("tmp/crashed-write", vec![1u8; 10])
        .content_type("application/octet-stream")
        .await
        .expect("tmp object");
    let young = store
        .sweep_tmp(std::time::Duration::from_secs(3600))
        .await
        .expect("sweep");
    assert!(young.removed.is_empty(), "{young:?}");
    assert_eq!(store.list_tmp().await.expect("tmp").len(), 1);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let old = store
        .sweep_tmp(std::time::Duration::from_secs(1))
        .await
        .expect("sweep");
    if store.backend() == "memory" {
        // no modification times: kept (and nothing outlives a process there)
        assert!(old.removed.is_empty(), "{old:?}");
        return;
    }
    assert_eq!(old.removed, vec!["tmp/crashed-write".to_owned()], "{old:?}");
    assert!(tmp_is_empty(store).await);
}

async fn aborted_writes_leave_nothing(store: &Store) {
    let mut w = store.blob_writer(None).await.expect("writer");
    w.write(Bytes::from_static(b"half a bo"))
        .await
        .expect("write");
    w.abort().await;
    let sha = Sha256::of(b"half a bo");
    assert_eq!(store.blob_size(&sha).await.expect("size"), None);
    assert!(tmp_is_empty(store).await);
}

/// 9 MiB in 64 KiB chunks: more than the writer's 4 MiB part size, so S3
/// and GCS take their multipart / resumable paths, and the copy into the
/// content address handles a multi-part object.
async fn large_bodies_stream_through_multipart_writes(store: &Store) {
    let chunk: Vec<u8> = (0..65_536u32).map(|i| (i % 251) as u8).collect();
    let chunks: Vec<&[u8]> = (0..144).map(|_| chunk.as_slice()).collect();
    let mut whole = Vec::with_capacity(144 * chunk.len());
    for c in &chunks {
        whole.extend_from_slice(c);
    }
    let blob = write_blob(store, &chunks, Some(btrfly_core::sha256_hex(&whole)))
        .await
        .expect("large blob");
    assert_eq!(blob.size, whole.len() as u64);
    let start = 4 * 1024 * 1024 - 10;
    let got = read_all(store, &blob.sha256, Some(start..start + 20)).await;
    assert_eq!(got, &whole[start as usize..start as usize + 20]);
    assert_eq!(
        store.verify_blob(&blob.sha256).await.expect("verify"),
        whole.len() as u64
    );
    assert!(tmp_is_empty(store).await);
}

async fn tag_entries_round_trip(store: &Store) {
    let tag = Tag::new("t1").expect("tag");
    assert!(store.tag_meta(&tag).await.expect("meta").is_none());
    assert!(store.list_entries(&tag).await.expect("list").is_empty());
    assert!(store.list_tags().await.expect("tags").is_empty());
    store.put_tag_meta(&meta(&tag)).await.expect("put meta");
    assert!(
        !store.has_entries(&tag).await.expect("has"),
        "a tag with a meta but no entry is empty"
    );
    let key = RecordingKey::new("files", "GET https://a.example.test:443/x");
    let entry = entry_for(
        &key,
        "https://a.example.test/x",
        &btrfly_core::sha256_hex(b""),
        0,
    );
    store.put_entry(&tag, &entry).await.expect("put entry");
    let got = store
        .get_entry(&tag, &key)
        .await
        .expect("get")
        .expect("some");
    assert_eq!(got.url, entry.url);
    let other = RecordingKey::new("files", "GET https://a.example.test:443/y");
    assert!(store.get_entry(&tag, &other).await.expect("get").is_none());
    assert_eq!(store.list_entries(&tag).await.expect("list").len(), 1);
    assert!(store.has_entries(&tag).await.expect("has"));
    let tags = store.list_tags().await.expect("tags");
    assert_eq!(tags.len(), 1);
    assert_eq!(tags[0].tag, tag);
}

async fn put_entries(store: &Store, tag: &Tag, n: usize) -> Vec<RecordingKey> {
    let keys: Vec<RecordingKey> = (0..n)
        .map(|i| RecordingKey::new("files", format!("GET https://a.example.test:443/f/{i}")))
        .collect();
    let sha = btrfly_core::sha256_hex(b"");
    futures::stream::iter(keys.iter().enumerate())
        .map(|(i, key)| {
            let entry = entry_for(key, &format!("https://a.example.test/f/{i}"), &sha, 0);
            async move { store.put_entry(tag, &entry).await }
        })
        .buffer_unordered(LOAD_CONCURRENCY)
        .try_collect::<Vec<()>>()
        .await
        .expect("put entries");
    keys
}

/// Sealing writes a snapshot: loading a sealed tag is one read, whatever
/// its size. A re-opened (unsealed) tag is loaded from its entries, so an
/// entry recorded after the snapshot is never hidden by it.
async fn sealed_tags_load_from_one_snapshot(store: &Store) {
    let tag = Tag::new("sealed").expect("tag");
    store.put_tag_meta(&meta(&tag)).await.expect("meta");
    let keys = put_entries(store, &tag, 40).await;
    let sealed = store.seal_tag(meta(&tag)).await.expect("seal");
    assert!(sealed.sealed && sealed.sealed_at.is_some());
    assert_eq!(
        store.tag_meta(&tag).await.expect("meta"),
        Some(sealed.clone())
    );

    let (counted, ops) = counted(store.clone());
    let index = counted.load_index(&sealed).await.expect("load");
    let cost = ops.snapshot();
    assert_eq!(index.len(), 40);
    assert_eq!(
        (cost.read, cost.list),
        (1, 0),
        "a sealed tag loads from its one snapshot: {cost:?}"
    );
    for k in &keys {
        assert!(index.get(k).is_some(), "{k}");
    }
    assert!(index
        .get(&RecordingKey::new(
            "files",
            "GET https://a.example.test:443/nope"
        ))
        .is_none());
    assert_eq!(
        ops.snapshot().total(),
        cost.total(),
        "lookups touch no backend"
    );

    // Re-opened for recording (`--force`), one more entry: the snapshot no
    // longer matches, the entries are read.
    let mut reopened = sealed.clone();
    reopened.sealed = false;
    reopened.sealed_at = None;
    store.put_tag_meta(&reopened).await.expect("unseal");
    let extra = RecordingKey::new("files", "GET https://a.example.test:443/late");
    store
        .put_entry(
            &tag,
            &entry_for(&extra, "https://a.example.test/late", &keys_sha(), 0),
        )
        .await
        .expect("late entry");
    let index = store.load_index(&reopened).await.expect("load");
    assert_eq!(index.len(), 41);
    assert!(index.get(&extra).is_some());
    // A sealed meta whose seal is not the snapshot's (a crash between the
    // two writes) is not trusted either.
    let mut stale = sealed;
    stale.sealed_at = Some(OffsetDateTime::now_utc());
    let index = store.load_index(&stale).await.expect("load");
    assert_eq!(index.len(), 41);
}

/// Vary records: one per key and set of names, found per key, listed for
/// the tag, carried by the sealed snapshot; header bytes survive.
async fn vary_records_round_trip_and_seal(store: &Store) {
    let tag = Tag::new("vary").expect("tag");
    store.put_tag_meta(&meta(&tag)).await.expect("meta");
    let key = RecordingKey::new("files", "GET https://a.example.test:443/asset");
    let other = RecordingKey::new("files", "GET https://a.example.test:443/other");
    assert!(store
        .vary_sets(&tag, &key)
        .await
        .expect("none yet")
        .is_empty());
    for names in [
        vec!["accept".to_owned()],
        vec!["accept".to_owned(), "accept-encoding".to_owned()],
    ] {
        let record = VaryRecord {
            key: key.clone(),
            vary: names,
        };
        store.put_vary(&tag, &record).await.expect("put");
        // writing the same record again changes nothing
        store.put_vary(&tag, &record).await.expect("put again");
    }
    let mut sets = store.vary_sets(&tag, &key).await.expect("sets");
    sets.sort();
    assert_eq!(sets, [vec!["accept"], vec!["accept", "accept-encoding"]]);
    assert!(store
        .vary_sets(&tag, &other)
        .await
        .expect("other")
        .is_empty());
    assert_eq!(store.list_vary(&tag).await.expect("list").len(), 2);
    let mut e = entry_for(&key, "https://a.example.test/asset", &"ab".repeat(32), 1);
    e.headers.push((
        "content-disposition".into(),
        btrfly_core::FieldValue::new(b"attachment; filename=\"caf\xe9\"".to_vec()),
    ));
    store.put_entry(&tag, &e).await.expect("entry");
    let sealed = store.seal_tag(meta(&tag)).await.expect("seal");
    let index = store.load_index(&sealed).await.expect("index");
    let mut sets = index.vary_sets(&key);
    sets.sort();
    assert_eq!(sets, [vec!["accept"], vec!["accept", "accept-encoding"]]);
    assert_eq!(
        index.get(&key),
        Some(&e),
        "header bytes survive the snapshot"
    );
}

fn keys_sha() -> String {
    btrfly_core::sha256_hex(b"")
}

#[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
struct Counters {
    requests: u64,
    last: bool,
}

async fn sessions_and_replica_stats_round_trip(store: &Store) {
    assert!(store.list_sessions().await.expect("list").is_empty());
    let id = SessionId::new("abc123").expect("an id");
    let info = SessionInfo {
        id: id.clone(),
        secret_sha256: Sha256::new(&"0".repeat(64)).expect("a digest"),
        tag: Tag::new("t").expect("tag"),
        mode: btrfly_core::Mode::Record,
        started_at: OffsetDateTime::now_utc(),
    };
    store.put_session(&info).await.expect("put");
    store
        .put_session_stats(
            &id,
            "replica1",
            &Counters {
                requests: 3,
                last: false,
            },
        )
        .await
        .expect("stats 1");
    store
        .put_session_stats(
            &id,
            "replica2",
            &Counters {
                requests: 4,
                last: true,
            },
        )
        .await
        .expect("stats 2");
    let sessions = store.list_sessions().await.expect("list");
    assert_eq!(sessions.len(), 1, "stats objects are not sessions");
    assert_eq!(sessions[0].id, "abc123");
    let mut stats: Vec<(String, Counters)> = store.list_session_stats(&id).await.expect("stats");
    stats.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(stats.len(), 2);
    assert_eq!(stats[0].0, "replica1");
    assert_eq!(stats[1].1.requests, 4);
    store.delete_session_stats(&id).await.expect("delete");
    store.delete_session(&id).await.expect("delete");
    assert!(store
        .list_session_stats::<Counters>(&id)
        .await
        .expect("stats")
        .is_empty());
    assert!(store.list_sessions().await.expect("list").is_empty());
    // Nothing of the session is left, not even an empty folder (fs).
    let left: Vec<String> = match store.operator().list("sessions/").await {
        Ok(l) => l
            .iter()
            .map(|e| e.path().to_owned())
            .filter(|p| p != "sessions/")
            .collect(),
        Err(e) if e.kind() == ErrorKind::NotFound => Vec::new(),
        Err(e) => panic!("list sessions/: {e}"),
    };
    assert!(left.is_empty(), "left behind: {left:?}");
}

/// Eight writers (as if eight replicas, each with its own operator) store
/// the same body and commit the same key at once: every commit succeeds,
/// one whole blob and one whole entry remain, nothing is left in tmp/.
async fn concurrent_identical_commits_lose_nothing(store: &Store) {
    let tag = Tag::new("race").expect("tag");
    let body: Vec<u8> = (0..300_000u32).map(|i| (i * 13 % 256) as u8).collect();
    let sha = Sha256::of(&body);
    let key = RecordingKey::new("files", "GET https://a.example.test:443/race");
    let mut tasks = Vec::new();
    for i in 0..8 {
        let store = store.clone();
        let body = body.clone();
        let key = key.clone();
        let tag = tag.clone();
        let sha = sha.clone();
        tasks.push(tokio::spawn(async move {
            let mut w = store.blob_writer(Some(sha.clone())).await?;
            for c in body.chunks(10_000 + i * 1000) {
                w.write(Bytes::copy_from_slice(c)).await?;
            }
            let blob = w.finish().await?;
            let e = entry_for(&key, "https://a.example.test/race", &blob.sha256, blob.size);
            store.put_entry(&tag, &e).await?;
            // a distinct key per writer too: none may be lost
            let own = RecordingKey::new("files", format!("GET https://a.example.test:443/own/{i}"));
            store
                .put_entry(
                    &tag,
                    &entry_for(&own, "https://a.example.test/own", &sha, blob.size),
                )
                .await
        }));
    }
    for t in tasks {
        t.await.expect("join").expect("commit");
    }
    assert_eq!(
        store.verify_blob(&sha).await.expect("verify"),
        body.len() as u64
    );
    let entries = store.list_entries(&tag).await.expect("list");
    assert_eq!(entries.len(), 9, "one shared key plus eight own keys");
    let shared = store
        .get_entry(&tag, &key)
        .await
        .expect("get")
        .expect("entry");
    assert_eq!(shared.sha256, sha);
    assert!(tmp_is_empty(store).await);
}

// === start-up checks name what to fix ===

#[tokio::test]
async fn s3_missing_bucket_and_bad_credentials_are_clear() {
    let moto = Moto::start();
    let store = Store::s3(&s3_options(&moto, &random_name("nobucket"), None)).expect("s3");
    let err = store.check().await.expect_err("missing bucket").to_string();
    assert!(err.contains("bucket does not exist"), "{err}");
    assert!(err.contains("storage.s3.bucket"), "{err}");
    drop(moto);

    let strict = Moto::start_enforcing_auth();
    let store = Store::s3(&s3_options(&strict, "any-bucket", None)).expect("s3");
    let err = store
        .check()
        .await
        .expect_err("bad credentials")
        .to_string();
    assert!(err.contains("credentials were refused"), "{err}");
    assert!(err.contains("AWS_ACCESS_KEY_ID"), "{err}");

    let mut no_region = s3_options(&strict, "any-bucket", None);
    no_region.region = None;
    if std::env::var_os("AWS_REGION").is_none() && std::env::var_os("AWS_DEFAULT_REGION").is_none()
    {
        let err = Store::s3(&no_region).expect_err("no region").to_string();
        assert!(err.contains("storage.s3.region"), "{err}");
    }
}

#[tokio::test]
async fn gcs_missing_bucket_and_bad_credential_file_are_clear() {
    let gcs = GcsEmulator::start();
    let store = Store::gcs(&gcs_options(&gcs, &random_name("nobucket"), None)).expect("gcs");
    let err = store.check().await.expect_err("missing bucket").to_string();
    assert!(err.contains("bucket does not exist"), "{err}");
    assert!(err.contains("storage.gcs.bucket"), "{err}");

    let dir = tempfile::tempdir().expect("tempdir");
    let key = dir.path().join("key.json");
    std::fs::write(&key, "this is not a key file").expect("write");
    let mut config = gcs_options(&gcs, "any-bucket", None);
    config.allow_anonymous = false;
    config.credential_path = Some(key);
    let err = Store::gcs(&config).expect_err("bad key file").to_string();
    assert!(err.contains("storage.gcs.credential_path"), "{err}");
    assert!(err.contains("not a Google credential file"), "{err}");
    config.credential_path = Some(dir.path().join("missing.json"));
    let err = Store::gcs(&config)
        .expect_err("missing key file")
        .to_string();
    assert!(err.contains("cannot read"), "{err}");
}

/// The first replica's CA and token become the store's; a replica with
/// another CA or token is told apart from one with the same.
async fn the_first_identity_claims_the_store(store: &Store) {
    let mine = Identity {
        ca_pem: "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n".into(),
        token_sha256: Sha256::of(b"token-a"),
        created_at: OffsetDateTime::now_utc(),
    };
    assert!(store.identity().await.expect("read").is_none());
    assert_eq!(
        store.claim_identity(&mine).await.expect("claim"),
        IdentityCheck::Claimed
    );
    assert_eq!(
        store.claim_identity(&mine).await.expect("again"),
        IdentityCheck::Matches
    );
    let other_ca = Identity {
        ca_pem: "-----BEGIN CERTIFICATE-----\nBBBB\n-----END CERTIFICATE-----\n".into(),
        ..mine.clone()
    };
    assert!(matches!(
        store.claim_identity(&other_ca).await.expect("other ca"),
        IdentityCheck::OtherCa { stored } if stored.ca_pem == mine.ca_pem
    ));
    let other_token = Identity {
        token_sha256: Sha256::of(b"token-b"),
        ..mine.clone()
    };
    assert!(matches!(
        store
            .claim_identity(&other_token)
            .await
            .expect("other token"),
        IdentityCheck::OtherToken { .. }
    ));
    assert_eq!(store.identity().await.expect("read"), Some(mine));
}
