//! Replay: in playback mode every answer comes from the tag, never upstream.
//!
//! Entries are looked up in the session's cached index of the tag (see
//! [`crate::index_cache`]): no object-store round trip per request for a
//! sealed tag.

use std::sync::Arc;

use btrfly_core::{Classification, Entry, Mode, RequestHead, BODY_VARIANCE};
use btrfly_store::Store;
use futures::future::BoxFuture;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode};

use crate::decision::{Decision, Reply, ReplyBody};
use crate::index_cache::{Entries, IndexCache};
use crate::route::Route;
use crate::step::{pass, Next, Step};
use crate::{RequestBody, MISS_HEADER, REPLAY_HEADER};

/// Playback: answers from the tag (a hit, or a counted miss), never upstream.
#[derive(Clone)]
pub struct Replay {
    cache: Arc<IndexCache>,
}

impl Replay {
    pub fn new(store: Store) -> Self {
        Replay {
            cache: Arc::new(IndexCache::new(store)),
        }
    }
}

impl Step for Replay {
    fn handle(&self, req: Request<RequestBody>, next: Next) -> BoxFuture<'static, Decision> {
        let playback = req
            .extensions()
            .get::<Route>()
            .is_some_and(|r| r.mode == Mode::Playback);
        if !playback {
            return Box::pin(pass(next, req));
        }
        let cache = self.cache.clone();
        Box::pin(async move { replay(&cache, req).await })
    }
}

async fn replay(cache: &IndexCache, req: Request<RequestBody>) -> Decision {
    let (parts, body) = req.into_parts();
    let (Some(route), Some(class), Some(head)) = (
        parts.extensions.get::<Route>(),
        parts.extensions.get::<Classification>(),
        parts.extensions.get::<RequestHead>(),
    ) else {
        return Decision::text(
            StatusCode::INTERNAL_SERVER_ERROR,
            "btrfly: replay reached without route or classification",
        );
    };
    let stats = &route.session.stats;
    let store = cache.entries(&route.session).await;
    let what = format!("{} {}", head.method, head.uri);
    let mut key = class.key.clone();
    match body.sha256().await {
        Ok(Some(digest)) => {
            key.variance.insert(BODY_VARIANCE.into(), digest);
        }
        Ok(None) => {}
        Err(e) => {
            return Decision::text(
                StatusCode::BAD_REQUEST,
                format!("btrfly: reading the request body of {what}: {e}"),
            )
        }
    }
    let lookup = match store.get_entry(&route.tag, &key).await {
        Ok(Some(entry)) => Some((entry, None)),
        Ok(None) => match range_fallback(&store, route, &key, head).await {
            Ok(found) => found,
            Err(e) => return store_failure(&what, &route.tag, e),
        },
        Err(e) => return store_failure(&what, &route.tag, e),
    };
    let lookup = match lookup {
        Some(found) => Some(found),
        None => match adapter_fallback(&store, route, &parts.extensions, class, head).await {
            Ok(found) => found,
            Err(e) => return store_failure(&what, &route.tag, e),
        },
    };
    let Some((entry, range)) = lookup else {
        stats.count_miss(what.clone());
        return Decision::Respond(
            Reply::text(
                StatusCode::NOT_FOUND,
                format!(
                    "btrfly: playback miss: {what} was not recorded in tag {}",
                    route.tag
                ),
            )
            .with_header(MISS_HEADER, route.tag.as_str())
            .with_header(REPLAY_HEADER, "miss"),
        );
    };
    stats.count_hit();
    let reply = match range {
        None => full_reply(&entry, &head.method),
        Some((start, end)) => partial_reply(&entry, start, end),
    };
    stats.count_bytes(reply.body_len());
    Decision::Respond(reply)
}

fn store_failure(what: &str, tag: &btrfly_core::Tag, e: btrfly_store::StoreError) -> Decision {
    Decision::text(
        StatusCode::SERVICE_UNAVAILABLE,
        format!("btrfly: looking up {what} in tag {tag}: {e}"),
    )
}

/// The first recorded answer among the adapter's fallback keys
/// (`Adapter::replay_fallbacks`, e.g. a `HEAD` answered from its `GET`).
async fn adapter_fallback(
    store: &Entries,
    route: &Route,
    extensions: &http::Extensions,
    class: &Classification,
    head: &RequestHead,
) -> Result<Option<(Entry, Option<(u64, u64)>)>, btrfly_store::StoreError> {
    let Some(by) = extensions.get::<crate::classify::ClassifiedBy>() else {
        return Ok(None);
    };
    for key in by.0.replay_fallbacks(class) {
        if let Some(entry) = store.get_entry(&route.tag, &key).await? {
            return Ok(Some((entry, None)));
        }
        if let Some(found) = range_fallback(store, route, &key, head).await? {
            return Ok(Some(found));
        }
    }
    Ok(None)
}

