//! End-to-end tests of the gateway: the real `btrfly` binary, a real HTTPS
//! upstream (nginx, HTTP/2 and HTTP/1.1) under names in `example.test`, and
//! real clients (curl, wget). Record, stop the upstream, play back, compare
//! bytes.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use btrfly_test_support::*;

const NAME: &str = "files.example.test";

/// An upstream with some files, and a btrfly server that trusts it.
struct Fixture {
    root: tempfile::TempDir,
    nginx: Option<Nginx>,
    port: u16,
    plain_port: u16,
    server: BtrflyServer,
    work: tempfile::TempDir,
}

impl Fixture {
    fn new(files: &[(&str, &[u8])]) -> Fixture {
        Self::with_config(files, true, "")
    }

    fn with_config(files: &[(&str, &[u8])], trust_upstream: bool, more: &str) -> Fixture {
        let root = tempfile::tempdir().expect("root");
        std::fs::create_dir_all(root.path().join("files")).expect("files dir");
        for (name, body) in files {
            std::fs::write(root.path().join("files").join(name), body).expect("write file");
        }
        let ca = TestCa::new();
        let nginx = Nginx::start(root.path(), &ca, &[NAME, "other.example.test"]);
        let mut extra = String::from("[upstream]\n");
        if trust_upstream {
            extra.push_str(&format!(
                "ca_file = {}\n",
                BtrflyServer::toml_str(nginx.ca_file().to_string_lossy())
            ));
        }
        extra.push_str(&format!(
            "[upstream.resolve]\n\"{NAME}\" = \"127.0.0.1\"\n\"other.example.test\" = \"127.0.0.1\"\n{more}"
        ));
        let server = BtrflyServer::start(bin(), &extra);
        Fixture {
            port: nginx.port(),
            plain_port: nginx.plain_port(),
            root,
            nginx: Some(nginx),
            server,
            work: tempfile::tempdir().expect("work dir"),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("https://{NAME}:{}{path}", self.port)
    }

    fn plain_url(&self, path: &str) -> String {
        format!("http://{NAME}:{}{path}", self.plain_port)
    }

    fn file(&self, name: &str) -> PathBuf {
        self.root.path().join("files").join(name)
    }

    fn out(&self, name: &str) -> PathBuf {
        self.work.path().join(name)
    }

    fn home(&self, name: &str) -> PathBuf {
        let h = self.work.path().join(format!("home-{name}"));
        std::fs::create_dir_all(&h).expect("home");
        h
    }

    /// `btrfly start MODE --tag=TAG` in `home`; returns the exported env.
    fn start(&self, home: &Path, mode: &str, tag: &str) -> Vec<(String, String)> {
        let out = run_ok(
            self.server
                .cli(home)
                .args(["start", mode, &format!("--tag={tag}")]),
        );
        self.server.env_from_start(&text(&out.stdout))
    }

    fn stop(&self, home: &Path, mode: &str) -> Output {
        run(self.server.cli(home).args(["stop", mode]))
    }

    fn curl(&self, env: &[(String, String)]) -> Command {
        let mut c = Command::new("curl");
        client_env(&mut c);
        apply_env(&mut c, env);
        c.args(["-sS", "--max-time", "120"]);
        c
    }

    fn wget(&self, env: &[(String, String)]) -> Command {
        let mut c = Command::new("wget");
        client_env(&mut c);
        apply_env(&mut c, env);
        c.args(["-q", "--timeout=60", "--tries=1"]);
        c
    }

    fn stop_upstream(&mut self) {
        if let Some(n) = self.nginx.take() {
            n.stop();
        }
        assert!(port_is_closed(self.port), "the upstream must be gone");
    }
}

fn read(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The seed README's workflow with curl (HTTP/2 and HTTP/1.1), wget, a
/// redirect chain and a Range request: record, upstream gone, byte-identical
/// playback; an unrecorded URL is a counted, listed miss.
#[test]
fn record_then_replay_byte_identical_with_upstream_gone() {
    let data: Vec<u8> = (0..1_500_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let mut fx = Fixture::new(&[("small.txt", b"hello from upstream\n"), ("data.bin", &data)]);
    let home = fx.home("a");

    // --- record ---
    let env = fx.start(&home, "record", "example1");
    let v = run_ok(
        fx.curl(&env)
            .args(["--http2", "-w", "%{http_version}", "-o"])
            .arg(fx.out("r-small"))
            .arg(fx.url("/files/small.txt")),
    );
    assert_eq!(text(&v.stdout), "2", "curl must speak HTTP/2 to btrfly");
    let v = run_ok(
        fx.curl(&env)
            .args(["--http1.1", "-w", "%{http_version}", "-o"])
            .arg(fx.out("r-data"))
            .arg(fx.url("/files/data.bin")),
    );
    assert_eq!(text(&v.stdout), "1.1");
    let v = run_ok(
        fx.curl(&env)
            .args(["-L", "-w", "%{num_redirects}", "-o"])
            .arg(fx.out("r-redir"))
            .arg(fx.url("/redirect/1")),
    );
    assert_eq!(text(&v.stdout), "2", "two redirects to follow");
    let v = run_ok(
        fx.curl(&env)
            .args(["-r", "0-99", "-w", "%{http_code}", "-o"])
            .arg(fx.out("r-range"))
            .arg(fx.url("/files/data.bin")),
    );
    assert_eq!(text(&v.stdout), "206");
    run_ok(
        fx.wget(&env)
            .arg("-O")
            .arg(fx.out("r-wget"))
            .arg(fx.url("/files/small.txt")),
    );
    // plain HTTP goes through the same port as absolute-form requests
    run_ok(
        fx.curl(&env)
            .args(["--fail", "-o"])
            .arg(fx.out("r-plain"))
            .arg(fx.plain_url("/files/data.bin")),
    );
    run_ok(
        fx.wget(&env)
            .arg("-O")
            .arg(fx.out("r-wget-plain"))
            .arg(fx.plain_url("/files/small.txt")),
    );
    let stop = fx.stop(&home, "record");
    assert!(stop.status.success(), "{}", text(&stop.stderr));
    let summary = text(&stop.stderr);
    assert!(field(&summary, "recorded") >= 8, "{summary}");
    assert_eq!(field(&summary, "misses"), 0, "{summary}");

    assert_eq!(read(&fx.out("r-small")), read(&fx.file("small.txt")));
    assert_eq!(read(&fx.out("r-data")), data);
    assert_eq!(read(&fx.out("r-redir")), read(&fx.file("small.txt")));
    assert_eq!(read(&fx.out("r-range")), &data[..100]);
    assert_eq!(read(&fx.out("r-wget")), read(&fx.file("small.txt")));
    assert_eq!(read(&fx.out("r-plain")), data);
    assert_eq!(read(&fx.out("r-wget-plain")), read(&fx.file("small.txt")));

    // --- the upstream disappears ---
    fx.stop_upstream();

    // --- playback ---
    let env = fx.start(&home, "playback", "example1");
    let v = run_ok(
        fx.curl(&env)
            .args(["--http2", "-w", "%{http_version}", "-o"])
            .arg(fx.out("p-small"))
            .arg(fx.url("/files/small.txt")),
    );
    assert_eq!(text(&v.stdout), "2");
    run_ok(
        fx.curl(&env)
            .args(["--http1.1", "--fail", "-o"])
            .arg(fx.out("p-data"))
            .arg(fx.url("/files/data.bin")),
    );
    let v = run_ok(
        fx.curl(&env)
            .args(["-L", "--fail", "-w", "%{num_redirects}", "-o"])
            .arg(fx.out("p-redir"))
            .arg(fx.url("/redirect/1")),
    );
    assert_eq!(text(&v.stdout), "2", "the redirect chain replays");
    let v = run_ok(
        fx.curl(&env)
            .args(["-r", "0-99", "-w", "%{http_code}", "-o"])
            .arg(fx.out("p-range"))
            .arg(fx.url("/files/data.bin")),
    );
    assert_eq!(text(&v.stdout), "206");
    // a range that was never requested is cut from the recorded full body
    let v = run_ok(
        fx.curl(&env)
            .args(["-r", "1000-1999", "-w", "%{http_code}", "-o"])
            .arg(fx.out("p-range2"))
            .arg(fx.url("/files/data.bin")),
    );
    assert_eq!(text(&v.stdout), "206");
    run_ok(
        fx.wget(&env)
            .arg("-O")
            .arg(fx.out("p-wget"))
            .arg(fx.url("/files/small.txt")),
    );
    run_ok(
        fx.curl(&env)
            .args(["--fail", "-o"])
            .arg(fx.out("p-plain"))
            .arg(fx.plain_url("/files/data.bin")),
    );
    run_ok(
        fx.wget(&env)
            .arg("-O")
            .arg(fx.out("p-wget-plain"))
            .arg(fx.plain_url("/files/small.txt")),
    );

    assert_eq!(read(&fx.out("p-small")), b"hello from upstream\n");
    assert_eq!(read(&fx.out("p-data")), data);
    assert_eq!(read(&fx.out("p-redir")), b"hello from upstream\n");
    assert_eq!(read(&fx.out("p-range")), &data[..100]);
    assert_eq!(read(&fx.out("p-range2")), &data[1000..2000]);
    assert_eq!(read(&fx.out("p-wget")), b"hello from upstream\n");
    assert_eq!(read(&fx.out("p-plain")), data);
    assert_eq!(read(&fx.out("p-wget-plain")), b"hello from upstream\n");

    // an unrecorded URL: a clear, marked miss
    let never = fx.url("/files/never-recorded.txt");
    let miss = run(fx
        .curl(&env)
        .args(["-D", "-", "-o"])
        .arg(fx.out("p-miss"))
        .arg(&never));
    let head = text(&miss.stdout).to_ascii_lowercase();
    assert!(
        head.contains("\nhttp/2 404"),
        "after the CONNECT answer, a 404: {head}"
    );
    assert!(head.contains("x-btrfly-miss: example1"), "{head}");
    let body = text(&read(&fx.out("p-miss")));
    assert!(
        body.contains(&never) || body.contains("/files/never-recorded.txt"),
        "{body}"
    );
    assert!(body.contains("example1"), "{body}");

    let stop = fx.stop(&home, "playback");
    let summary = text(&stop.stderr);
    assert_eq!(
        stop.status.code(),
        Some(1),
        "a playback with a miss exits 1:\n{summary}"
    );
    assert_eq!(field(&summary, "misses"), 1, "{summary}");
    assert!(field(&summary, "hits") >= 9, "{summary}");
    assert!(
        summary.contains("/files/never-recorded.txt"),
        "the missed URL is listed:\n{summary}"
    );
    assert!(
        text(&stop.stderr).contains("missed 1 request"),
        "{}",
        text(&stop.stderr)
    );
}

/// A download far larger than any buffer streams through in both modes;
/// the server's peak memory stays far below the artifact size.
#[test]
fn large_download_streams_with_bounded_memory() {
    const SIZE: u64 = 256 * 1024 * 1024;
    let mut fx = Fixture::new(&[]);
    let sha = write_random_file(&fx.file("big.bin"), SIZE, 42);
    let home = fx.home("big");

    let env = fx.start(&home, "record", "big");
    run_ok(
        fx.curl(&env)
            .args(["--fail", "-o"])
            .arg(fx.out("r-big"))
            .arg(fx.url("/files/big.bin")),
    );
    assert_eq!(sha256_file(&fx.out("r-big")), sha);
    let stop = fx.stop(&home, "record");
    assert!(stop.status.success(), "{}", text(&stop.stderr));
    assert_eq!(field(&text(&stop.stderr), "recorded"), 1);
    let after_record = fx.server.peak_rss_kib();

    fx.stop_upstream();
    std::fs::remove_file(fx.out("r-big")).expect("rm");
    let env = fx.start(&home, "playback", "big");
    run_ok(
        fx.curl(&env)
            .args(["--fail", "-o"])
            .arg(fx.out("p-big"))
            .arg(fx.url("/files/big.bin")),
    );
    assert_eq!(
        sha256_file(&fx.out("p-big")),
        sha,
        "replayed bytes must be identical"
    );
    let stop = fx.stop(&home, "playback");
    assert!(stop.status.success(), "{}", text(&stop.stderr));
    let peak = fx.server.peak_rss_kib();
    eprintln!(
        "peak RSS after record: {after_record} KiB, after playback: {peak} KiB, artifact {} KiB",
        SIZE / 1024
    );
    assert!(
        peak < 160 * 1024,
        "peak RSS {peak} KiB while streaming a {} MiB file: memory must not grow with artifact size",
        SIZE / 1024 / 1024
    );
}

/// Several sessions with different tags at once: each sees only its own tag.
#[test]
fn concurrent_sessions_with_different_tags_stay_apart() {
    let fx = Fixture::new(&[("app.txt", b"version one\n")]);
    let (h1, h2) = (fx.home("one"), fx.home("two"));
    let e1 = fx.start(&h1, "record", "v1");
    run_ok(
        fx.curl(&e1)
            .args(["--fail", "-o"])
            .arg(fx.out("v1"))
            .arg(fx.url("/files/app.txt")),
    );
    // the upstream moves on while v1 is still recording
    std::fs::write(fx.file("app.txt"), b"version two\n").expect("update");
    let e2 = fx.start(&h2, "record", "v2");
    run_ok(
        fx.curl(&e2)
            .args(["--fail", "-o"])
            .arg(fx.out("v2"))
            .arg(fx.url("/files/app.txt")),
    );
    assert!(fx.stop(&h1, "record").status.success());
    assert!(fx.stop(&h2, "record").status.success());

    // play both back at the same time, in parallel requests
    let p1 = fx.start(&h1, "playback", "v1");
    let p2 = fx.start(&h2, "playback", "v2");
    let mut handles = Vec::new();
    for round in 0..4 {
        for (env, want, tag) in [(&p1, "version one\n", "v1"), (&p2, "version two\n", "v2")] {
            let mut cmd = fx.curl(env);
            let out = fx.out(&format!("p-{tag}-{round}"));
            cmd.args(["--fail", "-o"])
                .arg(&out)
                .arg(fx.url("/files/app.txt"));
            handles.push(std::thread::spawn(move || {
                run_ok(&mut cmd);
                assert_eq!(read(&out), want.as_bytes(), "tag {tag} round {round}");
            }));
        }
    }
    for h in handles {
        h.join().expect("a parallel playback failed");
    }
    for h in [&h1, &h2] {
        let stop = fx.stop(h, "playback");
        assert!(stop.status.success(), "{}", text(&stop.stderr));
        assert_eq!(field(&text(&stop.stderr), "hits"), 4);
    }
}

/// The gateway is never an open relay: no session credential, no traffic.
#[test]
fn requests_without_a_valid_session_get_407() {
    let fx = Fixture::new(&[("small.txt", b"x\n")]);
    let proxy = fx.server.proxy_addr();
    for (label, proxy_url) in [
        ("none", format!("http://{proxy}")),
        ("wrong", format!("http://nobody:wrong@{proxy}")),
    ] {
        let env = vec![
            ("HTTPS_PROXY".to_string(), proxy_url.clone()),
            ("http_proxy".to_string(), proxy_url),
        ];
        let out = run(fx
            .curl(&env)
            .args(["-o", "/dev/null", "-w", "%{http_connect}"])
            .arg(fx.url("/files/small.txt")));
        assert_ne!(out.status.code(), Some(0), "{label}: must fail");
        assert_eq!(text(&out.stdout), "407", "{label}: CONNECT answered 407");
        let out = run(fx
            .curl(&env)
            .args(["-o", "/dev/null", "-w", "%{http_code}"])
            .arg(format!("http://{NAME}:{}/files/small.txt", fx.port)));
        assert_eq!(text(&out.stdout), "407", "{label}: plain HTTP answered 407");
    }
    // A direct (non-proxy) request is told what btrfly is.
    let out = run(Command::new("curl")
        .args(["-sS"])
        .arg(format!("http://{proxy}/")));
    assert!(
        text(&out.stdout).contains("btrfly is a proxy"),
        "{}",
        text(&out.stdout)
    );
}

/// An upstream whose certificate does not verify fails with a clear error,
/// never with a valid-looking minted certificate.
#[test]
fn invalid_upstream_certificate_is_a_clear_error() {
    let fx = Fixture::with_config(&[("small.txt", b"x\n")], false, "");
    let home = fx.home("tls");
    let env = fx.start(&home, "record", "untrusted");
    let out = run(fx
        .curl(&env)
        .args(["-w", "%{http_code}", "-o"])
        .arg(fx.out("body"))
        .arg(fx.url("/files/small.txt")));
    assert_eq!(text(&out.stdout), "502", "{}", text(&out.stderr));
    let body = text(&read(&fx.out("body")));
    assert!(body.contains("btrfly: upstream"), "{body}");
    assert!(
        body.to_ascii_lowercase().contains("cert"),
        "the error names the certificate problem: {body}"
    );
    let stop = fx.stop(&home, "record");
    let summary = text(&stop.stderr);
    assert_eq!(field(&summary, "recorded"), 0, "{summary}");
    assert!(summary.contains("not recorded"), "{summary}");
}

/// A dead upstream while recording is a clear 502, and nothing is recorded.
#[test]
fn dead_upstream_while_recording_is_a_clear_error() {
    let fx = Fixture::new(&[]);
    let home = fx.home("dead");
    let env = fx.start(&home, "record", "dead");
    let closed = free_port();
    let url = format!("https://{NAME}:{closed}/nothing");
    let out = run(fx
        .curl(&env)
        .args(["-w", "%{http_code}", "-o"])
        .arg(fx.out("body"))
        .arg(&url));
    assert_eq!(text(&out.stdout), "502");
    let body = text(&read(&fx.out("body")));
    assert!(body.contains(&format!("{NAME}:{closed}")), "{body}");
    let stop = fx.stop(&home, "record");
    assert_eq!(field(&text(&stop.stderr), "recorded"), 0);
}

/// The CLI contract: sealed tags, `tags`, `tag show --json`, `ca export`,
/// `env`, and `run` wrapping one command.
#[test]
fn cli_contract() {
    let mut fx = Fixture::new(&[("a.txt", b"aaa\n")]);
    let home = fx.home("cli");

    // run --record wraps one command and prints the summary to stderr
    let mut curl = vec![
        "curl".to_string(),
        "-sS".into(),
        "--fail".into(),
        "-o".into(),
    ];
    curl.push(fx.out("run-a").to_string_lossy().into_owned());
    curl.push(fx.url("/files/a.txt"));
    let out = run(fx
        .server
        .cli(&home)
        .args(["run", "--record", "--tag=wrapped", "--"])
        .args(&curl));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("recorded: 1"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(read(&fx.out("run-a")), b"aaa\n");

    // a sealed tag refuses more recording unless forced
    let out = run(fx
        .server
        .cli(&home)
        .args(["start", "record", "--tag=wrapped"]));
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("sealed") && text(&out.stderr).contains("--force"),
        "{}",
        text(&out.stderr)
    );
    let out = run_ok(
        fx.server
            .cli(&home)
            .args(["start", "record", "--tag=wrapped", "--force"]),
    );
    assert!(text(&out.stdout).contains("export HTTPS_PROXY="));
    // env reprints the same exports; a second start is refused
    let again = run_ok(fx.server.cli(&home).args(["env"]));
    assert_eq!(text(&again.stdout), text(&out.stdout));
    let twice = run(fx
        .server
        .cli(&home)
        .args(["start", "playback", "--tag=wrapped"]));
    assert!(
        text(&twice.stderr).contains("already active"),
        "{}",
        text(&twice.stderr)
    );
    let wrong = run(fx.server.cli(&home).args(["stop", "playback"]));
    assert!(
        text(&wrong.stderr).contains("btrfly stop record"),
        "{}",
        text(&wrong.stderr)
    );
    for var in [
        "HTTPS_PROXY",
        "https_proxy",
        "HTTP_PROXY",
        "http_proxy",
        "SSL_CERT_FILE",
        "REQUESTS_CA_BUNDLE",
        "PIP_CERT",
        "CURL_CA_BUNDLE",
        "GIT_SSL_CAINFO",
        "NODE_EXTRA_CA_CERTS",
        "CARGO_HTTP_CAINFO",
    ] {
        assert!(
            text(&out.stdout).contains(&format!("export {var}=")),
            "missing {var}"
        );
    }
    // Re-opened with --force and nothing recorded: an empty recording is
    // reported (exit 1), and the tag keeps its entries, sealed again.
    let stop = fx.stop(&home, "record");
    assert_eq!(stop.status.code(), Some(1));
    assert!(
        text(&stop.stderr).contains("The tag keeps the entries it had and was sealed"),
        "{}",
        text(&stop.stderr)
    );

    // tags and tag show --json
    let tags = text(&run_ok(fx.server.cli(&home).args(["tags"])).stdout);
    assert!(
        tags.contains("wrapped") && tags.contains("sealed"),
        "{tags}"
    );
    let show = run_ok(
        fx.server
            .cli(&home)
            .args(["tag", "show", "wrapped", "--json"]),
    );
    let v: serde_json::Value = serde_json::from_slice(&show.stdout).expect("json");
    let entries = v["entries"].as_array().expect("entries");
    assert_eq!(entries.len(), 1, "{v}");
    let e = &entries[0];
    assert_eq!(e["method"], "GET");
    assert_eq!(e["status"], 200);
    assert_eq!(e["size"], 4);
    assert_eq!(e["sha256"], sha256_bytes(b"aaa\n"));
    assert!(e["url"].as_str().expect("url").ends_with("/files/a.txt"));

    // ca export prints the CA the server keeps in its data dir
    let pem = text(&run_ok(fx.server.cli(&home).args(["ca", "export"])).stdout);
    assert_eq!(
        pem,
        std::fs::read_to_string(fx.server.data_dir().join("ca.pem")).expect("ca.pem")
    );

    // run --playback with a miss exits 1 even though the command succeeded
    fx.stop_upstream();
    let out = run(fx
        .server
        .cli(&home)
        .args([
            "run",
            "--playback",
            "--tag=wrapped",
            "--",
            "curl",
            "-sS",
            "-o",
            "/dev/null",
        ])
        .arg(fx.url("/files/b.txt")));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("/files/b.txt"),
        "{}",
        text(&out.stderr)
    );

    // playback of a tag that was never recorded is refused up front
    let out = run(fx
        .server
        .cli(&home)
        .args(["start", "playback", "--tag=nope"]));
    assert!(
        text(&out.stderr).contains("no recording"),
        "{}",
        text(&out.stderr)
    );

    // a wrong token is refused with a message saying what to do
    let out = run(fx
        .server
        .cli(&home)
        .env("BTRFLY_TOKEN", "wrong")
        .args(["tags"]));
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("token"), "{}", text(&out.stderr));
}

/// Unknown config keys stop the server before it listens, naming the key.
#[test]
fn unknown_config_key_is_rejected_by_name() {
    let dir = tempfile::tempdir().expect("dir");
    let cfg = dir.path().join("btrfly.toml");
    std::fs::write(
        &cfg,
        "[proxy]\nlisten = \"127.0.0.1:0\"\nlisen = \"oops\"\n",
    )
    .expect("write");
    let mut cmd = Command::new(bin());
    client_env(&mut cmd);
    let out = run(cmd
        .arg("serve")
        .arg("--config")
        .arg(&cfg)
        .env("BTRFLY_DATA_DIR", dir.path().join("data")));
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("lisen") && err.contains("btrfly.toml"),
        "{err}"
    );
    assert!(
        !text(&out.stdout).contains("listening on"),
        "no listener may open"
    );
}

