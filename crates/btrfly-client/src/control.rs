//! A small client of the control API (hyper), for the CLI.

use bytes::Bytes;
use http::{header, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde::de::DeserializeOwned;
use serde::Serialize;

use btrfly_core::Tag;

use btrfly_core::api::{
    BindRequest, BindResponse, ErrorBody, MirrorAddRequest, MirrorList, StartRequest,
    StartResponse, StopRequest, Summary, TagList, TagShow, TokenCreateRequest, TokenCreated,
    TokenInfo, TokenList, WhoAmI,
};
use btrfly_core::TokenId;

/// What went wrong talking to the control API.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server address is not an `http://` URL.
    #[error("server address {url:?}: {message}")]
    InvalidServer {
        /// The address as given.
        url: String,
        /// What to write instead.
        message: String,
    },
    /// Nothing answered.
    #[error("cannot reach the btrfly server at {url}: {message} (is `btrfly serve` running there? pass --server or set BTRFLY_SERVER)")]
    Unreachable {
        /// The request's URL.
        url: String,
        /// The connection error and its causes.
        message: String,
    },
    /// 401: no token, or not the server's.
    #[error("{0}")]
    Unauthorized(String),
    /// The server understood the request and said no; `message` says why.
    #[error("{message}")]
    Server {
        /// The status.
        status: StatusCode,
        /// The server's reason.
        message: String,
    },
    /// An answer that is not the API's.
    #[error("unexpected answer from the btrfly server ({status}): {body}")]
    Protocol {
        /// The status.
        status: StatusCode,
        /// The body as text.
        body: String,
    },
}

impl ClientError {
    /// Whether the server could not be reached at all (nothing was done
    /// there).
    pub fn is_unreachable(&self) -> bool {
        matches!(self, ClientError::Unreachable { .. })
    }
}

/// Checks a control API address: `http://host:port` (a path prefix is
/// allowed). Returns it without a trailing `/`.
///
/// # Errors
/// [`ClientError::InvalidServer`] for an address without a scheme, with
/// `https://` (the control API speaks plain HTTP) or with another scheme.
pub fn parse_server_url(url: &str) -> Result<String, ClientError> {
    let invalid = |message: String| ClientError::InvalidServer {
        url: url.to_owned(),
        message,
    };
    match url.split_once("://") {
        Some(("http", rest)) => {
            let rest = rest.trim_end_matches('/');
            if rest.is_empty() || rest.starts_with('/') {
                return Err(invalid("has no host: write http://HOST:PORT".into()));
            }
            let base = format!("http://{rest}");
            match base.parse::<http::Uri>() {
                Ok(_) => Ok(base),
                Err(e) => Err(invalid(format!("not a URL ({e})"))),
            }
        }
        Some(("https", rest)) => Err(invalid(format!(
            "the control API speaks plain HTTP, not HTTPS: write http://{}",
            rest.trim_end_matches('/')
        ))),
        Some((scheme, _)) => Err(invalid(format!(
            "unknown scheme {scheme:?}: write http://HOST:PORT"
        ))),
        None => Err(invalid(format!(
            "has no scheme: write http://{}",
            url.trim_end_matches('/')
        ))),
    }
}

/// A client of one server's control API.
pub struct ControlClient {
    base: String,
    token: Option<String>,
    http: Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
}

impl ControlClient {
    /// A client of the control API at `base` (`http://host:port`).
    ///
    /// # Errors
    /// [`ClientError::InvalidServer`] when `base` is not an `http://` URL
    /// (see [`parse_server_url`]).
    pub fn new(base: &str, token: Option<String>) -> Result<ControlClient, ClientError> {
        Ok(ControlClient {
            base: parse_server_url(base)?,
            token,
            http: Client::builder(TokioExecutor::new()).build_http(),
        })
    }

