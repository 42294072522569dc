//! A small client of the control API, for the CLI.

use bytes::Bytes;
use http::{header, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::api::{ErrorBody, StartRequest, StartResponse, Summary, TagList, TagShow};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach the btrfly server at {url}: {message} (is `btrfly serve` running? set --server or BTRFLY_SERVER)")]
    Unreachable { url: String, message: String },
    #[error("{0}")]
    Server(String),
    #[error("unexpected answer from the btrfly server ({status}): {body}")]
    Protocol { status: StatusCode, body: String },
}

pub struct ControlClient {
    base: String,
    token: Option<String>,
    http: Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
}

impl ControlClient {
    pub fn new(base: &str, token: Option<String>) -> ControlClient {
        ControlClient {
            base: base.trim_end_matches('/').to_owned(),
            token,
            http: Client::builder(TokioExecutor::new()).build_http(),
        }
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
        match serde_json::from_slice::<ErrorBody>(&bytes) {
            Ok(e) => Err(ClientError::Server(e.error)),
            Err(_) => Err(ClientError::Protocol {
                status,
                body: String::from_utf8_lossy(&bytes).into_owned(),
            }),
        }
    }

    pub async fn start(&self, req: &StartRequest) -> Result<StartResponse, ClientError> {
        self.call(Method::POST, "/v1/sessions", Some(to_json(req)))
            .await
    }

    pub async fn session(&self, id: &str) -> Result<Summary, ClientError> {
        self.call(Method::GET, &format!("/v1/sessions/{id}"), None)
            .await
    }

    pub async fn stop(&self, id: &str) -> Result<Summary, ClientError> {
        self.call(Method::POST, &format!("/v1/sessions/{id}/stop"), None)
            .await
    }

    pub async fn tags(&self) -> Result<TagList, ClientError> {
        self.call(Method::GET, "/v1/tags", None).await
    }

    pub async fn tag(&self, tag: &str) -> Result<TagShow, ClientError> {
        self.call(Method::GET, &format!("/v1/tags/{tag}"), None)
            .await
    }

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

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    msg
}
