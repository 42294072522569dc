//! The stack without sockets: requests in, decisions out.

use super::*;
use crate::Adapters;
use crate::{ReplyBody, MISS_HEADER};
use base64::Engine;
use btrfly_core::{Adapter, Mode, Tag};
use btrfly_record::{RecordPlan, Recorder};
use btrfly_session::{LiveSession, SessionRegistry};
use btrfly_store::Store;
use bytes::Bytes;
use http::Request;
use http::{Method, StatusCode};
use std::sync::Arc;
use tower::ServiceExt;

fn adapters() -> Adapters {
    let files: Arc<dyn Adapter> = Arc::new(btrfly_adapter_files::FilesAdapter);
    Adapters::new(vec![files])
}

fn request(
    method: Method,
    uri: &str,
    cred: Option<(&str, &str)>,
    range: Option<&str>,
) -> Request<RequestBody> {
    let mut b = Request::builder().method(method).uri(uri);
    if let Some((u, p)) = cred {
        let v = base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"));
        b = b.header("proxy-authorization", format!("Basic {v}"));
    }
    if let Some(r) = range {
        b = b.header("range", r);
    }
    b.body(RequestBody::empty()).expect("request")
}

struct World {
    store: Store,
    sessions: Arc<SessionRegistry>,
    svc: GatewayService,
}

fn world() -> World {
    let store = Store::memory().expect("store");
    let sessions = Arc::new(SessionRegistry::new(store.clone()));
    let svc = gateway(sessions.clone(), adapters(), store.clone());
    World {
        store,
        sessions,
        svc,
    }
}

async fn record_one(w: &World, tag: &str, url: &str, body: &'static [u8]) {
    let s = w
        .sessions
        .create(Tag::new(tag).expect("tag"), Mode::Record, true)
        .await
        .expect("record session");
    let d = w
        .svc
        .clone()
        .oneshot(request(
            Method::GET,
            url,
            Some((&s.session.info.id, &s.secret)),
            None,
        ))
        .await
        .expect("infallible");
    let Decision::Forward(Forward {
        recording: Some(plan),
    }) = d
    else {
        panic!("record mode must forward with a plan");
    };
    let mut headers = http::HeaderMap::new();
    headers.insert("content-type", "text/plain".parse().expect("v"));
    headers.insert("transfer-encoding", "chunked".parse().expect("v"));
    let mut rec = Recorder::begin(*plan, 200, &headers).await.expect("begin");
    let mut chunk = Some(Bytes::from_static(body));
    rec.offer(&mut chunk, true).expect("no digest to check");
    assert_eq!(
        chunk.as_deref(),
        Some(body),
        "without a digest chunks pass unchanged"
    );
    rec.commit(None).await.expect("commit");
    w.sessions.stop(&s.session.info.id).await.expect("stop");
}

#[tokio::test]
async fn no_credential_is_407_and_never_forwarded() {
    let w = world();
    for cred in [None, Some(("nobody", "nothing"))] {
        let d = w
            .svc
            .clone()
            .oneshot(request(
                Method::GET,
                "https://a.example.test:443/x",
                cred,
                None,
            ))
            .await
            .expect("infallible");
        let Decision::Respond(reply) = d else {
            panic!("must not forward")
        };
        assert_eq!(reply.status, StatusCode::PROXY_AUTHENTICATION_REQUIRED);
        assert!(reply.headers.contains_key("proxy-authenticate"));
    }
}

