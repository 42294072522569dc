//! `/metrics` through the real binary: scraped during a recording and a
//! playback (curl through real sessions, nginx upstream), the counters a
//! user graphs move by what happened, and every exposition parses with
//! Prometheus' own OpenMetrics parser (Debian's python3-prometheus-client,
//! strict: `# EOF`, types, units).

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use btrfly_test_support::*;

const NAME: &str = "files.example.test";

/// Parses an exposition with `prometheus_client.openmetrics.parser` and
/// prints every sample as `name{k="v",...} value`, labels sorted.
const PARSE: &str = r#"
import sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        labels = ",".join('%s="%s"' % (k, s.labels[k]) for k in sorted(s.labels))
        print("%s{%s} %r" % (s.name, labels, float(s.value)))
"#;

/// Scrapes `/metrics` (no token), checks the content type, and returns the
/// parsed samples by `name{labels}`.
fn scrape(server: &BtrflyServer) -> HashMap<String, f64> {
    let out = run_ok(client_env(&mut Command::new("curl")).args([
        "-sS",
        "--fail",
        "--max-time",
        "30",
        "-D",
        "/dev/stderr",
        &format!("{}/metrics", server.control_url()),
    ]));
    let head = text(&out.stderr).to_ascii_lowercase();
    assert!(
        head.contains("content-type: application/openmetrics-text; version=1.0.0"),
        "{head}"
    );
    let mut py = Command::new("/usr/bin/python3")
        .args(["-c", PARSE])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 (Debian's, with python3-prometheus-client)");
    py.stdin
        .take()
        .expect("stdin")
        .write_all(&out.stdout)
        .expect("write exposition");
    let parsed = py.wait_with_output().expect("parser");
    assert!(
        parsed.status.success(),
        "the exposition does not parse: {}\n{}",
        text(&parsed.stderr),
        text(&out.stdout)
    );
    text(&parsed.stdout)
        .lines()
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_owned(), v.parse().ok()?))
        })
        .collect()
}

fn get(m: &HashMap<String, f64>, key: &str) -> f64 {
    m.get(key).copied().unwrap_or(0.0)
}

fn curl(env: &[(String, String)], url: &str, ok: bool) {
    let mut c = Command::new("curl");
    client_env(&mut c);
    apply_env(&mut c, env);
    let out = run(c
        .args([
            "-sS",
            "--max-time",
            "60",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
        ])
        .arg(url));
    let code = text(&out.stdout);
    assert_eq!(code == "200", ok, "{url}: {code} {}", text(&out.stderr));
}

fn start(server: &BtrflyServer, home: &Path, mode: &str, tag: &str) -> Vec<(String, String)> {
    let out = run_ok(
        server
            .cli(home)
            .args(["start", mode, &format!("--tag={tag}")]),
    );
    parse_exports(&text(&out.stdout))
}

