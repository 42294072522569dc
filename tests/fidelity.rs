//! Replay fidelity: the HTTP corners real clients and registries hit.
//!
//! Every test records through the real `btrfly` binary with a real client
//! (curl, wget, pip, Python requests) from a Python HTTPS upstream that
//! behaves like the servers those clients meet (`support/fidelity_upstream.py`:
//! interim answers, `Vary`, redirects to signed storage, a success then
//! errors, bodies closed without `close_notify`, header bytes that are not
//! UTF-8), stops the upstream, plays back, and compares status, the headers
//! a client acts on, and the sha256 of bodies.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use btrfly_test_support::*;

const HOST: &str = "fid.example.test";

struct Fx {
    up: PyUpstream,
    server: BtrflyServer,
    work: tempfile::TempDir,
}

impl Fx {
    fn new() -> Fx {
        let work = tempfile::tempdir().expect("work dir");
        let ca = TestCa::new();
        let ca_file = ca.write_pem(work.path());
        let up = PyUpstream::start(&ca, &[HOST]);
        let extra = format!(
            "[upstream]\nca_file = {}\n[upstream.resolve]\n\"{HOST}\" = \"127.0.0.1\"\n",
            BtrflyServer::toml_str(ca_file.to_string_lossy()),
        );
        let server = BtrflyServer::start(bin(), &extra);
        Fx { up, server, work }
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

    fn stop(&self, mode: &str, more: &[&str]) -> Output {
        run(self
            .server
            .cli(&self.home())
            .args(["stop", mode])
            .args(more))
    }

    fn curl(&self, env: &[(String, String)]) -> Command {
        let mut c = Command::new("curl");
        client_env(&mut c);
        apply_env(&mut c, env);
        c.args(["-sS", "--max-time", "60"]);
        c
    }

    fn tag_entries(&self, tag: &str) -> Vec<serde_json::Value> {
        let show = run_ok(
            self.server
                .cli(&self.home())
                .args(["tag", "show", tag, "--json"]),
        );
        let v: serde_json::Value = serde_json::from_slice(&show.stdout).expect("json");
        v["entries"].as_array().expect("entries").clone()
    }

    fn wait_for_entries(&self, tag: &str, n: usize) {
        self.server.wait_for_entries(&self.home(), tag, n);
    }
}

/// `curl -D - -o FILE …`: the head (all of them, 1xx included, lower case)
/// and the body.
fn curl_fetch(fx: &Fx, env: &[(String, String)], args: &[&str], path: &str) -> (String, Vec<u8>) {
    let body = fx.out("fetch.body");
    let _ = std::fs::remove_file(&body);
    let out = run_ok(
        fx.curl(env)
            .args(args)
            .args(["-D", "-", "-o"])
            .arg(&body)
            .arg(fx.url(path)),
    );
    let head = text(&out.stdout).to_ascii_lowercase();
    (head, std::fs::read(&body).unwrap_or_default())
}

/// The status of the final answer in a `curl -D -` head (the last status
/// line; a CONNECT answer and interim answers come before it).
fn final_status(head: &str) -> u16 {
    head.lines()
        .rev()
        .find(|l| l.starts_with("http/"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {head}"))
}

/// The value of a header in the final answer of a `curl -D -` head.
fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    let last = head.rfind("\nhttp/").map_or(head, |i| &head[i..]);
    last.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")))
        .map(str::trim)
}

fn sha(bytes: &[u8]) -> String {
    sha256_bytes(bytes)
}

fn python_requests(env: &[(String, String)], script: &str) -> Output {
    let mut c = Command::new("python3");
    client_env(&mut c);
    apply_env(&mut c, env);
    run_ok(c.arg("-c").arg(script))
}

/// Interim answers: curl's own `Expect: 100-continue` upload of 2 MB over
/// HTTP/1.1 (and the same upload over HTTP/2) goes through without a
/// stall, a `102` and a `103` before a `200` reach the HTTP/1.1 client,
/// and only final answers are recorded and replayed.
#[test]
fn interim_answers_pass_through_and_are_never_recorded() {
    let mut fx = Fx::new();
    let upload = fx.out("upload.bin");
    let want = write_random_file(&upload, 2 * 1024 * 1024, 8);
    let post = |fx: &Fx, env: &[(String, String)], proto: &str| {
        let data = format!("@{}", upload.display());
        // curl adds `Expect: 100-continue` to this upload over HTTP/1.1 by
        // itself (not over HTTP/2, where Pingora could not answer it)
        let args = vec![proto, "--expect100-timeout", "30", "--data-binary", &data];
        let started = Instant::now();
        let (head, body) = curl_fetch(fx, env, &args, "/upload");
        let took = started.elapsed();
        assert!(
            took < Duration::from_secs(15),
            "{proto} upload stalled for {took:?} (curl waits 30 s for a 100 that never comes)"
        );
        (head, body)
    };

    let env = fx.start("record", "interim");
    let (head, body) = post(&fx, &env, "--http1.1");
    assert!(head.contains("http/1.1 100 continue"), "{head}");
    assert_eq!(final_status(&head), 200, "{head}");
    let answer: serde_json::Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(
        answer["sha256"],
        want.as_str(),
        "the upstream got the whole body"
    );
    let recorded_upload = sha(&body);
    let (head, _) = post(&fx, &env, "--http2");
    assert_eq!(final_status(&head), 200, "{head}");
    let (head, body) = curl_fetch(&fx, &env, &["--http1.1"], "/interim");
    assert!(head.contains("http/1.1 102"), "{head}");
    assert!(head.contains("http/1.1 103"), "{head}");
    assert!(head.contains("link: </style.css>; rel=preload"), "{head}");
    assert_eq!(final_status(&head), 200);
    assert_eq!(body, b"the final answer\n");
    let (head, body) = curl_fetch(&fx, &env, &["--http2"], "/interim");
    assert_eq!(
        (final_status(&head), body.as_slice()),
        (200, &b"the final answer\n"[..])
    );
    let stop = fx.stop("record", &[]);
    assert!(stop.status.success(), "{}", text(&stop.stderr));
    for e in fx.tag_entries("interim") {
        assert!(
            e["status"].as_u64() >= Some(200),
            "an interim answer was recorded: {e}"
        );
    }

    fx.up.stop();
    let env = fx.start("playback", "interim");
    for proto in ["--http1.1", "--http2"] {
        let (head, body) = post(&fx, &env, proto);
        assert_eq!(final_status(&head), 200, "{proto}: {head}");
        assert!(header(&head, "x-btrfly-replay") == Some("hit"), "{head}");
        assert_eq!(sha(&body), recorded_upload, "{proto}");
        let (head, body) = curl_fetch(&fx, &env, &[proto], "/interim");
        assert_eq!(final_status(&head), 200, "{proto}: {head}");
        assert_eq!(body, b"the final answer\n");
    }
    let stop = fx.stop("playback", &[]);
    let summary = text(&stop.stderr);
    assert!(stop.status.success(), "{summary}");
    assert_eq!(field(&summary, "hits"), 4, "{summary}");
}

/// A pip file URL answering `302` to signed storage, a `HEAD` of it and a
/// `404`: recorded as they came (the digest the index announced is checked
/// on the storage URL's `200`, never on a redirect), replayed to pip with
/// the index gone.
#[test]
fn digests_apply_to_successful_downloads_and_redirects_replay() {
    let mut fx = Fx::new();
    let wheel = fx.up.info["wheel"].as_str().expect("wheel").to_owned();
    let wheel_sha = fx.up.info["wheel_sha256"].as_str().expect("sha").to_owned();
    let pip = |fx: &Fx, env: &[(String, String)], dest: &Path| {
        let mut c = Command::new("python3");
        client_env(&mut c);
        apply_env(&mut c, env);
        c.env("PIP_DISABLE_PIP_VERSION_CHECK", "1")
            .env("PIP_NO_CACHE_DIR", "1")
            .env("PIP_NO_INPUT", "1")
            .args(["-m", "pip", "download", "--no-deps", "--index-url"])
            .arg(fx.url("/simple/"))
            .arg("-d")
            .arg(dest)
            .arg("demo-fid==1.0");
        run_ok(&mut c);
    };
    let dl = format!("/dl/{wheel}");

    let env = fx.start("record", "signed");
    pip(&fx, &env, &fx.out("r-pip"));
    assert_eq!(sha256_file(&fx.out("r-pip").join(&wheel)), wheel_sha);
    let (head, _) = curl_fetch(&fx, &env, &["-I"], &dl);
    assert_eq!(final_status(&head), 302, "{head}");
    let (head, body) = curl_fetch(&fx, &env, &[], "/dl/missing-1.0-py3-none-any.whl");
    assert_eq!(
        (final_status(&head), body.as_slice()),
        (404, &b"not here\n"[..])
    );
    let stop = fx.stop("record", &[]);
    let summary = text(&stop.stderr);
    assert!(stop.status.success(), "{summary}\n{}", text(&stop.stderr));
    assert!(!summary.contains("problems:"), "{summary}");

    fx.up.stop();
    let env = fx.start("playback", "signed");
    pip(&fx, &env, &fx.out("p-pip"));
    assert_eq!(sha256_file(&fx.out("p-pip").join(&wheel)), wheel_sha);
    let (head, _) = curl_fetch(&fx, &env, &["-I"], &dl);
    assert_eq!(final_status(&head), 302, "{head}");
    assert!(
        header(&head, "location")
            .is_some_and(|l| l.starts_with(&format!("/storage/{}", wheel.to_ascii_lowercase()))),
        "{head}"
    );
    let (head, body) = curl_fetch(&fx, &env, &[], "/dl/missing-1.0-py3-none-any.whl");
    assert_eq!(
        (final_status(&head), body.as_slice()),
        (404, &b"not here\n"[..])
    );
    assert_eq!(header(&head, "x-btrfly-replay"), Some("hit"), "{head}");
    let stop = fx.stop("playback", &[]);
    assert!(stop.status.success(), "{}", text(&stop.stderr));
}

/// One URL, several representations, selected by the request headers the
/// answers name in `Vary`: each replays to the request that selects it, a
/// representation never recorded is a miss, and a content coding is never
/// replayed to a client that did not accept it.
#[test]
fn representations_are_selected_by_the_headers_vary_names() {
    let mut fx = Fx::new();
    let negotiate = fx.url("/negotiate");
    // Python requests, as release-asset API clients use it
    let script = format!(
        r#"
import hashlib, json, requests
out = {{}}
for accept in ["application/json", "application/octet-stream"]:
    r = requests.get("{negotiate}", headers={{"Accept": accept}}, timeout=60)
    out[accept] = [r.status_code, r.headers.get("x-btrfly-replay"), hashlib.sha256(r.content).hexdigest()]
CSV = True
if CSV:
    r = requests.get("{negotiate}", headers={{"Accept": "text/csv"}}, timeout=60)
    out["text/csv"] = [r.status_code, r.headers.get("x-btrfly-replay"), hashlib.sha256(r.content).hexdigest()]
print(json.dumps(out))
"#
    );
    let env = fx.start("record", "vary");
    let recorded: serde_json::Value = serde_json::from_slice(
        &python_requests(&env, &script.replace("CSV = True", "CSV = False")).stdout,
    )
    .expect("json");
    assert_ne!(
        recorded["application/json"][2], recorded["application/octet-stream"][2],
        "two representations: {recorded}"
    );
    let (head, gz) = curl_fetch(&fx, &env, &["-H", "Accept-Encoding: gzip"], "/coded");
    assert_eq!(header(&head, "content-encoding"), Some("gzip"), "{head}");
    let (head, plain) = curl_fetch(&fx, &env, &[], "/coded");
    assert_eq!(header(&head, "content-encoding"), None, "{head}");
    assert!(fx.stop("record", &[]).status.success());

    fx.up.stop();
    let env = fx.start("playback", "vary");
    let replayed: serde_json::Value =
        serde_json::from_slice(&python_requests(&env, &script).stdout).expect("json");
    for accept in ["application/json", "application/octet-stream"] {
        assert_eq!(replayed[accept][0], 200, "{replayed}");
        assert_eq!(replayed[accept][1], "hit", "{replayed}");
        assert_eq!(
            replayed[accept][2], recorded[accept][2],
            "{accept}: {replayed}"
        );
    }
    assert_eq!(
        replayed["text/csv"][0], 404,
        "never recorded: a miss, {replayed}"
    );
    let (head, body) = curl_fetch(&fx, &env, &["-H", "Accept-Encoding: gzip"], "/coded");
    assert_eq!(header(&head, "content-encoding"), Some("gzip"), "{head}");
    assert_eq!(sha(&body), sha(&gz));
    let (head, body) = curl_fetch(&fx, &env, &[], "/coded");
    assert_eq!(header(&head, "content-encoding"), None, "{head}");
    assert_eq!(sha(&body), sha(&plain));
    let (head, _) = curl_fetch(&fx, &env, &["-H", "Accept-Encoding: br"], "/coded");
    assert_eq!(
        final_status(&head),
        404,
        "br was never accepted by a recording: {head}"
    );
    let stop = fx.stop("playback", &[]);
    assert_eq!(
        field(&text(&stop.stderr), "misses"),
        2,
        "{}",
        text(&stop.stderr)
    );
}

/// The first good answer stands: a later `503` under the same key, in the
/// files adapter and for a pip wheel, never replaces the `200` the build
/// got first.
#[test]
fn the_first_good_answer_stands() {
    let mut fx = Fx::new();
    let env = fx.start("record", "flaky");
    let (head, first) = curl_fetch(&fx, &env, &[], "/flaky");
    assert_eq!(final_status(&head), 200);
    // The retry comes after the success was recorded.
    fx.wait_for_entries("flaky", 1);
    let (head, _) = curl_fetch(&fx, &env, &[], "/flaky");
    assert_eq!(final_status(&head), 503, "the upstream now fails");
    // a wheel, which the pip adapter keys as an immutable file
    let wheel = format!("/flaky/{}", fx.up.info["wheel"].as_str().expect("wheel"));
    let (head, first_wheel) = curl_fetch(&fx, &env, &[], &wheel);
    assert_eq!(final_status(&head), 200);
    fx.wait_for_entries("flaky", 2);
    let (head, _) = curl_fetch(&fx, &env, &[], &wheel);
    assert_eq!(final_status(&head), 503, "the upstream now fails");
    let stop = fx.stop("record", &[]);
    assert!(stop.status.success(), "{}", text(&stop.stderr));
    let keys: Vec<String> = fx
        .tag_entries("flaky")
        .iter()
        .map(|e| format!("{} {}", e["key"]["namespace"], e["status"]))
        .collect();
    assert_eq!(
        keys,
        ["\"files\" 200", "\"pip\" 200"],
        "one success per adapter"
    );
    fx.up.stop();
    let env = fx.start("playback", "flaky");
    let (head, body) = curl_fetch(&fx, &env, &[], "/flaky");
    assert_eq!(final_status(&head), 200, "{head}");
    assert_eq!(sha(&body), sha(&first));
    let (head, body) = curl_fetch(&fx, &env, &[], &wheel);
    assert_eq!(final_status(&head), 200, "{head}");
    assert_eq!(sha(&body), sha(&first_wheel));
    assert!(fx.stop("playback", &[]).status.success());
}

/// Each URL replays the answer it got: a devpi-style slash-less page
/// redirects to the slash form, whose relative links only resolve from
/// there; pip follows the same redirect in playback.
#[test]
fn redirects_replay_for_the_url_that_got_them() {
    let mut fx = Fx::new();
    let wheel = fx.up.info["wheel"].as_str().expect("wheel").to_owned();
    let wheel_sha = fx.up.info["wheel_sha256"].as_str().expect("sha").to_owned();
    let page = "/root/pypi/+simple/demo-fid";
    let pip = |fx: &Fx, env: &[(String, String)], dest: &Path| {
        let mut c = Command::new("python3");
        client_env(&mut c);
        apply_env(&mut c, env);
        c.env("PIP_DISABLE_PIP_VERSION_CHECK", "1")
            .env("PIP_NO_CACHE_DIR", "1")
            .args([
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--no-index",
                "--find-links",
            ])
            .arg(fx.url(page))
            .arg("-d")
            .arg(dest)
            .arg("demo-fid==1.0");
        run_ok(&mut c);
    };
    let follow = ["-L", "-w", "%{num_redirects} %{url_effective}"];
    let env = fx.start("record", "devpi");
    pip(&fx, &env, &fx.out("r"));
    assert_eq!(sha256_file(&fx.out("r").join(&wheel)), wheel_sha);
    let r = run_ok(
        fx.curl(&env)
            .args(follow)
            .args(["-o", "/dev/null"])
            .arg(fx.url(page)),
    );
    let recorded = text(&r.stdout);
    assert!(
        recorded.starts_with("1 ") && recorded.ends_with("/demo-fid/"),
        "{recorded}"
    );
    assert!(fx.stop("record", &[]).status.success());

    fx.up.stop();
    let env = fx.start("playback", "devpi");
    pip(&fx, &env, &fx.out("p"));
    assert_eq!(sha256_file(&fx.out("p").join(&wheel)), wheel_sha);
    let r = run_ok(
        fx.curl(&env)
            .args(follow)
            .args(["-o", "/dev/null"])
            .arg(fx.url(page)),
    );
    assert_eq!(text(&r.stdout), recorded, "the redirect replays");
    let stop = fx.stop("playback", &[]);
    assert!(stop.status.success(), "{}", text(&stop.stderr));
}

/// Ranges as a server answers them, from a whole recording: several ranges
/// are one `multipart/byteranges` answer, a range past the end is a `416`
/// naming the length, `wget -c` of a complete file succeeds, and a missed
/// ranged request is listed with its `Range`.
#[test]
fn ranges_are_answered_as_a_server_would() {
    let mut fx = Fx::new();
    let env = fx.start("record", "ranges");
    let (head, whole) = curl_fetch(&fx, &env, &[], "/file.bin");
    assert_eq!((final_status(&head), whole.len()), (200, 100_000));
    assert!(fx.stop("record", &[]).status.success());
    fx.up.stop();

    let env = fx.start("playback", "ranges");
    let (head, body) = curl_fetch(&fx, &env, &["-r", "0-9,20-29"], "/file.bin");
    assert_eq!(final_status(&head), 206, "{head}");
    let ct = header(&head, "content-type").expect("content-type");
    let boundary = ct
        .strip_prefix("multipart/byteranges; boundary=")
        .unwrap_or_else(|| panic!("{head}"));
    let body = String::from_utf8_lossy(&body).into_owned();
    let parts: Vec<&str> = body
        .split(&format!("--{boundary}"))
        .filter(|p| p.contains("content-range") || p.contains("Content-Range"))
        .collect();
    assert_eq!(parts.len(), 2, "{body:?}");
    for (part, (start, end)) in parts.iter().zip([(0usize, 9usize), (20, 29)]) {
        assert!(
            part.contains(&format!("Content-Range: bytes {start}-{end}/100000")),
            "{part:?}"
        );
    }
    // byte-exact parts: compare raw
    let raw = std::fs::read(fx.out("fetch.body")).expect("body");
    let find = |needle: &[u8]| raw.windows(needle.len()).position(|w| w == needle);
    assert!(find(&whole[0..10]).is_some() && find(&whole[20..30]).is_some());

    let (head, _) = curl_fetch(&fx, &env, &["-r", "100000-"], "/file.bin");
    assert_eq!(final_status(&head), 416, "{head}");
    assert_eq!(
        header(&head, "content-range"),
        Some("bytes */100000"),
        "{head}"
    );

    // wget -c of a file that is already complete
    let local = fx.out("wget-file.bin");
    std::fs::write(&local, &whole).expect("write");
    let mut wget = Command::new("wget");
    client_env(&mut wget);
    apply_env(&mut wget, &env);
    let out = run(wget
        .args(["-q", "-c", "--tries=1", "--timeout=60", "-O"])
        .arg(&local)
        .arg(fx.url("/file.bin")));
    assert!(out.status.success(), "wget -c: {}", text(&out.stderr));
    assert_eq!(sha256_file(&local), sha(&whole));

    let (head, _) = curl_fetch(&fx, &env, &["-r", "0-9"], "/never.bin");
    assert_eq!(final_status(&head), 404);
    let stop = fx.stop("playback", &[]);
    let summary = text(&stop.stderr);
    assert!(
        summary.contains("/never.bin (Range: bytes=0-9)"),
        "the miss names its range:\n{summary}"
    );
}

/// HTTP/1.0 clients: a TLS handshake offering only `http/1.0` proceeds, and
/// an answer the upstream sent chunked reaches the client close-delimited
/// (never with chunk framing in its body), while recording and in playback.
#[test]
fn http10_clients_get_bodies_they_can_read() {
    let mut fx = Fx::new();
    let want = b"first part\nsecond part\n";
    let env = fx.start("record", "h10");
    let (head, body) = curl_fetch(&fx, &env, &["--http1.0"], "/chunked");
    assert_eq!(final_status(&head), 200, "{head}");
    assert_eq!(header(&head, "transfer-encoding"), None, "{head}");
    assert_eq!(body, want);
    let (head, body) = curl_fetch(&fx, &env, &["--http1.0"], "/file.bin");
    assert_eq!((final_status(&head), body.len()), (200, 100_000), "{head}");
    assert!(fx.stop("record", &[]).status.success());
    fx.up.stop();
    let env = fx.start("playback", "h10");
    let (head, body) = curl_fetch(&fx, &env, &["--http1.0"], "/chunked");
    assert_eq!(final_status(&head), 200, "{head}");
    assert_eq!(header(&head, "content-length"), Some("23"), "{head}");
    assert_eq!(body, want);
    assert!(fx.stop("playback", &[]).status.success());
}

/// A close-delimited body that ends with a TLS close lacking
/// `close_notify` is whole (recorded, and the client's transfer succeeds);
/// a body with a `Content-Length` that ends early stays unrecorded, and
/// `btrfly stop record` says so and exits 1 (0 with `--allow-incomplete`).
#[test]
fn close_delimited_bodies_end_at_the_close() {
    let mut fx = Fx::new();
    let env = fx.start("record", "close");
    let mut recorded = String::new();
    // One URL per protocol (the upstream ignores the query): a repeat of
    // one URL would be served from the first recording once it committed.
    for proto in ["--http1.1", "--http2"] {
        let (head, body) = curl_fetch(&fx, &env, &[proto], &format!("/close?over={proto}"));
        assert_eq!(
            (final_status(&head), body.len()),
            (200, 70_000),
            "{proto}: {head}"
        );
        recorded = sha(&body);
    }
    let cut = run(fx
        .curl(&env)
        .args(["-o", "/dev/null"])
        .arg(fx.url("/truncated")));
    assert!(!cut.status.success(), "a body cut short fails the client");
    let stop = fx.stop("record", &[]);
    let summary = text(&stop.stderr);
    assert_eq!(stop.status.code(), Some(1), "{summary}");
    assert!(summary.contains("/truncated"), "{summary}");
    assert!(
        text(&stop.stderr).contains("could not be recorded"),
        "{}",
        text(&stop.stderr)
    );
    assert_eq!(
        field(&summary, "recorded"),
        2,
        "/close twice, /truncated never: {summary}"
    );

    // --allow-incomplete downgrades it to a warning (the session records
    // something good too: an empty recording is an error of its own)
    let env2 = fx.start("record", "close2");
    let (head, _) = curl_fetch(&fx, &env2, &[], "/close");
    assert_eq!(final_status(&head), 200, "{head}");
    let _ = run(fx
        .curl(&env2)
        .args(["-o", "/dev/null"])
        .arg(fx.url("/truncated")));
    let stop = fx.stop("record", &["--allow-incomplete"]);
    assert!(stop.status.success(), "{}", text(&stop.stderr));
    assert!(
        text(&stop.stderr).contains("warning"),
        "{}",
        text(&stop.stderr)
    );

    fx.up.stop();
    let env = fx.start("playback", "close");
    let (head, body) = curl_fetch(&fx, &env, &[], "/close?over=--http2");
    assert_eq!(final_status(&head), 200, "{head}");
    assert_eq!(sha(&body), recorded);
    let (head, _) = curl_fetch(&fx, &env, &[], "/truncated");
    assert_eq!(final_status(&head), 404, "never recorded: {head}");
    let _ = fx.stop("playback", &[]);
}

/// Header values are bytes: one that is not UTF-8 is recorded and replayed
/// byte for byte.
#[test]
fn header_bytes_replay_exactly() {
    let mut fx = Fx::new();
    let line = |fx: &Fx, env: &[(String, String)]| {
        let out = run_ok(
            fx.curl(env)
                .args(["-D", "-", "-o", "/dev/null"])
                .arg(fx.url("/latin1")),
        );
        out.stdout
            .split(|b| *b == b'\n')
            .find(|l| l.to_ascii_lowercase().starts_with(b"content-disposition:"))
            .map(|l| l.to_vec())
            .expect("a content-disposition line")
    };
    let env = fx.start("record", "bytes");
    let recorded = line(&fx, &env);
    assert!(
        recorded.windows(4).any(|w| w == b"caf\xe9"),
        "{:?}",
        String::from_utf8_lossy(&recorded)
    );
    assert!(fx.stop("record", &[]).status.success());
    fx.up.stop();
    let env = fx.start("playback", "bytes");
    assert_eq!(line(&fx, &env), recorded);
    assert!(fx.stop("playback", &[]).status.success());
}
