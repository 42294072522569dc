//! The per-request CPU of the request path, without sockets or TLS:
//!
//! * `key_normalisation`: the adapter registry (pip, OCI, files, in the
//!   order `serve` builds it) turning a request head into a recording key —
//!   an index page, a wheel, a registry blob and manifest, a plain file;
//! * `index_lookup`: a sealed tag's in-memory index (10,000 entries), a hit
//!   and a miss;
//! * `replay_decision`: one whole playback request through the gateway's
//!   stages (credential, tag routing, classification, index lookup) to the
//!   reply head, on a 2,000-entry sealed tag in the memory backend — what
//!   `bash bench/run`'s small-file workload costs per request before TLS
//!   and body bytes.
//!
//! `cargo bench -p btrfly-gateway --bench hot_path`.

use std::hint::black_box;
use std::sync::Arc;

use base64::Engine;
use btrfly_adapter_files::FilesAdapter;
use btrfly_adapter_oci::{OciAdapter, OciConfig};
use btrfly_adapter_pip::{PipAdapter, PipConfig};
use btrfly_core::{Adapter, Mode, RecordingKey, RequestHead, Tag};
use btrfly_gateway::{gateway, Adapters, Decision, Forward, RequestBody};
use btrfly_record::Recorder;
use btrfly_session::SessionRegistry;
use btrfly_store::Store;
use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use http::{Method, Request, StatusCode};
use tower::ServiceExt;

fn adapters() -> Adapters {
    let pip = PipConfig::new(&["pypi.example.test"], &["files.example.test"]).expect("pip config");
    let pip: Arc<dyn Adapter> = Arc::new(PipAdapter::new(pip));
    let oci: Arc<dyn Adapter> = Arc::new(OciAdapter::new(&OciConfig::default()).expect("oci"));
    let files: Arc<dyn Adapter> = Arc::new(FilesAdapter);
    Adapters::new(vec![pip, oci, files])
}

fn head(uri: &str, headers: &[(&str, &str)]) -> RequestHead {
    RequestHead::from_parts(Method::GET, uri, headers).expect("a request head")
}

fn key_normalisation(c: &mut Criterion) {
    let adapters = adapters();
    let blob = format!(
        "https://registry.example.test/v2/lib/app/blobs/sha256:{}",
        "ab".repeat(32)
    );
    let cases = [
        (
            "pip_index_page",
            head(
                "https://pypi.example.test/simple/requests/",
                &[(
                    "accept",
                    "application/vnd.pypi.simple.v1+json, text/html;q=0.1",
                )],
            ),
        ),
        (
            "pip_wheel",
            head(
                "https://files.example.test/packages/ab/cd/requests-2.32.3-py3-none-any.whl",
                &[],
            ),
        ),
        ("oci_blob", head(&blob, &[])),
        (
            "oci_manifest",
            head(
                "https://registry.example.test/v2/lib/app/manifests/1.0",
                &[("accept", "application/vnd.oci.image.index.v1+json")],
            ),
        ),
        (
            "plain_file",
            head(
                "https://downloads.example.test/src/tool-1.2.tar.gz?mirror=1",
                &[],
            ),
        ),
    ];
    let mut group = c.benchmark_group("key_normalisation");
    for (name, head) in &cases {
        assert!(adapters.classify(head).is_some(), "{name} is claimed");
        group.bench_function(*name, |b| {
            b.iter(|| black_box(adapters.classify(black_box(head))))
        });
    }
    group.finish();
}

fn credential(id: &str, secret: &str) -> String {
    let v = base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"));
    format!("Basic {v}")
}

fn get(uri: &str, credential: &str) -> Request<RequestBody> {
    Request::builder()
        .method(Method::GET)
        .uri(uri)
        .header("proxy-authorization", credential)
        .header("user-agent", "bench/1")
        .header("accept", "*/*")
        .body(RequestBody::empty())
        .expect("a request")
}

fn url(i: usize) -> String {
    format!("https://files.example.test:443/files/f{i:05}.bin")
}

/// Records `n` small files under `tag` through the gateway and the
/// recorder, then seals the tag.
async fn record(sessions: &Arc<SessionRegistry>, store: &Store, tag: &Tag, n: usize) {
    let svc = gateway(sessions.clone(), adapters(), store.clone());
    let s = sessions
        .create(tag.clone(), Mode::Record, true)
        .await
        .expect("a record session");
    let cred = credential(&s.session.info.id, &s.secret);
    for i in 0..n {
        let decision = svc.clone().oneshot(get(&url(i), &cred)).await;
        let Ok(Decision::Forward(Forward {
            recording: Some(plan),
        })) = decision
        else {
            panic!("record mode forwards with a plan");
        };
        let mut rec = Recorder::begin(*plan, 200, &http::HeaderMap::new())
            .await
            .expect("begin");
        let body = Bytes::from(vec![(i % 251) as u8; 10 * 1024]);
        rec.offer(&mut Some(body), true).expect("offer");
        rec.commit(None).await.expect("commit");
    }
    sessions.stop(&s.session.info.id).await.expect("seal");
}

fn index_and_replay(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a runtime");
    let store = Store::memory().expect("a memory store");
    let sessions = Arc::new(SessionRegistry::new(store.clone()));

    let big = Tag::new("index-10k").expect("tag");
    runtime.block_on(record(&sessions, &store, &big, 10_000));
    let meta = runtime
        .block_on(store.tag_meta(&big))
        .expect("meta")
        .expect("the tag exists");
    let index = runtime.block_on(store.load_index(&meta)).expect("index");
    let key = |i: usize| -> RecordingKey {
        let (_, class) = adapters()
            .classify(&head(&url(i), &[]))
            .expect("files claims every URL");
        class.key
    };
    let (hit, miss) = (key(4_321), key(20_000));
    assert!(index.get(&hit).is_some() && index.get(&miss).is_none());
    let mut group = c.benchmark_group("index_lookup");
    group.bench_function("hit_of_10000", |b| {
        b.iter(|| black_box(index.get(black_box(&hit))))
    });
    group.bench_function("miss_of_10000", |b| {
        b.iter(|| black_box(index.get(black_box(&miss))))
    });
    group.finish();

    let tag = Tag::new("replay-2k").expect("tag");
    runtime.block_on(record(&sessions, &store, &tag, 2_000));
    let svc = gateway(sessions.clone(), adapters(), store.clone());
    let s = runtime
        .block_on(sessions.create(tag, Mode::Playback, false))
        .expect("a playback session");
    let cred = credential(&s.session.info.id, &s.secret);
    let mut i = 0usize;
    let mut group = c.benchmark_group("replay_decision");
    group.bench_function("hit_of_2000", |b| {
        b.to_async(&runtime).iter_batched(
            || {
                i = (i + 7) % 2_000;
                get(&url(i), &cred)
            },
            |req| {
                let svc = svc.clone();
                async move {
                    match svc.oneshot(req).await {
                        Ok(Decision::Respond(reply)) => {
                            assert_eq!(reply.status, StatusCode::OK);
                            black_box(reply)
                        }
                        _ => panic!("playback answers from the recording"),
                    }
                }
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, key_normalisation, index_and_replay);
criterion_main!(benches);
