//! The playback index, measured: a 10,000-entry tag on S3 (moto: real HTTP
//! round trips). Per-request lookups with `get_entry` cost one GET each;
//! the cached index costs one read for the whole tag and none per lookup.
//! The operation counts are asserted, the timings printed.
//!
//! Run with `cargo bench -p btrfly-store --bench index_cache` (moto from
//! `bash tests/run`'s venv, or `BTRFLY_TEST_VENV`). The property it
//! measures — a sealed tag loads in one read and is looked up without a
//! backend operation — is also part of the store's behaviour suite and of
//! the gateway's tests, on every run of `bash tests/run`.

use std::sync::Arc;
use std::time::Instant;

use btrfly_core::{Entry, Mutability, RecordingKey, Sha256, Tag, TagMeta};
use btrfly_store::{S3Options, Store};
use btrfly_test_support::counting::{CountingLayer, OpCounts};
use btrfly_test_support::storage::{
    random_name, Moto, TEST_ACCESS_KEY, TEST_REGION, TEST_SECRET_KEY,
};
use futures::{StreamExt, TryStreamExt};
use time::OffsetDateTime;

const ENTRIES: usize = 10_000;
const UNCACHED_SAMPLE: usize = 500;

fn meta(tag: &Tag) -> TagMeta {
    TagMeta {
        tag: tag.clone(),
        created_at: OffsetDateTime::now_utc(),
        sealed: false,
        sealed_at: None,
    }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(bench());
}

async fn bench() {
    let moto = Moto::start();
    let bucket = moto.new_bucket();
    let store = Store::s3(&S3Options {
        bucket,
        endpoint: Some(moto.endpoint()),
        region: Some(TEST_REGION.to_owned()),
        prefix: Some(random_name("bench")),
        access_key_id: Some(TEST_ACCESS_KEY.to_owned()),
        secret_access_key: Some(TEST_SECRET_KEY.to_owned()),
        ..S3Options::default()
    })
    .expect("s3");
    let tag = Tag::new("bench").expect("tag");
    store.put_tag_meta(&meta(&tag)).await.expect("meta");

    let t = Instant::now();
    let keys: Vec<RecordingKey> = (0..ENTRIES)
        .map(|i| RecordingKey::new("files", format!("GET https://a.example.test:443/f/{i}")))
        .collect();
    let empty = Sha256::of(b"");
    futures::stream::iter(keys.iter().enumerate())
        .map(|(i, key)| {
            let entry = Entry {
                key: key.clone(),
                method: "GET".into(),
                url: format!("https://a.example.test/f/{i}"),
                status: 200,
                headers: vec![("content-type".into(), "text/plain".into())],
                sha256: empty.clone(),
                size: 0,
                mutability: Mutability::Mutable,
                recorded_at: OffsetDateTime::now_utc(),
                purl: None,
            };
            let (store, tag) = (&store, &tag);
            async move { store.put_entry(tag, &entry).await }
        })
        .buffer_unordered(32)
        .try_collect::<Vec<()>>()
        .await
        .expect("put entries");
    let write_time = t.elapsed();
    let t = Instant::now();
    let sealed = store.seal_tag(meta(&tag)).await.expect("seal");
    let seal_time = t.elapsed();

    let ops = Arc::new(OpCounts::default());
    let counted = store.clone().layer(CountingLayer::new(ops.clone()));

    // Without the cache: one GET per request.
    let before = ops.snapshot();
    let t = Instant::now();
    for k in keys.iter().step_by(ENTRIES / UNCACHED_SAMPLE) {
        let e = counted.get_entry(&tag, k).await.expect("get");
        assert!(e.is_some());
    }
    let uncached = t.elapsed();
    let uncached_ops = ops.snapshot().since(&before);
    assert_eq!(uncached_ops.read, UNCACHED_SAMPLE as u64);

    // With the cache: one read loads the tag, lookups are free.
    let before = ops.snapshot();
    let t = Instant::now();
    let index = counted.load_index(&sealed).await.expect("load");
    let load_time = t.elapsed();
    let load_ops = ops.snapshot().since(&before);
    assert_eq!(index.len(), ENTRIES);
    assert_eq!((load_ops.read, load_ops.list), (1, 0), "{load_ops:?}");
    let before = ops.snapshot();
    let t = Instant::now();
    for k in &keys {
        assert!(index.get(k).is_some());
    }
    let cached = t.elapsed();
    assert_eq!(
        ops.snapshot().since(&before).total(),
        0,
        "cached lookups must not touch the backend"
    );

    let per_uncached = uncached.as_secs_f64() / UNCACHED_SAMPLE as f64;
    let per_cached = cached.as_secs_f64() / ENTRIES as f64;
    let amortised = (load_time.as_secs_f64() + cached.as_secs_f64()) / ENTRIES as f64;
    println!(
        "bench: {ENTRIES} entries on s3 (moto); writing them took {write_time:?}; sealing \
         (list, read every entry object, write the snapshot) {seal_time:?}"
    );
    println!(
        "bench: uncached lookup {:.1} us/request (1 GET each); cached lookup {:.3} us/request (0 backend ops)",
        per_uncached * 1e6,
        per_cached * 1e6
    );
    println!("bench: loading the sealed index: {load_time:?} (1 read of the snapshot)");
    println!(
        "bench: ratio uncached/cached per lookup = {:.0}x; including the one-time load, amortised over {ENTRIES} requests = {:.0}x",
        per_uncached / per_cached.max(1e-9),
        per_uncached / amortised
    );
}