/// The key carries a digest of the request body, and IP-literal targets
/// (no SNI: the leaf is minted for the CONNECT address) work like names.
#[test]
fn request_bodies_and_ip_literals_are_part_of_the_key() {
    // A loopback IP literal is internal: the egress policy allows it only
    // when the config says so.
    let mut fx = Fixture::with_config(
        &[("small.txt", b"by address\n")],
        true,
        "[policy]\nallow = [\"127.0.0.1\"]\n",
    );
    let home = fx.home("body");
    let by_ip = format!("https://127.0.0.1:{}/files/small.txt", fx.port);
    // Over HTTP/1.1: over HTTP/2 nginx's early 405 races the body, and
    // when the client's stream is reset before btrfly read any of it, the
    // recording is dropped as a problem (see README, "Request bodies").
    fn post(fx: &Fixture, env: &[(String, String)], data: &str, out: &str) -> String {
        let o = run(fx
            .curl(env)
            .args(["--http1.1", "-D", "-", "--data-binary", data, "-o"])
            .arg(fx.out(out))
            .arg(fx.url("/files/small.txt")));
        text(&o.stdout).to_ascii_lowercase()
    }

    let env = fx.start(&home, "record", "bodies");
    run_ok(
        fx.curl(&env)
            .args(["--fail", "-o"])
            .arg(fx.out("r-ip"))
            .arg(&by_ip),
    );
    let recorded = post(&fx, &env, "alpha", "r-post");
    assert!(
        recorded.contains("\nhttp/1.1 405"),
        "nginx refuses POST to a static file: {recorded}"
    );
    assert!(fx.stop(&home, "record").status.success());
    fx.stop_upstream();

    let env = fx.start(&home, "playback", "bodies");
    run_ok(
        fx.curl(&env)
            .args(["--fail", "-o"])
            .arg(fx.out("p-ip"))
            .arg(&by_ip),
    );
    assert_eq!(read(&fx.out("p-ip")), b"by address\n");
    let same = post(&fx, &env, "alpha", "p-post");
    assert!(
        same.contains("\nhttp/1.1 405") && same.contains("x-btrfly-replay: hit"),
        "same body replays: {same}"
    );
    assert_eq!(read(&fx.out("p-post")), read(&fx.out("r-post")));
    let other = post(&fx, &env, "beta", "p-post2");
    assert!(
        other.contains("x-btrfly-miss: bodies"),
        "another body is another key: {other}"
    );
    let stop = fx.stop(&home, "playback");
    assert_eq!(
        field(&text(&stop.stderr), "misses"),
        1,
        "{}",
        text(&stop.stderr)
    );
}
