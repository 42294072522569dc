//! The figures the load client prints: one JSON object per run.

use std::collections::BTreeMap;
use std::path::Path;
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

/// CPU readings of one process (`/proc/self` or `/proc/PID`) at one
/// moment: utime + stime from `stat` (10 ms ticks; threads that ended are
/// included), and per live thread the nanoseconds on a CPU and waiting for
/// one (`task/*/schedstat`: `on-cpu-ns wait-ns slices`).
#[derive(Debug, Clone, Default)]
pub struct ProcTimes {
    ticks: Option<u64>,
    threads: BTreeMap<String, (u64, u64)>,
}

impl ProcTimes {
    /// Reads `proc_dir` (e.g. `/proc/self`); what cannot be read stays
    /// empty (not Linux, or the process is gone).
    pub fn read(proc_dir: &Path) -> ProcTimes {
        let ticks = std::fs::read_to_string(proc_dir.join("stat"))
            .ok()
            .and_then(|s| stat_cpu_ticks(&s));
        let threads = std::fs::read_dir(proc_dir.join("task"))
            .map(|tasks| {
                tasks
                    .filter_map(Result::ok)
                    .filter_map(|t| {
                        let line = std::fs::read_to_string(t.path().join("schedstat")).ok()?;
                        Some((
                            t.file_name().to_string_lossy().into_owned(),
                            parse_schedstat(&line)?,
                        ))
                    })
                    .collect()
            })
            .unwrap_or_default();
        ProcTimes { ticks, threads }
    }

    /// CPU time and run-queue wait from `before` to `self`. The CPU time
    /// is the nanosecond schedstat sum when no thread ended in between (a
    /// new thread counts from zero), else the tick difference, which keeps
    /// what ended threads used. The wait is over the threads alive now; a
    /// process with several threads on one core counts its threads waiting
    /// for each other too.
    pub fn since(&self, before: &ProcTimes) -> (Duration, Duration) {
        let (mut cpu, mut wait) = (0u64, 0u64);
        for (tid, (c, w)) in &self.threads {
            let (c0, w0) = before.threads.get(tid).copied().unwrap_or((0, 0));
            cpu += c.saturating_sub(c0);
            wait += w.saturating_sub(w0);
        }
        let ended = before
            .threads
            .keys()
            .any(|tid| !self.threads.contains_key(tid));
        let cpu = match (ended || self.threads.is_empty(), self.ticks, before.ticks) {
            (true, Some(t1), Some(t0)) => {
                Duration::from_millis(t1.saturating_sub(t0) * 1000 / USER_HZ)
            }
            _ => Duration::from_nanos(cpu),
        };
        (cpu, Duration::from_nanos(wait))
    }
}

/// On-CPU and run-queue nanoseconds of a `schedstat` line.
fn parse_schedstat(line: &str) -> Option<(u64, u64)> {
    let mut f = line.split_whitespace();
    Some((f.next()?.parse().ok()?, f.next()?.parse().ok()?))
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
    /// With `--server-pid`: that process's CPU seconds in the same
    /// interval as `wall_s` (see [`ProcTimes::since`]).
    pub server_cpu_s: Option<f64>,
    /// With `--server-pid`: its threads' run-queue wait in that interval.
    pub server_runqueue_wait_s: Option<f64>,
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
        let client_cpu_s = outcome.client.0.as_secs_f64();
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
            client_runqueue_wait_s: outcome.client.1.as_secs_f64(),
            server_cpu_s: outcome.server.map(|(c, _)| c.as_secs_f64()),
            server_runqueue_wait_s: outcome.server.map(|(_, w)| w.as_secs_f64()),
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
        assert_eq!(parse_schedstat("1234 5678 9\n"), Some((1234, 5678)));
        assert_eq!(parse_schedstat("1234"), None);
        // Burn a little CPU: the reading must see it, at ns resolution.
        let me = Path::new("/proc/self");
        let before = ProcTimes::read(me);
        let mut x = 0u64;
        for i in 0..2_000_000u64 {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
        }
        let (cpu, _) = ProcTimes::read(me).since(&before);
        assert!(cpu > Duration::ZERO, "{cpu:?} ({x})");
        assert!(cpu < Duration::from_secs(60), "{cpu:?}");
        // A thread that ended: the ticks, which keep its time, are used.
        let t = |ticks, threads: &[(&str, u64)]| ProcTimes {
            ticks: Some(ticks),
            threads: threads
                .iter()
                .map(|(k, c)| (k.to_string(), (*c, 7)))
                .collect(),
        };
        let b = t(100, &[("1", 5_000_000), ("2", 9_000_000)]);
        assert_eq!(
            t(103, &[("1", 6_000_000), ("2", 9_500_000)]).since(&b).0,
            Duration::from_micros(1500)
        );
        assert_eq!(
            t(103, &[("1", 6_000_000), ("3", 1_000)]).since(&b).0,
            Duration::from_millis(30)
        );
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
            client: (Duration::from_millis(500), Duration::from_millis(20)),
            server: Some((Duration::from_millis(300), Duration::ZERO)),
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
        assert_eq!(r.server_cpu_s, Some(0.3));
        // 3 significant digits: within 0.1 %.
        assert!((4900..=5010).contains(&r.latency.p50_us), "{:?}", r.latency);
        assert!((9800..=9910).contains(&r.latency.p99_us), "{:?}", r.latency);
        assert!(r.connect.is_none());
    }
}
