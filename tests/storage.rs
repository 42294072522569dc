//! End-to-end tests of storage backends and scale-out: the real `btrfly`
//! binary on S3 (moto) and GCS (gcp-storage-emulator), two replicas on one
//! bucket, single flight, and the start-up checks. The object-store servers
//! are real protocol servers started here on free loopback ports (installed
//! by `tests/run`; see `btrfly_test_support::storage`).

use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use btrfly_test_support::storage::{
    random_name, GcsEmulator, Moto, TEST_ACCESS_KEY, TEST_REGION, TEST_SECRET_KEY,
};
use btrfly_test_support::*;

const NAME: &str = "files.example.test";

fn s3_storage(moto: &Moto, bucket: &str, prefix: &str) -> String {
    format!(
        "[storage]\nbackend = \"s3\"\n[storage.s3]\nbucket = \"{bucket}\"\nendpoint = \"{}\"\nregion = \"{TEST_REGION}\"\nprefix = \"{prefix}\"\n",
        moto.endpoint()
    )
}

/// Credentials from the usual environment, not the config file.
fn aws_env() -> Vec<(String, String)> {
    vec![
        ("AWS_ACCESS_KEY_ID".into(), TEST_ACCESS_KEY.into()),
        ("AWS_SECRET_ACCESS_KEY".into(), TEST_SECRET_KEY.into()),
    ]
}

fn upstream_config(nginx: &Nginx) -> String {
    format!(
        "[upstream]\nca_file = {}\n[upstream.resolve]\n\"{NAME}\" = \"127.0.0.1\"\n\"slow.example.test\" = \"127.0.0.1\"\n",
        BtrflyServer::toml_str(nginx.ca_file().to_string_lossy())
    )
}

fn curl(env: &[(String, String)]) -> Command {
    let mut c = Command::new("curl");
    client_env(&mut c);
    apply_env(&mut c, env);
    c.args(["-sS", "--fail", "--max-time", "120"]);
    c
}

/// The session's exports with the proxy address replaced: what a load
/// balancer in front of the replicas does.
fn via(env: &[(String, String)], proxy: SocketAddr) -> Vec<(String, String)> {
    env.iter()
        .map(|(k, v)| {
            if k.to_ascii_lowercase().ends_with("_proxy") {
                let (creds, _) = v.rsplit_once('@').unwrap_or_else(|| panic!("{k}={v}"));
                (k.clone(), format!("{creds}@{proxy}"))
            } else {
                (k.clone(), v.clone())
            }
        })
        .collect()
}

fn fetch(env: &[(String, String)], url: &str, out: &Path) {
    run_ok(curl(env).arg("-o").arg(out).arg(url));
}

fn start(server: &BtrflyServer, home: &Path, mode: &str, tag: &str) -> Vec<(String, String)> {
    let out = run_ok(
        server
            .cli(home)
            .args(["start", mode, &format!("--tag={tag}")]),
    );
    server.env_from_start(&text(&out.stdout))
}

fn stop(server: &BtrflyServer, home: &Path, mode: &str) -> Output {
    run(server.cli(home).args(["stop", mode]))
}

