//! Transparent mode through the real binary: btrfly's DNS server queried
//! with `dig` (dnsutils).

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use btrfly_test_support::*;

/// `dig` against `server`: (status, answer lines as "TYPE DATA").
fn dig(server: SocketAddr, name: &str, record_type: &str) -> (String, Vec<String>) {
    let out = run_timeout(
        Command::new("dig")
            .arg(format!("@{}", server.ip()))
            .arg("-p")
            .arg(server.port().to_string())
            .args(["+time=5", "+tries=1", "+noall", "+comments", "+answer"])
            .arg(name)
            .arg(record_type),
        Duration::from_secs(30),
    );
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "dig {name} {record_type}: {stdout}");
    let status = stdout
        .split("status: ")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .unwrap_or_else(|| panic!("no status in dig output: {stdout}"))
        .to_owned();
    let answers = stdout
        .lines()
        .filter(|line| !line.starts_with(';') && !line.trim().is_empty())
        .map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            fields[3..].join(" ")
        })
        .collect();
    (status, answers)
}

#[test]
fn dns_server_answers_dig() {
    // The "real resolver" for forwarded names: another gateway's DNS server
    // with other addresses.
    let real = BtrflyServer::start(
        bin(),
        "[dns]\nlisten = \"127.0.0.1:0\"\nanswer_v4 = \"192.0.2.7\"\n",
    );
    let real_dns = real.listener("dns").expect("real dns listening");
    let gateway = BtrflyServer::start(
        bin(),
        &format!(
            "[dns]\nlisten = \"127.0.0.1:0\"\nanswer_v4 = \"127.0.0.9\"\nanswer_v6 = \"fd00::9\"\nttl = 7\n\
             forward = [\"control.example.test\"]\nforward_to = [\"{real_dns}\"]\n"
        ),
    );
    let dns = gateway.listener("dns").expect("dns listening");

    assert_eq!(
        dig(dns, "files.example.test", "A"),
        ("NOERROR".to_owned(), vec!["A 127.0.0.9".to_owned()])
    );
    assert_eq!(
        dig(dns, "files.example.test", "AAAA"),
        ("NOERROR".to_owned(), vec!["AAAA fd00::9".to_owned()])
    );
    for record_type in ["HTTPS", "SVCB", "TXT", "MX"] {
        assert_eq!(
            dig(dns, "files.example.test", record_type),
            ("NOERROR".to_owned(), vec![]),
            "{record_type}"
        );
    }
    for name in [
        "files.example.invalid",
        "bad-.example.test",
        "a_b!.example.test",
    ] {
        assert_eq!(
            dig(dns, name, "A"),
            ("NXDOMAIN".to_owned(), vec![]),
            "{name}"
        );
    }
    // The control API's name resolves for real; HTTPS for it is still empty.
    assert_eq!(
        dig(dns, "control.example.test", "A"),
        ("NOERROR".to_owned(), vec!["A 192.0.2.7".to_owned()])
    );
    assert_eq!(
        dig(dns, "control.example.test", "HTTPS"),
        ("NOERROR".to_owned(), vec![])
    );
    // Over TCP too.
    let out = run_ok(Command::new("dig").arg(format!("@{}", dns.ip())).args([
        "-p",
        &dns.port().to_string(),
        "+tcp",
        "+short",
        "x.example.test",
        "A",
    ]));
    assert_eq!(text(&out.stdout).trim(), "127.0.0.9");
}

const NAME: &str = "files.example.test";
/// The gateway's transparent listeners, on the upstream's port numbers at
/// another loopback address (the origin port is the port a client connected to).
const GATEWAY_IP: &str = "127.0.0.3";
/// A client address with no session.
const STRANGER_IP: &str = "127.0.0.5";

/// A client that knows no proxy: `curl` with the name resolved to the
/// gateway (what btrfly's DNS does), trusting btrfly's CA, from `source`.
fn plain_curl(gateway: &BtrflyServer, port: u16, source: &str) -> Command {
    let mut c = Command::new("curl");
    client_env(&mut c);
    c.args([
        "-sS",
        "--max-time",
        "60",
        "--noproxy",
        "*",
        "--interface",
        source,
    ])
    .arg("--cacert")
    .arg(gateway.data_dir().join("ca.pem"))
    .arg("--resolve")
    .arg(format!("{NAME}:{port}:{GATEWAY_IP}"));
    c
}

