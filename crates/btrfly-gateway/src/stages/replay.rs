//! Replay: in playback mode every answer comes from the tag, never upstream.
//!
//! Entries are looked up in the session's cached index of the tag (see
//! [`crate::lookup`]): no object-store round trip per request for a
//! sealed tag.

use std::sync::Arc;

use btrfly_core::{RequestHead, Tag, BODY_VARIANCE};
use btrfly_store::Store;
use futures::future::BoxFuture;
use http::StatusCode;

use crate::decision::{Decision, Replayed, Reply};
use crate::lookup::{Entries, IndexCache};
use crate::reply::{full_reply, ranged_reply, MISS_HEADER, REPLAY_HEADER};
use crate::stage::{Answer, Classified};

/// Playback: answers from the tag (a hit, or a counted miss), never upstream.
#[derive(Clone)]
pub struct Replay {
    cache: Arc<IndexCache>,
}

impl Replay {
    /// Playback from `store`, with this replica's index cache.
    pub fn new(store: Store) -> Self {
        Replay {
            cache: Arc::new(IndexCache::new(store)),
        }
    }
}

impl Answer for Replay {
    type In = Classified;

    fn answer(&self, input: Classified) -> BoxFuture<'static, Decision> {
        let cache = self.cache.clone();
        Box::pin(async move { replay(&cache, input).await })
    }
}

async fn replay(cache: &IndexCache, input: Classified) -> Decision {
    let Classified {
        head,
        body,
        session,
        tag,
        class,
        adapter,
        ..
    } = input;
    let stats = &session.stats;
    let store = cache.entries(&session).await;
    let what = describe(&head);
    let mut key = class.key.clone();
    match body.sha256().await {
        Ok(Some(digest)) => {
            key.variance
                .insert(BODY_VARIANCE.into(), digest.to_string());
        }
        Ok(None) => {}
        Err(e) => {
            return Decision::text(
                StatusCode::BAD_REQUEST,
                format!("btrfly: reading the request body of {what}: {e}"),
            )
        }
    }
    let mut keys = vec![key];
    // e.g. a `HEAD` answered from its recorded `GET`
    keys.extend(adapter.replay_fallbacks(&class));
    let mut reply = None;
    for key in &keys {
        match answer(&store, &tag, key, &head).await {
            Ok(Some(r)) => {
                reply = Some(r);
                break;
            }
            Ok(None) => {}
            Err(e) => return store_failure(&what, &tag, e),
        }
    }
    let Some(reply) = reply else {
        stats.count_miss(what.clone());
        return Decision::Respond(
            Reply::text(
                StatusCode::NOT_FOUND,
                format!("btrfly: playback miss: {what} was not recorded in tag {tag}"),
            )
            .with_header(MISS_HEADER, tag.as_str())
            .with_header(REPLAY_HEADER, "miss"),
        );
    };
    stats.count_hit();
    stats.count_bytes(reply.body_len());
    let mut reply = reply;
    reply.replayed = Some(Replayed::new(session.clone(), what));
    Decision::Respond(reply)
}

/// `METHOD URL`, with the `Range` when there is one: how a request is named
/// in messages and in the summary's `missed:` list.
fn describe(head: &RequestHead) -> String {
    let mut what = format!("{} {}", head.method, head.uri);
    let ranges: Vec<&str> = head
        .headers
        .get_all(http::header::RANGE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    if !ranges.is_empty() {
        what.push_str(&format!(" (Range: {})", ranges.join(", ")));
    }
    what
}

fn store_failure(what: &str, tag: &Tag, e: btrfly_store::StoreError) -> Decision {
    let message = format!("btrfly: looking up {what} in tag {tag}: {e}");
    tracing::warn!("{message}");
    Decision::Respond(
        Reply::text(StatusCode::SERVICE_UNAVAILABLE, message)
            .with_header("x-btrfly-error", "store-unavailable"),
    )
}

/// The answer for `key` from the tag: the recorded answer (the
/// representation the request's headers select, see [`Entries::find`]),
/// or, for a `Range` that was not recorded as such, the range cut from
/// the recorded whole the way a server would (RFC 9110 §14).
async fn answer(
    store: &Entries,
    tag: &Tag,
    key: &btrfly_core::RecordingKey,
    head: &RequestHead,
) -> Result<Option<Reply>, btrfly_store::StoreError> {
    if let Some(entry) = store.find(tag, key, &head.headers).await? {
        return Ok(Some(full_reply(&entry, &head.method)));
    }
    let Some(range) = key.variance.get("range") else {
        return Ok(None);
    };
    let mut whole = key.clone();
    whole.variance.remove("range");
    let Some(entry) = store.find(tag, &whole, &head.headers).await? else {
        return Ok(None);
    };
    Ok(Some(ranged_reply(&entry, range, &head.method)))
}
