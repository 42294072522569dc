//! `btrfly-loadgen`: the load client of btrfly's benchmark (`bench/run`).
//!
//! Fetches a list of `https` URLs over N connections — direct (with
//! `--resolve` overrides) or through an explicit proxy with `CONNECT` and
//! `Proxy-Authorization: Basic` (the `HTTPS_PROXY` that `btrfly start`
//! exports) — over HTTP/1.1 or HTTP/2, reads every body to the end, and
//! prints one JSON object: counts, bytes, throughput, requests/s,
//! latency percentiles and its own CPU time, so a run where the client set
//! the pace can be told apart. One thread (a current-thread runtime): pin
//! it to a core of its own with `taskset`.
//!
//! Exit status: 0 when every request got a 2xx answer read to the end, 1
//! when some did not (the JSON is printed all the same), 2 for bad input
//! or when nothing could be measured.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;

mod connect;
mod report;
mod run;
mod target;

use connect::{Connector, HttpVersion};
use run::ConnectionUse;
use target::{Proxy, Resolve, Target};

#[derive(Parser, Debug)]
#[command(
    name = "btrfly-loadgen",
    about = "HTTPS load client of btrfly's benchmark: fetches a URL list over N connections, direct or through an explicit proxy (CONNECT), and prints JSON figures"
)]
struct Args {
    /// File with one https URL per line (`#` comments and blank lines
    /// skipped); requested in order, each by the next free connection.
    #[arg(long)]
    urls: PathBuf,
    /// PEM file of the certificates to trust (the only trust anchors).
    #[arg(long)]
    cacert: PathBuf,
    /// Explicit proxy `http://[user:password@]host:port`; the credential
    /// goes in `Proxy-Authorization: Basic`. Without it, connects directly.
    #[arg(long)]
    proxy: Option<String>,
    /// `HOST:PORT:ADDRESS` (PORT may be `*`) for direct connections, like
    /// curl's --resolve. Repeatable.
    #[arg(long)]
    resolve: Vec<String>,
    /// Concurrent connections, each with one request in flight.
    #[arg(long, default_value_t = 1)]
    connections: usize,
    /// HTTP version, negotiated with ALPN (the run fails if the server
    /// picks another).
    #[arg(long, value_enum, default_value = "1.1")]
    http: HttpVersion,
    /// Open a new connection for every request (TCP + CONNECT + TLS +
    /// GET, all in the request's latency) instead of keep-alive
    /// connections opened before the clock starts.
    #[arg(long)]
    fresh_connections: bool,
    /// A name for the run, copied into the JSON.
    #[arg(long, default_value = "")]
    label: String,
    /// Also report this process's CPU time and run-queue wait over exactly
    /// the measured interval (the server under test, on this machine).
    #[arg(long)]
    server_pid: Option<u32>,
    /// Request the URL list round and round for this many seconds (the
    /// clock starts once every keep-alive connection is open) instead of
    /// once; `--connections` is then not capped by the list's length.
    #[arg(long)]
    duration_secs: Option<u64>,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 900)]
    timeout_secs: u64,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(args) {
        Ok(report) => {
            match serde_json::to_string_pretty(&report) {
                Ok(json) => println!("{json}"),
                Err(e) => {
                    eprintln!("btrfly-loadgen: writing the report: {e}");
                    return ExitCode::from(2);
                }
            }
            if report.failed > 0 {
                eprintln!(
                    "btrfly-loadgen: {} of {} requests failed; first: {}",
                    report.failed,
                    report.requests,
                    report.errors.first().map_or("", String::as_str)
                );
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            eprintln!("btrfly-loadgen: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(args: Args) -> anyhow::Result<report::Report> {
    let text = std::fs::read_to_string(&args.urls)
        .with_context(|| format!("reading the URL list {}", args.urls.display()))?;
    let targets = Target::parse_list(&text)?;
    anyhow::ensure!(
        !targets.is_empty(),
        "the URL list {} is empty",
        args.urls.display()
    );
    let proxy = args.proxy.as_deref().map(Proxy::parse).transpose()?;
    let mut resolve = Resolve::default();
    for entry in &args.resolve {
        resolve.add(entry)?;
    }
    let via_proxy = proxy.is_some();
    let connector = Connector::new(&args.cacert, proxy, resolve, args.http)?;
    let mode = if args.fresh_connections {
        ConnectionUse::Fresh
    } else {
        ConnectionUse::KeepAlive
    };
    let duration = args.duration_secs.map(Duration::from_secs);
    let connections = match duration {
        Some(_) => args.connections.max(1),
        None => args.connections.clamp(1, targets.len()),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let deadline = Duration::from_secs(args.timeout_secs);
    let outcome = runtime.block_on(async {
        tokio::time::timeout(
            deadline,
            run::run(
                Arc::new(connector),
                Arc::new(targets),
                connections,
                mode,
                args.server_pid,
                duration,
            ),
        )
        .await
    });
    let outcome = outcome
        .map_err(|_| anyhow::anyhow!("gave up after {} s (--timeout-secs)", args.timeout_secs))??;
    Ok(report::Report::new(
        args.label,
        args.http,
        connections,
        args.fresh_connections,
        via_proxy,
        &outcome,
    ))
}