/// Record through replica A (and a little through B: one session, served
/// by both), stop A, stop the session through B (the summary counts both
/// replicas), stop the upstream, play back through B: bytes identical.
#[test]
fn two_replicas_on_one_s3_bucket_record_through_one_replay_through_the_other() {
    let moto = Moto::start();
    let bucket = moto.new_bucket();
    let prefix = random_name("e2e");

    let root = tempfile::tempdir().expect("root");
    std::fs::create_dir_all(root.path().join("files")).expect("files");
    std::fs::write(root.path().join("files/small.txt"), "hello from upstream\n").expect("small");
    // Bigger than the 4 MiB upload part: a multipart upload, then a copy.
    let big_sha = write_random_file(&root.path().join("files/big.bin"), 6_500_000, 7);
    std::fs::write(
        root.path().join("files/other.txt"),
        "served via replica B\n",
    )
    .expect("other");
    let ca = TestCa::new();
    let nginx = Nginx::start(root.path(), &ca, &[NAME]);
    let port = nginx.port();
    let url = |p: &str| format!("https://{NAME}:{port}{p}");

    let options = StartOptions {
        extra: format!(
            "{}{}",
            s3_storage(&moto, &bucket, &prefix),
            upstream_config(&nginx)
        ),
        env: aws_env(),
        ..StartOptions::default()
    };
    let mut a = BtrflyServer::start_with(bin(), options.clone());
    // The second replica gets the first one's identity before it starts
    // (README: "Several replicas on one bucket").
    let b = BtrflyServer::start_with(
        bin(),
        StartOptions {
            identity_from: Some(a.data_dir()),
            ..options
        },
    );

    let work = tempfile::tempdir().expect("work");
    let home = work.path().join("home");
    std::fs::create_dir_all(&home).expect("home");
    let out = |n: &str| work.path().join(n);

    // --- record: the session starts on A; B serves it too ---
    let env = start(&a, &home, "record", "shared1");
    fetch(&env, &url("/files/small.txt"), &out("r-small"));
    fetch(&env, &url("/files/big.bin"), &out("r-big"));
    fetch(
        &via(&env, b.proxy_addr()),
        &url("/files/other.txt"),
        &out("r-other"),
    );
    assert_eq!(sha256_file(&out("r-big")), big_sha);

    // A goes away (graceful: it writes its last counters).
    assert!(
        a.stop().is_some_and(|s| s.success()),
        "replica A stops cleanly"
    );
    // The session was started through A; `stop` talks to B because
    // BTRFLY_SERVER (set by `cli`) says so.
    let stopped = stop(&b, &home, "record");
    assert!(stopped.status.success(), "{}", text(&stopped.stderr));
    let summary = text(&stopped.stderr);
    assert_eq!(field(&summary, "requests"), 3, "{summary}");
    assert_eq!(
        field(&summary, "recorded"),
        3,
        "both replicas counted:\n{summary}"
    );

    // --- the upstream is gone; play back through B only ---
    nginx.stop();
    assert!(port_is_closed(port));
    let env = start(&b, &home, "playback", "shared1");
    let env_b = via(&env, b.proxy_addr());
    fetch(&env_b, &url("/files/small.txt"), &out("p-small"));
    fetch(&env_b, &url("/files/big.bin"), &out("p-big"));
    fetch(&env_b, &url("/files/other.txt"), &out("p-other"));
    for (r, p) in [
        ("r-small", "p-small"),
        ("r-big", "p-big"),
        ("r-other", "p-other"),
    ] {
        assert_eq!(
            std::fs::read(out(r)).expect("r"),
            std::fs::read(out(p)).expect("p"),
            "{r} vs {p}"
        );
    }
    let stopped = stop(&b, &home, "playback");
    assert!(stopped.status.success(), "{}", text(&stopped.stderr));
    let summary = text(&stopped.stderr);
    assert_eq!(
        (field(&summary, "hits"), field(&summary, "misses")),
        (3, 0),
        "{summary}"
    );
    // `tags` on B lists the tag, sealed by B's stop.
    let tags = run_ok(b.cli(&home).args(["tags"]));
    assert!(
        text(&tags.stdout).contains("shared1"),
        "{}",
        text(&tags.stdout)
    );
}

