//! The UI's rules through its router, without sockets: login and its
//! CSRF cookie, the CSRF token of a form, and the scope a form names.

use super::*;
use crate::auth::Record;
use crate::tokens::Tokens;
use axum::routing::post;
use btrfly_core::TokenName;
use btrfly_session::SessionRegistry;
use btrfly_store::{Store, StoreOptions};
use http_body_util::BodyExt;
use tower::ServiceExt;

const ADMIN: &str = "first-admin-secret";

/// A form that writes, as the mirror's will be: it needs `record`.
async fn write_probe(posted: Posted<Record, CsrfField>) -> Response {
    (
        StatusCode::OK,
        format!("written by {}", posted.signed.caller.name),
    )
        .into_response()
}

async fn app() -> (Router, Arc<UiState>) {
    let store = Store::open(&StoreOptions::Memory).expect("store");
    let tokens = Tokens::open(store.clone(), ADMIN).await.expect("tokens");
    let control = Arc::new(ControlState {
        sessions: Arc::new(SessionRegistry::new(store)),
        ca_pem: String::new(),
        proxy_advertise: String::new(),
        tokens: Arc::new(tokens),
        metrics: Arc::new(prometheus_client::registry::Registry::default()),
        dns_advertise: None,
        classify: Arc::new(|_| None),
        mirror_added: Arc::new(tokio::sync::Notify::new()),
    });
    let ui = Arc::new(UiState {
        control,
        sessions: UiSessions::default(),
    });
    let router = pages_router()
        .route("/ui/test/write", post(write_probe))
        .with_state(ui.clone());
    (router, ui)
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

async fn call(router: &Router, method: &str, path: &str, cookie: &str, form: &str) -> Answer {
    let mut req = Request::builder().method(method).uri(path);
    if !cookie.is_empty() {
        req = req.header(header::COOKIE, cookie);
    }
    if method == "POST" {
        req = req.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    }
    let req = req.body(Body::from(form.to_owned())).expect("request");
    let res = router.clone().oneshot(req).await.expect("infallible");
    let status = res.status();
    let headers = res.headers().clone();
    let body = res.into_body().collect().await.expect("body").to_bytes();
    Answer {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

/// The `name=value` of the `Set-Cookie` for `name`.
fn set_cookie(a: &Answer, name: &str) -> Option<String> {
    a.headers
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .and_then(|v| v.split(';').next())
        .map(str::to_owned)
}

/// The value of the page's hidden `csrf` field.
fn csrf_of(page: &str) -> String {
    let at = page
        .find("name=\"csrf\" value=\"")
        .expect("a csrf field on the page")
        + "name=\"csrf\" value=\"".len();
    page[at..at + 64].to_owned()
}

/// Logs in with `token`: the session cookie (`btrfly_ui=…`).
async fn log_in(router: &Router, token: &str) -> String {
    let form = call(router, "GET", "/ui/login", "", "").await;
    let login_cookie = set_cookie(&form, LOGIN_COOKIE).expect("login cookie");
    let csrf = csrf_of(&form.body);
    assert_eq!(login_cookie, format!("{LOGIN_COOKIE}={csrf}"));
    let body = format!("token={token}&csrf={csrf}");
    let a = call(router, "POST", "/ui/login", &login_cookie, &body).await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    set_cookie(&a, SESSION_COOKIE).expect("session cookie")
}

#[tokio::test]
async fn login_needs_its_csrf_cookie_and_a_live_token() {
    let (router, ui) = app().await;
    let form = call(&router, "GET", "/ui/login", "", "").await;
    let csrf = csrf_of(&form.body);
    // No cookie, or a cookie that differs from the field: refused.
    let a = call(
        &router,
        "POST",
        "/ui/login",
        "",
        &format!("token={ADMIN}&csrf={csrf}"),
    )
    .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    assert!(set_cookie(&a, SESSION_COOKIE).is_none());
    let other = format!("{LOGIN_COOKIE}={}", "a".repeat(64));
    let a = call(
        &router,
        "POST",
        "/ui/login",
        &other,
        &format!("token={ADMIN}&csrf={csrf}"),
    )
    .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    // A wrong token: 401, no session.
    let cookie = format!("{LOGIN_COOKIE}={csrf}");
    let a = call(
        &router,
        "POST",
        "/ui/login",
        &cookie,
        &format!("token=nope&csrf={csrf}"),
    )
    .await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert!(a.body.contains("Wrong, revoked or unknown token."));
    assert!(set_cookie(&a, SESSION_COOKIE).is_none());
    assert!(ui.sessions.is_empty());
    // The right one: a session, and the dashboard shows who.
    let session = log_in(&router, ADMIN).await;
    assert_eq!(ui.sessions.len(), 1);
    let page = call(&router, "GET", "/ui/", &session, "").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page
        .body
        .contains("signed in as <strong>admin</strong> (admin)"));
    assert!(!page.body.contains(ADMIN), "a page never shows a token");
    // No session: to the login form.
    let page = call(&router, "GET", "/ui/", "", "").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(page.headers[header::LOCATION], "/ui/login");
}

#[tokio::test]
async fn a_form_needs_the_sessions_csrf_token_and_its_scope() {
    let (router, ui) = app().await;
    let admin = TokenName::new("admin").expect("name");
    let make = |name: &str, scope: Scope| {
        let tokens = ui.control.tokens.clone();
        let admin = admin.clone();
        let name = TokenName::new(name).expect("name");
        async move {
            tokens
                .create(name, scope, &admin)
                .await
                .expect("token")
                .token
        }
    };
    let reader = make("reader", Scope::Read).await;
    let recorder = make("recorder", Scope::Record).await;

    let session = log_in(&router, &recorder).await;
    let page = call(&router, "GET", "/ui/diff", &session, "").await;
    let csrf = csrf_of(&page.body);
    let a = call(&router, "POST", "/ui/test/write", &session, "").await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "no CSRF token");
    assert!(a.body.contains("its CSRF token is missing"), "{}", a.body);
    let wrong = format!("csrf={}", "0".repeat(64));
    let a = call(&router, "POST", "/ui/test/write", &session, &wrong).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "a wrong CSRF token");
    let a = call(
        &router,
        "POST",
        "/ui/test/write",
        &session,
        &format!("csrf={csrf}"),
    )
    .await;
    assert_eq!(
        (a.status, a.body.as_str()),
        (StatusCode::OK, "written by recorder")
    );

    // A read token may look, not write, CSRF token or not.
    let session = log_in(&router, &reader).await;
    let page = call(&router, "GET", "/ui/", &session, "").await;
    assert_eq!(page.status, StatusCode::OK);
    let csrf = csrf_of(&page.body);
    let a = call(
        &router,
        "POST",
        "/ui/test/write",
        &session,
        &format!("csrf={csrf}"),
    )
    .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    assert!(
        a.body
            .contains("this needs a token with the record scope; the token reader has read"),
        "{}",
        a.body
    );

    // Logout needs the CSRF token too, and ends the session.
    let a = call(&router, "POST", "/ui/logout", &session, "").await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    let a = call(
        &router,
        "POST",
        "/ui/logout",
        &session,
        &format!("csrf={csrf}"),
    )
    .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER);
    let page = call(&router, "GET", "/ui/", &session, "").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn the_mirror_form_declares_as_the_api_does_and_says_why_it_refuses() {
    let (router, ui) = app().await;
    let admin = TokenName::new("admin").expect("name");
    let builder = ui
        .control
        .tokens
        .create(
            TokenName::new("builder").expect("name"),
            Scope::Record,
            &admin,
        )
        .await
        .expect("token")
        .token;
    let session = log_in(&router, &builder).await;
    let page = call(&router, "GET", "/ui/mirror", &session, "").await;
    assert_eq!(page.status, StatusCode::OK);
    let csrf = csrf_of(&page.body);
    let store = ui.control.sessions.store();

    // A tag-only image: 303 back, the reason shown once, the form refilled.
    let form = format!(
        "csrf={csrf}&source=registry.example.test%2Fteam%2Fapp%3A1.0&sha256=&note=the+CI+image"
    );
    let a = call(&router, "POST", "/ui/mirror", &session, &form).await;
    assert_eq!(a.status, StatusCode::SEE_OTHER);
    assert_eq!(a.headers[header::LOCATION], "/ui/mirror");
    let page = call(&router, "GET", "/ui/mirror", &session, "").await;
    assert!(
        page.body.contains("images are mirrored by digest only"),
        "{}",
        page.body
    );
    assert!(page
        .body
        .contains("value=\"registry.example.test/team/app:1.0\""));
    assert!(page.body.contains(">the CI image</textarea>"));
    let again = call(&router, "GET", "/ui/mirror", &session, "").await;
    assert!(
        !again.body.contains("images are mirrored by digest only"),
        "shown once"
    );
    assert!(store.list_mirror_entries().await.expect("list").is_empty());

    // A blank note: refused with the API's words.
    let form = format!("csrf={csrf}&source=https%3A%2F%2Ffiles.example.test%2Fa.bin&note=+++");
    call(&router, "POST", "/ui/mirror", &session, &form).await;
    let page = call(&router, "GET", "/ui/mirror", &session, "").await;
    assert!(page
        .body
        .contains(&crate::mirror::DeclareError::NoNote.to_string()));
    assert!(store.list_mirror_entries().await.expect("list").is_empty());

    // A file: pending, added by the session's token, the fetcher woken.
    let woken = ui.control.mirror_added.clone();
    let form = format!(
        "csrf={csrf}&source=https%3A%2F%2Ffiles.example.test%2Fa.bin&sha256=&note=the+vendor+blob"
    );
    let a = call(&router, "POST", "/ui/mirror", &session, &form).await;
    assert_eq!(a.status, StatusCode::SEE_OTHER);
    tokio::time::timeout(std::time::Duration::from_secs(5), woken.notified())
        .await
        .expect("the fetcher is woken");
    let entries = store.list_mirror_entries().await.expect("list");
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].added_by, "builder");
    assert_eq!(entries[0].note, "the vendor blob");
    assert_eq!(entries[0].state, btrfly_core::MirrorState::Pending);
    let page = call(&router, "GET", "/ui/mirror", &session, "").await;
    assert!(page
        .body
        .contains(&format!("Entry {} added", entries[0].id)));
    assert!(page.body.contains("data-state=\"pending\""));
    let dash = call(&router, "GET", "/ui/", &session, "").await;
    assert!(
        dash.body.contains("<dd class=\"mirror-pending\">1</dd>"),
        "{}",
        dash.body
    );
}
