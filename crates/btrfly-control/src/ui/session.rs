//! Web UI sessions: who a browser is, and the proof that a form came from
//! a page this server rendered for it.
//!
//! - A login trades a control token for a session: a random id (32 bytes,
//!   64 hex digits) in the `btrfly_ui` cookie (`HttpOnly`,
//!   `SameSite=Strict`, `Path=/ui`, `Secure` when the request came over
//!   TLS). The server keeps, under the sha256 of that id, the token's *id*
//!   (never its secret), the session's CSRF token and its times. Every
//!   request looks the token up again ([`crate::Tokens::live`]), so a
//!   revoked token ends its sessions.
//! - A session expires after [`IDLE_TIMEOUT`] without a request, and
//!   [`MAX_LIFETIME`] after the login in any case. At most
//!   [`MAX_SESSIONS`] are kept (the least recently used goes first).
//! - CSRF (OWASP's synchroniser token pattern): every form of a logged-in
//!   page carries the session's CSRF token in a hidden `csrf` field, and a
//!   `POST` is refused unless the field equals the session's token
//!   (compared in constant time). The login form, which has no session
//!   yet, uses a double-submit cookie (`btrfly_ui_login`) instead; a login
//!   starts a new session id, so an id planted before the login is
//!   worthless (no session fixation).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use btrfly_core::{Sha256, TokenId};
use cookie::{Cookie, SameSite};
use http::{header, HeaderMap, HeaderValue};
use subtle::ConstantTimeEq;

/// A session ends after this long without a request.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// A session ends this long after its login, however busy.
pub const MAX_LIFETIME: Duration = Duration::from_secs(12 * 60 * 60);

/// The most sessions kept at once (per replica).
pub const MAX_SESSIONS: usize = 10_000;

/// The session cookie.
pub const SESSION_COOKIE: &str = "btrfly_ui";

/// The login form's double-submit CSRF cookie.
pub const LOGIN_COOKIE: &str = "btrfly_ui_login";

/// The path both cookies are scoped to.
pub const COOKIE_PATH: &str = "/ui";

/// How long the login form's CSRF cookie lives.
const LOGIN_COOKIE_AGE: Duration = Duration::from_secs(30 * 60);

/// 32 random bytes as 64 lower-case hex digits.
pub fn random_hex() -> String {
    let bytes: [u8; 32] = rand::random();
    hex::encode(bytes)
}

/// Whether two secrets are equal, in time that depends on their lengths
/// only. An empty `presented` never matches.
pub fn secrets_match(presented: &str, expected: &str) -> bool {
    !presented.is_empty() && bool::from(presented.as_bytes().ct_eq(expected.as_bytes()))
}

/// What the server keeps of one logged-in browser.
#[derive(Clone, Debug)]
pub struct UiSession {
    /// The id of the token it logged in with.
    pub token: TokenId,
    /// What its forms must carry in their `csrf` field.
    pub csrf: String,
    /// What the last form's handler had to say, shown once by the page it
    /// redirected to (Post/Redirect/Get).
    pub notice: Option<Notice>,
    created: Instant,
    last_seen: Instant,
}

impl UiSession {
    fn expired(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.last_seen) >= IDLE_TIMEOUT
            || now.saturating_duration_since(self.created) >= MAX_LIFETIME
    }
}

/// The outcome of a form, kept in its session between the `POST` and the
/// `303` it answers with, and shown once by the page it leads to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Notice {
    /// Whether the form was refused (else it was done).
    pub refused: bool,
    /// What happened, in words.
    pub message: String,
    /// A refused form's fields (name, value), to fill it in again: bad
    /// input loses nothing. At most the form's size limit.
    pub fields: Vec<(String, String)>,
}

impl Notice {
    /// The value of field `name`, or `""`.
    pub fn field(&self, name: &str) -> &str {
        self.fields
            .iter()
            .find(|(n, _)| n == name)
            .map_or("", |(_, v)| v.as_str())
    }
}

/// The sessions of this replica, in memory (a restart logs everyone out).
#[derive(Default)]
pub struct UiSessions {
    by_digest: Mutex<HashMap<Sha256, UiSession>>,
}