/// A `Range` request whose exact range was not recorded is answered from a
/// full `200` recording of the same resource, when there is one.
async fn range_fallback(
    store: &Entries,
    route: &Route,
    key: &btrfly_core::RecordingKey,
    head: &RequestHead,
) -> Result<Option<(Entry, Option<(u64, u64)>)>, btrfly_store::StoreError> {
    let Some(range) = key.variance.get("range") else {
        return Ok(None);
    };
    let mut full_key = key.clone();
    full_key.variance.remove("range");
    let Some(entry) = store.get_entry(&route.tag, &full_key).await? else {
        return Ok(None);
    };
    if entry.status != 200 || head.method != Method::GET {
        return Ok(None);
    }
    Ok(parse_single_range(range, entry.size).map(|r| (entry, Some(r))))
}

/// `bytes=a-b`, `bytes=a-` or `bytes=-n` against a body of `size` bytes, as
/// an inclusive `(start, end)`; `None` for anything else (multiple ranges,
/// unsatisfiable), which then stays a miss.
pub fn parse_single_range(spec: &str, size: u64) -> Option<(u64, u64)> {
    let spec = spec.trim().strip_prefix("bytes=")?;
    if spec.contains(',') || size == 0 {
        return None;
    }
    let (a, b) = spec.split_once('-')?;
    let (a, b) = (a.trim(), b.trim());
    let (start, end) = if a.is_empty() {
        let n: u64 = b.parse().ok()?;
        if n == 0 {
            return None;
        }
        (size.saturating_sub(n), size - 1)
    } else {
        let start: u64 = a.parse().ok()?;
        let end = if b.is_empty() {
            size - 1
        } else {
            b.parse::<u64>().ok()?.min(size - 1)
        };
        (start, end)
    };
    (start <= end && start < size).then_some((start, end))
}

fn recorded_headers(entry: &Entry) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (k, v) in &entry.headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(v),
        ) {
            headers.append(name, value);
        }
    }
    headers
}

fn bodiless(method: &Method, status: u16) -> bool {
    method == Method::HEAD || status == 204 || status == 304 || (100..200).contains(&status)
}

pub(crate) fn full_reply(entry: &Entry, method: &Method) -> Reply {
    let mut headers = recorded_headers(entry);
    headers.insert(REPLAY_HEADER, HeaderValue::from_static("hit"));
    let body_len = if bodiless(method, entry.status) {
        // keep the recorded Content-Length: it describes the GET body
        0
    } else {
        headers.insert(http::header::CONTENT_LENGTH, HeaderValue::from(entry.size));
        entry.size
    };
    Reply {
        status: StatusCode::from_u16(entry.status).unwrap_or(StatusCode::OK),
        headers,
        body: ReplyBody::Blob {
            sha256: entry.sha256.clone(),
            offset: 0,
            len: body_len,
        },
    }
}

fn partial_reply(entry: &Entry, start: u64, end: u64) -> Reply {
    let mut headers = recorded_headers(entry);
    let len = end - start + 1;
    headers.insert(REPLAY_HEADER, HeaderValue::from_static("hit"));
    headers.insert(http::header::CONTENT_LENGTH, HeaderValue::from(len));
    if let Ok(v) = HeaderValue::from_str(&format!("bytes {start}-{end}/{}", entry.size)) {
        headers.insert(http::header::CONTENT_RANGE, v);
    }
    Reply {
        status: StatusCode::PARTIAL_CONTENT,
        headers,
        body: ReplyBody::Blob {
            sha256: entry.sha256.clone(),
            offset: start,
            len,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::parse_single_range as r;

    #[test]
    fn ranges() {
        assert_eq!(r("bytes=0-99", 1000), Some((0, 99)));
        assert_eq!(r("bytes=900-", 1000), Some((900, 999)));
        assert_eq!(r("bytes=-100", 1000), Some((900, 999)));
        assert_eq!(r("bytes=990-2000", 1000), Some((990, 999)));
        assert_eq!(r("bytes=-5000", 1000), Some((0, 999)));
        assert_eq!(r("bytes=1000-", 1000), None);
        assert_eq!(r("bytes=5-1", 1000), None);
        assert_eq!(r("bytes=0-1,5-6", 1000), None);
        assert_eq!(r("items=0-1", 1000), None);
        assert_eq!(r("bytes=-0", 1000), None);
        assert_eq!(r("bytes=0-0", 0), None);
    }
}