/// `btrfly start MODE --tag=TAG` (explicit mode), then the session bound to
/// `client_ip` through the control API; returns (id, secret).
fn start_bound(gateway: &BtrflyServer, home: &Path, mode: &str, tag: &str) -> (String, String) {
    let (id, secret, _) = start_bound_with_exports(gateway, home, mode, tag);
    (id, secret)
}

/// [`start_bound`], also returning the session's exports (for clients of
/// the explicit proxy in the same session).
pub(crate) fn start_bound_with_exports(
    gateway: &BtrflyServer,
    home: &Path,
    mode: &str,
    tag: &str,
) -> (String, String, Vec<(String, String)>) {
    let out = run_ok(
        gateway
            .cli(home)
            .args(["start", mode, &format!("--tag={tag}")]),
    );
    let env = parse_exports(&text(&out.stdout));
    let proxy = env
        .iter()
        .find(|(k, _)| k == "HTTPS_PROXY")
        .map(|(_, v)| v.clone())
        .expect("HTTPS_PROXY exported");
    // http://ID:SECRET@HOST:PORT
    let creds = proxy
        .trim_start_matches("http://")
        .split('@')
        .next()
        .expect("credentials");
    let (id, secret) = creds.split_once(':').expect("id:secret");
    let body = format!("{{\"secret\":\"{secret}\",\"client_ip\":\"127.0.0.1\"}}");
    let out = run_ok(
        Command::new("curl")
            .args(["-sS", "--fail-with-body", "--noproxy", "*", "-X", "POST"])
            .arg("-H")
            .arg(format!("Authorization: Bearer {}", gateway.token()))
            .args(["-H", "Content-Type: application/json", "--data", &body])
            .arg(format!("{}/v1/sessions/{id}/bind", gateway.control_url())),
    );
    let answer: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("bind answer is JSON");
    assert_eq!(answer["client_ip"], "127.0.0.1", "{answer}");
    assert!(
        answer["ca_pem"]
            .as_str()
            .is_some_and(|p| p.contains("BEGIN CERTIFICATE")),
        "{answer}"
    );
    (id.to_owned(), secret.to_owned(), env)
}

