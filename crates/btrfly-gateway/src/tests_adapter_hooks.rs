//! The adapter hooks the layers honour, with a test adapter: redirect
//! aliases, an error never replacing a success, a head recorded alone,
//! playback fallback keys.

use std::sync::Arc;

use base64::Engine;
use btrfly_core::{
    canonical_url, Adapter, Classification, Mode, Mutability, RecordingKey, RequestHead, Tag,
};
use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use tower::ServiceExt;

use crate::Adapters;
use crate::{gateway, Decision, Forward, GatewayService, ReplyBody, RequestBody};
use btrfly_record::{RecordPlan, Recorder};
use btrfly_session::{LiveSession, SessionRegistry};

/// Claims `hooked.example.test`, keyed by method and path.
struct Hooked;

impl Adapter for Hooked {
    fn name(&self) -> &'static str {
        "hooked"
    }

    fn classify(&self, req: &RequestHead) -> Option<Classification> {
        (req.host() == "hooked.example.test").then(|| Classification {
            key: RecordingKey::new("hooked", format!("{} {}", req.method, req.uri.path())),
            mutability: Mutability::Mutable,
            expected: None,
            package: None,
            subject: None,
        })
    }

    fn records(&self, _: &RequestHead, _: &Classification, status: u16, _: &HeaderMap) -> bool {
        status != 307
    }

    fn redirect_alias(
        &self,
        _req: &RequestHead,
        _class: &Classification,
        status: u16,
        headers: &HeaderMap,
    ) -> Option<String> {
        let location = headers.get(http::header::LOCATION)?.to_str().ok()?;
        (status == 307).then(|| canonical_url(&location.parse().expect("absolute location")))
    }

    fn head_suffices(&self, class: &Classification, _status: u16) -> bool {
        class.key.primary.ends_with("/ping")
    }

    fn replay_fallbacks(&self, class: &Classification) -> Vec<RecordingKey> {
        let mut get = class.key.clone();
        match class.key.primary.strip_prefix("HEAD ") {
            Some(rest) => {
                get.primary = format!("GET {rest}");
                vec![get]
            }
            None => Vec::new(),
        }
    }
}

struct World {
    sessions: Arc<SessionRegistry>,
    svc: GatewayService,
}

fn world() -> World {
    let store = btrfly_store::Store::memory().expect("store");
    let sessions = Arc::new(SessionRegistry::new(store.clone()));
    let hooked: Arc<dyn Adapter> = Arc::new(Hooked);
    let files: Arc<dyn Adapter> = Arc::new(btrfly_adapter_files::FilesAdapter);
    let svc = gateway(
        sessions.clone(),
        Adapters::new(vec![hooked, files]),
        store.clone(),
    );
    World { sessions, svc }
}

struct Client {
    session: Arc<LiveSession>,
    secret: String,
}

async fn session(w: &World, tag: &str, mode: Mode) -> Client {
    let s = w
        .sessions
        .create(Tag::new(tag).expect("tag"), mode, true)
        .await
        .expect("session");
    Client {
        session: s.session,
        secret: s.secret,
    }
}

async fn send(w: &World, c: &Client, method: Method, uri: &str) -> Decision {
    let cred = base64::engine::general_purpose::STANDARD
        .encode(format!("{}:{}", c.session.info.id, c.secret));
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .header("proxy-authorization", format!("Basic {cred}"))
        .body(RequestBody::empty())
        .expect("request");
    w.svc.clone().oneshot(req).await.expect("infallible")
}

async fn plan(w: &World, c: &Client, method: Method, uri: &str) -> RecordPlan {
    match send(w, c, method, uri).await {
        Decision::Forward(Forward {
            recording: Some(plan),
        }) => *plan,
        _ => panic!("record mode forwards with a plan"),
    }
}

async fn record(plan: RecordPlan, status: u16, body: &'static [u8]) {
    let mut rec = Recorder::begin(plan, status, &HeaderMap::new())
        .await
        .expect("begin");
    rec.offer(&mut Some(Bytes::from_static(body)), true)
        .expect("offer");
    rec.commit(None).await.expect("commit");
}

const URL: &str = "https://hooked.example.test:443/blob";

async fn recorded_status(w: &World, tag: &str, c: &Client, uri: &str) -> u16 {
    let p = plan(w, c, Method::GET, uri).await;
    w.sessions
        .store()
        .get_entry(&Tag::new(tag).expect("tag"), &p.classification.key)
        .await
        .expect("store")
        .expect("an entry")
        .status
}

#[tokio::test]
async fn within_a_recording_an_error_never_replaces_a_success_in_any_adapter() {
    let w = world();
    let c = session(&w, "keep", Mode::Record).await;
    for uri in [URL, "https://files.example.test:443/x"] {
        record(plan(&w, &c, Method::GET, uri).await, 200, b"content").await;
        for status in [401, 404, 500, 503] {
            record(plan(&w, &c, Method::GET, uri).await, status, b"error").await;
            assert_eq!(
                recorded_status(&w, "keep", &c, uri).await,
                200,
                "{uri} {status}"
            );
        }
        // a later success does replace it
        record(plan(&w, &c, Method::GET, uri).await, 204, b"").await;
        assert_eq!(recorded_status(&w, "keep", &c, uri).await, 204, "{uri}");
    }
    // an error first, then a success: the success
    let uri = "https://files.example.test:443/late";
    record(plan(&w, &c, Method::GET, uri).await, 503, b"busy").await;
    record(plan(&w, &c, Method::GET, uri).await, 200, b"ok").await;
    assert_eq!(recorded_status(&w, "keep", &c, uri).await, 200);
    w.sessions.stop(&c.session.info.id).await.expect("stop");
    // re-recorded with --force: what the new recording gets replaces the
    // old answers, errors included
    let again = session(&w, "keep", Mode::Record).await;
    record(plan(&w, &again, Method::GET, URL).await, 404, b"gone").await;
    assert_eq!(recorded_status(&w, "keep", &again, URL).await, 404);
}

