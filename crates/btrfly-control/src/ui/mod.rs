//! The web UI on the control listener: server-rendered pages (maud), no
//! JavaScript, reading sessions and tags as the JSON API does.
//!
//! | method | path                                  | page |
//! |--------|---------------------------------------|------|
//! | GET    | /                                     | `303` to `/ui/` |
//! | GET    | /ui/login                             | the login form (a control token) |
//! | POST   | /ui/login                             | `token`, `csrf`: starts a session, `303` to `/ui/`; `401` for a wrong token |
//! | POST   | /ui/logout                            | `csrf`: ends the session |
//! | GET    | /ui/                                  | dashboard: active sessions and their counters, tags with entry counts and sizes, the storage backend |
//! | GET    | /ui/tags/{tag}?q=&sort=&order=        | a tag's entries, searched and sorted on the server ([`table`]) |
//! | GET    | /ui/tags/{tag}/entries/{key}/body     | an entry's recorded body (`key`: the recording key's id), streamed from the store as an attachment and hashed on the way: a body that does not match its digest is cut short |
//! | GET    | /ui/diff?a=&b=                        | two tags compared ([`crate::archive::tag_diff`], the API's diff) |
//! | GET    | /ui/mirror                            | the explicit mirror's entries, newest first, and the form declaring one ([`mirror`]) |
//! | POST   | /ui/mirror                            | `source`, `sha256`, `note`, `csrf` (record scope): declares an entry as `POST /v1/mirror` does, `303` back to the page with the outcome |
//! | GET    | /ui/style.css                         | the stylesheet (no session needed) |
//!
//! Who may do what is [`session`]'s: a page needs a session whose token
//! has the `read` scope (else `303` to the login form), a form that
//! writes names its scope with [`Posted`], and every `POST` carries the
//! session's CSRF token. Pages never show a token or the CA key. Every
//! answer carries a restrictive `Content-Security-Policy` (no scripts at
//! all), `X-Frame-Options: DENY`, `Referrer-Policy: no-referrer` and
//! `Cache-Control: no-store`.
//!
//! A new page (as the mirror's, [`mirror`]) is one route in [`routes`],
//! its markup beside the others in [`pages`], one line in the navigation
//! (`pages::NAV`), and a [`Posted<Record, _>`] for a form that writes.

pub mod mirror;
pub mod pages;
pub mod session;
pub mod table;

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, FromRequest, FromRequestParts, Path, Query, Request, State};
use axum::middleware;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use btrfly_archive::store::tag_entries;
use btrfly_archive::ArchiveError;
use btrfly_core::api::TokenInfo;
use btrfly_core::Sha256;
use btrfly_core::{Scope, Tag};
use btrfly_store::BlobStream;
use futures::{Stream, StreamExt};
use http::request::Parts;
use http::{header, HeaderMap, HeaderValue, StatusCode};
use maud::Markup;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use sha2::Digest;

use crate::auth::{NeededScope, Read};
use crate::server::ControlState;
use pages::{Chrome, SessionRow, TagRow};
use session::{
    clear_cookie, cookie_value, login_cookie, over_tls, random_hex, secrets_match, session_cookie,
    UiSessions, LOGIN_COOKIE, SESSION_COOKIE,
};
use table::View;

/// At most this many rows of a tag's table are rendered (the count says
/// how many matched).
pub const TABLE_LIMIT: usize = 1000;

/// Forms are a few fields.
const MAX_FORM: usize = 16 * 1024;

/// Tag indexes read at once for the dashboard.
const DASHBOARD_CONCURRENCY: usize = 4;