#[test]
fn transparent_listeners_serve_bound_clients_only() {
    let root = tempfile::tempdir().expect("root");
    let files = root.path().join("files");
    std::fs::create_dir_all(&files).expect("files dir");
    let big = write_random_file(&files.join("data.bin"), 3 * 1024 * 1024 + 17, 12);
    std::fs::write(files.join("small.txt"), b"transparent hello\n").expect("small");
    let ca = TestCa::new();
    let nginx = Nginx::start(root.path(), &ca, &[NAME]);
    let (tls_port, http_port) = (nginx.port(), nginx.plain_port());
    let gateway = BtrflyServer::start(
        bin(),
        &format!(
            "[upstream]\nca_file = {}\n[upstream.resolve]\n\"{NAME}\" = \"127.0.0.1\"\n\
             [transparent]\nlisten_tls = \"{GATEWAY_IP}:{tls_port}\"\nlisten_http = \"{GATEWAY_IP}:{http_port}\"\n",
            BtrflyServer::toml_str(nginx.ca_file().to_string_lossy())
        ),
    );
    assert_eq!(
        gateway.listener("transparent-tls").map(|a| a.to_string()),
        Some(format!("{GATEWAY_IP}:{tls_port}"))
    );
    let work = tempfile::tempdir().expect("work");
    let https = |path: &str| format!("https://{NAME}:{tls_port}{path}");
    let http = |path: &str| format!("http://{NAME}:{http_port}{path}");

    // No session bound yet: refused, never relayed.
    let refused = run(plain_curl(&gateway, tls_port, "127.0.0.1").arg(https("/files/small.txt")));
    assert!(!refused.status.success());
    let refused = run(plain_curl(&gateway, http_port, "127.0.0.1")
        .args(["-w", "%{http_code}"])
        .arg(http("/files/small.txt")));
    let body = text(&refused.stdout);
    assert!(body.ends_with("403"), "{body}");
    assert!(
        body.contains("no session is bound to client address 127.0.0.1"),
        "{body}"
    );
    let upstream_requests_before = nginx.access_log().lines().count();

    // Record through both listeners, with no proxy settings at all.
    let home = work.path().join("home");
    std::fs::create_dir_all(&home).expect("home");
    start_bound(&gateway, &home, "record", "transparent-1");
    let got = work.path().join("rec.bin");
    run_ok(
        plain_curl(&gateway, tls_port, "127.0.0.1")
            .arg("--fail")
            .arg("-o")
            .arg(&got)
            .arg(https("/files/data.bin")),
    );
    assert_eq!(sha256_file(&got), big);
    let small = run_ok(
        plain_curl(&gateway, http_port, "127.0.0.1")
            .arg("--fail")
            .arg(http("/files/small.txt")),
    );
    assert_eq!(small.stdout, b"transparent hello\n");
    // HTTP/1.1 over TLS as well as h2.
    let h1 = run_ok(
        plain_curl(&gateway, tls_port, "127.0.0.1")
            .args(["--fail", "--http1.1"])
            .arg(https("/files/small.txt")),
    );
    assert_eq!(h1.stdout, b"transparent hello\n");

    // A second client address without a session: TLS alert and 403.
    let stranger = run(plain_curl(&gateway, tls_port, STRANGER_IP).arg(https("/files/small.txt")));
    assert!(!stranger.status.success());
    let err = text(&stranger.stderr);
    assert!(err.to_ascii_lowercase().contains("access denied"), "{err}");
    let stranger = run(plain_curl(&gateway, http_port, STRANGER_IP)
        .args(["-w", "%{http_code}"])
        .arg(http("/files/small.txt")));
    let body = text(&stranger.stdout);
    assert!(
        body.ends_with("403") && body.contains(STRANGER_IP),
        "{body}"
    );
    // A ClientHello without SNI (an address instead of a name).
    let no_sni = run(plain_curl(&gateway, tls_port, "127.0.0.1")
        .arg("-k")
        .arg(format!("https://{GATEWAY_IP}:{tls_port}/files/small.txt")));
    assert!(!no_sni.status.success());
    let log = gateway.stderr_log();
    assert!(log.contains("without SNI"), "{log}");
    assert!(
        log.contains(&format!(
            "no btrfly session is bound to client address {STRANGER_IP}"
        )),
        "{log}"
    );
    // Only the recording client's three requests reached the upstream.
    let upstream_requests = nginx.access_log().lines().count() - upstream_requests_before;
    assert_eq!(upstream_requests, 3, "{}", nginx.access_log());

    let stop = run_ok(gateway.cli(&home).args(["stop", "record"]));
    assert!(stop.status.success());
    // The binding ended with the session.
    let after = run(plain_curl(&gateway, http_port, "127.0.0.1")
        .args(["-w", "%{http_code}"])
        .arg(http("/files/small.txt")));
    assert!(text(&after.stdout).ends_with("403"));

    // Upstream gone; playback through the same listeners, identical bytes.
    nginx.stop();
    start_bound(&gateway, &home, "playback", "transparent-1");
    let replayed = work.path().join("play.bin");
    run_ok(
        plain_curl(&gateway, tls_port, "127.0.0.1")
            .arg("--fail")
            .arg("-o")
            .arg(&replayed)
            .arg(https("/files/data.bin")),
    );
    assert_eq!(sha256_file(&replayed), big);
    let small = run_ok(
        plain_curl(&gateway, http_port, "127.0.0.1")
            .arg("--fail")
            .arg(http("/files/small.txt")),
    );
    assert_eq!(small.stdout, b"transparent hello\n");
    let stop = run_ok(gateway.cli(&home).args(["stop", "playback"]));
    assert!(stop.status.success());
}