    /// The server's address, as requests use it.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// One request; the status and the whole (small) answer.
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<(StatusCode, Bytes), ClientError> {
        let url = format!("{}{path}", self.base);
        let unreachable = |message: String| ClientError::Unreachable {
            url: url.clone(),
            message,
        };
        let mut req = Request::builder().method(method).uri(&url);
        if let Some(t) = &self.token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        if body.is_some() {
            req = req.header(header::CONTENT_TYPE, "application/json");
        }
        let req = req
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| unreachable(e.to_string()))?;
        let resp = self
            .http
            .request(req)
            .await
            .map_err(|e| unreachable(error_chain(&e)))?;
        let status = resp.status();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| unreachable(e.to_string()))?
            .to_bytes();
        Ok((status, bytes))
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<T, ClientError> {
        let (status, bytes) = self.send(method, path, body).await?;
        if status.is_success() {
            return serde_json::from_slice(&bytes).map_err(|_| ClientError::Protocol {
                status,
                body: String::from_utf8_lossy(&bytes).into_owned(),
            });
        }
        Err(refusal(status, &bytes))
    }

    /// The `Authorization` value requests carry, when there is a token.
    pub(crate) fn authorization(&self) -> Option<String> {
        self.token.as_ref().map(|t| format!("Bearer {t}"))
    }

    /// `GET path`: the status, the head and the whole (small) answer.
    pub(crate) async fn get_with_head(
        &self,
        path: &str,
    ) -> Result<(StatusCode, http::HeaderMap, Bytes), ClientError> {
        let url = format!("{}{path}", self.base);
        let unreachable = |message: String| ClientError::Unreachable {
            url: url.clone(),
            message,
        };
        let mut req = Request::builder().method(Method::GET).uri(&url);
        if let Some(a) = self.authorization() {
            req = req.header(header::AUTHORIZATION, a);
        }
        let req = req
            .body(Full::new(Bytes::new()))
            .map_err(|e| unreachable(e.to_string()))?;
        let resp = self
            .http
            .request(req)
            .await
            .map_err(|e| unreachable(error_chain(&e)))?;
        let (parts, body) = resp.into_parts();
        let bytes = body
            .collect()
            .await
            .map_err(|e| unreachable(e.to_string()))?
            .to_bytes();
        Ok((parts.status, parts.headers, bytes))
    }
}

/// The error a refusal (a status that is not a success) stands for: the
/// server's `{"error": ...}` reason, or the body as text.
pub(crate) fn refusal(status: StatusCode, bytes: &[u8]) -> ClientError {
    match serde_json::from_slice::<ErrorBody>(bytes) {
        Ok(e) if status == StatusCode::UNAUTHORIZED => ClientError::Unauthorized(e.error),
        Ok(e) => ClientError::Server {
            status,
            message: e.error,
        },
        Err(_) => ClientError::Protocol {
            status,
            body: String::from_utf8_lossy(bytes).into_owned(),
        },
    }
}

impl ControlClient {
    /// `POST /v1/sessions`.
    ///
    /// # Errors
    /// See [`ClientError`]; a refused start (sealed tag, unknown tag) is
    /// [`ClientError::Server`] with the server's reason.
    pub async fn start(&self, req: &StartRequest) -> Result<StartResponse, ClientError> {
        self.call(Method::POST, "/v1/sessions", Some(to_json(req)))
            .await
    }

    /// `GET /v1/sessions/{id}`: a running session's counters so far.
    ///
    /// # Errors
    /// See [`ClientError`].
    pub async fn session(&self, id: &str) -> Result<Summary, ClientError> {
        self.call(Method::GET, &format!("/v1/sessions/{id}"), None)
            .await
    }

    /// `POST /v1/sessions/{id}/stop`: ends a session; a record session's
    /// tag is sealed when `req.seal` and it has entries (`Summary::sealed`).
    ///
    /// # Errors
    /// See [`ClientError`]; an unknown session is [`ClientError::Server`]
    /// with status 404.
    pub async fn stop(&self, id: &str, req: &StopRequest) -> Result<Summary, ClientError> {
        self.call(
            Method::POST,
            &format!("/v1/sessions/{id}/stop"),
            Some(to_json(req)),
        )
        .await
    }

    /// `POST /v1/sessions/{id}/bind`: binds the session to a client address
    /// (transparent mode); the answer names btrfly's DNS and the CA.
    ///
    /// # Errors
    /// See [`ClientError`]; an address bound to another session is
    /// [`ClientError::Server`] with status 409.
    pub async fn bind(&self, id: &str, req: &BindRequest) -> Result<BindResponse, ClientError> {
        self.call(
            Method::POST,
            &format!("/v1/sessions/{id}/bind"),
            Some(to_json(req)),
        )
        .await
    }

    /// `GET /v1/tags`.
    ///
    /// # Errors
    /// See [`ClientError`].
    pub async fn tags(&self) -> Result<TagList, ClientError> {
        self.call(Method::GET, "/v1/tags", None).await
    }

    /// `GET /v1/sessions`: every active session with its lease and
    /// counters.
    ///
    /// # Errors
    /// See [`ClientError`].
    pub async fn sessions(&self) -> Result<btrfly_core::api::SessionList, ClientError> {
        self.call(Method::GET, "/v1/sessions", None).await
    }