/// The policy of every UI answer: no scripts, no plugins, no framing;
/// styles and forms from this origin only.
const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The policy of a downloaded body: whatever it holds (HTML a recording
/// brought home) never runs in the UI's origin.
const DOWNLOAD_CSP: &str = "sandbox; default-src 'none'";

const STYLE: &str = include_str!("style.css");

/// What the UI serves from: the control state and the UI's sessions.
pub struct UiState {
    control: Arc<ControlState>,
    sessions: UiSessions,
}

type Ui = State<Arc<UiState>>;

/// The UI's routes (see the module docs), for [`crate::server::router`]
/// to merge beside the API (outside the API's bearer-token middleware:
/// the UI checks its own session cookie).
pub fn routes<S: Clone + Send + Sync + 'static>(control: Arc<ControlState>) -> Router<S> {
    let state = Arc::new(UiState {
        control,
        sessions: UiSessions::default(),
    });
    pages_router()
        .layer(DefaultBodyLimit::max(MAX_FORM))
        .layer(middleware::map_response(security_headers))
        .with_state(state)
}

fn pages_router() -> Router<Arc<UiState>> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/ui/") }))
        .route("/ui", get(|| async { Redirect::to("/ui/") }))
        .route("/ui/", get(dashboard))
        .route("/ui/style.css", get(style))
        .route("/ui/login", get(login_form).post(login))
        .route("/ui/logout", post(logout))
        .route("/ui/tags/{tag}", get(tag_page))
        .route("/ui/tags/{tag}/entries/{key}/body", get(download))
        .route("/ui/diff", get(diff))
        .route("/ui/mirror", get(mirror::page).post(mirror::add))
}

async fn security_headers(mut res: Response) -> Response {
    let h = res.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::CACHE_CONTROL, "no-store"),
    ] {
        if !h.contains_key(&name) {
            h.insert(name, HeaderValue::from_static(value));
        }
    }
    res
}

fn html(status: StatusCode, markup: Markup) -> Response {
    (status, markup).into_response()
}

fn problem(status: StatusCode, chrome: Option<&Chrome>, message: &str) -> Response {
    let title = status.canonical_reason().unwrap_or("Error");
    html(status, pages::problem(chrome, title, message))
}

// === Who is signed in ===

/// A browser with a live UI session whose token has scope `S` (a page
/// handler's argument). Without a session (or with an expired one, or
/// one whose token was revoked) the answer is `303` to the login form;
/// with too narrow a scope, `403` naming the scope needed.
pub struct Signed<S: NeededScope> {
    /// The session's token (its record, never its secret).
    pub caller: TokenInfo,
    /// The session's CSRF token.
    pub csrf: String,
    /// The session cookie's value.
    session_id: String,
    _scope: PhantomData<S>,
}

impl<S: NeededScope> Signed<S> {
    /// What the page shows around its content.
    pub fn chrome(&self) -> Chrome {
        Chrome {
            name: self.caller.name.clone(),
            scope: self.caller.scope,
            csrf: self.csrf.clone(),
        }
    }
}

/// `303` to the login form; `reason` (`expired`, `revoked`) says why.
fn to_login(reason: Option<&str>) -> Response {
    match reason {
        Some(r) => Redirect::to(&format!("/ui/login?reason={r}")).into_response(),
        None => Redirect::to("/ui/login").into_response(),
    }
}

impl<S: NeededScope> FromRequestParts<Arc<UiState>> for Signed<S> {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, ui: &Arc<UiState>) -> Result<Self, Response> {
        let Some(id) = cookie_value(&parts.headers, SESSION_COOKIE) else {
            return Err(to_login(None));
        };
        let Some(session) = ui.sessions.touch(&id, Instant::now()) else {
            return Err(to_login(Some("expired")));
        };
        let caller = match ui.control.tokens.live(&session.token).await {
            Ok(Some(info)) => info,
            Ok(None) => {
                ui.sessions.remove(&id);
                return Err(to_login(Some("revoked")));
            }
            Err(e) => {
                return Err(problem(
                    StatusCode::SERVICE_UNAVAILABLE,
                    None,
                    &format!("reading the control tokens: {e}"),
                ))
            }
        };
        let signed = Signed {
            caller,
            csrf: session.csrf,
            session_id: id,
            _scope: PhantomData,
        };
        if !signed.caller.scope.allows(S::SCOPE) {
            let message = format!(
                "this needs a token with the {} scope; the token {} has {}",
                S::SCOPE,
                signed.caller.name,
                signed.caller.scope
            );
            return Err(problem(
                StatusCode::FORBIDDEN,
                Some(&signed.chrome()),
                &message,
            ));
        }
        Ok(signed)
    }
}

