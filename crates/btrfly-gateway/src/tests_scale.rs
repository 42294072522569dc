//! Scale-out behaviour of the stack, without sockets: the playback index
//! cache (counted backend operations), single flight, and session counters
//! summed across replicas sharing one store.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use btrfly_core::{Adapter, Mode, Tag};
use btrfly_store::Store;
use btrfly_test_support::counting::{CountingLayer, OpCounts};

/// `store` with every backend operation counted.
fn counted(store: Store) -> (Store, Arc<OpCounts>) {
    let ops = Arc::new(OpCounts::default());
    (store.layer(CountingLayer::new(ops.clone())), ops)
}
use bytes::Bytes;
use http::{Method, Request, StatusCode};
use tower::ServiceExt;

use super::*;
use crate::Adapters;
use btrfly_record::Recorder;
use btrfly_session::{ReplicaStats, SessionRegistry};

fn adapters() -> Adapters {
    let files: Arc<dyn Adapter> = Arc::new(btrfly_adapter_files::FilesAdapter);
    Adapters::new(vec![files])
}

fn get(uri: &str, id: &str, secret: &str) -> Request<RequestBody> {
    let v = base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"));
    Request::builder()
        .method(Method::GET)
        .uri(uri)
        .header("proxy-authorization", format!("Basic {v}"))
        .body(RequestBody::empty())
        .expect("request")
}

/// One replica: its registry and stack over a (shared) store.
struct Replica {
    sessions: Arc<SessionRegistry>,
    svc: GatewayService,
}

fn replica(store: &Store) -> Replica {
    let sessions = Arc::new(SessionRegistry::new(store.clone()));
    let svc = gateway(sessions.clone(), adapters(), store.clone());
    Replica { sessions, svc }
}

async fn call(svc: &GatewayService, req: Request<RequestBody>) -> Decision {
    match svc.clone().oneshot(req).await {
        Ok(d) => d,
        Err(never) => match never {},
    }
}

/// Records `body` for a forwarded request through its plan.
async fn commit(decision: Decision, body: &'static [u8]) {
    let Decision::Forward(Forward {
        recording: Some(plan),
    }) = decision
    else {
        panic!("record mode must forward with a plan");
    };
    let mut rec = Recorder::begin(*plan, 200, &http::HeaderMap::new())
        .await
        .expect("begin");
    rec.offer(&mut Some(Bytes::from_static(body)), true)
        .expect("offer");
    rec.commit(None).await.expect("commit");
}

fn url(i: usize) -> String {
    format!("https://a.example.test:443/f/{i}")
}

async fn record_tag(r: &Replica, tag: &str, n: usize) {
    let s = r
        .sessions
        .create(Tag::new(tag).expect("tag"), Mode::Record, true)
        .await
        .expect("record");
    for i in 0..n {
        let d = call(&r.svc, get(&url(i), &s.session.info.id, &s.secret)).await;
        commit(d, b"body").await;
    }
    let summary = r.sessions.stop(&s.session.info.id).await.expect("stop");
    assert_eq!(summary.recorded, n as u64);
}

/// Plays back `n` URLs; returns the backend operations of all but the
/// first request.
async fn play(r: &Replica, tag: &str, n: usize, ops: &OpCounts) -> u64 {
    let s = r
        .sessions
        .create(Tag::new(tag).expect("tag"), Mode::Playback, false)
        .await
        .expect("playback");
    let (id, secret) = (s.session.info.id.clone(), s.secret.clone());
    let first = call(&r.svc, get(&url(0), &id, &secret)).await;
    assert!(matches!(first, Decision::Respond(ref reply) if reply.status == StatusCode::OK));
    let before = ops.snapshot();
    for i in 1..n {
        let Decision::Respond(reply) = call(&r.svc, get(&url(i), &id, &secret)).await else {
            panic!("playback never forwards");
        };
        assert_eq!(reply.status, StatusCode::OK, "{}", url(i));
    }
    let cost = ops.snapshot().since(&before).total();
    let summary = r.sessions.stop(&id).await.expect("stop");
    assert_eq!(summary.hits, n as u64);
    cost
}

#[tokio::test]
async fn playback_of_a_sealed_tag_costs_no_backend_operation_per_request() {
    let (store, ops) = counted(Store::memory().expect("store"));
    let r = replica(&store);
    record_tag(&r, "sealed", 60).await;
    let cost = play(&r, "sealed", 60, &ops).await;
    // 59 requests; at most a session revalidation (one read every 2 s).
    assert!(
        cost <= 1,
        "cached lookups must not touch the backend: {cost} ops for 59 requests"
    );

    // The same playback on a tag that is not sealed looks entries up one
    // by one (the index may still change).
    let s = r
        .sessions
        .create(Tag::new("open").expect("tag"), Mode::Record, false)
        .await
        .expect("record");
    for i in 0..10 {
        let d = call(&r.svc, get(&url(i), &s.session.info.id, &s.secret)).await;
        commit(d, b"body").await;
    }
    let cost = play(&r, "open", 10, &ops).await;
    assert!(cost >= 9, "unsealed: one lookup per request, got {cost}");
}

#[tokio::test]
async fn re_recording_a_sealed_tag_invalidates_the_cached_index() {
    let store = Store::memory().expect("store");
    let r = replica(&store);
    record_tag(&r, "t", 2).await;
    let ops = OpCounts::default();
    play(&r, "t", 2, &ops).await;
    // --force: unsealed, one more entry, sealed again.
    let s = r
        .sessions
        .create(Tag::new("t").expect("tag"), Mode::Record, true)
        .await
        .expect("record");
    let d = call(&r.svc, get(&url(2), &s.session.info.id, &s.secret)).await;
    commit(d, b"late").await;
    r.sessions.stop(&s.session.info.id).await.expect("stop");
    play(&r, "t", 3, &ops).await;
}

