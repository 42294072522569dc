//! The load itself: N workers, each with one connection, taking the next
//! URL from a shared list until it is used up (or, for a run of a given
//! duration, round the list again until the time is up).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::BodyExt as _;
use tokio::sync::Barrier;

use crate::connect::{ConnectError, Connector, Phases, Sender};
use crate::report::ProcTimes;
use crate::target::Target;

/// How connections are used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionUse {
    /// Each worker opens its connection before the clock starts and keeps
    /// it for every request (reopening it after an error or when the next
    /// URL has another authority).
    KeepAlive,
    /// Every request on a new connection, opened inside the timed request
    /// and closed after it: TCP (+ `CONNECT`) + TLS + GET.
    Fresh,
}

/// The outcome of one request.
#[derive(Debug, Clone)]
pub struct Sample {
    /// From sending the request (for [`ConnectionUse::Fresh`]: from opening
    /// the connection) to the end of the response body.
    pub latency: Duration,
    /// Connection phases, for requests that opened their own connection.
    pub phases: Option<Phases>,
    /// Response status, or `None` when the request failed.
    pub status: Option<u16>,
    /// Body bytes received.
    pub bytes: u64,
    /// What went wrong, for a failed request.
    pub error: Option<String>,
}

/// Everything the workers measured.
#[derive(Debug)]
pub struct Outcome {
    pub samples: Vec<Sample>,
    /// From the moment every worker was connected (keep-alive) or from the
    /// start (fresh) to the last response.
    pub wall: Duration,
    /// This process's CPU time and run-queue wait in the same interval.
    pub client: (Duration, Duration),
    /// The same for the watched server process, when there is one.
    pub server: Option<(Duration, Duration)>,
}

/// Runs `targets` over `connections` workers; with `server_pid`, also
/// reads that process's CPU time over the measured interval. With
/// `duration`, the list is requested round and round until that long after
/// the clock started (requests in flight then are finished); without it,
/// once.
///
/// # Errors
/// Opening a worker's first (keep-alive) connection failed: nothing was
/// measured. Failures after that are counted in the samples.
pub async fn run(
    connector: Arc<Connector>,
    targets: Arc<Vec<Target>>,
    connections: usize,
    mode: ConnectionUse,
    server_pid: Option<u32>,
    duration: Option<Duration>,
) -> Result<Outcome, ConnectError> {
    let connections = match duration {
        Some(_) => connections.max(1),
        None => connections.clamp(1, targets.len().max(1)),
    };
    let next = Arc::new(AtomicUsize::new(0));
    // The clock starts once every worker holds its connection.
    let barrier = Arc::new(Barrier::new(connections + 1));
    let mut workers = Vec::with_capacity(connections);
    for _ in 0..connections {
        let (connector, targets, next, barrier) = (
            connector.clone(),
            targets.clone(),
            next.clone(),
            barrier.clone(),
        );
        workers.push(tokio::spawn(async move {
            worker(connector, targets, next, barrier, mode, duration).await
        }));
    }
    barrier.wait().await;
    let me = Path::new("/proc/self");
    let server_dir = server_pid.map(|pid| PathBuf::from(format!("/proc/{pid}")));
    let server0 = server_dir.as_deref().map(ProcTimes::read);
    let client0 = ProcTimes::read(me);
    let t0 = Instant::now();
    let mut samples = Vec::with_capacity(targets.len());
    let mut first_error = None;
    for w in workers {
        match w.await {
            Ok(Ok(mut s)) => samples.append(&mut s),
            Ok(Err(e)) => {
                first_error.get_or_insert(e);
            }
            Err(join) => samples.push(Sample {
                latency: Duration::ZERO,
                phases: None,
                status: None,
                bytes: 0,
                error: Some(format!("worker failed: {join}")),
            }),
        }
    }
    let wall = t0.elapsed();
    let client = ProcTimes::read(me).since(&client0);
    let server = server_dir
        .as_deref()
        .zip(server0)
        .map(|(dir, before)| ProcTimes::read(dir).since(&before));
    match first_error {
        Some(e) => Err(e),
        None => Ok(Outcome {
            samples,
            wall,
            client,
            server,
        }),
    }
}

async fn worker(
    connector: Arc<Connector>,
    targets: Arc<Vec<Target>>,
    next: Arc<AtomicUsize>,
    barrier: Arc<Barrier>,
    mode: ConnectionUse,
    duration: Option<Duration>,
) -> Result<Vec<Sample>, ConnectError> {
    // The open connection and the authority it goes to.
    let mut conn: Option<(Sender, String)> = None;
    if mode == ConnectionUse::KeepAlive {
        if let Some(first) = targets.first() {
            match connector.connect(first).await {
                Ok((sender, _)) => conn = Some((sender, first.authority.clone())),
                Err(e) => {
                    // Let the others go on; the run reports this error.
                    barrier.wait().await;
                    return Err(e);
                }
            }
        }
    }
    barrier.wait().await;
    let until = duration.map(|d| Instant::now() + d);
    let mut samples = Vec::new();
    loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        let target = match until {
            Some(until) if Instant::now() >= until => break,
            Some(_) if !targets.is_empty() => targets.get(i % targets.len()),
            _ => targets.get(i),
        };
        let Some(target) = target else { break };
        let started = Instant::now();
        let mut phases = None;
        let reuse = mode == ConnectionUse::KeepAlive
            && conn
                .as_ref()
                .is_some_and(|(_, authority)| *authority == target.authority);
        if !reuse {
            conn = None;
            match connector.connect(target).await {
                Ok((sender, p)) => {
                    conn = Some((sender, target.authority.clone()));
                    phases = Some(p);
                }
                Err(e) => {
                    samples.push(failed(started, phases, e.to_string()));
                    continue;
                }
            }
        }
        let Some((sender, _)) = conn.as_mut() else {
            continue;
        };
        let sample_start = if mode == ConnectionUse::Fresh {
            started
        } else {
            Instant::now()
        };
        match fetch(sender, target).await {
            Ok((status, bytes)) => samples.push(Sample {
                latency: sample_start.elapsed(),
                phases,
                status: Some(status),
                bytes,
                error: None,
            }),
            Err(e) => {
                // The connection is suspect after an error: reopen it.
                conn = None;
                samples.push(failed(sample_start, phases, e));
            }
        }
        if mode == ConnectionUse::Fresh {
            conn = None;
        }
    }
    Ok(samples)
}

fn failed(started: Instant, phases: Option<Phases>, error: String) -> Sample {
    Sample {
        latency: started.elapsed(),
        phases,
        status: None,
        bytes: 0,
        error: Some(error),
    }
}

/// Sends one GET and reads the whole body, counting its bytes.
async fn fetch(sender: &mut Sender, target: &Target) -> Result<(u16, u64), String> {
    let req = sender
        .request(target)
        .map_err(|e| format!("{}: building the request: {e}", target.url))?;
    let resp = match sender {
        Sender::H1(s) => {
            s.ready()
                .await
                .map_err(|e| format!("{}: connection: {e}", target.url))?;
            s.send_request(req).await
        }
        Sender::H2(s) => {
            s.ready()
                .await
                .map_err(|e| format!("{}: connection: {e}", target.url))?;
            s.send_request(req).await
        }
    }
    .map_err(|e| format!("{}: {e}", target.url))?;
    let status = resp.status().as_u16();
    let mut body = resp.into_body();
    let mut bytes = 0u64;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| format!("{}: reading the body: {e}", target.url))?;
        if let Some(data) = frame.data_ref() {
            bytes += data.len() as u64;
        }
    }
    Ok((status, bytes))
}
