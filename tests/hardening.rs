//! Hardening, end to end: the egress policy (no way out of a build through
//! btrfly), an upstream that drops the connection mid-body, and the races
//! of `stop record` and of a pip file fetched right after its index page.
//! The real binary, the Python upstream (`fidelity_upstream.py`) under a
//! name mapped by `[upstream.resolve]`, curl as the client.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use btrfly_test_support::*;

const HOST: &str = "up.example.test";

struct Fx {
    up: PyUpstream,
    server: BtrflyServer,
    ca_file: PathBuf,
    work: tempfile::TempDir,
}

impl Fx {
    fn new() -> Fx {
        Fx::with("")
    }

    /// With more config text after `[upstream.resolve]`.
    fn with(more: &str) -> Fx {
        Fx::with_port(|_| more.to_owned())
    }

    /// With more config text after `[upstream.resolve]`, given the
    /// upstream's port.
    fn with_port(more: impl FnOnce(u16) -> String) -> Fx {
        let work = tempfile::tempdir().expect("work dir");
        let ca = TestCa::new();
        let ca_file = ca.write_pem(work.path());
        let up = PyUpstream::start(&ca, &[HOST]);
        let more = more(up.port());
        let extra = format!(
            "[upstream]\nca_file = {}\n[upstream.resolve]\n\"{HOST}\" = \"127.0.0.1\"\n{more}",
            BtrflyServer::toml_str(ca_file.to_string_lossy()),
        );
        let server = BtrflyServer::start(bin(), &extra);
        Fx {
            up,
            server,
            ca_file,
            work,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("https://{HOST}:{}{path}", self.up.port())
    }

    fn out(&self, name: &str) -> PathBuf {
        self.work.path().join(name)
    }

    fn home(&self) -> PathBuf {
        let h = self.work.path().join("home");
        std::fs::create_dir_all(&h).expect("home");
        h
    }

    fn start(&self, mode: &str, tag: &str) -> Vec<(String, String)> {
        let out =
            run_ok(
                self.server
                    .cli(&self.home())
                    .args(["start", mode, &format!("--tag={tag}")]),
            );
        parse_exports(&text(&out.stdout))
    }

    fn stop(&self, mode: &str) -> Output {
        run(self.server.cli(&self.home()).args(["stop", mode]))
    }

    fn curl(&self, env: &[(String, String)]) -> Command {
        let mut c = Command::new("curl");
        client_env(&mut c);
        apply_env(&mut c, env);
        c.args(["-sS", "--max-time", "60"]);
        c
    }

    /// Asks the upstream directly (not through btrfly) how often `/slow`
    /// was requested.
    fn slow_hits(&self) -> u64 {
        let out = run(Command::new("curl")
            .args(["-sS", "--noproxy", "*", "--cacert"])
            .arg(&self.ca_file)
            .arg("--resolve")
            .arg(format!("{HOST}:{}:127.0.0.1", self.up.port()))
            .arg(self.url("/__hits/slow")));
        text(&out.stdout).trim().parse().unwrap_or(0)
    }
}

/// A record session cannot reach btrfly's control API, loopback, cloud
/// metadata (link-local), a private address or port 22: each is refused
/// with a 403 naming the rule (plain requests get the message as body,
/// CONNECT is refused before any TLS), counted in the summary; the
/// configured upstream keeps working.
#[test]
fn egress_policy_refuses_internal_addresses_and_ports() {
    let fx = Fx::new();
    let env = fx.start("record", "egress");
    let control = fx.server.listener("control").expect("control listener");

    // the configured upstream works
    run_ok(
        fx.curl(&env)
            .args(["--fail", "-o"])
            .arg(fx.out("file.bin"))
            .arg(fx.url("/file.bin")),
    );
    assert_eq!(
        std::fs::read(fx.out("file.bin")).expect("file").len(),
        100_000
    );

    // plain requests: 403 with the rule in the body
    let plain = [
        (format!("http://{control}/v1/tags"), "own-listener"),
        ("http://127.0.0.1/".to_owned(), "loopback"),
        (
            "http://169.254.169.254/latest/meta-data/".to_owned(),
            "link-local",
        ),
        ("http://10.11.12.13/".to_owned(), "private"),
        ("http://[::ffff:192.168.0.1]/".to_owned(), "private"),
        ("http://203.0.113.7:22/".to_owned(), "port"),
    ];
    for (url, rule) in &plain {
        let out = run(fx.curl(&env).args(["-D", "-", url]));
        let answer = text(&out.stdout);
        assert!(
            answer.starts_with("HTTP/1.1 403"),
            "{url} must be refused: {answer}"
        );
        assert!(
            answer.contains(&format!("(rule: {rule}")),
            "{url}: the message names the rule {rule}: {answer}"
        );
        assert!(
            answer
                .to_ascii_lowercase()
                .contains("x-btrfly-error: egress-refused"),
            "{answer}"
        );
        if *rule != "own-listener" {
            assert!(
                answer.contains("policy.") && answer.contains("btrfly serve --config FILE"),
                "the message says which key allows it: {answer}"
            );
        }
    }

    // CONNECT: refused with 403 before the tunnel (no TLS handshake)
    let tunnels = [
        format!("https://{control}/v1/tags"),
        "https://169.254.169.254/".to_owned(),
        "https://10.11.12.13/".to_owned(),
        "https://203.0.113.7:22/".to_owned(),
    ];
    for url in &tunnels {
        let out = run(fx
            .curl(&env)
            .args(["-v", "-w", "%{http_connect}", "-o", "/dev/null", url]));
        assert!(!out.status.success(), "{url} must fail");
        assert_eq!(text(&out.stdout), "403", "{url}: {}", text(&out.stderr));
        assert!(
            text(&out.stderr)
                .to_ascii_lowercase()
                .contains("x-btrfly-error: egress-refused"),
            "{}",
            text(&out.stderr)
        );
    }

    let stop = fx.stop("record");
    let summary = text(&stop.stderr);
    assert!(stop.status.success(), "{summary}");
    assert_eq!(field(&summary, "recorded"), 1, "{summary}");
    let refused = (plain.len() + tunnels.len()) as u64;
    assert_eq!(field(&summary, "egress refused"), refused, "{summary}");
    for rule in ["own-listener", "loopback", "link-local", "private", "port"] {
        assert!(
            summary.contains(&format!("(rule: {rule}")),
            "problems name {rule}: {summary}"
        );
    }
    assert!(
        summary.contains("CONNECT 203.0.113.7:22"),
        "the refused tunnel is listed: {summary}"
    );
}

/// The upstream closes the connection in the middle of a body: the client
/// sees an error, nothing is recorded for it, and the session goes on (the
/// next request records and replays).
#[test]
fn upstream_dropping_mid_body_records_nothing_and_the_session_goes_on() {
    let mut fx = Fx::new();
    let env = fx.start("record", "dropped");
    let cut = run(fx
        .curl(&env)
        .args(["-o", "/dev/null"])
        .arg(fx.url("/truncated")));
    assert!(!cut.status.success(), "a body cut short fails the client");
    run_ok(
        fx.curl(&env)
            .args(["--fail", "-o"])
            .arg(fx.out("after.bin"))
            .arg(fx.url("/file.bin")),
    );
    let stop = fx.stop("record");
    let summary = text(&stop.stderr);
    assert_eq!(field(&summary, "recorded"), 1, "{summary}");
    assert!(summary.contains("/truncated"), "{summary}");

    fx.up.stop();
    let env = fx.start("playback", "dropped");
    let hit = run(fx
        .curl(&env)
        .args(["--fail", "-o"])
        .arg(fx.out("replayed.bin"))
        .arg(fx.url("/file.bin")));
    assert!(hit.status.success(), "{}", text(&hit.stderr));
    assert_eq!(
        sha256_file(&fx.out("replayed.bin")),
        sha256_file(&fx.out("after.bin"))
    );
    let miss = run(fx
        .curl(&env)
        .args(["-w", "%{http_code}", "-o", "/dev/null"])
        .arg(fx.url("/truncated")));
    assert_eq!(text(&miss.stdout), "404", "never recorded");
    let _ = fx.stop("playback");
}

/// `stop record` while a request is between its admission and its
/// response head (the upstream waits 1.5 s before answering): the stop
/// waits for it, the answer is committed before the seal, and the sealed
/// tag replays it.
#[test]
fn stop_record_waits_for_a_request_admitted_before_it() {
    let mut fx = Fx::new();
    let env = fx.start("record", "sealrace");
    let mut slow = fx.curl(&env);
    slow.args(["--fail", "-o"])
        .arg(fx.out("slow.bin"))
        .arg(fx.url("/slow"));
    let slow = std::thread::spawn(move || run(&mut slow));
    // the request reached the upstream: it was admitted, its head is not
    // there yet
    wait_until(
        Duration::from_secs(30),
        "/slow reaches the upstream",
        || (fx.slow_hits() > 0).then_some(()),
    );
    let stop = fx.stop("record");
    let summary = text(&stop.stderr);
    let got = slow.join().expect("curl thread");
    assert!(got.status.success(), "{}", text(&got.stderr));
    assert!(stop.status.success(), "{summary}");
    assert_eq!(field(&summary, "recorded"), 1, "{summary}");

    fx.up.stop();
    let env = fx.start("playback", "sealrace");
    let out = run(fx
        .curl(&env)
        .args(["--fail", "-D", "-", "-o"])
        .arg(fx.out("replayed.bin"))
        .arg(fx.url("/slow")));
    assert!(
        out.status.success(),
        "the answer is in the sealed tag: {}",
        text(&out.stderr)
    );
    assert!(text(&out.stdout).contains("x-btrfly-replay: hit"));
    assert_eq!(
        sha256_file(&fx.out("replayed.bin")),
        sha256_file(&fx.out("slow.bin"))
    );
    let _ = fx.stop("playback");
}

/// A wheel fetched right after the index page that announced its digest,
/// on another connection (as pip's pool does, the page's host and the
/// files' host often differ), is checked against that digest: the
/// tampered bytes are refused, not recorded. (On one HTTP/1.1 connection
/// the next request waits for the previous one's commit anyway.)
#[test]
fn pip_file_right_after_its_page_is_verified() {
    let fx = Fx::new();
    let env = fx.start("record", "hintrace");
    let wheel = "demo_fid-1.0-py3-none-any.whl";
    run_ok(
        fx.curl(&env)
            .args(["--fail", "-o"])
            .arg(fx.out("page.html"))
            .arg(fx.url("/simple/demo-bad/")),
    );
    let out = run(fx
        .curl(&env)
        .args(["--fail", "-o"])
        .arg(fx.out(wheel))
        .arg(fx.url(&format!("/bad/{wheel}"))));
    let stop = fx.stop("record");
    let summary = text(&stop.stderr);
    let got = std::fs::metadata(fx.out(wheel))
        .map(|m| m.len())
        .unwrap_or(0);
    assert!(
        !out.status.success(),
        "the tampered wheel fails the client (an error status, or a cut body; got {got} bytes; {}): {summary}",
        text(&out.stderr)
    );
    assert_eq!(stop.status.code(), Some(1), "{summary}");
    assert!(summary.contains(&format!("/bad/{wheel}")), "{summary}");
    assert!(summary.contains("did not match the digest"), "{summary}");
}

/// Limits answer clearly: a URL over `limits.max_url_bytes` gets 414, a
/// header section over `limits.max_header_bytes` 431 (neither reaches the
/// summary's lists), an upstream slower than
/// `limits.upstream_read_timeout_secs` 504, and one connection over
/// `limits.max_connections` 503 — until the idle ones go; the control
/// listener likewise.
#[test]
fn limits_answer_414_431_504_and_503() {
    let fx = Fx::with(
        "[limits]\nmax_connections = 3\nmax_url_bytes = 1024\nmax_header_bytes = 4096\nupstream_read_timeout_secs = 1\n",
    );
    let env = fx.start("record", "limits");
    let status = |args: &[&str], url: &str| {
        let out = run(fx
            .curl(&env)
            .args(["-o", "/dev/null", "-w", "%{http_code}"])
            .args(args)
            .arg(url));
        text(&out.stdout)
    };
    let long = fx.url(&format!("/file.bin?{}", "q".repeat(2000)));
    assert_eq!(status(&[], &long), "414");
    let big = format!("X-Big: {}", "h".repeat(5000));
    assert_eq!(status(&["-H", &big], &fx.url("/file.bin")), "431");
    let slow = run(fx
        .curl(&env)
        .args(["-D", "-", "-o", "/dev/null"])
        .arg(fx.url("/slow")));
    let head = text(&slow.stdout);
    assert!(
        head.contains(" 504"),
        "an upstream slower than the read timeout: {head}"
    );
    assert_eq!(status(&["--fail"], &fx.url("/file.bin")), "200");

    // three idle connections fill the proxy; the fourth is refused
    let proxy = fx.server.proxy_addr();
    let idle = hold_idle(proxy, 3);
    let refused = wait_until(
        Duration::from_secs(10),
        "the fourth connection is refused",
        || {
            let out = run(fx
                .curl(&env)
                .args(["-v", "-o", "/dev/null", "-w", "%{http_connect}"])
                .arg(fx.url("/file.bin")));
            (text(&out.stdout) == "503").then(|| text(&out.stderr))
        },
    );
    assert!(
        refused
            .to_ascii_lowercase()
            .contains("x-btrfly-error: limit"),
        "{refused}"
    );
    drop(idle);
    wait_until(
        Duration::from_secs(10),
        "served again once they closed",
        || (status(&["--fail"], &fx.url("/file.bin")) == "200").then_some(()),
    );

    // the control listener has the same limit
    let home = fx.home();
    let control: std::net::SocketAddr = fx
        .server
        .control_url()
        .trim_start_matches("http://")
        .parse()
        .expect("control address");
    let idle = hold_idle(control, 3);
    let refused = wait_until(
        Duration::from_secs(10),
        "the CLI is refused by a full control listener",
        || {
            let out = run(fx.server.cli(&home).arg("sessions"));
            (!out.status.success()).then(|| text(&out.stderr))
        },
    );
    assert!(
        refused.contains("the control API serves 3 connections at once (limits.max_connections)"),
        "{refused}"
    );
    drop(idle);
    wait_until(
        Duration::from_secs(10),
        "the control API serves again once they closed",
        || {
            run(fx.server.cli(&home).arg("sessions"))
                .status
                .success()
                .then_some(())
        },
    );

    let stop = fx.stop("record");
    let summary = text(&stop.stderr);
    assert!(
        !summary.contains("qqqq"),
        "a refused URL is not listed: {summary}"
    );
}

/// `n` idle connections to `addr` that the server holds open: a
/// connection that arrives while an earlier client's is still being
/// wound up (its recording committed) can be refused at once, so each is
/// checked to have got nothing back after the refusal's 200 ms read, and
/// replaced if it did.
fn hold_idle(addr: SocketAddr, n: usize) -> Vec<TcpStream> {
    let open = |s: &TcpStream| {
        let mut byte = [0u8; 1];
        matches!(s.peek(&mut byte), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
    };
    let mut held: Vec<TcpStream> = Vec::new();
    wait_until(
        Duration::from_secs(10),
        &format!("{n} idle connections held open by {addr}"),
        || {
            held.retain(&open);
            while held.len() < n {
                let s = TcpStream::connect(addr).expect("connect");
                s.set_nonblocking(true).expect("non-blocking");
                held.push(s);
            }
            std::thread::sleep(Duration::from_millis(400));
            held.iter().all(&open).then_some(())
        },
    );
    held
}

/// Where the slow-loris test's transparent TLS listener listens: the
/// upstream's port number at another loopback address (the origin port is
/// the port the client connected to).
const GATEWAY_IP: &str = "127.0.0.3";

/// Idle connections a slow-loris client holds on each listener.
const LORIS: usize = 1000;

/// A slow-loris client holding 1,000 idle connections on the explicit
/// proxy port, 1,000 on the transparent TLS port and 500 on the control
/// port — connections that send nothing, half a CONNECT head, half a plain
/// request head, or half a ClientHello — is cut by
/// `limits.tls_handshake_timeout_secs` (5 s here: every connection closed
/// by the server between 5 s and 5 + 15 s after it was opened), while curl
/// through both client listeners and the CLI on the control port keep
/// getting whole answers during that time.
#[test]
fn slow_loris_is_cut_by_the_opening_timeout_while_clients_are_served() {
    const TIMEOUT: Duration = Duration::from_secs(5);
    let fx = Fx::with_port(|port| {
        format!(
            "[limits]\ntls_handshake_timeout_secs = {}\n[transparent]\nlisten_tls = \"{GATEWAY_IP}:{port}\"\n",
            TIMEOUT.as_secs()
        )
    });
    let home = fx.home();
    let (_, _, env) =
        crate::transparent::start_bound_with_exports(&fx.server, &home, "record", "loris");
    let proxy = fx.server.proxy_addr();
    let transparent: SocketAddr = format!("{GATEWAY_IP}:{}", fx.up.port())
        .parse()
        .expect("address");
    assert_eq!(fx.server.listener("transparent-tls"), Some(transparent));

    // The slow-loris client: every connection opened, a few bytes sent,
    // then nothing.
    let partial: [&[u8]; 3] = [
        b"",
        b"CONNECT up.example.test:443 HTTP/1.1\r\nHost: up.exa",
        b"GET http://up.example.test/file.bin HTTP/1.1\r\nHost: up",
    ];
    // A TLS handshake record announcing 512 bytes, of which 4 arrive.
    let hello: [&[u8]; 2] = [b"", b"\x16\x03\x01\x02\x00\x01\x00\x01"];
    // Half a control request head.
    let control: SocketAddr = fx
        .server
        .control_url()
        .trim_start_matches("http://")
        .parse()
        .expect("control address");
    let api: [&[u8]; 2] = [b"", b"GET /v1/tags HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthoriz"];
    let mut loris = Vec::with_capacity(2 * LORIS + LORIS / 2);
    for i in 0..LORIS {
        loris.push(open_idle(proxy, partial[i % partial.len()]));
        loris.push(open_idle(transparent, hello[i % hello.len()]));
        if i % 2 == 0 {
            loris.push(open_idle(control, api[(i / 2) % api.len()]));
        }
    }
    let held_since = Instant::now();

    // Normal clients, through both listeners, while those are held.
    let normal = std::thread::scope(|scope| {
        let clients = scope.spawn(|| {
            let via_proxy = run(fx
                .curl(&env)
                .args(["--fail", "-o"])
                .arg(fx.out("via-proxy.bin"))
                .arg(fx.url("/file.bin")));
            let via_transparent = run(Command::new("curl")
                .args(["-sS", "--max-time", "60", "--noproxy", "*"])
                .args(["--interface", "127.0.0.1", "--fail", "--cacert"])
                .arg(fx.server.data_dir().join("ca.pem"))
                .arg("--resolve")
                .arg(format!("{HOST}:{}:{GATEWAY_IP}", fx.up.port()))
                .arg("-o")
                .arg(fx.out("via-transparent.bin"))
                .arg(fx.url("/file.bin")));
            let tags = run(fx.server.cli(&home).args(["sessions", "--json"]));
            (via_proxy, via_transparent, tags, Instant::now())
        });
        let cut = wait_for_cuts(&mut loris, TIMEOUT + Duration::from_secs(15));
        (clients.join().expect("clients"), cut)
    });
    let ((via_proxy, via_transparent, tags, served_at), cut) = normal;
    assert!(via_proxy.status.success(), "{}", text(&via_proxy.stderr));
    assert!(tags.status.success(), "{}", text(&tags.stderr));
    assert!(
        text(&tags.stdout).contains("loris"),
        "{}",
        text(&tags.stdout)
    );
    assert!(
        via_transparent.status.success(),
        "{}",
        text(&via_transparent.stderr)
    );
    for name in ["via-proxy.bin", "via-transparent.bin"] {
        let got = std::fs::read(fx.out(name)).expect("downloaded");
        assert_eq!(got.len(), 100_000, "{name}");
    }
    let first_cut = cut.iter().map(|(at, _)| *at).min().expect("cut");
    assert!(
        served_at < first_cut,
        "the three clients were served while the idle connections were held ({:?} after they were opened; the first was cut after {:?})",
        served_at - held_since,
        first_cut - held_since,
    );
    for (i, (_, held)) in cut.iter().enumerate() {
        assert!(
            *held >= TIMEOUT - Duration::from_millis(100),
            "connection {i} was cut after {held:?}, before the {TIMEOUT:?} timeout"
        );
    }
    let longest = cut.iter().map(|(_, held)| *held).max().expect("cut");
    eprintln!(
        "slow loris: {} connections cut after {:?} to {longest:?}",
        cut.len(),
        cut.iter().map(|(_, held)| *held).min().expect("cut"),
    );
    let log = fx.server.stderr_log();
    for label in ["proxy", "transparent-tls"] {
        assert!(
            log.contains(&format!(
                "{label}: closed a connection that did not finish its opening"
            )),
            "{label}: {log}"
        );
    }
    assert!(
        log.contains("control: closed a connection that sent no complete request head"),
        "control: {log}"
    );
    let stop = fx.stop("record");
    assert!(stop.status.success(), "{}", text(&stop.stderr));
}

/// A connection that sends `bytes` and then nothing; non-blocking, for
/// [`wait_for_cuts`]. Returns it with the time it was opened.
fn open_idle(addr: SocketAddr, bytes: &[u8]) -> (TcpStream, Instant) {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("connecting to {addr}: {e}"));
    let opened = Instant::now();
    s.write_all(bytes).expect("write");
    s.set_nonblocking(true).expect("non-blocking");
    (s, opened)
}

/// Polls `conns` until the server has closed every one (end of stream or
/// a reset), for at most `within` after each was opened; returns, for
/// each, when it was seen closed and how long it had been held.
fn wait_for_cuts(conns: &mut [(TcpStream, Instant)], within: Duration) -> Vec<(Instant, Duration)> {
    let mut cut: Vec<Option<(Instant, Duration)>> = vec![None; conns.len()];
    let mut buf = [0u8; 512];
    loop {
        let now = Instant::now();
        for (i, (s, opened)) in conns.iter_mut().enumerate() {
            if cut[i].is_some() {
                continue;
            }
            match s.read(&mut buf) {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    assert!(
                        now - *opened < within,
                        "connection {i} still open {:?} after it was opened",
                        now - *opened
                    );
                }
                Ok(n) if n > 0 => panic!("connection {i}: the server answered {n} bytes"),
                Ok(_) | Err(_) => cut[i] = Some((now, now - *opened)),
            }
        }
        if cut.iter().all(Option::is_some) {
            return cut.into_iter().flatten().collect();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