#[tokio::test]
async fn concurrent_identical_requests_go_upstream_once() {
    let store = Store::memory().expect("store");
    let r = replica(&store);
    let s = r
        .sessions
        .create(Tag::new("sf").expect("tag"), Mode::Record, false)
        .await
        .expect("record");
    let (id, secret) = (s.session.info.id.clone(), s.secret.clone());
    let target = "https://a.example.test:443/big";
    let leader = call(&r.svc, get(target, &id, &secret)).await;
    let Decision::Forward(Forward {
        recording: Some(ref plan),
    }) = leader
    else {
        panic!("the first request is forwarded");
    };
    assert!(plan.flight.is_some(), "the leader carries the flight guard");
    let followers: Vec<_> = (0..4)
        .map(|_| {
            let svc = r.svc.clone();
            let req = get(target, &id, &secret);
            tokio::spawn(async move { call(&svc, req).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        followers.iter().all(|f| !f.is_finished()),
        "followers wait for the leader"
    );
    commit(leader, b"one upstream fetch").await;
    for f in followers {
        let Decision::Respond(reply) = f.await.expect("join") else {
            panic!("a follower is answered from the leader's recording");
        };
        assert_eq!(reply.status, StatusCode::OK);
        let ReplyBody::Blob { sha256, len, .. } = reply.body else {
            panic!("streamed from the store");
        };
        assert_eq!(sha256, btrfly_core::sha256_hex(b"one upstream fetch"));
        assert_eq!(len, 18);
    }
    // A different URL is not held up, and a leader that records nothing
    // lets its followers go upstream themselves.
    let other = call(
        &r.svc,
        get("https://a.example.test:443/other", &id, &secret),
    )
    .await;
    let follower = {
        let svc = r.svc.clone();
        let req = get("https://a.example.test:443/other", &id, &secret);
        tokio::spawn(async move { call(&svc, req).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    drop(other);
    let Decision::Forward(Forward {
        recording: Some(plan),
    }) = follower.await.expect("join")
    else {
        panic!("after a failed leader the follower goes upstream");
    };
    assert!(plan.flight.is_none());
    // An admitted request holds `stop` until it ends (committed or, as
    // here, dropped).
    drop(plan);
    let summary = r.sessions.stop(&id).await.expect("stop");
    assert_eq!((summary.recorded, summary.hits), (1, 4));
}

#[tokio::test]
async fn stop_on_one_replica_sums_every_replicas_counters() {
    let store = Store::memory().expect("store");
    let a = replica(&store);
    let b = replica(&store);
    assert_ne!(a.sessions.replica(), b.sessions.replica());
    let (shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(false);
    let b_task = tokio::spawn(b.sessions.clone().run_replication(shutdown_rx));

    let s = a
        .sessions
        .create(Tag::new("shared").expect("tag"), Mode::Record, false)
        .await
        .expect("record");
    let (id, secret) = (s.session.info.id.clone(), s.secret.clone());
    // Two URLs recorded through A, one through B (which never saw the
    // session start: it finds it in the store).
    for i in 0..2 {
        let d = call(&a.svc, get(&url(i), &id, &secret)).await;
        commit(d, b"via a").await;
    }
    let d = call(&b.svc, get(&url(2), &id, &secret)).await;
    commit(d, b"via b").await;
    // B writes its counters on its next flush.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let stored: Vec<(String, ReplicaStats)> = store.list_session_stats(&id).await.expect("stats");
    assert_eq!(stored.len(), 1, "only B has written counters so far");
    assert!(!stored[0].1.last);

    let summary = a.sessions.stop(&id).await.expect("stop");
    assert_eq!(summary.requests, 3, "{summary:?}");
    assert_eq!(summary.recorded, 3);
    assert!(summary.errors.is_empty(), "{:?}", summary.errors);
    // B noticed the stop: the credential no longer works there.
    let d = call(&b.svc, get(&url(0), &id, &secret)).await;
    let Decision::Respond(reply) = d else {
        panic!("a stopped session is refused")
    };
    assert_eq!(reply.status, StatusCode::PROXY_AUTHENTICATION_REQUIRED);
    // The tag sealed by A includes B's recording.
    let meta = store
        .tag_meta(&Tag::new("shared").expect("tag"))
        .await
        .expect("meta")
        .expect("some");
    assert!(meta.sealed);
    assert_eq!(store.load_index(&meta).await.expect("index").len(), 3);
    assert!(store
        .list_session_stats::<ReplicaStats>(&id)
        .await
        .expect("stats")
        .is_empty());

    // A replica that shuts down writes its last counters: a session it
    // served is summed without waiting.
    let s = a
        .sessions
        .create(Tag::new("playback-me").expect("tag"), Mode::Record, false)
        .await
        .expect("record");
    let d = call(&b.svc, get(&url(0), &s.session.info.id, &s.secret)).await;
    commit(d, b"x").await;
    shutdown_tx.send(true).expect("shutdown");
    b_task.await.expect("join");
    let started = std::time::Instant::now();
    let summary = a.sessions.stop(&s.session.info.id).await.expect("stop");
    assert_eq!((summary.requests, summary.recorded), (1, 1));
    assert!(started.elapsed() < Duration::from_secs(2), "no waiting");
}
