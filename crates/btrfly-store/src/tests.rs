//! Storage behaviour, run against every backend available here.

use super::*;
use btrfly_core::Mutability;
use time::OffsetDateTime;

async fn backends() -> Vec<(Store, Option<tempfile::TempDir>)> {
    let dir = tempfile::tempdir().expect("tempdir");
    let fs = Store::fs(dir.path()).expect("fs");
    vec![(Store::memory().expect("memory"), None), (fs, Some(dir))]
}

async fn write_blob(
    store: &Store,
    chunks: &[&[u8]],
    expected: Option<String>,
) -> Result<StoredBlob> {
    let mut w = store.blob_writer(expected).await?;
    for c in chunks {
        w.write(Bytes::copy_from_slice(c)).await?;
    }
    w.finish().await
}

async fn read_all(store: &Store, sha: &str, range: Option<Range<u64>>) -> Vec<u8> {
    let mut s = store.read_blob(sha, range).await.expect("read");
    let mut out = Vec::new();
    while let Some(c) = s.next().await {
        out.extend_from_slice(&c.expect("chunk"));
    }
    out
}

#[tokio::test]
async fn blobs_are_content_addressed_and_deduplicated() {
    for (store, _dir) in backends().await {
        store.check().await.expect("check");
        let a = write_blob(&store, &[b"hello ", b"world"], None)
            .await
            .expect("a");
        assert_eq!(a.sha256, btrfly_core::sha256_hex(b"hello world"));
        assert_eq!(a.size, 11);
        assert!(a.new);
        let b = write_blob(&store, &[b"hello world"], None)
            .await
            .expect("b");
        assert_eq!(b.sha256, a.sha256);
        assert!(!b.new, "second copy must be deduplicated");
        assert_eq!(read_all(&store, &a.sha256, None).await, b"hello world");
        assert_eq!(read_all(&store, &a.sha256, Some(6..11)).await, b"world");
        assert_eq!(store.blob_size(&a.sha256).await.expect("size"), Some(11));
        assert_eq!(store.verify_blob(&a.sha256).await.expect("verify"), 11);
        // nothing left behind in tmp/
        let tmp = store.operator().list("tmp/").await.unwrap_or_default();
        assert!(tmp.iter().all(|e| e.path() == "tmp/"), "{:?}", tmp);
    }
}

#[tokio::test]
async fn wrong_digest_is_refused_and_leaves_nothing() {
    for (store, _dir) in backends().await {
        let err = write_blob(&store, &[b"tampered"], Some("0".repeat(64)))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::DigestMismatch { .. }), "{err}");
        let sha = btrfly_core::sha256_hex(b"tampered");
        assert_eq!(store.blob_size(&sha).await.expect("size"), None);
        let missing = store.read_blob(&sha, None).await.err().expect("missing");
        assert!(missing.to_string().contains("missing"), "{missing}");
    }
}

#[tokio::test]
async fn aborted_writes_leave_nothing() {
    for (store, _dir) in backends().await {
        let mut w = store.blob_writer(None).await.expect("writer");
        w.write(Bytes::from_static(b"half a bo"))
            .await
            .expect("write");
        w.abort().await;
        let sha = btrfly_core::sha256_hex(b"half a bo");
        assert_eq!(store.blob_size(&sha).await.expect("size"), None);
    }
}

#[tokio::test]
async fn tag_entries_round_trip() {
    for (store, _dir) in backends().await {
        let tag = Tag::new("t1").expect("tag");
        assert!(store.tag_meta(&tag).await.expect("meta").is_none());
        assert!(store.list_entries(&tag).await.expect("list").is_empty());
        assert!(store.list_tags().await.expect("tags").is_empty());
        let now = OffsetDateTime::now_utc();
        let meta = TagMeta {
            tag: tag.clone(),
            created_at: now,
            sealed: false,
            sealed_at: None,
        };
        store.put_tag_meta(&meta).await.expect("put meta");
        let key = RecordingKey::new("files", "GET https://a.example.test:443/x");
        let entry = Entry {
            key: key.clone(),
            method: "GET".into(),
            url: "https://a.example.test/x".into(),
            status: 200,
            headers: vec![("content-type".into(), "text/plain".into())],
            sha256: btrfly_core::sha256_hex(b""),
            size: 0,
            mutability: Mutability::Mutable,
            recorded_at: now,
        };
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
        let tags = store.list_tags().await.expect("tags");
        assert_eq!(tags.len(), 1);
        assert_eq!(tags[0].tag, tag);
    }
}