#[derive(Deserialize, Default)]
struct CsrfField {
    #[serde(default)]
    csrf: String,
}

/// A submitted form (`application/x-www-form-urlencoded`, fields `T`) of
/// a signed-in browser whose token has scope `S`, whose `csrf` field
/// equals the session's CSRF token: the only way a UI handler gets a
/// `POST`'s fields. A missing or wrong `csrf` is `403`, and nothing is
/// done.
pub struct Posted<S: NeededScope, T> {
    /// Who sent it.
    pub signed: Signed<S>,
    /// Its fields.
    pub form: T,
}

impl<S: NeededScope, T: DeserializeOwned> FromRequest<Arc<UiState>> for Posted<S, T> {
    type Rejection = Response;

    async fn from_request(req: Request, ui: &Arc<UiState>) -> Result<Self, Response> {
        let (mut parts, body) = req.into_parts();
        let signed = Signed::<S>::from_request_parts(&mut parts, ui).await?;
        let bytes = Bytes::from_request(Request::from_parts(parts, body), ui)
            .await
            .map_err(|e| {
                problem(
                    StatusCode::BAD_REQUEST,
                    Some(&signed.chrome()),
                    &format!("reading the form: {}", e.body_text()),
                )
            })?;
        let presented: CsrfField = serde_urlencoded::from_bytes(&bytes).unwrap_or_default();
        if !secrets_match(&presented.csrf, &signed.csrf) {
            tracing::warn!(token = %signed.caller.name, "web UI form refused: missing or wrong CSRF token");
            return Err(problem(
                StatusCode::FORBIDDEN,
                Some(&signed.chrome()),
                "the form was refused: its CSRF token is missing or does not match this session (reload the page and submit it again)",
            ));
        }
        let form = serde_urlencoded::from_bytes(&bytes).map_err(|e| {
            problem(
                StatusCode::BAD_REQUEST,
                Some(&signed.chrome()),
                &format!("malformed form: {e}"),
            )
        })?;
        Ok(Posted { signed, form })
    }
}

// === Login and logout ===

#[derive(Deserialize)]
struct LoginQuery {
    reason: Option<String>,
}

fn login_page(status: StatusCode, headers: &HeaderMap, problem: Option<&str>) -> Response {
    let csrf = random_hex();
    let mut res = html(status, pages::login(&csrf, problem));
    res.headers_mut()
        .append(header::SET_COOKIE, login_cookie(&csrf, over_tls(headers)));
    res
}

async fn login_form(headers: HeaderMap, Query(query): Query<LoginQuery>) -> Response {
    let why = match query.reason.as_deref() {
        Some("expired") => Some("Your session ended: log in again."),
        Some("revoked") => Some("The token of your session was revoked: log in with another."),
        Some("logout") => Some("You are logged out."),
        _ => None,
    };
    login_page(StatusCode::OK, &headers, why)
}

#[derive(Deserialize)]
struct LoginForm {
    #[serde(default)]
    token: String,
    #[serde(default)]
    csrf: String,
}

