//! Classification: the first adapter that claims a request builds its key;
//! what the session learnt from earlier answers (a redirect alias, a digest
//! an index page announced, a refused body) applies here.

use btrfly_core::RequestHead;
use futures::future::BoxFuture;
use http::StatusCode;

use crate::adapters::Adapters;
use crate::decision::{Decision, Reply};
use crate::log::{field, note};
use crate::stage::{pass, Classified, Next, Routed, Stage};

/// Adapter → recording key, mutability and expected digest.
#[derive(Clone)]
pub struct Classify {
    adapters: Adapters,
}

impl Classify {
    /// Classifies with `adapters`.
    pub fn new(adapters: Adapters) -> Self {
        Classify { adapters }
    }
}

impl Stage for Classify {
    type In = Routed;
    type Out = Classified;

    fn run(&self, input: Routed, next: Next<Classified>) -> BoxFuture<'static, Decision> {
        let Routed {
            request,
            session,
            tag,
            mode,
        } = input;
        let (parts, body) = request.into_parts();
        let head = RequestHead {
            method: parts.method,
            uri: parts.uri,
            headers: parts.headers,
        };
        let url = head.canonical_url();
        // A redirect recorded earlier in this session may have said that
        // this URL is another request's resource (`Adapter::redirect_alias`).
        let aliased = session
            .alias(&url)
            .and_then(|a| Some((self.adapters.by_name(a.adapter)?, a.classification)));
        let Some((adapter, mut class)) = aliased.or_else(|| self.adapters.classify(&head)) else {
            let msg = format!(
                "btrfly: no enabled adapter handles {} {} (enabled: {:?}); enable [adapters.files] to record plain URLs",
                head.method,
                head.uri,
                self.adapters.names()
            );
            return Box::pin(async move { Decision::text(StatusCode::FORBIDDEN, msg) });
        };
        note(field::ADAPTER, adapter.name());
        note(field::KEY, &class.key);
        let ranged = head.headers.contains_key(http::header::RANGE);
        // An index page recorded earlier in this session may have announced
        // this URL's digest, or the digest of the artifact the adapter names
        // as its subject (of the whole body: a part of it, as a `Range` asks
        // for, cannot be checked against it). A page still being recorded
        // has not registered its hints yet: an immutable file waits for them.
        let hintable = class.expected.is_none() && !ranged;
        let wait_for_pages = hintable
            && mode == btrfly_core::Mode::Record
            && class.mutability == btrfly_core::Mutability::Immutable
            && session.pages_pending();
        if hintable {
            class.expected = hinted(&session, &url, &class);
        }
        if ranged {
            // A part of a body that failed its digest in this session (a
            // client resuming the download that was cut off) cannot be
            // checked: refuse it rather than complete a tampered file. The
            // refusal stands for the session, so it is a 409 that clients
            // do not retry (a 502 would be retried, and reported as a
            // network problem).
            if let Some(why) = session.refusal(&url) {
                let reply = Reply::digest_mismatch(
                    StatusCode::CONFLICT,
                    format!(
                        "btrfly: refused a part of a body that did not match its digest: {why}"
                    ),
                );
                return Box::pin(async move { Decision::Respond(reply) });
            }
        }
        let classified = Classified {
            head,
            body,
            session,
            tag,
            mode,
            class,
            adapter,
        };
        if wait_for_pages && classified.class.expected.is_none() {
            return Box::pin(async move {
                let mut classified = classified;
                classified.session.pages_settled().await;
                classified.class.expected = hinted(&classified.session, &url, &classified.class);
                pass(next, classified).await
            });
        }
        Box::pin(pass(next, classified))
    }
}

/// The digest a recorded page announced for `url`, else for the
/// classification's subject (`Classification::subject`).
fn hinted(
    session: &btrfly_session::LiveSession,
    url: &str,
    class: &btrfly_core::Classification,
) -> Option<btrfly_core::ExpectedDigest> {
    session
        .hint(url)
        .or_else(|| class.subject.as_deref().and_then(|s| session.hint(s)))
}
