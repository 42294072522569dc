//! What recording one exchange needs, decided before it goes upstream.

use std::sync::Arc;

use btrfly_core::{Adapter, Classification, RequestHead};
use btrfly_session::LiveSession;
use btrfly_store::Store;
use http::HeaderMap;

/// What the hooks need to record one exchange.
pub struct RecordPlan {
    /// The recording session.
    pub session: Arc<LiveSession>,
    /// The adapter's verdict on the request.
    pub classification: Classification,
    /// The adapter that classified it.
    pub adapter: Arc<dyn Adapter>,
    /// The request head (absolute URI).
    pub head: RequestHead,
    /// The request method, as recorded.
    pub method: String,
    /// The request URL, as recorded.
    pub url: String,
    /// Where the body and entry go.
    pub store: Store,
    /// Set for the leader of concurrent identical requests; dropped (which
    /// releases the followers) once the recording is committed or dropped.
    pub flight: Option<crate::flight::FlightGuard>,
    /// Held from admission until the recording is committed or dropped:
    /// stopping the session waits for it (see
    /// [`LiveSession::admit_recording`]).
    pub admitted: Option<btrfly_session::InflightGuard>,
}

impl RecordPlan {
    /// The adapter's last say on a response head, before [`Recorder::begin`](crate::Recorder::begin):
    /// remembers the redirect alias it names (the follow-up request is then
    /// classified as this one), and, for a redirect of a request whose body
    /// must have a known digest, expects that digest of the redirect's
    /// target too (a file URL sent on to signed storage is still checked).
    pub fn admit(&self, status: u16, headers: &HeaderMap) {
        let class = &self.classification;
        if let Some(url) = self
            .adapter
            .redirect_alias(&self.head, class, status, headers)
        {
            self.session.add_alias(
                url,
                btrfly_session::Alias {
                    adapter: self.adapter.name(),
                    classification: class.clone(),
                },
            );
        }
        if let (Some(digest), true) = (&class.expected, (300..400).contains(&status)) {
            if let Some(url) = headers
                .get(http::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|l| resolve_location(&self.head.uri, l))
            {
                self.session.add_hints(vec![btrfly_core::DigestHint {
                    url,
                    digest: digest.clone(),
                }]);
            }
        }
    }
}

/// Where a `Location` points, in canonical form, resolved against the
/// request's URL (RFC 9110 §10.2.2: it may be relative).
pub fn resolve_location(base: &http::Uri, location: &str) -> Option<String> {
    let base = url::Url::parse(&base.to_string()).ok()?;
    let target = base.join(location.trim()).ok()?;
    let uri: http::Uri = target.as_str().parse().ok()?;
    (uri.scheme().is_some() && uri.authority().is_some()).then(|| btrfly_core::canonical_url(&uri))
}
