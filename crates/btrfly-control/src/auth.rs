//! Who is calling, and may they: one middleware ([`authenticate`]) turns
//! `Authorization: Bearer TOKEN` into the token's record (a request
//! extension), and each handler names the scope it needs by taking
//! [`Need<S>`] (`Need<Read>`, `Need<Record>`, `Need<Admin>`) as an
//! argument: a handler without one does not see the caller at all.

use std::marker::PhantomData;
use std::sync::Arc;

use axum::extract::{FromRequestParts, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use btrfly_core::api::TokenInfo;
use btrfly_core::Scope;
use http::request::Parts;
use http::{header, HeaderValue, Method, StatusCode};

use crate::server::{error, ControlState};

/// The token a request was made with (live, not revoked).
#[derive(Clone, Debug)]
pub struct Caller(pub TokenInfo);

/// Routes anyone may call: liveness, the CA certificate (public) and the
/// metrics (counts only).
fn open(method: &Method, path: &str) -> bool {
    method == Method::GET && matches!(path, "/v1/health" | "/v1/ca" | "/metrics")
}

/// The token of `Authorization: Bearer TOKEN`, if the header has that form.
fn bearer(req: &Request) -> Option<&[u8]> {
    let value = req
        .headers()
        .get(header::AUTHORIZATION)
        .map(HeaderValue::as_bytes)?;
    let (scheme, token) = value.split_at_checked(7)?;
    scheme.eq_ignore_ascii_case(b"bearer ").then_some(token)
}

/// Every call but the open ones needs a live token: 401 without one. The
/// token's record goes into the request's extensions as [`Caller`].
pub async fn authenticate(
    State(state): State<Arc<ControlState>>,
    mut req: Request,
    next: Next,
) -> Response {
    if open(req.method(), req.uri().path()) {
        return next.run(req).await;
    }
    let found = match bearer(&req) {
        Some(token) => state.tokens.authenticate(token).await,
        None => Ok(None),
    };
    match found {
        Ok(Some(info)) => {
            req.extensions_mut().insert(Caller(info));
            next.run(req).await
        }
        Ok(None) => error(
            StatusCode::UNAUTHORIZED,
            "wrong, revoked or missing control token: pass --token or BTRFLY_TOKEN (the server writes its first admin token to <data_dir>/token; `btrfly token create` makes more)",
        ),
        Err(e) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("reading the control tokens: {e}"),
        ),
    }
}

/// A scope a handler can ask for with [`Need`].
pub trait NeededScope: Send + Sync + 'static {
    /// The scope.
    const SCOPE: Scope;
}

/// `read`: look at tags, sessions, the mirror.
pub struct Read;
/// `record`: start and stop sessions, declare mirror entries.
pub struct Record;
/// `admin`: manage tokens.
pub struct Admin;

impl NeededScope for Read {
    const SCOPE: Scope = Scope::Read;
}
impl NeededScope for Record {
    const SCOPE: Scope = Scope::Record;
}
impl NeededScope for Admin {
    const SCOPE: Scope = Scope::Admin;
}

/// The caller, proven to hold scope `S` (or a wider one); 403 naming the
/// scope needed and the token's own otherwise.
pub struct Need<S: NeededScope> {
    /// The caller's token.
    pub caller: TokenInfo,
    _scope: PhantomData<S>,
}

impl<S: NeededScope, St: Send + Sync> FromRequestParts<St> for Need<S> {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _: &St) -> Result<Self, Self::Rejection> {
        let Some(Caller(caller)) = parts.extensions.get::<Caller>().cloned() else {
            return Err(error(
                StatusCode::UNAUTHORIZED,
                "this call needs a control token",
            ));
        };
        if caller.scope.allows(S::SCOPE) {
            Ok(Need {
                caller,
                _scope: PhantomData,
            })
        } else {
            Err(error(
                StatusCode::FORBIDDEN,
                format!(
                    "this needs a token with the {} scope; the token {} ({}) has {}",
                    S::SCOPE,
                    caller.name,
                    caller.id,
                    caller.scope
                ),
            ))
        }
    }
}