#[tokio::test]
async fn recorded_then_replayed_with_hop_by_hop_headers_dropped() {
    let w = world();
    record_one(&w, "t1", "https://a.example.test:443/x", b"payload").await;
    let s = w
        .sessions
        .create(Tag::new("t1").expect("tag"), Mode::Playback, false)
        .await
        .expect("playback");
    let cred = (s.session.info.id.as_str(), s.secret.as_str());
    let d = w
        .svc
        .clone()
        .oneshot(request(
            Method::GET,
            "https://a.example.test:443/x",
            Some(cred),
            None,
        ))
        .await
        .expect("infallible");
    let Decision::Respond(reply) = d else {
        panic!("playback never forwards")
    };
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.headers["content-length"], "7");
    assert!(!reply.headers.contains_key("transfer-encoding"));
    let ReplyBody::Blob {
        sha256,
        offset: 0,
        len: 7,
        whole: true,
    } = &reply.body
    else {
        panic!("a hit streams the blob");
    };
    assert_eq!(sha256, &btrfly_core::sha256_hex(b"payload"));

    // a range of a fully recorded file is served from it
    let d = w
        .svc
        .clone()
        .oneshot(request(
            Method::GET,
            "https://a.example.test:443/x",
            Some(cred),
            Some("bytes=2-4"),
        ))
        .await
        .expect("infallible");
    let Decision::Respond(reply) = d else {
        panic!()
    };
    assert_eq!(reply.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(reply.headers["content-range"], "bytes 2-4/7");
    assert!(matches!(
        reply.body,
        ReplyBody::Blob {
            offset: 2,
            len: 3,
            whole: false,
            ..
        }
    ));

    // an unrecorded URL is a counted miss naming URL and tag
    let d = w
        .svc
        .clone()
        .oneshot(request(
            Method::GET,
            "https://a.example.test:443/y",
            Some(cred),
            None,
        ))
        .await
        .expect("infallible");
    let Decision::Respond(reply) = d else {
        panic!()
    };
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(reply.headers[MISS_HEADER], "t1");
    let ReplyBody::Bytes(text) = &reply.body else {
        panic!()
    };
    let text = String::from_utf8_lossy(text);
    assert!(
        text.contains("https://a.example.test:443/y") && text.contains("t1"),
        "{text}"
    );
    let summary = w.sessions.stop(&s.session.info.id).await.expect("stop");
    assert_eq!((summary.requests, summary.hits, summary.misses), (3, 2, 1));
    assert_eq!(
        summary.missed,
        vec!["GET https://a.example.test:443/y".to_string()]
    );
}

#[tokio::test]
async fn tags_do_not_mix() {
    let w = world();
    record_one(&w, "one", "https://a.example.test:443/x", b"first").await;
    record_one(&w, "two", "https://a.example.test:443/x", b"second").await;
    for (tag, body) in [("one", &b"first"[..]), ("two", &b"second"[..])] {
        let s = w
            .sessions
            .create(Tag::new(tag).expect("tag"), Mode::Playback, false)
            .await
            .expect("playback");
        let d = w
            .svc
            .clone()
            .oneshot(request(
                Method::GET,
                "https://a.example.test:443/x",
                Some((&s.session.info.id, &s.secret)),
                None,
            ))
            .await
            .expect("infallible");
        let Decision::Respond(reply) = d else {
            panic!()
        };
        let ReplyBody::Blob { sha256, .. } = reply.body else {
            panic!()
        };
        assert_eq!(sha256, btrfly_core::sha256_hex(body), "tag {tag}");
    }
    assert_eq!(w.store.list_tags().await.expect("tags").len(), 2);
}

#[tokio::test]
async fn aborted_recording_leaves_no_entry() {
    let w = world();
    let s = w
        .sessions
        .create(Tag::new("t").expect("tag"), Mode::Record, false)
        .await
        .expect("record");
    let d = w
        .svc
        .clone()
        .oneshot(request(
            Method::GET,
            "https://a.example.test:443/x",
            Some((&s.session.info.id, &s.secret)),
            None,
        ))
        .await
        .expect("infallible");
    let Decision::Forward(Forward {
        recording: Some(plan),
    }) = d
    else {
        panic!()
    };
    let mut rec = Recorder::begin(*plan, 200, &http::HeaderMap::new())
        .await
        .expect("begin");
    rec.offer(&mut Some(Bytes::from_static(b"half")), false)
        .expect("offer");
    rec.abort();
    let tag = Tag::new("t").expect("tag");
    // give the writer task a moment to discard, then check nothing is indexed
    tokio::task::yield_now().await;
    assert!(w.store.list_entries(&tag).await.expect("list").is_empty());
}

async fn plan_with_digest(w: &World, tag: &str, expected: &str) -> (RecordPlan, Arc<LiveSession>) {
    let s = w
        .sessions
        .create(Tag::new(tag).expect("tag"), Mode::Record, true)
        .await
        .expect("record");
    let d = w
        .svc
        .clone()
        .oneshot(request(
            Method::GET,
            "https://a.example.test:443/pkg.whl",
            Some((&s.session.info.id, &s.secret)),
            None,
        ))
        .await
        .expect("infallible");
    let Decision::Forward(Forward {
        recording: Some(mut plan),
    }) = d
    else {
        panic!()
    };
    plan.classification.expected = Some(btrfly_core::Sha256::new(expected).expect("digest").into());
    (*plan, s.session)
}

