//! Load through the real binary: 200 HTTPS clients replaying a tag for
//! 30 s through the explicit proxy (`CONNECT`, keep-alive HTTP/1.1), driven
//! by the benchmark's load client (`bench/loadgen`), with the upstream
//! gone. Zero errors, and the server's peak memory bounded.

use std::process::Command;
use std::time::{Duration, Instant};

use btrfly_test_support::*;

const NAME: &str = "load.example.test";
/// Concurrent client connections, each with one request in flight.
const CLIENTS: usize = 200;
/// How long the clients replay.
const SECONDS: u64 = 30;
/// Files in the tag: 1 KiB to 256 KiB.
const FILES: usize = 18;

/// The load client's JSON report.
fn loadgen(args: &[String], timeout: Duration) -> (serde_json::Value, String) {
    let out = run_timeout(Command::new(loadgen_bin()).args(args), timeout);
    let stderr = text(&out.stderr);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("loadgen printed no JSON ({e}): {stderr}"));
    assert!(
        out.status.success(),
        "loadgen exit {:?}: {stderr}\n{report:#}",
        out.status.code()
    );
    (report, stderr)
}

/// 200 concurrent HTTPS clients replay for 30 s on loopback through the
/// explicit proxy: every request is a `200` read to its end (zero
/// errors), `stop playback` counts them all as hits with no miss, and the
/// server's peak RSS (`VmHWM`) stays under 128 MiB.
///
/// The bound, measured on a 2-core machine with a debug build: the server
/// peaks at 38 MiB after recording these files, and at 61–76 MiB under the
/// 200 clients (54,000–62,000 requests; each kept-alive tunnel holds a TLS
/// session with its record buffers and Pingora's HTTP/1 buffers, and the
/// allocator keeps per-thread arenas). 128 MiB leaves room for that spread
/// and for a slower machine, while a server that leaked 1 KiB per request,
/// or buffered the bodies it replays, would pass it within the run.
#[test]
fn two_hundred_clients_replay_for_30s_with_zero_errors_and_bounded_memory() {
    let root = tempfile::tempdir().expect("root");
    let files = root.path().join("files");
    std::fs::create_dir_all(&files).expect("files dir");
    let mut urls = Vec::new();
    for i in 0..FILES {
        let size = 1024u64 << (i % 9);
        write_random_file(
            &files.join(format!("f{i:02}.bin")),
            size + i as u64,
            i as u64,
        );
    }
    let ca = TestCa::new();
    let nginx = Nginx::start(root.path(), &ca, &[NAME]);
    for i in 0..FILES {
        urls.push(format!("https://{NAME}:{}/files/f{i:02}.bin", nginx.port()));
    }
    let list = root.path().join("urls.txt");
    std::fs::write(&list, urls.join("\n")).expect("URL list");
    let server = BtrflyServer::start(
        bin(),
        &format!(
            "[upstream]\nca_file = {}\n[upstream.resolve]\n\"{NAME}\" = \"127.0.0.1\"\n",
            BtrflyServer::toml_str(nginx.ca_file().to_string_lossy())
        ),
    );
    let home = root.path().join("home");
    std::fs::create_dir_all(&home).expect("home");
    let start = |mode: &str| {
        let out = run_ok(server.cli(&home).args(["start", mode, "--tag=load"]));
        let env = parse_exports(&text(&out.stdout));
        let value = |key: &str| {
            env.iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.clone())
                .unwrap_or_else(|| panic!("{key} exported"))
        };
        (value("HTTPS_PROXY"), value("SSL_CERT_FILE"))
    };

    // Record the files once, through the same client.
    let (proxy, bundle) = start("record");
    let (report, _) = loadgen(
        &[
            "--urls".into(),
            list.to_string_lossy().into_owned(),
            "--cacert".into(),
            bundle.clone(),
            "--proxy".into(),
            proxy,
            "--connections".into(),
            "4".into(),
            "--timeout-secs".into(),
            "60".into(),
        ],
        Duration::from_secs(90),
    );
    assert_eq!(report["ok"], FILES, "{report:#}");
    let stop = run(server.cli(&home).args(["stop", "record"]));
    assert!(stop.status.success(), "{}", text(&stop.stderr));
    assert_eq!(field(&text(&stop.stderr), "recorded"), FILES as u64);
    nginx.stop();
    let after_record = server.peak_rss_kib();

    // 200 clients replay for 30 s.
    let (proxy, _) = start("playback");
    let began = Instant::now();
    let (report, _) = loadgen(
        &[
            "--urls".into(),
            list.to_string_lossy().into_owned(),
            "--cacert".into(),
            bundle,
            "--proxy".into(),
            proxy,
            "--connections".into(),
            CLIENTS.to_string(),
            "--duration-secs".into(),
            SECONDS.to_string(),
            "--server-pid".into(),
            server.pid().to_string(),
            "--label".into(),
            "load".into(),
            "--timeout-secs".into(),
            "90".into(),
        ],
        Duration::from_secs(100),
    );
    let took = began.elapsed();
    let requests = report["requests"].as_u64().expect("requests");
    assert_eq!(report["failed"], 0, "{report:#}");
    assert_eq!(report["ok"], requests, "{report:#}");
    assert_eq!(
        report["statuses"],
        serde_json::json!({ "200": requests }),
        "{report:#}"
    );
    assert_eq!(report["connections"], CLIENTS, "{report:#}");
    assert!(
        report["wall_s"].as_f64().expect("wall") >= SECONDS as f64,
        "{report:#}"
    );
    // Every client made requests all along (not one per connection).
    assert!(
        requests >= 10 * CLIENTS as u64,
        "only {requests} requests in {SECONDS} s: {report:#}"
    );
    let stop = run(server.cli(&home).args(["stop", "playback"]));
    let summary = text(&stop.stderr);
    assert!(stop.status.success(), "{summary}");
    assert_eq!(field(&summary, "hits"), requests, "{summary}");
    assert_eq!(field(&summary, "misses"), 0, "{summary}");

    let peak = server.peak_rss_kib();
    eprintln!(
        "load: {requests} requests over {CLIENTS} connections in {:.1} s ({:.0}/s, p99 {} µs), loadgen ran {took:?}; server peak RSS {peak} KiB (after recording: {after_record} KiB); server CPU {} s",
        report["wall_s"].as_f64().unwrap_or(0.0),
        report["requests_per_s"].as_f64().unwrap_or(0.0),
        report["latency"]["p99_us"],
        report["server_cpu_s"],
    );
    assert!(
        peak < 128 * 1024,
        "peak RSS {peak} KiB under {CLIENTS} replaying clients (after recording: {after_record} KiB)"
    );
}