impl UiSessions {
    /// A new session for `token` at `now`: its id, for the cookie, and its
    /// record.
    pub fn create(&self, token: TokenId, now: Instant) -> (String, UiSession) {
        let id = random_hex();
        let session = UiSession {
            token,
            csrf: random_hex(),
            notice: None,
            created: now,
            last_seen: now,
        };
        let mut map = self.lock();
        if map.len() >= MAX_SESSIONS {
            map.retain(|_, s| !s.expired(now));
        }
        if map.len() >= MAX_SESSIONS {
            let oldest = map
                .iter()
                .min_by_key(|(_, s)| s.last_seen)
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                map.remove(&k);
            }
        }
        map.insert(Sha256::of(id.as_bytes()), session.clone());
        (id, session)
    }

    /// The live session with cookie value `id` at `now`, which counts as
    /// its latest use; an expired one is forgotten and `None`.
    pub fn touch(&self, id: &str, now: Instant) -> Option<UiSession> {
        let key = Sha256::of(id.as_bytes());
        let mut map = self.lock();
        let session = map.get_mut(&key)?;
        if session.expired(now) {
            map.remove(&key);
            return None;
        }
        session.last_seen = now;
        Some(session.clone())
    }

    /// Keeps `notice` in the session with cookie value `id`, replacing an
    /// earlier one (nothing when the session is gone).
    pub fn set_notice(&self, id: &str, notice: Notice) {
        if let Some(s) = self.lock().get_mut(&Sha256::of(id.as_bytes())) {
            s.notice = Some(notice);
        }
    }

    /// The notice of the session with cookie value `id`, removed: a page
    /// shows it once.
    pub fn take_notice(&self, id: &str) -> Option<Notice> {
        self.lock()
            .get_mut(&Sha256::of(id.as_bytes()))
            .and_then(|s| s.notice.take())
    }

    /// Forgets the session with cookie value `id` (logout, or its token
    /// was revoked).
    pub fn remove(&self, id: &str) {
        self.lock().remove(&Sha256::of(id.as_bytes()));
    }

    /// How many sessions are kept (expired ones included until seen).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether none is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Sha256, UiSession>> {
        self.by_digest.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == name)
        .map(|c| c.value().to_owned())
}

/// Whether the browser reached us over TLS: through a TLS-terminating
/// reverse proxy that says so (`X-Forwarded-Proto: https`, or RFC 7239's
/// `Forwarded: proto=https`). The control listener itself speaks plain
/// HTTP. Only ever makes a cookie stricter (`Secure`).
pub fn over_tls(headers: &HeaderMap) -> bool {
    let forwarded_proto = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .is_some_and(|p| p.trim().eq_ignore_ascii_case("https"));
    let forwarded = headers
        .get_all(header::FORWARDED)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split([',', ';']))
        .any(|pair| {
            pair.trim().split_once('=').is_some_and(|(k, v)| {
                k.eq_ignore_ascii_case("proto") && v.trim_matches('"').eq_ignore_ascii_case("https")
            })
        });
    forwarded_proto || forwarded
}

/// A `Set-Cookie` value for one of the UI's cookies: `HttpOnly`,
/// `SameSite=Strict`, `Path=/ui`, `Secure` when `secure`; `max_age` of
/// `None` is a browser-session cookie, of zero a deletion.
pub fn set_cookie(name: &str, value: &str, secure: bool, max_age: Option<Duration>) -> HeaderValue {
    let mut c = Cookie::build((name.to_owned(), value.to_owned()))
        .path(COOKIE_PATH)
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(secure);
    if let Some(age) = max_age {
        let secs = i64::try_from(age.as_secs()).unwrap_or(i64::MAX);
        c = c.max_age(cookie::time::Duration::seconds(secs));
    }
    // Names and values here are ASCII letters, digits and underscores.
    HeaderValue::from_str(&c.build().to_string())
        .unwrap_or_else(|_| HeaderValue::from_static("btrfly_ui_invalid=; Path=/ui"))
}

/// The session cookie for a new session.
pub fn session_cookie(id: &str, secure: bool) -> HeaderValue {
    set_cookie(SESSION_COOKIE, id, secure, Some(MAX_LIFETIME))
}

/// The login form's CSRF cookie.
pub fn login_cookie(value: &str, secure: bool) -> HeaderValue {
    set_cookie(LOGIN_COOKIE, value, secure, Some(LOGIN_COOKIE_AGE))
}

