//! A session's counters, shared by all its requests.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use crate::metrics::ModeCounters;

/// Counters of one session, shared by all its requests.
#[derive(Debug, Default)]
pub struct Stats {
    /// Requests that reached the session.
    pub requests: AtomicU64,
    /// Answers from the tag.
    pub hits: AtomicU64,
    /// Playback requests that were not recorded.
    pub misses: AtomicU64,
    /// Playback answers from the explicit mirror (not in `hits`).
    pub mirror_hits: AtomicU64,
    /// Answers recorded.
    pub recorded: AtomicU64,
    /// Body bytes sent to clients.
    pub bytes: AtomicU64,
    /// Bodies refused because they did not match their announced digest.
    pub refused: AtomicU64,
    /// Answers that went to the client but could not be recorded.
    pub unrecorded: AtomicU64,
    /// Upstream connections refused by the egress policy.
    pub egress_refused: AtomicU64,
    /// Playback answers found in the tag that could not be served: the
    /// blob was missing or did not hash to its address.
    pub unserved: AtomicU64,
    missed: Mutex<Vec<String>>,
    errors: Mutex<Vec<String>>,
    /// The replica's `/metrics` counters of this session's mode, counted
    /// along (none in unit tests).
    global: Option<ModeCounters>,
}

/// Lists in a summary are capped so a runaway build cannot grow memory.
pub(crate) const LIST_LIMIT: usize = 1000;

impl Stats {
    /// Counters that also count into the replica's `/metrics`.
    pub(crate) fn with_metrics(global: ModeCounters) -> Stats {
        Stats {
            global: Some(global),
            ..Stats::default()
        }
    }

    /// One more request.
    pub fn count_request(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        if let Some(g) = &self.global {
            g.requests.inc();
        }
    }

    /// `n` more body bytes sent to a client.
    pub fn count_bytes(&self, n: u64) {
        self.bytes.fetch_add(n, Ordering::Relaxed);
        if let Some(g) = &self.global {
            g.served_bytes.inc_by(n);
        }
    }

    /// One more answer from the tag.
    pub fn count_hit(&self) {
        self.hits.fetch_add(1, Ordering::Relaxed);
        if let Some(g) = &self.global {
            g.hits.inc();
        }
    }

    /// One more answer from the explicit mirror (a playback request the
    /// session's tag did not have).
    pub fn count_mirror_hit(&self) {
        self.mirror_hits.fetch_add(1, Ordering::Relaxed);
        if let Some(g) = &self.global {
            g.mirror_hits.inc();
        }
    }

    /// One more playback miss, for `what` (`METHOD URL`).
    pub fn count_miss(&self, what: String) {
        self.misses.fetch_add(1, Ordering::Relaxed);
        if let Some(g) = &self.global {
            g.misses.inc();
        }
        push_capped(&self.missed, what);
    }

    /// One more answer recorded, with a body of `size` bytes.
    pub fn count_recorded(&self, size: u64) {
        self.recorded.fetch_add(1, Ordering::Relaxed);
        if let Some(g) = &self.global {
            g.recorded.inc();
            g.recorded_bytes.inc_by(size);
        }
    }

    /// How long an upstream took from the request being forwarded to its
    /// response head (only `/metrics` keeps it).
    pub fn observe_upstream(&self, took: Duration) {
        if let Some(g) = &self.global {
            g.observe_upstream(took);
        }
    }

    /// An answer the client received (or a failure it saw instead of
    /// one) that is not in the tag: counted, so that `btrfly stop record`
    /// fails, and listed under `problems:`.
    pub fn note_unrecorded(&self, what: String) {
        self.unrecorded.fetch_add(1, Ordering::Relaxed);
        self.note_error(what);
    }

    /// An upstream connection the egress policy refused, with the message
    /// the client got.
    pub fn note_egress_refused(&self, what: String) {
        self.egress_refused.fetch_add(1, Ordering::Relaxed);
        self.note_error(what);
    }

    /// A hit whose body could not be served from the store (the blob is
    /// missing, or its bytes do not hash to its address): no longer a hit,
    /// counted so that `btrfly stop playback` fails, and listed under
    /// `problems:`.
    pub fn note_unserved(&self, what: String) {
        // never below zero, even if a caller got the order wrong
        let _ = self
            .hits
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |h| h.checked_sub(1));
        self.unserved.fetch_add(1, Ordering::Relaxed);
        self.note_error(what);
    }

    /// Something that did not get recorded or replayed as it should.
    pub fn note_error(&self, what: String) {
        tracing::warn!("{what}");
        push_capped(&self.errors, what);
    }
}

/// Longest item of a list (a missed request, a problem), in bytes: a
/// request with a huge URL cannot grow what is written to the store.
pub(crate) const ITEM_LIMIT: usize = 2048;

pub(crate) fn push_capped(list: &Mutex<Vec<String>>, mut item: String) {
    if item.len() > ITEM_LIMIT {
        let mut cut = ITEM_LIMIT;
        while !item.is_char_boundary(cut) {
            cut -= 1;
        }
        item.truncate(cut);
        item.push_str(" …(cut)");
    }
    let mut l = list.lock().unwrap_or_else(|p| p.into_inner());
    if l.len() < LIST_LIMIT && !l.contains(&item) {
        l.push(item);
    }
}

impl Stats {
    /// The lists, copied: (missed, errors).
    pub(crate) fn lists(&self) -> (Vec<String>, Vec<String>) {
        let list = |m: &Mutex<Vec<String>>| m.lock().unwrap_or_else(|p| p.into_inner()).clone();
        (list(&self.missed), list(&self.errors))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_items_are_cut_and_lists_capped() {
        let s = Stats::default();
        s.count_miss(format!("GET https://a.example.test/{}", "é".repeat(3000)));
        for i in 0..(LIST_LIMIT + 10) {
            s.note_error(format!("problem {i}"));
        }
        let (missed, errors) = s.lists();
        assert!(missed[0].len() <= ITEM_LIMIT + 16, "{}", missed[0].len());
        assert!(missed[0].ends_with("(cut)"));
        assert_eq!(errors.len(), LIST_LIMIT);
    }
}
