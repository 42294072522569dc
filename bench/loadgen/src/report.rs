//! The figures the load client prints: one JSON object per run.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::connect::HttpVersion;
use crate::run::{Outcome, Sample};

/// Clock ticks per second of `/proc/*/stat` times (`USER_HZ`, fixed at 100
/// in the kernel's user-space ABI).
const USER_HZ: u64 = 100;

/// How many failure messages a report keeps.
const ERRORS_KEPT: usize = 5;

/// This process's CPU time (user + system, all threads) from
/// `/proc/self/stat`, at 10 ms resolution; zero where that file cannot be
/// read (not Linux).
pub fn process_cpu() -> Duration {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| stat_cpu_ticks(&s))
        .map(|ticks| Duration::from_millis(ticks * 1000 / USER_HZ))
        .unwrap_or_default()
}

/// How long this process's threads have been runnable but waiting for a
/// CPU (the run-queue delay, second field of
/// `/proc/self/task/*/schedstat`, summed over live threads); zero where
/// those files cannot be read. On a shared machine this is the time other
/// processes took from the load client.
pub fn process_run_delay() -> Duration {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Duration::ZERO;
    };
    let nanos: u64 = tasks
        .filter_map(Result::ok)
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| schedstat_run_delay_ns(&s))
        .sum();
    Duration::from_nanos(nanos)
}

/// The run-queue delay (ns) of a `schedstat` line: `on-cpu-ns wait-ns slices`.
fn schedstat_run_delay_ns(line: &str) -> Option<u64> {
    line.split_whitespace().nth(1)?.parse().ok()
}

/// `utime + stime` (fields 14 and 15, proc(5)) of a `/proc/PID/stat` line.
/// The command name (field 2) may hold spaces and parentheses, so fields
/// are counted from its closing parenthesis.
fn stat_cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// Latency percentiles in microseconds.
#[derive(Debug, Serialize, Default, PartialEq)]
pub struct Latency {
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
    pub mean_us: u64,
}

impl Latency {
    /// Percentiles of `values` (µs), recorded in an HDR histogram with 3
    /// significant digits.
    fn of(values: impl Iterator<Item = u64>) -> Latency {
        // 1 µs .. 1 hour at 3 significant digits: a fixed, small footprint.
        let Ok(mut h) = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3) else {
            return Latency::default();
        };
        for v in values {
            h.saturating_record(v.max(1));
        }
        if h.is_empty() {
            return Latency::default();
        }
        Latency {
            p50_us: h.value_at_quantile(0.50),
            p90_us: h.value_at_quantile(0.90),
            p99_us: h.value_at_quantile(0.99),
            max_us: h.max(),
            mean_us: h.mean().round() as u64,
        }
    }
}

/// The JSON report of one run.
#[derive(Debug, Serialize)]
pub struct Report {
    /// `--label`, to tell runs apart in the harness's raw figures.
    pub label: String,
    pub http: HttpVersion,
    pub connections: usize,
    /// `keep-alive` or `fresh`.
    pub connection_use: &'static str,
    pub via_proxy: bool,
    pub requests: usize,
    /// Requests answered with a 2xx status and read to the end.
    pub ok: usize,
    /// Requests that failed (no response, broken body) or were not 2xx.
    pub failed: usize,
    /// Count per status code; `"error"` for requests without a response.
    pub statuses: BTreeMap<String, usize>,
    /// The first few failure messages.
    pub errors: Vec<String>,
    /// Body bytes received, all requests.
    pub bytes: u64,
    pub wall_s: f64,
    /// Body bytes per second, in MB/s (10^6 bytes).
    pub throughput_mb_s: f64,
    pub requests_per_s: f64,
    /// Per request: see [`Sample::latency`].
    pub latency: Latency,
    /// For fresh connections: TCP (+ `CONNECT`) time per request.
    pub connect: Option<Latency>,
    /// For fresh connections: TLS handshake time per request.
    pub tls: Option<Latency>,
    /// CPU seconds this load client used while measuring.
    pub client_cpu_s: f64,
    /// `client_cpu_s / wall_s`: near 1.0 on one pinned core means the
    /// client, not the server, set the pace.
    pub client_cpu_share: f64,
    /// Seconds the load client was ready to run but waited for its core
    /// (taken by other processes), while measuring.
    pub client_runqueue_wait_s: f64,
}