async fn login(State(ui): Ui, headers: HeaderMap, body: Bytes) -> Response {
    let form: LoginForm = match serde_urlencoded::from_bytes(&body) {
        Ok(f) => f,
        Err(e) => {
            return problem(
                StatusCode::BAD_REQUEST,
                None,
                &format!("malformed form: {e}"),
            )
        }
    };
    let expected = cookie_value(&headers, LOGIN_COOKIE).unwrap_or_default();
    if !secrets_match(&form.csrf, &expected) {
        return login_page(
            StatusCode::FORBIDDEN,
            &headers,
            Some("The login form was refused: its CSRF token is missing or does not match its cookie. Submit the form again."),
        );
    }
    let info = match ui
        .control
        .tokens
        .authenticate(form.token.trim().as_bytes())
        .await
    {
        Ok(Some(info)) if info.scope.allows(Scope::Read) => info,
        Ok(_) => {
            tracing::warn!("web UI login refused: wrong, revoked or unknown token");
            return login_page(
                StatusCode::UNAUTHORIZED,
                &headers,
                Some("Wrong, revoked or unknown token."),
            );
        }
        Err(e) => {
            return problem(
                StatusCode::SERVICE_UNAVAILABLE,
                None,
                &format!("reading the control tokens: {e}"),
            )
        }
    };
    // A new id at every login: an id planted earlier is worthless.
    if let Some(old) = cookie_value(&headers, SESSION_COOKIE) {
        ui.sessions.remove(&old);
    }
    let (id, _) = ui.sessions.create(info.id.clone(), Instant::now());
    tracing::info!(token = %info.name, id = %info.id, "web UI login");
    let secure = over_tls(&headers);
    let mut res = Redirect::to("/ui/").into_response();
    let h = res.headers_mut();
    h.append(header::SET_COOKIE, session_cookie(&id, secure));
    h.append(header::SET_COOKIE, clear_cookie(LOGIN_COOKIE, secure));
    res
}

async fn logout(State(ui): Ui, headers: HeaderMap, posted: Posted<Read, CsrfField>) -> Response {
    ui.sessions.remove(&posted.signed.session_id);
    tracing::info!(token = %posted.signed.caller.name, "web UI logout");
    let mut res = Redirect::to("/ui/login?reason=logout").into_response();
    res.headers_mut().append(
        header::SET_COOKIE,
        clear_cookie(SESSION_COOKIE, over_tls(&headers)),
    );
    res
}

// === Pages ===

async fn style() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        STYLE,
    )
        .into_response()
}

async fn dashboard(signed: Signed<Read>, State(ui): Ui) -> Response {
    let chrome = signed.chrome();
    let store = ui.control.sessions.store();
    let metas = match store.list_tags().await {
        Ok(t) => t,
        Err(e) => {
            return problem(
                StatusCode::SERVICE_UNAVAILABLE,
                Some(&chrome),
                &e.to_string(),
            )
        }
    };
    let tags: Vec<TagRow> = futures::stream::iter(metas)
        .map(|meta| async move {
            let counts = match store.load_index(&meta).await {
                Ok(index) => Ok((index.len(), index.entries().map(|e| e.size).sum())),
                Err(e) => Err(e.to_string()),
            };
            TagRow { meta, counts }
        })
        .buffered(DASHBOARD_CONCURRENCY)
        .collect()
        .await;
    let mut sessions: Vec<SessionRow> = ui
        .control
        .sessions
        .live_sessions()
        .iter()
        .map(|s| SessionRow {
            summary: s.summary(),
            started_at: s.info.started_at,
        })
        .collect();
    sessions.sort_by_key(|s| s.started_at);
    let mirror = mirror::counts(store).await;
    html(
        StatusCode::OK,
        pages::dashboard(
            &chrome,
            &tags,
            &sessions,
            &mirror,
            store.backend(),
            store.location(),
        ),
    )
}

fn tag_error(chrome: &Chrome, e: &ArchiveError) -> Response {
    let status = match e {
        ArchiveError::NoSuchTag(_) => StatusCode::NOT_FOUND,
        _ => StatusCode::SERVICE_UNAVAILABLE,
    };
    problem(status, Some(chrome), &e.to_string())
}

#[derive(Deserialize)]
struct TagQuery {
    q: Option<String>,
    sort: Option<String>,
    order: Option<String>,
}