/// The same record/replay on GCS (the emulator rejects objects without a
/// content type: every write sets one).
#[test]
fn record_and_replay_on_gcs() {
    let gcs = GcsEmulator::start();
    let bucket = gcs.new_bucket();
    let root = tempfile::tempdir().expect("root");
    std::fs::create_dir_all(root.path().join("files")).expect("files");
    let sha = write_random_file(&root.path().join("files/data.bin"), 5_000_000, 3);
    let ca = TestCa::new();
    let nginx = Nginx::start(root.path(), &ca, &[NAME]);
    let port = nginx.port();
    let storage = format!(
        "[storage]\nbackend = \"gcs\"\n[storage.gcs]\nbucket = \"{bucket}\"\nendpoint = \"{}\"\nprefix = \"{}\"\nallow_anonymous = true\n",
        gcs.endpoint(),
        random_name("e2e")
    );
    let server = BtrflyServer::start(bin(), &format!("{storage}{}", upstream_config(&nginx)));
    let work = tempfile::tempdir().expect("work");
    let home = work.path();
    let target = format!("https://{NAME}:{port}/files/data.bin");

    let env = start(&server, home, "record", "g1");
    fetch(&env, &target, &home.join("r.bin"));
    let stopped = stop(&server, home, "record");
    assert!(stopped.status.success(), "{}", text(&stopped.stderr));
    assert_eq!(field(&text(&stopped.stderr), "recorded"), 1);
    nginx.stop();
    let env = start(&server, home, "playback", "g1");
    fetch(&env, &target, &home.join("p.bin"));
    assert_eq!(sha256_file(&home.join("p.bin")), sha);
    let stopped = stop(&server, home, "playback");
    assert!(stopped.status.success(), "{}", text(&stopped.stderr));
}

/// A plain-HTTP upstream that answers every request after `delay`, and
/// counts requests per path.
struct SlowUpstream {
    port: u16,
    hits: Arc<AtomicUsize>,
}

impl SlowUpstream {
    fn start(body: &'static [u8], delay: Duration) -> SlowUpstream {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let hits = Arc::new(AtomicUsize::new(0));
        let counter = hits.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let counter = counter.clone();
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(match stream.try_clone() {
                        Ok(s) => s,
                        Err(_) => return,
                    });
                    // One request per connection (Connection: close).
                    let mut line = String::new();
                    loop {
                        line.clear();
                        match reader.read_line(&mut line) {
                            Ok(0) | Err(_) => return,
                            Ok(_) if line == "\r\n" || line == "\n" => break,
                            Ok(_) => {}
                        }
                    }
                    counter.fetch_add(1, Ordering::SeqCst);
                    std::thread::sleep(delay);
                    let head = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    );
                    let _ = stream.write_all(head.as_bytes());
                    let _ = stream.write_all(body);
                });
            }
        });
        SlowUpstream { port, hits }
    }
}

/// Eight clients ask for the same URL at once while recording: the
/// upstream sees one request, every client gets the body, the tag has it.
#[test]
fn concurrent_identical_downloads_go_upstream_once() {
    const BODY: &[u8] = b"one upstream fetch for eight clients\n";
    let upstream = SlowUpstream::start(BODY, Duration::from_millis(1500));
    let server = BtrflyServer::start(
        bin(),
        "[upstream.resolve]\n\"slow.example.test\" = \"127.0.0.1\"\n",
    );
    let work = tempfile::tempdir().expect("work");
    let home = work.path();
    let env = start(&server, home, "record", "sf1");
    let target = format!("http://slow.example.test:{}/pkg.tar.gz", upstream.port);
    let clients: Vec<_> = (0..8)
        .map(|i| {
            let out = home.join(format!("c{i}"));
            let mut c = curl(&env);
            c.arg("-o").arg(&out).arg(&target);
            std::thread::spawn(move || (run(&mut c), out))
        })
        .collect();
    for c in clients {
        let (output, path) = c.join().expect("client thread");
        assert!(output.status.success(), "{}", text(&output.stderr));
        assert_eq!(std::fs::read(&path).expect("body"), BODY);
    }
    assert_eq!(
        upstream.hits.load(Ordering::SeqCst),
        1,
        "eight concurrent identical requests must reach the upstream once"
    );
    let stopped = stop(&server, home, "record");
    let summary = text(&stopped.stderr);
    assert_eq!(field(&summary, "requests"), 8, "{summary}");
    assert_eq!(field(&summary, "recorded"), 1, "{summary}");
    assert_eq!(field(&summary, "hits"), 7, "the followers: {summary}");
}