/// Deletes cookie `name`.
pub fn clear_cookie(name: &str, secure: bool) -> HeaderValue {
    set_cookie(name, "", secure, Some(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token() -> TokenId {
        TokenId::new("0123456789abcdef").expect("id")
    }

    #[test]
    fn sessions_expire_when_idle_and_after_their_lifetime() {
        let sessions = UiSessions::default();
        let t0 = Instant::now();
        let (id, made) = sessions.create(token(), t0);
        assert_eq!(id.len(), 64);
        assert_ne!(id, made.csrf, "the CSRF token is not the session id");
        let seen = sessions.touch(&id, t0 + Duration::from_secs(60));
        assert_eq!(seen.map(|s| s.csrf), Some(made.csrf.clone()));

        // Used every 20 minutes, it lives until its lifetime ends.
        let mut at = t0;
        while at + Duration::from_secs(20 * 60) < t0 + MAX_LIFETIME {
            at += Duration::from_secs(20 * 60);
            assert!(sessions.touch(&id, at).is_some(), "alive at {:?}", at - t0);
        }
        assert!(sessions.touch(&id, t0 + MAX_LIFETIME).is_none());
        assert!(sessions.is_empty(), "an expired session is forgotten");

        let (idle, _) = sessions.create(token(), t0);
        assert!(sessions.touch(&idle, t0 + IDLE_TIMEOUT).is_none());
        assert!(sessions.touch("nosuch", t0).is_none());
    }

    #[test]
    fn a_notice_is_shown_once() {
        let sessions = UiSessions::default();
        let (id, _) = sessions.create(token(), Instant::now());
        let notice = Notice {
            refused: true,
            message: "no".into(),
            fields: vec![("note".into(), "why".into())],
        };
        sessions.set_notice(&id, notice.clone());
        sessions.set_notice("nosuch", notice.clone());
        let taken = sessions.take_notice(&id);
        assert_eq!(taken.as_ref(), Some(&notice));
        assert_eq!(
            taken.map(|n| n.field("note").to_owned()).as_deref(),
            Some("why")
        );
        assert_eq!(sessions.take_notice(&id), None);
    }

    #[test]
    fn logout_forgets_and_the_map_is_bounded() {
        let sessions = UiSessions::default();
        let t0 = Instant::now();
        let (first, _) = sessions.create(token(), t0);
        sessions.remove(&first);
        assert!(sessions.touch(&first, t0).is_none());
        for i in 0..MAX_SESSIONS + 5 {
            sessions.create(token(), t0 + Duration::from_millis(i as u64));
        }
        assert_eq!(sessions.len(), MAX_SESSIONS);
    }

    #[test]
    fn secrets_compare_whole_and_never_empty() {
        assert!(secrets_match("abc", "abc"));
        assert!(!secrets_match("abd", "abc"));
        assert!(!secrets_match("ab", "abc"));
        assert!(!secrets_match("", ""));
    }

    #[test]
    fn cookies_are_strict_http_only_and_secure_over_tls() {
        let c = session_cookie("ab12", false);
        let s = c.to_str().expect("ascii");
        assert!(s.starts_with("btrfly_ui=ab12;"), "{s}");
        assert!(
            s.contains("HttpOnly") && s.contains("SameSite=Strict"),
            "{s}"
        );
        assert!(s.contains("Path=/ui") && !s.contains("Secure"), "{s}");
        let s = session_cookie("ab12", true);
        assert!(s.to_str().expect("ascii").contains("Secure"));

        let mut h = HeaderMap::new();
        assert!(!over_tls(&h));
        h.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        assert!(over_tls(&h));
        let mut h = HeaderMap::new();
        h.insert(
            header::FORWARDED,
            HeaderValue::from_static("for=192.0.2.1;proto=https;by=203.0.113.4"),
        );
        assert!(over_tls(&h));

        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("other=1; btrfly_ui=feed; btrfly_ui_login=beef"),
        );
        assert_eq!(cookie_value(&h, SESSION_COOKIE).as_deref(), Some("feed"));
        assert_eq!(cookie_value(&h, LOGIN_COOKIE).as_deref(), Some("beef"));
        assert_eq!(cookie_value(&h, "nope"), None);
    }
}
