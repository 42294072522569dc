//! Auth: the proxy credential decides which session a request belongs to.
//!
//! The gateway is never an open relay: a request without a valid session
//! credential is answered 407 here and goes nowhere.

use std::sync::Arc;

use btrfly_session::SessionRegistry;
use futures::future::BoxFuture;
use http::{header, Request, StatusCode};

use crate::body::RequestBody;
use crate::decision::{Decision, Reply};
use crate::stage::{pass, Authenticated, Next, Stage};

/// Credential → session; every other request is answered 407.
#[derive(Clone)]
pub struct Auth {
    sessions: Arc<SessionRegistry>,
}

impl Auth {
    /// Authenticates against `sessions`.
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

/// Why a credential was refused, in the words of the 407.
pub fn refusal_detail(presented: bool) -> &'static str {
    if presented {
        "the proxy credential is not valid (wrong, or its session was stopped)"
    } else {
        "this proxy needs a session credential"
    }
}

impl Stage for Auth {
    type In = Request<RequestBody>;
    type Out = Authenticated;

    fn run(
        &self,
        mut request: Request<RequestBody>,
        next: Next<Authenticated>,
    ) -> BoxFuture<'static, Decision> {
        let sessions = self.sessions.clone();
        Box::pin(async move {
            let credential = request
                .headers_mut()
                .remove(header::PROXY_AUTHORIZATION)
                .map(|v| v.as_bytes().to_vec());
            let Some(session) = sessions.authenticate_header(credential.as_deref()).await else {
                let detail = refusal_detail(credential.is_some());
                return Decision::Respond(proxy_auth_required(detail));
            };
            pass(next, Authenticated { request, session }).await
        })
    }
}
