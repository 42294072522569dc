//! End-to-end tests of integrity under faults: the real `btrfly` binary,
//! nginx upstreams, curl. A blob altered in the store is never replayed as
//! good (the response is cut, `stop playback` fails, `btrfly verify`
//! names it); a deleted blob is a clear error; a server killed with
//! SIGKILL in the middle of a recording leaves no entry and only temp
//! objects, which the sweep removes.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use btrfly_test_support::*;

const NAME: &str = "files.example.test";
/// A second name of the same upstream, for plain files when NAME is a pip
/// file host.
const OTHER: &str = "other.example.test";

struct Fixture {
    root: tempfile::TempDir,
    nginx: Option<Nginx>,
    port: u16,
    server: BtrflyServer,
    work: tempfile::TempDir,
}

impl Fixture {
    fn new(files: &[(&str, &[u8])], nginx_extra: &NginxExtra) -> Fixture {
        Self::with_config(files, nginx_extra, "")
    }

    fn with_config(files: &[(&str, &[u8])], nginx_extra: &NginxExtra, more: &str) -> Fixture {
        Self::with_options(files, nginx_extra, more, Vec::new())
    }

    fn with_options(
        files: &[(&str, &[u8])],
        nginx_extra: &NginxExtra,
        more: &str,
        wrapper: Vec<String>,
    ) -> Fixture {
        let root = tempfile::tempdir().expect("root");
        std::fs::create_dir_all(root.path().join("files")).expect("files dir");
        for (name, body) in files {
            std::fs::write(root.path().join("files").join(name), body).expect("write file");
        }
        let ca = TestCa::new();
        let nginx = Nginx::start_with(root.path(), &ca, &[NAME, OTHER], nginx_extra);
        let extra = format!(
            "[upstream]\nca_file = {}\n[upstream.resolve]\n\"{NAME}\" = \"127.0.0.1\"\n\"{OTHER}\" = \"127.0.0.1\"\n{more}",
            BtrflyServer::toml_str(nginx.ca_file().to_string_lossy())
        );
        let server = BtrflyServer::start_with(
            bin(),
            StartOptions {
                extra,
                wrapper,
                ..StartOptions::default()
            },
        );
        Fixture {
            port: nginx.port(),
            root,
            nginx: Some(nginx),
            server,
            work: tempfile::tempdir().expect("work dir"),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("https://{NAME}:{}{path}", self.port)
    }

    fn out(&self, name: &str) -> PathBuf {
        self.work.path().join(name)
    }

    fn home(&self) -> PathBuf {
        self.home_named("home")
    }

    fn home_named(&self, name: &str) -> PathBuf {
        let h = self.work.path().join(name);
        std::fs::create_dir_all(&h).expect("home");
        h
    }

    fn start(&self, mode: &str, tag: &str) -> Vec<(String, String)> {
        self.start_in(&self.home(), mode, tag)
    }

    fn start_in(&self, home: &std::path::Path, mode: &str, tag: &str) -> Vec<(String, String)> {
        let out = run_ok(
            self.server
                .cli(home)
                .args(["start", mode, &format!("--tag={tag}")]),
        );
        self.server.env_from_start(&text(&out.stdout))
    }

    fn stop(&self, mode: &str) -> Output {
        self.stop_in(&self.home(), mode)
    }

    fn stop_in(&self, home: &std::path::Path, mode: &str) -> Output {
        run(self.server.cli(home).args(["stop", mode]))
    }

    fn curl(&self, env: &[(String, String)]) -> Command {
        let mut c = Command::new("curl");
        client_env(&mut c);
        apply_env(&mut c, env);
        c.args(["-sS", "--max-time", "120"]);
        c
    }

    /// `btrfly verify` with the server's config, and these arguments.
    fn verify(&self, args: &[&str]) -> Output {
        run(self
            .server
            .cli(&self.home())
            .arg("verify")
            .arg("--config")
            .arg(self.server.config_path())
            .args(args))
    }

    fn blob(&self, sha256: &str) -> PathBuf {
        self.server
            .store_dir()
            .join("blobs/sha256")
            .join(&sha256[..2])
            .join(sha256)
    }

    fn tmp_objects(&self) -> Vec<PathBuf> {
        match std::fs::read_dir(self.server.store_dir().join("tmp")) {
            Ok(d) => d.filter_map(|e| e.ok().map(|e| e.path())).collect(),
            Err(_) => Vec::new(),
        }
    }
}

/// A blob altered in place (same length) is cut on replay over HTTP/1.1
/// and HTTP/2, a deleted one is a clear 500; `stop playback` lists both
/// and exits 1; `btrfly verify` names both blobs and their entries and
/// exits 1; an intact file in the same tag still replays byte for byte.
#[test]
fn altered_or_deleted_blobs_are_never_replayed_as_good() {
    // Several chunks of the store's reader: the cut must happen although
    // most of the body is already on its way.
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i * 13 % 251) as u8).collect();
    let gone = b"this body will be deleted from the store\n".to_vec();
    let intact = b"this body stays as it was recorded\n".to_vec();
    let fx = Fixture::new(
        &[
            ("big.bin", &big),
            ("gone.txt", &gone),
            ("intact.txt", &intact),
        ],
        &NginxExtra::default(),
    );

    let env = fx.start("record", "integrity1");
    for f in ["big.bin", "gone.txt", "intact.txt"] {
        run_ok(
            fx.curl(&env)
                .args(["--fail", "-o"])
                .arg(fx.out(&format!("r-{f}")))
                .arg(fx.url(&format!("/files/{f}"))),
        );
    }
    let stop = fx.stop("record");
    assert!(stop.status.success(), "{}", text(&stop.stderr));

    // a clean store verifies clean
    let v = fx.verify(&[]);
    assert!(v.status.success(), "{}{}", text(&v.stdout), text(&v.stderr));
    assert!(
        text(&v.stderr).contains("0 corrupt, 0 missing"),
        "{}",
        text(&v.stderr)
    );

    // --- the store is tampered with ---
    let big_sha = sha256_bytes(&big);
    let gone_sha = sha256_bytes(&gone);
    let mut altered = std::fs::read(fx.blob(&big_sha)).expect("big blob");
    altered[2_999_000] ^= 0x55; // one byte near the end, same length
    std::fs::write(fx.blob(&big_sha), &altered).expect("alter blob");
    std::fs::remove_file(fx.blob(&gone_sha)).expect("delete blob");

    // --- verify names both, with the entries that use them ---
    let v = fx.verify(&["--tag", "integrity1"]);
    let report = format!("{}{}", text(&v.stdout), text(&v.stderr));
    assert_eq!(v.status.code(), Some(1), "{report}");
    assert!(
        report.contains(&format!("corrupt blob {big_sha}")),
        "{report}"
    );
    assert!(report.contains(&fx.url("/files/big.bin")), "{report}");
    assert!(
        report.contains(&format!("missing blob {gone_sha}")),
        "{report}"
    );
    assert!(report.contains(&fx.url("/files/gone.txt")), "{report}");
    assert!(report.contains("1 corrupt, 1 missing"), "{report}");

    // --- playback ---
    let env = fx.start("playback", "integrity1");
    for (proto, out) in [("--http1.1", "p-big-h1"), ("--http2", "p-big-h2")] {
        let c = run(fx
            .curl(&env)
            .args([proto, "-o"])
            .arg(fx.out(out))
            .arg(fx.url("/files/big.bin")));
        assert!(
            !c.status.success(),
            "{proto}: a tampered body must not complete: {}",
            text(&c.stderr)
        );
        let got = std::fs::read(fx.out(out)).unwrap_or_default();
        assert!(got.len() < big.len(), "{proto}: got {} bytes", got.len());
        assert_ne!(sha256_bytes(&got), sha256_bytes(&altered));
    }
    let c = run(fx
        .curl(&env)
        .args(["-D", "-", "-o"])
        .arg(fx.out("p-gone"))
        .arg(fx.url("/files/gone.txt")));
    let head = text(&c.stdout);
    assert!(head.contains(" 500"), "{head}");
    assert!(head.contains("x-btrfly-error: blob-missing"), "{head}");
    let body =
        String::from_utf8_lossy(&std::fs::read(fx.out("p-gone")).unwrap_or_default()).into_owned();
    assert!(body.contains("missing from the store"), "{body}");
    assert!(body.contains(&gone_sha), "{body}");
    run_ok(
        fx.curl(&env)
            .args(["--fail", "-o"])
            .arg(fx.out("p-intact"))
            .arg(fx.url("/files/intact.txt")),
    );
    assert_eq!(std::fs::read(fx.out("p-intact")).expect("intact"), intact);

    let stop = fx.stop("playback");
    let summary = text(&stop.stderr);
    assert_eq!(stop.status.code(), Some(1), "{summary}");
    assert!(summary.contains("problems:"), "{summary}");
    assert!(
        summary.contains("does not hash to its address"),
        "{summary}"
    );
    assert!(summary.contains(&format!("blob {gone_sha}")), "{summary}");
    assert!(
        summary.contains("could not serve 3 recorded answer(s)"),
        "{summary}"
    );
    // only the intact file counts as a hit
    assert_eq!(field(&summary, "hits"), 1, "{summary}");
    assert!(
        fx.server
            .stderr_log()
            .contains("does not hash to its address"),
        "the server logs the corruption"
    );
    drop(fx.root);
}