async fn tag_page(
    signed: Signed<Read>,
    State(ui): Ui,
    Path(name): Path<String>,
    Query(query): Query<TagQuery>,
) -> Response {
    let chrome = signed.chrome();
    let tag = match Tag::new(&name) {
        Ok(t) => t,
        Err(e) => return problem(StatusCode::BAD_REQUEST, Some(&chrome), &e.to_string()),
    };
    let view = match View::parse(
        query.q.as_deref(),
        query.sort.as_deref(),
        query.order.as_deref(),
    ) {
        Ok(v) => v,
        Err(e) => return problem(StatusCode::BAD_REQUEST, Some(&chrome), &e),
    };
    let (meta, entries) = match tag_entries(ui.control.sessions.store(), &tag).await {
        Ok(found) => found,
        Err(e) => return tag_error(&chrome, &e),
    };
    let matched = view.apply(&entries);
    html(
        StatusCode::OK,
        pages::tag_page(&chrome, &meta, entries.len(), &matched, TABLE_LIMIT, &view),
    )
}

/// A file name for a downloaded body: the URL's last path segment, with
/// only `A-Z a-z 0-9 . _ -` kept; `body` when nothing is left.
fn download_name(url: &str) -> String {
    let path = url.split(['?', '#']).next().unwrap_or_default();
    let last = path.rsplit('/').next().unwrap_or_default();
    let name: String = last
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        .collect();
    if name.trim_matches('.').is_empty() {
        "body".to_owned()
    } else {
        name
    }
}

async fn download(
    signed: Signed<Read>,
    State(ui): Ui,
    Path((name, key)): Path<(String, String)>,
) -> Response {
    let chrome = signed.chrome();
    let tag = match Tag::new(&name) {
        Ok(t) => t,
        Err(e) => return problem(StatusCode::BAD_REQUEST, Some(&chrome), &e.to_string()),
    };
    let store = ui.control.sessions.store();
    let entry = match tag_entries(store, &tag).await {
        Ok((_, entries)) => entries.into_iter().find(|e| e.key.id() == key),
        Err(e) => return tag_error(&chrome, &e),
    };
    let Some(entry) = entry else {
        return problem(
            StatusCode::NOT_FOUND,
            Some(&chrome),
            &format!("tag {tag} has no entry {key}"),
        );
    };
    let stream = match store.read_blob(&entry.sha256, None).await {
        Ok(s) => s,
        Err(e) => {
            return problem(
                StatusCode::SERVICE_UNAVAILABLE,
                Some(&chrome),
                &format!("reading the body of {}: {e}", entry.url),
            )
        }
    };
    let disposition = format!("attachment; filename=\"{}\"", download_name(&entry.url));
    let mut res = Body::from_stream(verified(stream, entry.sha256.clone())).into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(entry.size));
    if let Ok(v) = HeaderValue::from_str(&disposition) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(DOWNLOAD_CSP),
    );
    if let Ok(v) = HeaderValue::from_str(entry.sha256.as_str()) {
        h.insert("x-btrfly-sha256", v);
    }
    res
}

/// What [`verified`] carries between chunks; `None` once it has ended.
struct Verifying {
    stream: BlobStream,
    hasher: sha2::Sha256,
    held: Option<Bytes>,
    expected: Sha256,
}

/// `stream` (a blob's bytes) hashed as it goes, its last chunk held back
/// until the digest is known (as playback does): when the bytes do not
/// hash to `expected` the last chunk is never sent and the stream ends in
/// an error, so the browser gets a cut download (fewer bytes than
/// `Content-Length`), never a complete one with altered bytes.
fn verified(stream: BlobStream, expected: Sha256) -> impl Stream<Item = std::io::Result<Bytes>> {
    let start = Verifying {
        stream,
        hasher: sha2::Sha256::new(),
        held: None,
        expected,
    };
    futures::stream::unfold(Some(start), |state| async move {
        let mut v = state?;
        loop {
            match v.stream.next().await {
                Some(Ok(chunk)) => {
                    v.hasher.update(&chunk);
                    if let Some(previous) = v.held.replace(chunk) {
                        return Some((Ok(previous), Some(v)));
                    }
                }
                Some(Err(e)) => return Some((Err(e), None)),
                None => {
                    let got = hex::encode(v.hasher.finalize());
                    if got != v.expected.as_str() {
                        tracing::warn!(expected = %v.expected, %got, "web UI download cut: the stored body does not match its digest");
                        let e = std::io::Error::other(format!(
                            "the stored body has sha256 {got}, not {}",
                            v.expected
                        ));
                        return Some((Err(e), None));
                    }
                    return v.held.map(|last| (Ok(last), None));
                }
            }
        }
    })
}