    /// `GET /v1/tags/{tag}`: a tag and its entries.
    ///
    /// # Errors
    /// See [`ClientError`]; an unknown tag is [`ClientError::Server`] with
    /// status 404.
    pub async fn tag(&self, tag: &Tag) -> Result<TagShow, ClientError> {
        self.call(Method::GET, &format!("/v1/tags/{tag}"), None)
            .await
    }

    /// `GET /v1/whoami`: the token this client calls with.
    ///
    /// # Errors
    /// See [`ClientError`].
    pub async fn whoami(&self) -> Result<WhoAmI, ClientError> {
        self.call(Method::GET, "/v1/whoami", None).await
    }

    /// `GET /v1/tokens` (admin scope): every token, revoked ones included.
    ///
    /// # Errors
    /// See [`ClientError`]; a token without the admin scope is
    /// [`ClientError::Server`] with status 403.
    pub async fn tokens(&self) -> Result<TokenList, ClientError> {
        self.call(Method::GET, "/v1/tokens", None).await
    }

    /// `POST /v1/tokens` (admin scope): a new token; its secret is in the
    /// answer only.
    ///
    /// # Errors
    /// See [`ClientError`]; a taken name is [`ClientError::Server`] with
    /// status 409.
    pub async fn create_token(
        &self,
        req: &TokenCreateRequest,
    ) -> Result<TokenCreated, ClientError> {
        self.call(Method::POST, "/v1/tokens", Some(to_json(req)))
            .await
    }

    /// `POST /v1/tokens/{id}/revoke` (admin scope).
    ///
    /// # Errors
    /// See [`ClientError`]; an unknown id is [`ClientError::Server`] with
    /// status 404.
    pub async fn revoke_token(&self, id: &TokenId) -> Result<TokenInfo, ClientError> {
        self.call(Method::POST, &format!("/v1/tokens/{id}/revoke"), None)
            .await
    }

    /// `POST /v1/mirror` (record scope): declares an artifact; the answer
    /// is the new entry (`pending`).
    ///
    /// # Errors
    /// See [`ClientError`]; a refused declaration (a tag-only image, no
    /// note) is [`ClientError::Server`] with status 400 and the reason.
    pub async fn mirror_add(
        &self,
        req: &MirrorAddRequest,
    ) -> Result<btrfly_core::MirrorEntry, ClientError> {
        self.call(Method::POST, "/v1/mirror", Some(to_json(req)))
            .await
    }

    /// `GET /v1/mirror`: every mirror entry, oldest first.
    ///
    /// # Errors
    /// See [`ClientError`].
    pub async fn mirror_list(&self) -> Result<MirrorList, ClientError> {
        self.call(Method::GET, "/v1/mirror", None).await
    }

    /// `GET /v1/mirror/{id}`: one mirror entry.
    ///
    /// # Errors
    /// See [`ClientError`]; an unknown id is [`ClientError::Server`] with
    /// status 404.
    pub async fn mirror_entry(&self, id: &str) -> Result<btrfly_core::MirrorEntry, ClientError> {
        self.call(Method::GET, &format!("/v1/mirror/{id}"), None)
            .await
    }

    /// `GET /v1/ca`: the CA certificate, PEM.
    ///
    /// # Errors
    /// See [`ClientError`].
    pub async fn ca_pem(&self) -> Result<String, ClientError> {
        let (status, bytes) = self.send(Method::GET, "/v1/ca", None).await?;
        let text = String::from_utf8_lossy(&bytes).into_owned();
        if status.is_success() {
            Ok(text)
        } else {
            Err(ClientError::Protocol { status, body: text })
        }
    }
}

fn to_json<T: Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).unwrap_or_default()
}

pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_addresses_need_plain_http() {
        assert_eq!(
            parse_server_url("http://127.0.0.1:3129/").expect("ok"),
            "http://127.0.0.1:3129"
        );
        let msg = |u: &str| parse_server_url(u).expect_err(u).to_string();
        assert_eq!(
            msg("127.0.0.1:3129"),
            "server address \"127.0.0.1:3129\": has no scheme: write http://127.0.0.1:3129"
        );
        assert_eq!(
            msg("https://btrfly.example.test:3129"),
            "server address \"https://btrfly.example.test:3129\": the control API speaks plain HTTP, not HTTPS: write http://btrfly.example.test:3129"
        );
        assert!(msg("ftp://x").contains("unknown scheme"));
        assert!(msg("http://").contains("no host"));
    }
}
