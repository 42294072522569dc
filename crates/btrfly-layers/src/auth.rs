//! Auth: the proxy credential decides which session a request belongs to.
//!
//! The gateway is never an open relay: a request without a valid session
//! credential is answered 407 here and goes nowhere.

use std::sync::Arc;

use futures::future::BoxFuture;
use http::{header, Request, StatusCode};

use crate::decision::{Decision, Reply};
use crate::sessions::SessionRegistry;
use crate::step::{pass, Next, Step};
use crate::RequestBody;

/// Credential → session; every other request is answered 407.
#[derive(Clone)]
pub struct Auth {
    sessions: Arc<SessionRegistry>,
}

impl Auth {
    pub fn new(sessions: Arc<SessionRegistry>) -> Self {
        Auth { sessions }
    }
}

/// The 407 every unauthenticated request gets.
pub fn proxy_auth_required(detail: &str) -> Reply {
    Reply::text(
        StatusCode::PROXY_AUTHENTICATION_REQUIRED,
        format!("btrfly: {detail}: start a session with `btrfly start record|playback --tag=TAG` and use the proxy URL it prints"),
    )
    .with_header("proxy-authenticate", "Basic realm=\"btrfly\"")
}

impl Step for Auth {
    fn handle(&self, mut req: Request<RequestBody>, next: Next) -> BoxFuture<'static, Decision> {
        let sessions = self.sessions.clone();
        Box::pin(async move {
            let credential = req
                .headers_mut()
                .remove(header::PROXY_AUTHORIZATION)
                .map(|v| v.as_bytes().to_vec());
            let Some(session) = sessions.authenticate_header(credential.as_deref()).await else {
                let detail = if credential.is_some() {
                    "the proxy credential is not valid (wrong, or its session was stopped)"
                } else {
                    "this proxy needs a session credential"
                };
                return Decision::Respond(proxy_auth_required(detail));
            };
            req.extensions_mut().insert(session);
            pass(next, req).await
        })
    }
}
