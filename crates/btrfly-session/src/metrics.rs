//! Process-wide counters for `/metrics` (Prometheus text format, with
//! `prometheus-client`): what every session's [`Stats`](crate::Stats)
//! counts, summed over the sessions of this replica and labelled by mode.
//! Nothing in them names a tag, a session or a URL (bounded label sets,
//! nothing secret).

use std::time::Duration;

use btrfly_core::Mode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};

/// The `mode` label: `record` or `playback`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ModeLabel {
    /// `record` or `playback`.
    pub mode: String,
}

impl ModeLabel {
    fn of(mode: Mode) -> ModeLabel {
        ModeLabel {
            mode: mode.to_string(),
        }
    }
}

/// The `state` label of the mirror's entries: `pending`, `stored`,
/// `failed`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabel {
    /// The entry state.
    pub state: String,
}

/// The counters, shared by every session of a [`SessionRegistry`](crate::SessionRegistry).
#[derive(Debug)]
pub struct Metrics {
    requests: Family<ModeLabel, Counter>,
    hits: Family<ModeLabel, Counter>,
    misses: Family<ModeLabel, Counter>,
    served_bytes: Family<ModeLabel, Counter>,
    recorded: Counter,
    recorded_bytes: Counter,
    upstream_latency: Histogram,
    active_sessions: Family<ModeLabel, Gauge>,
    mirror_hits: Counter,
    mirror_entries: Family<StateLabel, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            requests: Family::default(),
            hits: Family::default(),
            misses: Family::default(),
            served_bytes: Family::default(),
            recorded: Counter::default(),
            recorded_bytes: Counter::default(),
            // 1 ms to about 65 s, doubling.
            upstream_latency: Histogram::new(exponential_buckets(0.001, 2.0, 17)),
            active_sessions: Family::default(),
            mirror_hits: Counter::default(),
            mirror_entries: Family::default(),
        }
    }
}

/// One mode's counters, resolved once per session.
#[derive(Clone, Debug)]
pub(crate) struct ModeCounters {
    pub(crate) requests: Counter,
    pub(crate) hits: Counter,
    pub(crate) misses: Counter,
    pub(crate) served_bytes: Counter,
    pub(crate) recorded: Counter,
    pub(crate) recorded_bytes: Counter,
    pub(crate) upstream_latency: Histogram,
    pub(crate) mirror_hits: Counter,
}

impl Metrics {
    /// Registers every metric in `registry` (names as they appear with a
    /// `btrfly` prefix on the registry):
    ///
    /// | name | type | labels |
    /// |---|---|---|
    /// | `requests_total` | counter | `mode` |
    /// | `hits_total` (answers from a tag) | counter | `mode` |
    /// | `misses_total` (playback requests not recorded) | counter | `mode` |
    /// | `served_bytes_total` (body bytes sent to clients) | counter | `mode` |
    /// | `recorded_total` (answers recorded) | counter | |
    /// | `recorded_bytes_total` (body bytes of recorded answers) | counter | |
    /// | `upstream_latency_seconds` (request forwarded → response head) | histogram | |
    /// | `active_sessions` (this replica's; see [`Metrics::set_active`]) | gauge | `mode` |
    /// | `mirror_hits_total` (playback answers from the explicit mirror) | counter | |
    /// | `mirror_entries` (the store's mirror entries; see [`Metrics::set_mirror_entries`]) | gauge | `state` |
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "requests",
            "Requests that reached a session",
            self.requests.clone(),
        );
        registry.register("hits", "Answers from a tag's recording", self.hits.clone());
        registry.register(
            "misses",
            "Playback requests that were not recorded",
            self.misses.clone(),
        );
        registry.register_with_unit(
            "served",
            "Body bytes sent to clients",
            Unit::Bytes,
            self.served_bytes.clone(),
        );
        registry.register("recorded", "Answers recorded", self.recorded.clone());
        registry.register_with_unit(
            "recorded",
            "Body bytes of recorded answers",
            Unit::Bytes,
            self.recorded_bytes.clone(),
        );
        registry.register_with_unit(
            "upstream_latency",
            "Time from forwarding a request upstream to its response head",
            Unit::Seconds,
            self.upstream_latency.clone(),
        );
        registry.register(
            "active_sessions",
            "Sessions running on this replica",
            self.active_sessions.clone(),
        );
        registry.register(
            "mirror_hits",
            "Playback answers from the explicit mirror",
            self.mirror_hits.clone(),
        );
        registry.register(
            "mirror_entries",
            "Mirror entries in the store, by state (as the fetcher last saw them)",
            self.mirror_entries.clone(),
        );
    }

    /// Sets the `mirror_entries` gauge of `state` (`pending`, `stored`,
    /// `failed`).
    pub fn set_mirror_entries(&self, state: &str, n: u64) {
        self.mirror_entries
            .get_or_create(&StateLabel {
                state: state.to_owned(),
            })
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    pub(crate) fn for_mode(&self, mode: Mode) -> ModeCounters {
        let l = ModeLabel::of(mode);
        ModeCounters {
            requests: self.requests.get_or_create(&l).clone(),
            hits: self.hits.get_or_create(&l).clone(),
            misses: self.misses.get_or_create(&l).clone(),
            served_bytes: self.served_bytes.get_or_create(&l).clone(),
            recorded: self.recorded.clone(),
            recorded_bytes: self.recorded_bytes.clone(),
            upstream_latency: self.upstream_latency.clone(),
            mirror_hits: self.mirror_hits.clone(),
        }
    }

    /// Sets the `active_sessions` gauge of `mode`.
    pub fn set_active(&self, mode: Mode, n: u64) {
        self.active_sessions
            .get_or_create(&ModeLabel::of(mode))
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }
}

impl ModeCounters {
    pub(crate) fn observe_upstream(&self, d: Duration) {
        self.upstream_latency.observe(d.as_secs_f64());
    }
}