#[derive(Deserialize)]
struct DiffQuery {
    a: Option<String>,
    b: Option<String>,
}

async fn diff(signed: Signed<Read>, State(ui): Ui, Query(query): Query<DiffQuery>) -> Response {
    let chrome = signed.chrome();
    let store = ui.control.sessions.store();
    let tags: Vec<Tag> = match store.list_tags().await {
        Ok(t) => t.into_iter().map(|m| m.tag).collect(),
        Err(e) => {
            return problem(
                StatusCode::SERVICE_UNAVAILABLE,
                Some(&chrome),
                &e.to_string(),
            )
        }
    };
    let a = query.a.filter(|s| !s.is_empty());
    let b = query.b.filter(|s| !s.is_empty());
    let (result, status) = match (&a, &b) {
        (Some(a), Some(b)) => {
            let (r, status) = match (Tag::new(a), Tag::new(b)) {
                (Ok(ta), Ok(tb)) => match crate::archive::tag_diff(store, &ta, &tb).await {
                    Ok(d) => (Ok(d), StatusCode::OK),
                    Err(e @ ArchiveError::NoSuchTag(_)) => {
                        (Err(e.to_string()), StatusCode::NOT_FOUND)
                    }
                    Err(e) => (Err(e.to_string()), StatusCode::SERVICE_UNAVAILABLE),
                },
                (Err(e), _) | (_, Err(e)) => (Err(e.to_string()), StatusCode::BAD_REQUEST),
            };
            (Some(r), status)
        }
        _ => (None, StatusCode::OK),
    };
    html(
        status,
        pages::diff_page(&chrome, &tags, a.as_deref(), b.as_deref(), result.as_ref()),
    )
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod unit {
    use super::*;

    async fn drain(body: &[&'static [u8]], expected: Sha256) -> (Vec<u8>, Option<String>) {
        let chunks: Vec<std::io::Result<Bytes>> =
            body.iter().map(|c| Ok(Bytes::from_static(c))).collect();
        let stream: BlobStream = Box::pin(futures::stream::iter(chunks));
        let mut got = Vec::new();
        let mut s = std::pin::pin!(verified(stream, expected));
        while let Some(item) = s.next().await {
            match item {
                Ok(c) => got.extend_from_slice(&c),
                Err(e) => return (got, Some(e.to_string())),
            }
        }
        (got, None)
    }

    #[tokio::test]
    async fn downloads_are_hashed_and_cut_on_a_mismatch() {
        let (got, err) = drain(&[b"hello ", b"world"], Sha256::of(b"hello world")).await;
        assert_eq!((got.as_slice(), err), (&b"hello world"[..], None));
        let (got, err) = drain(&[b"hello ", b"w0rld"], Sha256::of(b"hello world")).await;
        assert_eq!(got, b"hello ", "the last chunk is held back");
        let err = err.expect("a mismatch ends in an error");
        assert!(
            err.contains(&format!("not {}", Sha256::of(b"hello world"))),
            "{err}"
        );
        let (got, err) = drain(&[], Sha256::of(b"")).await;
        assert!(got.is_empty() && err.is_none());
    }

    #[test]
    fn download_names_are_tame() {
        assert_eq!(
            download_name("https://files.example.test/pkg/six-1.16.0.tar.gz?x=1"),
            "six-1.16.0.tar.gz"
        );
        assert_eq!(download_name("https://files.example.test/"), "body");
        assert_eq!(
            download_name("https://h.example.test/a\"b;c.txt"),
            "abc.txt"
        );
        assert_eq!(download_name("https://h.example.test/.."), "body");
    }
}