/// Runs `btrfly serve` with `config` expecting it to refuse to start;
/// returns its stderr. No listener line may have been printed.
fn serve_fails(config: &str, env: &[(String, String)]) -> String {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("config.toml");
    let text_config = format!(
        "data_dir = {}\n[proxy]\nlisten = \"127.0.0.1:0\"\n[control]\nlisten = \"127.0.0.1:0\"\n{config}",
        BtrflyServer::toml_str(dir.path().join("data").to_string_lossy())
    );
    std::fs::write(&path, text_config).expect("config");
    let mut cmd = Command::new(bin());
    client_env(&mut cmd);
    for var in [
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_ENDPOINT_URL",
        "AWS_PROFILE",
    ] {
        cmd.env_remove(var);
    }
    apply_env(&mut cmd, env);
    cmd.arg("serve").arg("--config").arg(&path);
    let started = Instant::now();
    let out = run_timeout(&mut cmd, Duration::from_secs(60));
    assert!(
        !out.status.success(),
        "serve must fail: {}",
        text(&out.stdout)
    );
    assert!(
        !text(&out.stdout).contains("listening on"),
        "no listener opens before storage is proven usable: {}",
        text(&out.stdout)
    );
    assert!(started.elapsed() < Duration::from_secs(45));
    text(&out.stderr)
}

#[test]
fn unusable_storage_is_a_clear_error_before_any_listener_opens() {
    let moto = Moto::start();
    let missing = random_name("missing");
    let err = serve_fails(&s3_storage(&moto, &missing, "p"), &aws_env());
    assert!(err.contains("bucket does not exist"), "{err}");
    assert!(err.contains(&missing), "names the bucket: {err}");
    assert!(err.contains("storage.s3.bucket"), "names the key: {err}");

    let strict = Moto::start_enforcing_auth();
    let err = serve_fails(&s3_storage(&strict, "some-bucket", "p"), &aws_env());
    assert!(err.contains("credentials were refused"), "{err}");
    assert!(err.contains("AWS_ACCESS_KEY_ID"), "{err}");

    let err = serve_fails(
        "[storage]\nbackend = \"s3\"\n[storage.s3]\nbucket = \"b12\"\n",
        &[],
    );
    assert!(
        err.contains("storage.s3.region") || err.contains("AWS_REGION"),
        "{err}"
    );

    let gcs = GcsEmulator::start();
    let err = serve_fails(
        &format!(
            "[storage]\nbackend = \"gcs\"\n[storage.gcs]\nbucket = \"{}\"\nendpoint = \"{}\"\nallow_anonymous = true\n",
            random_name("missing"),
            gcs.endpoint()
        ),
        &[],
    );
    assert!(err.contains("bucket does not exist"), "{err}");
    assert!(err.contains("storage.gcs.bucket"), "{err}");
}

/// `btrfly serve` with this config (and this data dir) must refuse to
/// start; returns what it printed on stderr.
fn serve_refused(data_dir: &Path, storage: &str) -> String {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("config.toml");
    std::fs::write(
        &path,
        format!(
            "data_dir = {}\n[proxy]\nlisten = \"127.0.0.1:0\"\n[control]\nlisten = \"127.0.0.1:0\"\n{storage}",
            BtrflyServer::toml_str(data_dir.to_string_lossy())
        ),
    )
    .expect("config");
    let mut cmd = Command::new(bin());
    client_env(&mut cmd);
    let out = run_timeout(
        cmd.arg("serve").arg("--config").arg(&path),
        Duration::from_secs(60),
    );
    assert!(!out.status.success(), "serve must refuse to start");
    assert!(
        !text(&out.stdout).contains("listening on"),
        "no listener opens: {}",
        text(&out.stdout)
    );
    text(&out.stderr)
}

