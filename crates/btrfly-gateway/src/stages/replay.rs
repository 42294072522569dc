//! Replay: in playback mode every answer comes from the tag, never upstream.
//!
//! Entries are looked up in the session's cached index of the tag (see
//! [`crate::lookup`]): no object-store round trip per request for a
//! sealed tag. A request the tag does not have is looked up in the
//! explicit mirror's tag ([`btrfly_core::mirror::MIRROR_TAG`]) unless that
//! is turned off ([`Replay::with_mirror`]): declared artifacts answer
//! builds that never recorded them, counted as mirror hits. Error answers
//! the mirror's fetcher met (a 404, a 5xx) are not served from it: such
//! an entry failed, and the request stays a miss.

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
    mirror: Option<Arc<Tag>>,
}

impl Replay {
    /// Playback from `store`, with this replica's index cache, falling back
    /// to the explicit mirror.
    pub fn new(store: Store) -> Self {
        Replay {
            cache: Arc::new(IndexCache::new(store)),
            mirror: Some(Arc::new(btrfly_core::mirror::mirror_tag())),
        }
    }

    /// With `serve` false, a request the session's tag does not have is a
    /// miss even when the explicit mirror has it (`[mirror]
    /// serve_in_playback = false`).
    pub fn with_mirror(mut self, serve: bool) -> Self {
        if !serve {
            self.mirror = None;
        }
        self
    }
}

impl Answer for Replay {
    type In = Classified;

    fn answer(&self, input: Classified) -> BoxFuture<'static, Decision> {
        let cache = self.cache.clone();
        let mirror = self.mirror.clone();
        Box::pin(async move { replay(&cache, mirror.as_deref(), input).await })
    }
}

async fn replay(cache: &IndexCache, mirror: Option<&Tag>, input: Classified) -> Decision {
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
    let mut from_mirror = false;
    if let (None, Some(mirror)) = (&reply, mirror.filter(|m| *m != &tag)) {
        match from_the_mirror(cache, mirror, &keys, &head).await {
            Ok(Some(r)) => {
                reply = Some(r);
                from_mirror = true;
            }
            Ok(None) => {}
            Err(e) => return store_failure(&what, mirror, e),
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
    if from_mirror {
        stats.count_mirror_hit();
    } else {
        stats.count_hit();
    }
    stats.count_bytes(reply.body_len());
    let mut reply = reply;
    reply.replayed = Some(Replayed::new(session.clone(), what));
    Decision::Respond(reply)
}

/// The explicit mirror's answer for one of `keys`: a success, a redirect
/// or an authentication challenge (a registry's version check), never an
/// error the fetcher met.
async fn from_the_mirror(
    cache: &IndexCache,
    mirror: &Tag,
    keys: &[btrfly_core::RecordingKey],
    head: &RequestHead,
) -> Result<Option<Reply>, btrfly_store::StoreError> {
    let Some(entries) = cache.other_tag(mirror).await? else {
        return Ok(None);
    };
    for key in keys {
        if let Some(r) = answer(&entries, mirror, key, head).await? {
            let s = r.status;
            if s.is_success() || s.is_redirection() || s == StatusCode::UNAUTHORIZED {
                return Ok(Some(r));
            }
        }
    }
    Ok(None)
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