impl Report {
    /// Sums up an outcome.
    pub fn new(
        label: String,
        http: HttpVersion,
        connections: usize,
        fresh: bool,
        via_proxy: bool,
        outcome: &Outcome,
    ) -> Report {
        let samples = &outcome.samples;
        let mut statuses = BTreeMap::new();
        let mut errors = Vec::new();
        let mut ok = 0;
        for s in samples {
            let key = s
                .status
                .map_or_else(|| "error".to_owned(), |c| c.to_string());
            *statuses.entry(key).or_insert(0) += 1;
            if is_ok(s) {
                ok += 1;
            } else if errors.len() < ERRORS_KEPT {
                errors.push(
                    s.error
                        .clone()
                        .unwrap_or_else(|| format!("status {}", s.status.unwrap_or(0))),
                );
            }
        }
        let bytes: u64 = samples.iter().map(|s| s.bytes).sum();
        let wall_s = outcome.wall.as_secs_f64();
        let per_s = |x: f64| if wall_s > 0.0 { x / wall_s } else { 0.0 };
        let micros = |d: Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        let phases: Vec<_> = samples.iter().filter_map(|s| s.phases).collect();
        let client_cpu_s = outcome.cpu.as_secs_f64();
        Report {
            label,
            http,
            connections,
            connection_use: if fresh { "fresh" } else { "keep-alive" },
            via_proxy,
            requests: samples.len(),
            ok,
            failed: samples.len() - ok,
            statuses,
            errors,
            bytes,
            wall_s,
            throughput_mb_s: per_s(bytes as f64) / 1e6,
            requests_per_s: per_s(samples.len() as f64),
            latency: Latency::of(samples.iter().map(|s| micros(s.latency))),
            connect: fresh.then(|| Latency::of(phases.iter().map(|p| micros(p.connect)))),
            tls: fresh.then(|| Latency::of(phases.iter().map(|p| micros(p.tls)))),
            client_cpu_s,
            client_cpu_share: per_s(client_cpu_s),
            client_runqueue_wait_s: outcome.run_delay.as_secs_f64(),
        }
    }
}

fn is_ok(s: &Sample) -> bool {
    s.error.is_none() && s.status.is_some_and(|c| (200..300).contains(&c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_times_are_read_after_the_command_name() {
        // pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime ...
        let line = "42 (a (weird) name) S 1 42 42 0 -1 4194304 100 0 0 0 250 50 0 0 20 0 1 0";
        assert_eq!(stat_cpu_ticks(line), Some(300));
        assert_eq!(stat_cpu_ticks("garbage"), None);
        assert!(process_cpu() <= Duration::from_secs(3600));
        assert_eq!(schedstat_run_delay_ns("1234 5678 9\n"), Some(5678));
        assert_eq!(schedstat_run_delay_ns("1234"), None);
        assert!(process_run_delay() <= Duration::from_secs(3600));
    }

    #[test]
    fn percentiles_and_failures_are_summed_up() {
        let sample = |us: u64, status: Option<u16>| Sample {
            latency: Duration::from_micros(us),
            phases: None,
            status,
            bytes: 10,
            error: status.is_none().then(|| "reset".to_owned()),
        };
        let mut samples: Vec<Sample> = (1..=100).map(|i| sample(i * 100, Some(200))).collect();
        samples.push(sample(5, Some(404)));
        samples.push(sample(5, None));
        let outcome = Outcome {
            samples,
            wall: Duration::from_secs(2),
            cpu: Duration::from_millis(500),
            run_delay: Duration::from_millis(20),
        };
        let r = Report::new("t".into(), HttpVersion::Http1, 4, false, true, &outcome);
        assert_eq!((r.requests, r.ok, r.failed), (102, 100, 2));
        assert_eq!(r.statuses["200"], 100);
        assert_eq!(r.statuses["404"], 1);
        assert_eq!(r.statuses["error"], 1);
        assert_eq!(r.errors, vec!["status 404".to_owned(), "reset".to_owned()]);
        assert_eq!(r.bytes, 1020);
        assert!((r.requests_per_s - 51.0).abs() < 1e-9);
        assert!((r.client_cpu_share - 0.25).abs() < 1e-9);
        assert!((r.client_runqueue_wait_s - 0.02).abs() < 1e-9);
        // 3 significant digits: within 0.1 %.
        assert!((4900..=5010).contains(&r.latency.p50_us), "{:?}", r.latency);
        assert!((9800..=9910).contains(&r.latency.p99_us), "{:?}", r.latency);
        assert!(r.connect.is_none());
    }
}