/// Replicas of one store share one identity. A second replica started as
/// the README says (the first one's ca.pem, ca-key.pem and token in its
/// data dir) serves the first one's sessions: TLS through it is trusted.
/// One started with a data dir of its own, or with another CA, refuses to
/// start, naming the fix.
#[test]
fn replicas_of_one_store_share_one_identity() {
    let root = tempfile::tempdir().expect("root");
    std::fs::create_dir_all(root.path().join("files")).expect("files");
    std::fs::write(root.path().join("files/b.txt"), "through replica B\n").expect("b");
    let ca = TestCa::new();
    let nginx = Nginx::start(root.path(), &ca, &[NAME]);
    let url = format!("https://{NAME}:{}/files/b.txt", nginx.port());
    let shared = tempfile::tempdir().expect("shared store");
    let store_root = shared.path().join("store");
    let storage = format!(
        "[storage]\nbackend = \"fs\"\nroot = {}\n",
        BtrflyServer::toml_str(store_root.to_string_lossy())
    );
    let options = StartOptions {
        extra: format!("{storage}{}", upstream_config(&nginx)),
        ..StartOptions::default()
    };
    let a = BtrflyServer::start_with(bin(), options.clone());

    // Started wrongly: a data dir of its own, with no CA in it.
    let fresh = tempfile::tempdir().expect("fresh");
    let data = fresh.path().join("data");
    let err = serve_refused(&data, &storage);
    let expected = format!(
        "btrfly: the store (fs at {root}) already belongs to a btrfly CA, and this server's data_dir {data} has none: every replica of one store shares the CA and the control token. Copy ca.pem, ca-key.pem and token from the data_dir of a replica serving this store into {data}, then start again (README: \"Several replicas on one bucket\")\n",
        root = store_root.display(),
        data = data.display()
    );
    assert!(err.ends_with(&expected), "{err}");
    assert!(
        !data.join("ca.pem").exists(),
        "no CA is minted for a store that has one"
    );

    // Started wrongly: a data dir with a CA of its own (from another store).
    let mut other = BtrflyServer::start(bin(), "");
    other.stop();
    let own = other.data_dir();
    let err = serve_refused(&own, &storage);
    let expected = format!("than this server's {}/ca.pem (sha256 ", own.display());
    assert!(
        err.contains(&format!(
            "btrfly: the store (fs at {}) belongs to another btrfly CA (sha256 ",
            store_root.display()
        )) && err.contains(&expected)
            && err.contains(&format!(
                "clients of the other replicas would not trust this one. Every replica of one store shares the CA and the control token: copy ca.pem, ca-key.pem and token from the data_dir of a replica serving this store into {}, then start again",
                own.display()
            )),
        "{err}"
    );

    // Started the README's way.
    let b = BtrflyServer::start_with(
        bin(),
        StartOptions {
            identity_from: Some(a.data_dir()),
            ..options
        },
    );
    let work = tempfile::tempdir().expect("work");
    let home = work.path().join("home");
    std::fs::create_dir_all(&home).expect("home");
    let env = start(&a, &home, "record", "one-identity");
    let out = work.path().join("b.txt");
    fetch(&via(&env, b.proxy_addr()), &url, &out);
    assert_eq!(std::fs::read(&out).expect("b.txt"), b"through replica B\n");
    // one token for both: B stops the session A started
    let stopped = stop(&b, &home, "record");
    assert!(stopped.status.success(), "{}", text(&stopped.stderr));
    assert_eq!(field(&text(&stopped.stderr), "recorded"), 1);
}

/// The session id in a session's exports (the user of its proxy URL).
fn session_id(env: &[(String, String)]) -> String {
    let (_, url) = env
        .iter()
        .find(|(k, _)| k == "HTTPS_PROXY")
        .unwrap_or_else(|| panic!("no HTTPS_PROXY in {env:?}"));
    let userinfo = url.split("://").nth(1).and_then(|r| r.split_once(':'));
    userinfo
        .map(|(id, _)| id.to_owned())
        .unwrap_or_else(|| panic!("{url}"))
}