#[tokio::test]
async fn expected_digest_holds_back_the_last_chunk_until_verified() {
    let w = world();
    let good = btrfly_core::sha256_hex(b"abcdef");
    let (plan, _s) = plan_with_digest(&w, "d1", &good).await;
    let mut rec = Recorder::begin(plan, 200, &http::HeaderMap::new())
        .await
        .expect("begin");
    let mut c = Some(Bytes::from_static(b"ab"));
    rec.offer(&mut c, false).expect("ok");
    assert_eq!(c, None, "the newest chunk is held back");
    let mut c = Some(Bytes::from_static(b"cd"));
    rec.offer(&mut c, false).expect("ok");
    assert_eq!(
        c.as_deref(),
        Some(&b"ab"[..]),
        "the previous chunk is released"
    );
    let mut c = Some(Bytes::from_static(b"ef"));
    rec.offer(&mut c, true).expect("digest matches");
    assert_eq!(
        c.as_deref(),
        Some(&b"cdef"[..]),
        "everything is released once verified"
    );
    let entry = rec.commit(None).await.expect("commit");
    assert_eq!(entry.sha256, good);
}

#[tokio::test]
async fn a_body_that_does_not_match_its_digest_is_refused_and_not_recorded() {
    let w = world();
    let (plan, session) = plan_with_digest(&w, "d2", &"0".repeat(64)).await;
    let mut headers = http::HeaderMap::new();
    headers.insert("content-length", "6".parse().expect("v"));
    let mut rec = Recorder::begin(plan, 200, &headers).await.expect("begin");
    let mut c = Some(Bytes::from_static(b"abc"));
    rec.offer(&mut c, false).expect("not complete yet");
    assert_eq!(c, None);
    // complete by content-length even before end-of-stream is signalled
    let mut c = Some(Bytes::from_static(b"def"));
    let err = rec.offer(&mut c, false).expect_err("mismatch").to_string();
    assert!(err.contains("does not match"), "{err}");
    assert_eq!(c, None, "the tampered tail never reaches the client");
    rec.abort();
    tokio::task::yield_now().await;
    let tag = session.tag().clone();
    assert!(w.store.list_entries(&tag).await.expect("list").is_empty());
}

#[tokio::test]
async fn a_refused_body_is_counted_and_no_part_of_it_is_served_again() {
    let w = world();
    let s = w
        .sessions
        .create(Tag::new("d3").expect("tag"), Mode::Record, true)
        .await
        .expect("record");
    let url = "https://a.example.test:443/pkg.whl";
    s.session.add_hints(vec![btrfly_core::DigestHint {
        url: url.into(),
        digest: btrfly_core::Sha256::new(&"0".repeat(64))
            .expect("digest")
            .into(),
    }]);
    let send = |range| {
        let svc = w.svc.clone();
        let req = request(
            Method::GET,
            url,
            Some((&s.session.info.id, &s.secret)),
            range,
        );
        async move { svc.oneshot(req).await.expect("infallible") }
    };
    let Decision::Forward(Forward {
        recording: Some(plan),
    }) = send(None).await
    else {
        panic!("record mode forwards");
    };
    let mut rec = Recorder::begin(*plan, 200, &http::HeaderMap::new())
        .await
        .expect("begin");
    let err = rec
        .offer(&mut Some(Bytes::from_static(b"abc")), true)
        .expect_err("mismatch");
    rec.refuse(&err);
    let err = err.to_string();
    let summary = s.session.summary();
    assert_eq!(summary.refused, 1);
    assert_eq!(summary.errors, [err]);

    // the whole body is fetched (and checked) again
    assert!(matches!(
        send(None).await,
        Decision::Forward(Forward { recording: Some(p) }) if p.classification.expected.is_some()
    ));
    // a part of it (a resumed download) is refused, with a status that
    // clients do not retry
    let Decision::Respond(reply) = send(Some("bytes=2-")).await else {
        panic!("a part of a refused body must not be forwarded");
    };
    assert_eq!(reply.status, StatusCode::CONFLICT);
    assert_eq!(reply.headers["x-btrfly-error"], "digest-mismatch");
}

#[tokio::test]
async fn a_range_request_is_not_checked_against_the_whole_body_digest() {
    let w = world();
    let s = w
        .sessions
        .create(Tag::new("d4").expect("tag"), Mode::Record, true)
        .await
        .expect("record");
    let url = "https://a.example.test:443/pkg.whl";
    s.session.add_hints(vec![btrfly_core::DigestHint {
        url: url.into(),
        digest: btrfly_core::Sha256::new(&"1".repeat(64))
            .expect("digest")
            .into(),
    }]);
    let plan = |range| {
        let svc = w.svc.clone();
        let req = request(
            Method::GET,
            url,
            Some((&s.session.info.id, &s.secret)),
            range,
        );
        async move {
            match svc.oneshot(req).await.expect("infallible") {
                Decision::Forward(Forward {
                    recording: Some(plan),
                }) => plan.classification.expected.map(|d| d.to_string()),
                _ => panic!("record mode forwards"),
            }
        }
    };
    assert_eq!(plan(None).await, Some("1".repeat(64)));
    assert_eq!(plan(Some("bytes=0-9")).await, None);
}