#[test]
fn metrics_move_with_a_recording_and_a_playback_and_parse() {
    let root = tempfile::tempdir().expect("root");
    std::fs::create_dir_all(root.path().join("files")).expect("files dir");
    let body = vec![b'm'; 100_000];
    std::fs::write(root.path().join("files/m.bin"), &body).expect("m");
    let ca = TestCa::new();
    let nginx = Nginx::start(root.path(), &ca, &[NAME]);
    let server = BtrflyServer::start(
        bin(),
        &format!(
            "[upstream]\nca_file = {}\n[upstream.resolve]\n\"{NAME}\" = \"127.0.0.1\"\n",
            BtrflyServer::toml_str(nginx.ca_file().to_string_lossy())
        ),
    );
    let work = tempfile::tempdir().expect("work");
    let home = work.path();
    let url = format!("https://{NAME}:{}/files/m.bin", nginx.port());
    let size = body.len() as f64;

    let before = scrape(&server);
    assert_eq!(
        get(&before, r#"btrfly_active_sessions{mode="record"}"#),
        0.0
    );

    // During a recording: one session, one request recorded.
    let env = start(&server, home, "record", "m1");
    curl(&env, &url, true);
    // The answer is committed just after the client has it.
    let rec = wait_until(Duration::from_secs(20), "the recording's commit", || {
        let m = scrape(&server);
        (get(&m, "btrfly_recorded_total{}") > 0.0).then_some(m)
    });
    assert_eq!(get(&rec, r#"btrfly_active_sessions{mode="record"}"#), 1.0);
    assert_eq!(get(&rec, r#"btrfly_requests_total{mode="record"}"#), 1.0);
    assert_eq!(get(&rec, "btrfly_recorded_total{}"), 1.0);
    assert_eq!(get(&rec, "btrfly_recorded_bytes_total{}"), size);
    assert_eq!(get(&rec, "btrfly_upstream_latency_seconds_count{}"), 1.0);
    assert!(get(&rec, "btrfly_upstream_latency_seconds_sum{}") > 0.0);
    assert!(get(&rec, r#"btrfly_served_bytes_total{mode="record"}"#) >= size);
    // The store's operations are counted by OpenDAL's layer.
    assert!(
        rec.keys().any(
            |k| k.starts_with("btrfly_opendal_operation_duration_seconds_count{")
                && k.contains(r#"operation="write""#)
        ),
        "{rec:?}"
    );
    run_ok(server.cli(home).args(["stop"]));
    assert_eq!(
        get(&scrape(&server), r#"btrfly_active_sessions{mode="record"}"#),
        0.0
    );

    // During a playback: two hits and a miss; nothing more recorded.
    let env = start(&server, home, "playback", "m1");
    curl(&env, &url, true);
    curl(&env, &url, true);
    curl(
        &env,
        &format!("https://{NAME}:{}/files/not-recorded", nginx.port()),
        false,
    );
    let play = scrape(&server);
    assert_eq!(
        get(&play, r#"btrfly_active_sessions{mode="playback"}"#),
        1.0
    );
    assert_eq!(get(&play, r#"btrfly_requests_total{mode="playback"}"#), 3.0);
    assert_eq!(get(&play, r#"btrfly_hits_total{mode="playback"}"#), 2.0);
    assert_eq!(get(&play, r#"btrfly_misses_total{mode="playback"}"#), 1.0);
    assert!(get(&play, r#"btrfly_served_bytes_total{mode="playback"}"#) >= 2.0 * size);
    assert_eq!(get(&play, "btrfly_recorded_total{}"), 1.0);
    let out = run(server.cli(home).args(["stop"]));
    assert_eq!(out.status.code(), Some(1), "a playback with a miss exits 1");

    // Nothing secret in it: no token, no session secret, no URL.
    let raw = run_ok(
        client_env(&mut Command::new("curl"))
            .args(["-sS", &format!("{}/metrics", server.control_url())]),
    );
    let exposition = text(&raw.stdout);
    assert!(!exposition.contains(&server.token()));
    assert!(!exposition.contains(NAME));
    assert!(exposition.ends_with("# EOF\n"));
}

/// The `request` lines of a JSON log, as JSON objects.
fn request_lines(log: &str) -> Vec<serde_json::Value> {
    log.lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l)
                .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {l}"))
        })
        .filter(|v| v["fields"]["message"] == "request")
        .collect()
}

/// `btrfly serve --log-format json` (here `BTRFLY_LOG_FORMAT=json`): every
/// stderr line is one JSON object, and each request ends with one
/// `request` line naming its session, tag, mode, adapter, key, outcome,
/// status and duration.
#[test]
fn json_logs_have_one_line_per_request() {
    let root = tempfile::tempdir().expect("root");
    std::fs::create_dir_all(root.path().join("files")).expect("files dir");
    std::fs::write(root.path().join("files/j.txt"), "jjj\n").expect("j");
    let ca = TestCa::new();
    let nginx = Nginx::start(root.path(), &ca, &[NAME]);
    let server = BtrflyServer::start_with(
        bin(),
        StartOptions {
            extra: format!(
                "[upstream]\nca_file = {}\n[upstream.resolve]\n\"{NAME}\" = \"127.0.0.1\"\n",
                BtrflyServer::toml_str(nginx.ca_file().to_string_lossy())
            ),
            env: vec![("BTRFLY_LOG_FORMAT".into(), "json".into())],
            ..StartOptions::default()
        },
    );
    let work = tempfile::tempdir().expect("work");
    let home = work.path();
    let url = format!("https://{NAME}:{}/files/j.txt", nginx.port());
    let missing = format!("https://{NAME}:{}/files/missing.txt", nginx.port());

    let env = start(&server, home, "record", "j1");
    let record_id = env
        .iter()
        .find(|(k, _)| k == "BTRFLY_SESSION")
        .map(|(_, v)| v.clone());
    curl(&env, &url, true);
    run_ok(server.cli(home).args(["stop"]));
    let env = start(&server, home, "playback", "j1");
    curl(&env, &url, true);
    curl(&env, &missing, false);
    let _ = run(server.cli(home).args(["stop"]));

    let log = server.stderr_log();
    let lines = wait_until(Duration::from_secs(10), "three request lines", || {
        let l = request_lines(&server.stderr_log());
        (l.len() >= 3).then_some(l)
    });
    assert!(!log.is_empty());
    assert_eq!(lines.len(), 3, "{log}");
    let outcomes: Vec<(&str, &str, u64)> = lines
        .iter()
        .map(|l| {
            (
                l["span"]["mode"].as_str().unwrap_or_default(),
                l["span"]["outcome"].as_str().unwrap_or_default(),
                l["fields"]["status"].as_u64().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        outcomes,
        [
            ("record", "upstream", 200),
            ("playback", "hit", 200),
            ("playback", "miss", 404)
        ],
        "{log}"
    );
    for l in &lines {
        let span = &l["span"];
        assert_eq!(span["name"], "request");
        assert_eq!(span["tag"], "j1");
        assert_eq!(span["adapter"], "files");
        assert_eq!(span["method"], "GET");
        assert!(
            span["session"].as_str().is_some_and(|s| s.len() == 16),
            "{l}"
        );
        assert!(
            span["key"].as_str().is_some_and(|k| k.contains("/files/")),
            "{l}"
        );
        assert!(l["fields"]["duration_ms"].as_f64().is_some(), "{l}");
        assert_eq!(l["level"], "INFO");
    }
    if let Some(id) = record_id {
        assert!(lines[0]["span"]["session"]
            .as_str()
            .is_some_and(|s| id.contains(s)));
    }
    assert!(!log.contains(&server.token()), "no token in the log");
}