/// A fresh `BTRFLY_HOME` (each holds one session).
fn fresh_home(work: &Path, name: &str) -> std::path::PathBuf {
    let home = work.join(name);
    std::fs::create_dir_all(&home).expect("home");
    home
}

/// `tags/<tag>/recorder.json` of an fs store: (session, replica).
fn recorder_lease(store_root: &Path, tag: &str) -> Option<(String, String)> {
    let bytes = std::fs::read(store_root.join(format!("tags/{tag}/recorder.json"))).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).expect("recorder.json is JSON");
    Some((
        v["session"].as_str().expect("session").to_owned(),
        v["replica"].as_str().expect("replica").to_owned(),
    ))
}

/// The one-recorder-per-tag rule is held in the store (README: "Recording
/// rules"): with two replicas on one fs store, a second `start record` of
/// a tag through the other replica is refused naming the recording
/// session, and succeeds once that one stopped. After a `kill -9` of the
/// recording server and a restart, the dead session still holds the tag
/// until its lease runs out; a lease whose session object is gone is taken
/// over at once.
#[test]
fn one_recorder_per_tag_across_replicas_and_restarts() {
    // Long enough that a restart on a loaded machine fits well inside it.
    const LEASE: Duration = Duration::from_secs(10);
    let root = tempfile::tempdir().expect("root");
    std::fs::create_dir_all(root.path().join("files")).expect("files");
    std::fs::write(root.path().join("files/a.txt"), "recorded once\n").expect("a");
    let ca = TestCa::new();
    let nginx = Nginx::start(root.path(), &ca, &[NAME]);
    let url = format!("https://{NAME}:{}/files/a.txt", nginx.port());
    let shared = tempfile::tempdir().expect("shared store");
    let store_root = shared.path().join("store");
    let options = StartOptions {
        extra: format!(
            "[storage]\nbackend = \"fs\"\nroot = {}\n[sessions]\nlease = \"{}s\"\n{}",
            BtrflyServer::toml_str(store_root.to_string_lossy()),
            LEASE.as_secs(),
            upstream_config(&nginx)
        ),
        ..StartOptions::default()
    };
    let a = BtrflyServer::start_with(bin(), options.clone());
    let mut b = BtrflyServer::start_with(
        bin(),
        StartOptions {
            identity_from: Some(a.data_dir()),
            ..options
        },
    );
    let work = tempfile::tempdir().expect("work");
    let refused = |server: &BtrflyServer, home: &Path, extra: &[&str]| {
        let out = run(server
            .cli(home)
            .args(["start", "record", "--tag=shared"])
            .args(extra));
        assert_eq!(
            out.status.code(),
            Some(1),
            "a second recorder was let in: {}",
            text(&out.stderr)
        );
        text(&out.stderr)
    };
    let busy =
        |id: &str| format!("tag shared is being recorded by session {id}; stop that session first");

    // A records; B refuses a second recorder, with --force too.
    let home_a = fresh_home(work.path(), "a");
    let env_a = start(&a, &home_a, "record", "shared");
    let id_a = session_id(&env_a);
    assert_eq!(
        recorder_lease(&store_root, "shared").map(|l| l.0),
        Some(id_a.clone())
    );
    let out = work.path().join("a.txt");
    fetch(&env_a, &url, &out);
    let err = refused(&b, &fresh_home(work.path(), "b1"), &[]);
    assert!(err.contains(&busy(&id_a)), "{err}");
    let err = refused(&b, &fresh_home(work.path(), "b2"), &["--force"]);
    assert!(err.contains(&busy(&id_a)), "{err}");
    // A itself refuses too (its memory and the store agree).
    let err = refused(&a, &fresh_home(work.path(), "a2"), &[]);
    assert!(err.contains(&busy(&id_a)), "{err}");

    // Once A's session stopped, B may record the tag (again: --force).
    let stopped = stop(&a, &home_a, "record");
    assert!(stopped.status.success(), "{}", text(&stopped.stderr));
    assert_eq!(
        recorder_lease(&store_root, "shared"),
        None,
        "released at stop"
    );
    let home_b = fresh_home(work.path(), "b3");
    let env_b = run_ok(
        b.cli(&home_b)
            .args(["start", "record", "--tag=shared", "--force"]),
    );
    let env_b = b.env_from_start(&text(&env_b.stdout));
    let id_b = session_id(&env_b);
    let (holder, replica_b) = recorder_lease(&store_root, "shared").expect("B's lease");
    assert_eq!(holder, id_b);
    // The lease is renewed when the request comes in, and a replica
    // writes when it last heard of a session to the store every 500 ms
    // (`FLUSH_EVERY`): killed right after the request, the replica may
    // not have written that renewal, and the store says the session was
    // last heard of up to 500 ms before the request began.
    let request_began = Instant::now();
    fetch(&env_b, &url, &out);
    let last_request = Instant::now();

    // kill -9 of the recording server, and a restart: the dead session
    // holds the tag until its lease runs out (nothing says it is dead).
    b.kill_hard();
    b.restart();
    let err = refused(&b, &fresh_home(work.path(), "b4"), &[]);
    assert!(
        last_request.elapsed() < LEASE,
        "the restart took longer than the lease: {:?}",
        last_request.elapsed()
    );
    assert!(err.contains(&busy(&id_b)), "{err}");
    let err = refused(&a, &fresh_home(work.path(), "a3"), &[]);
    assert!(err.contains(&busy(&id_b)), "{err}");
    let deadline = Instant::now() + LEASE + Duration::from_secs(60);
    let mut n = 0;
    let env_c = loop {
        n += 1;
        let home = fresh_home(work.path(), &format!("c{n}"));
        let out = run(b.cli(&home).args(["start", "record", "--tag=shared"]));
        if out.status.success() {
            break b.env_from_start(&text(&out.stdout));
        }
        let err = text(&out.stderr);
        assert!(err.contains(&busy(&id_b)), "{err}");
        assert!(
            Instant::now() < deadline,
            "still refused {LEASE:?} after the last request: {err}"
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    assert!(
        request_began.elapsed() + Duration::from_millis(500) >= LEASE,
        "recording let in {:?} after the last request began, before the dead session's {LEASE:?} lease ran out",
        request_began.elapsed()
    );
    let id_c = session_id(&env_c);
    let (holder, replica_c) = recorder_lease(&store_root, "shared").expect("C's lease");
    assert_eq!(holder, id_c);
    assert_ne!(replica_c, replica_b, "a restarted server is a new replica");
    assert!(
        !store_root.join(format!("sessions/{id_b}.json")).exists(),
        "the dead session was ended"
    );

    // A lease whose session is gone from the store (removed by hand after
    // another crash) is stale: taken over at once, and the log says so.
    fetch(&env_c, &url, &out);
    b.kill_hard();
    std::fs::remove_file(store_root.join(format!("sessions/{id_c}.json"))).expect("rm session");
    b.restart();
    let home = fresh_home(work.path(), "d");
    let env_d = start(&b, &home, "record", "shared");
    let id_d = session_id(&env_d);
    assert_eq!(
        recorder_lease(&store_root, "shared").map(|l| l.0),
        Some(id_d)
    );
    let log = b.stderr_log();
    assert!(
        log.contains(&format!(
            "tag shared: took over the recorder lease of session {id_c}, which no longer exists"
        )),
        "{log}"
    );
    fetch(&env_d, &url, &out);
    assert_eq!(std::fs::read(&out).expect("a.txt"), b"recorded once\n");
    let stopped = stop(&b, &home, "record");
    assert!(stopped.status.success(), "{}", text(&stopped.stderr));
    assert_eq!(recorder_lease(&store_root, "shared"), None);
}