/// SIGKILL while a 200 MB download is being recorded: after a restart the
/// tag has no entry for it, `btrfly verify` is clean, and the sweep
/// removes the temp object the killed write left.
#[test]
fn kill_9_while_recording_leaves_no_entry_and_the_sweep_cleans_up() {
    // slow enough to kill it mid-body
    let extra = NginxExtra {
        server: "limit_rate 20m;\n".into(),
        ..NginxExtra::default()
    };
    let mut fx = Fixture::new(&[("after.txt", b"recorded after the crash\n")], &extra);
    let sha = write_random_file(&fx.root.path().join("files/huge.bin"), 200_000_000, 11);

    let env = fx.start("record", "crash1");
    let mut download = fx
        .curl(&env)
        .args(["-o"])
        .arg(fx.out("r-huge"))
        .arg(fx.url("/files/huge.bin"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("curl");
    // wait until a good part of the body is in a temp object
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let written: u64 = fx
            .tmp_objects()
            .iter()
            .filter_map(|p| std::fs::metadata(p).ok())
            .map(|m| m.len())
            .max()
            .unwrap_or(0);
        if written >= 20_000_000 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the recording did not progress: {written} bytes in tmp/"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    fx.server.kill_hard();
    let _ = download.kill();
    let _ = download.wait();
    let left = fx.tmp_objects();
    assert!(!left.is_empty(), "the killed write leaves a temp object");

    fx.server.restart();
    let v = fx.verify(&["--sweep-age", "0"]);
    let report = format!("{}{}", text(&v.stdout), text(&v.stderr));
    assert!(v.status.success(), "{report}");
    assert!(report.contains("0 corrupt, 0 missing"), "{report}");
    assert!(
        report.contains(&format!("swept {} temp object(s)", left.len())),
        "{report}"
    );
    assert!(fx.tmp_objects().is_empty(), "{:?}", fx.tmp_objects());
    assert!(
        !fx.blob(&sha).exists(),
        "no blob for the body that never ended"
    );

    // the tag holds no entry for the killed download; recording goes on
    // (a new CI job: its own BTRFLY_HOME) once the dead session no longer
    // holds the tag: its lease runs out, or an admin ends it (README:
    // "Recording rules")
    let dead = env
        .iter()
        .find(|(k, _)| k == "HTTPS_PROXY")
        .and_then(|(_, v)| v.split("://").nth(1)?.split_once(':'))
        .map(|(id, _)| id.to_owned())
        .expect("the session id in HTTPS_PROXY");
    let home2 = fx.home_named("home2");
    let refused = run(fx
        .server
        .cli(&home2)
        .args(["start", "record", "--tag=crash1"]));
    assert!(
        text(&refused.stderr).contains(&format!("being recorded by session {dead}")),
        "{}",
        text(&refused.stderr)
    );
    run_ok(fx.server.cli(&home2).args(["stop", "--session", &dead]));
    let env = fx.start_in(&home2, "record", "crash1");
    run_ok(
        fx.curl(&env)
            .args(["--fail", "-o"])
            .arg(fx.out("r-after"))
            .arg(fx.url("/files/after.txt")),
    );
    let stop = fx.stop_in(&home2, "record");
    assert!(stop.status.success(), "{}", text(&stop.stderr));
    let show = run_ok(
        fx.server
            .cli(&fx.home())
            .args(["tag", "show", "crash1", "--json"]),
    );
    let shown = text(&show.stdout);
    assert!(shown.contains("/files/after.txt"), "{shown}");
    assert!(!shown.contains("/files/huge.bin"), "{shown}");
    if let Some(n) = fx.nginx.take() {
        n.stop();
    }
}

/// Every object of a store directory whose bytes contain `needle`.
pub(crate) fn objects_containing(store: &std::path::Path, needle: &[u8]) -> Vec<PathBuf> {
    fn walk(dir: &std::path::Path, needle: &[u8], out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let path = e.path();
            if path.is_dir() {
                walk(&path, needle, out);
            } else if std::fs::read(&path)
                .map(|b| b.windows(needle.len()).any(|w| w == needle))
                .unwrap_or(false)
            {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    walk(store, needle, &mut out);
    out
}

/// A recording whose requests and answers carry secrets of every kind —
/// a signed query on a file URL whose key ignores it, basic-auth
/// credentials given in the URL, a cookie sent, a `Set-Cookie` received,
/// a `Vary` naming `Authorization` and `Cookie` — stores none of them: no
/// object of the store (entries, indexes, sessions, blobs) holds one, and
/// playback still serves the file, with or without the query.
#[test]
fn nothing_secret_is_stored_and_playback_still_works() {
    let body = b"a distribution file\n".to_vec();
    let extra = NginxExtra {
        server: "add_header Set-Cookie \"session=SETCOOKIEsecret4242; Path=/; HttpOnly\" always;\n\
                 add_header Vary \"Authorization, Cookie\" always;\n"
            .into(),
        ..NginxExtra::default()
    };
    let fx = Fixture::with_config(
        &[("pkg-1.0.tar.gz", &body), ("plain.txt", b"plain\n")],
        &extra,
        &format!("[adapters.pip]\nfile_hosts = [\"{NAME}\"]\n"),
    );
    let port = fx.port;
    let signed = format!(
        "https://basicUSER:BASICpassw0rd@{NAME}:{port}/files/pkg-1.0.tar.gz?X-Amz-Credential=AKIACREDsecret&X-Amz-Signature=5a5a5aSIGNATUREsecret"
    );

    let env = fx.start("record", "secrets1");
    run_ok(
        fx.curl(&env)
            .args(["--fail", "-b", "sid=COOKIEsecret777", "-o"])
            .arg(fx.out("r-pkg"))
            .arg(&signed),
    );
    assert_eq!(std::fs::read(fx.out("r-pkg")).expect("r-pkg"), body);
    // a plain file (the files adapter keeps the upstream's headers): the
    // client itself gets the cookie while recording
    let got = run_ok(
        fx.curl(&env)
            .args(["--fail", "-D", "-", "-b", "sid=COOKIEsecret777", "-o"])
            .arg(fx.out("r-plain"))
            .arg(format!("https://{OTHER}:{port}/files/plain.txt")),
    );
    assert!(
        text(&got.stdout).contains("SETCOOKIEsecret4242"),
        "{}",
        text(&got.stdout)
    );
    let stop = fx.stop("record");
    assert!(stop.status.success(), "{}", text(&stop.stderr));

    let basic = base64_of("basicUSER:BASICpassw0rd");
    for secret in [
        "5a5a5aSIGNATUREsecret",
        "AKIACREDsecret",
        "SETCOOKIEsecret4242",
        "COOKIEsecret777",
        "BASICpassw0rd",
        basic.as_str(),
    ] {
        let found = objects_containing(&fx.server.store_dir(), secret.as_bytes());
        assert!(found.is_empty(), "{secret} is stored in {found:?}");
    }
    // the entry is there, under the URL without its query
    let show = run_ok(
        fx.server
            .cli(&fx.home())
            .args(["tag", "show", "secrets1", "--json"]),
    );
    let shown = text(&show.stdout);
    assert!(
        shown.contains(&format!("https://{NAME}:{port}/files/pkg-1.0.tar.gz\"")),
        "{shown}"
    );

    // --- playback: the file, with or without the signature ---
    let env = fx.start("playback", "secrets1");
    for (i, url) in [signed.clone(), fx.url("/files/pkg-1.0.tar.gz")]
        .iter()
        .enumerate()
    {
        let out = fx.out(&format!("p-{i}"));
        let head = run_ok(
            fx.curl(&env)
                .args(["--fail", "-D", "-", "-o"])
                .arg(&out)
                .arg(url),
        );
        assert_eq!(std::fs::read(&out).expect("replayed"), body, "{url}");
        assert!(
            !text(&head.stdout)
                .to_ascii_lowercase()
                .contains("set-cookie"),
            "{}",
            text(&head.stdout)
        );
    }
    let stop = fx.stop("playback");
    assert!(stop.status.success(), "{}", text(&stop.stderr));
}

fn base64_of(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// A command run in the server's mount namespace (where its store is).
fn in_server_ns(server: &BtrflyServer, program: &str) -> Command {
    let mut c = Command::new("nsenter");
    c.args(["-t", &server.pid().to_string(), "-m", "--", program]);
    c
}

/// The fs store on a 16 MiB tmpfs mounted in the server's own mount
/// namespace (`unshare -m`): the disk is full while a download is being
/// recorded. The log names the cause (ENOSPC), `stop record` fails with
/// it; once space is freed recording works again, and nothing
/// half-written is visible (`btrfly verify` clean, `tmp/` empty after the
/// sweep, no entry for the download in the first tag).
#[test]
fn disk_full_is_a_clear_error_and_recording_recovers() {
    let big: Vec<u8> = (0..6_000_000u32).map(|i| (i * 31 % 251) as u8).collect();
    let wrapper = [
        "unshare",
        "-m",
        "--propagation",
        "private",
        "sh",
        "-c",
        "mkdir -p \"$0\" && mount -t tmpfs -o size=16m btrfly-disk-full \"$0\" && exec \"$@\"",
        "{store}",
    ]
    .map(String::from)
    .to_vec();
    let fx = Fixture::with_options(
        &[("small.txt", b"fits\n"), ("big.bin", &big)],
        &NginxExtra::default(),
        "",
        wrapper,
    );
    let store = fx.server.store_dir();
    let store_s = store.to_string_lossy().into_owned();

    let env = fx.start("record", "full1");
    run_ok(
        fx.curl(&env)
            .args(["--fail", "-o"])
            .arg(fx.out("r-small"))
            .arg(fx.url("/files/small.txt")),
    );
    // The small recording commits just after curl has its body: fill the
    // disk only behind that commit (dd stops with ENOSPC).
    fx.server.wait_for_entries(&fx.home(), "full1", 1);
    let _ = run(in_server_ns(&fx.server, "sh").args([
        "-c",
        &format!("head -c 64000000 /dev/zero > {store_s}/filler"),
    ]));
    let df = run_ok(
        in_server_ns(&fx.server, "df")
            .arg("--output=avail")
            .arg(&store),
    );
    assert!(
        text(&df.stdout).lines().nth(1).map(str::trim) == Some("0"),
        "the store's disk is full: {}",
        text(&df.stdout)
    );

    // The client gets the upstream's answer (the tee does not hold it
    // back), quickly; the recording of it fails and is not in the tag.
    let started = Instant::now();
    let _ = run(fx
        .curl(&env)
        .args(["-o"])
        .arg(fx.out("r-big"))
        .arg(fx.url("/files/big.bin")));
    assert!(started.elapsed() < Duration::from_secs(60));
    let stop = fx.stop("record");
    let summary = text(&stop.stderr);
    assert_eq!(stop.status.code(), Some(1), "{summary}");
    assert!(summary.contains("No space left on device"), "{summary}");
    assert!(
        fx.server.stderr_log().contains("No space left on device"),
        "{}",
        fx.server.stderr_log()
    );

    // --- space comes back ---
    run_ok(in_server_ns(&fx.server, "rm").arg(store.join("filler")));
    let home2 = fx.home_named("home2");
    let env = fx.start_in(&home2, "record", "full2");
    run_ok(
        fx.curl(&env)
            .args(["--fail", "-o"])
            .arg(fx.out("r-big2"))
            .arg(fx.url("/files/big.bin")),
    );
    let stop = fx.stop_in(&home2, "record");
    assert!(stop.status.success(), "{}", text(&stop.stderr));

    let v = run(in_server_ns(&fx.server, &bin().to_string_lossy())
        .args(["verify", "--sweep-age", "0", "--config"])
        .arg(fx.server.config_path()));
    let report = format!("{}{}", text(&v.stdout), text(&v.stderr));
    assert!(v.status.success(), "{report}");
    assert!(report.contains("0 corrupt, 0 missing"), "{report}");
    let tmp = run(in_server_ns(&fx.server, "ls")
        .arg("-A")
        .arg(store.join("tmp")));
    assert_eq!(text(&tmp.stdout).trim(), "", "nothing half-written is left");
    // the tag of the failed recording holds the small file only
    let show = run_ok(
        fx.server
            .cli(&fx.home())
            .args(["tag", "show", "full1", "--json"]),
    );
    let shown = text(&show.stdout);
    assert!(shown.contains("/files/small.txt"), "{shown}");
    assert!(!shown.contains("/files/big.bin"), "{shown}");
}

/// The control API speaks plain HTTP: a `control.listen` other hosts can
/// reach is refused at start with the fix in the message, unless the
/// operator accepts it with `control.insecure_plain_http = true`.
#[test]
fn control_api_on_a_network_address_needs_an_explicit_opt_in() {
    let dir = tempfile::tempdir().expect("dir");
    let p = |s: &str| BtrflyServer::toml_str(dir.path().join(s).to_string_lossy());
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = {}\n[storage]\nbackend = \"fs\"\nroot = {}\n[proxy]\nlisten = \"127.0.0.1:0\"\n[control]\nlisten = \"0.0.0.0:0\"\n",
            p("data"),
            p("store")
        ),
    )
    .expect("config");
    let mut serve = Command::new(bin());
    client_env(&mut serve);
    serve.arg("serve").arg("--config").arg(&config);
    let out = run_timeout(&mut serve, Duration::from_secs(30));
    let err = text(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("control.listen 0.0.0.0:0 is not a loopback address"),
        "{err}"
    );
    assert!(err.contains("control.insecure_plain_http = true"), "{err}");

    // opted in: it serves, and warns
    let mut server = BtrflyServer::start(
        bin(),
        "[control]\nlisten = \"0.0.0.0:0\"\ninsecure_plain_http = true\n",
    );
    let port = server.listener("control").expect("control").port();
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).expect("home");
    run_ok(
        server
            .cli(&home)
            .env("BTRFLY_SERVER", format!("http://127.0.0.1:{port}"))
            .arg("tags"),
    );
    server.stop();
    assert!(
        server
            .stderr_log()
            .contains("its token crosses the network in clear"),
        "{}",
        server.stderr_log()
    );
}

/// A file recorded through a server on an S3 store (moto), upstream gone
/// and a playback session of the tag started (`env`): for the tests of a
/// store that fails under a playback.
struct RecordedOnS3 {
    moto: btrfly_test_support::storage::Moto,
    server: BtrflyServer,
    work: tempfile::TempDir,
    home: PathBuf,
    url: String,
    body: Vec<u8>,
    env: Vec<(String, String)>,
}

/// Records `body` as `tag` with `storage` lines added to `[storage]`
/// (`backend = "s3"` is set), then starts the playback.
fn recorded_on_s3(storage: &str, tag: &str, body: Vec<u8>) -> RecordedOnS3 {
    use btrfly_test_support::storage::{Moto, TEST_ACCESS_KEY, TEST_REGION, TEST_SECRET_KEY};
    let moto = Moto::start();
    let bucket = moto.new_bucket();
    let root = tempfile::tempdir().expect("root");
    std::fs::create_dir_all(root.path().join("files")).expect("files");
    std::fs::write(root.path().join("files/data.bin"), &body).expect("data");
    let ca = TestCa::new();
    let nginx = Nginx::start(root.path(), &ca, &[NAME]);
    let url = format!("https://{NAME}:{}/files/data.bin", nginx.port());
    let server = BtrflyServer::start_with(
        bin(),
        StartOptions {
            extra: format!(
                "[storage]\nbackend = \"s3\"\n{storage}[storage.s3]\nbucket = \"{bucket}\"\nendpoint = \"{}\"\nregion = \"{TEST_REGION}\"\n[upstream]\nca_file = {}\n[upstream.resolve]\n\"{NAME}\" = \"127.0.0.1\"\n",
                moto.endpoint(),
                BtrflyServer::toml_str(nginx.ca_file().to_string_lossy())
            ),
            env: vec![
                ("AWS_ACCESS_KEY_ID".into(), TEST_ACCESS_KEY.into()),
                ("AWS_SECRET_ACCESS_KEY".into(), TEST_SECRET_KEY.into()),
            ],
            ..StartOptions::default()
        },
    );
    let work = tempfile::tempdir().expect("work");
    let home = work.path().join("home");
    std::fs::create_dir_all(&home).expect("home");
    let start = |mode: &str| {
        let out = run_ok(
            server
                .cli(&home)
                .args(["start", mode, &format!("--tag={tag}")]),
        );
        server.env_from_start(&text(&out.stdout))
    };
    let env = start("record");
    run_ok(
        s3_curl(&env)
            .args(["--fail", "-o"])
            .arg(work.path().join("r"))
            .arg(&url),
    );
    let stop = run(server.cli(&home).args(["stop", "record"]));
    assert!(stop.status.success(), "{}", text(&stop.stderr));
    drop(nginx);
    let env = start("playback");
    RecordedOnS3 {
        moto,
        server,
        work,
        home,
        url,
        body,
        env,
    }
}

/// curl with the session's exports, up to 120 s.
fn s3_curl(env: &[(String, String)]) -> Command {
    let mut c = Command::new("curl");
    client_env(&mut c);
    apply_env(&mut c, env);
    c.args(["-sS", "--max-time", "120"]);
    c
}

/// The S3 store stops answering (its server is killed) during a playback:
/// the client gets a clear 503 (`x-btrfly-error: store-unavailable`)
/// naming what could not be read and the store's error, once the store
/// client's retries give up, and the log says why. (A store that hangs
/// instead of refusing needs timeouts on store operations, and recovery
/// needs a store that keeps its data across the outage: the other half of
/// issue 11.)
#[test]
fn storage_down_during_playback_is_a_clear_503() {
    let fx = recorded_on_s3(
        "",
        "down1",
        (0..200_000u32).map(|i| (i % 251) as u8).collect(),
    );
    let RecordedOnS3 {
        moto,
        server,
        work,
        url,
        env,
        ..
    } = fx;
    drop(moto); // the store stops answering
    let started = Instant::now();
    let c = run(s3_curl(&env)
        .args(["-D", "-", "-o"])
        .arg(work.path().join("p"))
        .arg(&url));
    let waited = started.elapsed();
    let head = text(&c.stdout);
    assert!(head.contains(" 503"), "{head}");
    assert!(head.contains("x-btrfly-error: store-unavailable"), "{head}");
    let answer = String::from_utf8_lossy(&std::fs::read(work.path().join("p")).unwrap_or_default())
        .into_owned();
    // the tag's index (loaded at the first request) or the body: either
    // read fails, and the answer says which and why
    assert!(
        answer.contains(&format!("looking up GET {url} in tag down1"))
            || answer.contains("reading the recorded body (blob"),
        "{answer}"
    );
    assert!(answer.contains("storage"), "{answer}");
    // OpenDAL retries a refused connection with backoff; the answer comes
    // before the client's own limit
    eprintln!("503 after {waited:?}");
    assert!(
        waited < Duration::from_secs(110),
        "answered after {waited:?}"
    );
    let log = server.stderr_log();
    assert!(
        log.contains("looking up GET") || log.contains("reading the recorded body (blob"),
        "{log}"
    );
}

/// The S3 store freezes (its server stopped with `SIGSTOP`: connections
/// stay open, nothing answers) during a playback: each store operation
/// fails at its deadline (`[storage] io_timeout_secs`), the retries give
/// up, and the client gets a clear 503 instead of hanging; when the store
/// thaws, the same request is served whole again.
#[test]
fn a_frozen_store_is_a_clear_503_and_serves_again_when_it_thaws() {
    let fx = recorded_on_s3(
        "timeout_secs = 2\nio_timeout_secs = 2\n",
        "frozen1",
        (0..300_000u32).map(|i| (i % 241) as u8).collect(),
    );
    let RecordedOnS3 {
        moto,
        server,
        work,
        home,
        url,
        body,
        env,
    } = &fx;
    moto.freeze(true);
    let started = Instant::now();
    let c = run(s3_curl(env)
        .args(["-D", "-", "-o"])
        .arg(work.path().join("p"))
        .arg(url));
    let waited = started.elapsed();
    moto.freeze(false);
    let head = text(&c.stdout);
    assert!(head.contains(" 503"), "{head}");
    assert!(head.contains("x-btrfly-error: store-unavailable"), "{head}");
    eprintln!("503 after {waited:?}");
    // 6 attempts of at most 2 s each, with backoff between them (0.25 s to
    // 4 s): well under a minute; without deadlines the request would hang
    // until curl's 120 s.
    assert!(
        waited < Duration::from_secs(60),
        "answered after {waited:?}"
    );
    let log = server.stderr_log();
    assert!(
        log.to_ascii_lowercase().contains("timeout") || log.contains("timed out"),
        "{log}"
    );

    // thawed: the same request is served whole
    let ok = run_ok(
        s3_curl(env)
            .args(["--fail", "-o"])
            .arg(work.path().join("p2"))
            .arg(url),
    );
    assert!(ok.status.success());
    assert_eq!(&std::fs::read(work.path().join("p2")).expect("p2"), body);
    let _ = run(server.cli(home).args(["stop", "playback"]));
}