#[tokio::test]
async fn a_redirect_alias_classifies_the_follow_up_as_the_original() {
    let w = world();
    let c = session(&w, "alias", Mode::Record).await;
    let original = plan(&w, &c, Method::GET, URL).await;
    let signed = "https://cdn.example.test/b/data?signature=s1&expires=1";
    let mut headers = HeaderMap::new();
    headers.insert(http::header::LOCATION, signed.parse().expect("location"));
    original.admit(307, &headers);
    let class = original.classification.clone();
    // The redirect itself is not recorded: its plan ends here (and with it
    // the single flight it leads for the key).
    drop(original);
    let follow = plan(&w, &c, Method::GET, signed).await;
    assert_eq!(follow.adapter.name(), "hooked");
    assert_eq!(follow.classification, class);
    // the alias belongs to this session only
    let other = session(&w, "alias2", Mode::Record).await;
    let elsewhere = plan(&w, &other, Method::GET, signed).await;
    assert_eq!(elsewhere.adapter.name(), "files");
}

#[tokio::test]
async fn a_head_alone_is_recorded_when_the_adapter_says_it_suffices() {
    let w = world();
    let c = session(&w, "ping", Mode::Record).await;
    let ping = plan(&w, &c, Method::GET, "https://hooked.example.test:443/ping").await;
    let mut headers = HeaderMap::new();
    headers.insert("www-authenticate", "Bearer realm=\"r\"".parse().expect("v"));
    headers.insert("content-length", "2".parse().expect("v"));
    let mut rec = Recorder::begin(ping, 401, &headers).await.expect("begin");
    assert!(rec.head_suffices());
    rec.offer(&mut Some(Bytes::from_static(b"{")), false)
        .expect("offer");
    let entry = rec.commit_head_alone().await.expect("commit");
    assert_eq!((entry.status, entry.size), (401, 0));
    assert!(entry
        .headers
        .iter()
        .any(|(k, v)| k == "www-authenticate" && v.to_str() == Some("Bearer realm=\"r\"")));
    let blob = plan(&w, &c, Method::GET, URL).await;
    let rec = Recorder::begin(blob, 200, &HeaderMap::new())
        .await
        .expect("begin");
    assert!(!rec.head_suffices());
    rec.abort();
}

#[tokio::test]
async fn playback_tries_the_adapter_fallback_keys() {
    let w = world();
    let c = session(&w, "fallback", Mode::Record).await;
    record(plan(&w, &c, Method::GET, URL).await, 200, b"content").await;
    w.sessions.stop(&c.session.info.id).await.expect("stop");
    let p = session(&w, "fallback", Mode::Playback).await;
    let Decision::Respond(reply) = send(&w, &p, Method::HEAD, URL).await else {
        panic!("playback answers");
    };
    assert_eq!(reply.status, StatusCode::OK, "HEAD from the recorded GET");
    assert!(matches!(reply.body, ReplyBody::Blob { len: 0, .. }));
    let Decision::Respond(reply) = send(&w, &p, Method::HEAD, "https://files.example.test/x").await
    else {
        panic!("playback answers");
    };
    assert_eq!(reply.status, StatusCode::NOT_FOUND, "files has no fallback");
    let summary = w.sessions.stop(&p.session.info.id).await.expect("stop");
    assert_eq!((summary.hits, summary.misses), (1, 1));
}

/// A store that falls behind the upstream never makes the recorder hold
/// more than `MAX_PENDING_BYTES`: the recording is abandoned with a note,
/// and nothing is committed.
#[tokio::test]
async fn a_store_behind_the_upstream_abandons_the_recording_not_memory() {
    let w = world();
    let c = session(&w, "slowstore", Mode::Record).await;
    let p = plan(&w, &c, Method::GET, "https://hooked.example.test:443/huge").await;
    let mut rec = Recorder::begin(p, 200, &HeaderMap::new())
        .await
        .expect("begin");
    // No await between the offers: the writer task never runs, as with a
    // store that does not answer.
    let chunk = Bytes::from(vec![7u8; 1024 * 1024]);
    let mut paused = 0;
    for _ in 0..64 {
        if rec
            .offer(&mut Some(chunk.clone()), false)
            .expect("offer")
            .is_some()
        {
            paused += 1;
        }
    }
    assert!(paused > 0, "upstream reads pause while chunks wait");
    let errors = c.session.summary().errors;
    assert!(
        errors.iter().any(|e| e.contains("recording was abandoned")),
        "{errors:?}"
    );
    assert!(rec.commit(None).await.is_err(), "nothing is committed");
}
