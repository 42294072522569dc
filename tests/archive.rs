//! End-to-end tests of tags outside btrfly, through the real binary:
//! `btrfly export` / `btrfly import` (WARC 1.1), `btrfly tag manifest`
//! (JSON, CycloneDX, SPDX) and `btrfly tag diff`.
//!
//! The round trip records files (nginx), a pip install (the pip index
//! fixture) and a container image (Debian's docker-registry, skopeo),
//! exports the tag, stops every upstream, imports the file into a fresh
//! server with an empty store and replays byte for byte. The file the
//! binary wrote is checked by warcio (from the package index; the venv
//! `tests/run` prepares in `target/archive-venv`, or
//! `$BTRFLY_TEST_ARCHIVE_VENV`), a WARC written by warcio's own recorder
//! imports and replays, the bills of materials validate with
//! cyclonedx-python-lib and spdx-tools.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use btrfly_test_support::*;

const INDEX: &str = "pypi.example.test";
const FILES: &str = "files.example.test";
const DOWNLOADS: &str = "downloads.example.test";
const REGISTRY: &str = "registry.example.test";

/// A program of the archive venv (warcio, python with
/// cyclonedx-python-lib, pyspdxtools).
fn venv_bin(name: &str) -> PathBuf {
    let venv = std::env::var_os("BTRFLY_TEST_ARCHIVE_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target/archive-venv"));
    let bin = venv.join("bin").join(name);
    assert!(
        bin.exists(),
        "no {} : run `bash tests/run` once (it prepares the archive venv with warcio, \
         cyclonedx-python-lib and spdx-tools)",
        bin.display()
    );
    bin
}

/// Every file under `dir` (relative path → sha256), `skip` aside.
fn tree(dir: &Path, skip: &[&str]) -> BTreeMap<String, String> {
    fn walk(root: &Path, dir: &Path, skip: &[&str], out: &mut BTreeMap<String, String>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.expect("dir entry").path())
            .collect();
        entries.sort();
        for p in entries {
            let name = p.file_name().map(|n| n.to_string_lossy().into_owned());
            if name.as_deref().is_some_and(|n| skip.contains(&n)) {
                continue;
            }
            if p.is_dir() {
                walk(root, &p, skip, out);
            } else {
                let rel = p.strip_prefix(root).expect("under root");
                out.insert(rel.to_string_lossy().into_owned(), sha256_file(&p));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, skip, &mut out);
    out
}

/// The files a venv's site-packages holds (compiled files aside).
fn installed(venv: &Path) -> BTreeMap<String, String> {
    let lib = venv.join("lib");
    let site = std::fs::read_dir(&lib)
        .unwrap_or_else(|e| panic!("{}: {e}", lib.display()))
        .map(|e| e.expect("dir entry").path().join("site-packages"))
        .find(|p| p.is_dir())
        .unwrap_or_else(|| panic!("no site-packages under {}", lib.display()));
    tree(
        &site,
        &["__pycache__", "RECORD", "INSTALLER", "direct_url.json"],
    )
}

/// A btrfly server resolving the test's names to loopback and trusting
/// the test CA, with the pip adapter knowing the index fixture's hosts.
fn btrfly(ca_file: &Path) -> BtrflyServer {
    let mut extra = format!(
        "[upstream]\nca_file = {}\n[upstream.resolve]\n",
        BtrflyServer::toml_str(ca_file.to_string_lossy())
    );
    for n in [INDEX, FILES, DOWNLOADS, REGISTRY] {
        extra.push_str(&format!("\"{n}\" = \"127.0.0.1\"\n"));
    }
    extra.push_str(&format!(
        "[adapters.pip]\nindex_hosts = [\"{INDEX}\"]\nfile_hosts = [\"{FILES}\"]\n"
    ));
    BtrflyServer::start(bin(), &extra)
}

/// A client of one server: its own BTRFLY_HOME.
struct Cli<'a> {
    server: &'a BtrflyServer,
    home: PathBuf,
}

impl<'a> Cli<'a> {
    fn new(server: &'a BtrflyServer, work: &Path, name: &str) -> Cli<'a> {
        let home = work.join(format!("home-{name}"));
        std::fs::create_dir_all(&home).expect("home");
        Cli { server, home }
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = self.server.cli(&self.home);
        c.args(args);
        c
    }

    fn start(&self, mode: &str, tag: &str) -> Vec<(String, String)> {
        let out = run_ok(&mut self.cmd(&["start", mode, &format!("--tag={tag}")]));
        self.server.env_from_start(&text(&out.stdout))
    }

    /// Stops the session; asserts a clean stop without misses.
    fn stop_clean(&self, mode: &str) -> String {
        let out = run(&mut self.cmd(&["stop", mode]));
        let summary = text(&out.stderr);
        assert!(out.status.success(), "stop {mode}: {summary}");
        assert_eq!(field(&summary, "misses"), 0, "{summary}");
        assert!(!summary.contains("problems:"), "{summary}");
        summary
    }
}

/// curl through the session's proxy: the body's sha256.
fn curl_sha(env: &[(String, String)], url: &str, out: &Path) -> String {
    let mut c = Command::new("curl");
    client_env(&mut c);
    apply_env(&mut c, env)
        .args(["-sS", "--fail", "-o"])
        .arg(out)
        .arg(url);
    run_ok(&mut c);
    sha256_file(out)
}

/// skopeo with a private policy and no system registries configuration.
fn skopeo(work: &Path, env: &[(String, String)]) -> Command {
    let policy = work.join("policy.json");
    std::fs::write(
        &policy,
        r#"{"default":[{"type":"insecureAcceptAnything"}]}"#,
    )
    .expect("policy");
    let empty = work.join("registries.d");
    std::fs::create_dir_all(&empty).expect("registries.d");
    let conf = work.join("registries.conf");
    std::fs::write(&conf, "").expect("registries.conf");
    let mut c = Command::new("skopeo");
    client_env(&mut c);
    apply_env(&mut c, env);
    c.env("CONTAINERS_REGISTRIES_CONF", &conf)
        .arg("--policy")
        .arg(&policy)
        .arg("--registries.d")
        .arg(&empty);
    c
}

/// The machine's pip installing `demo-app` from `index` into a fresh
/// venv, through the session.
fn pip_install(work: &Path, env: &[(String, String)], index: &str, name: &str) -> PathBuf {
    let venv = work.join(name);
    let mut c = Command::new("python3");
    client_env(&mut c);
    run_ok(c.args(["-m", "venv", "--without-pip"]).arg(&venv));
    let mut c = Command::new("python3");
    client_env(&mut c);
    apply_env(&mut c, env)
        .env("PIP_DISABLE_PIP_VERSION_CHECK", "1")
        .env("PIP_NO_INPUT", "1")
        .env("PIP_NO_CACHE_DIR", "1")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .args(["-m", "pip", "--python"])
        .arg(venv.join("bin/python"))
        .args([
            "install",
            "--no-cache-dir",
            "--no-compile",
            "--index-url",
            index,
            "demo-app",
        ])
        .current_dir(work);
    run_ok(&mut c);
    venv
}

/// What the build under test fetches, and what it got.
struct Build {
    files: BTreeMap<String, String>,
    site_packages: BTreeMap<String, String>,
    image: BTreeMap<String, String>,
}

/// The build: two files with curl, `pip install demo-app`, an image with
/// skopeo, all through the session `env`.
fn build(
    work: &Path,
    env: &[(String, String)],
    nginx_port: u16,
    reg: &str,
    run_name: &str,
) -> Build {
    let out = work.join(run_name);
    std::fs::create_dir_all(&out).expect("run dir");
    let mut files = BTreeMap::new();
    for f in ["small.txt", "big.bin"] {
        let url = format!("https://{DOWNLOADS}:{nginx_port}/files/{f}");
        files.insert(f.to_owned(), curl_sha(env, &url, &out.join(f)));
    }
    let index = format!("https://{INDEX}:{nginx_port}/simple/");
    let venv = pip_install(work, env, &index, &format!("{run_name}-venv"));
    let image = out.join("image");
    run_ok(
        skopeo(work, env)
            .arg("copy")
            .arg(format!("docker://{reg}/app:1.0"))
            .arg(format!("oci:{}:1.0", image.display())),
    );
    Build {
        files,
        site_packages: installed(&venv),
        image: tree(&image, &[]),
    }
}

const CYCLONEDX_VALIDATE: &str = r#"
import sys
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
errors = JsonStrictValidator(SchemaVersion.V1_5).validate_str(open(sys.argv[1]).read())
if errors:
    print('invalid:', errors)
    sys.exit(1)
print('valid')
"#;

/// Record a tag with files, pip and OCI content; export it with the real
/// binary (warcio checks the file); stop every upstream; import it into a
/// fresh server with an empty store; replay byte for byte. Then the
/// bills of materials of the imported tag validate, and an import into an
/// existing tag is refused.
#[test]
fn a_tag_exported_and_imported_into_a_fresh_server_replays_byte_identical() {
    let work = tempfile::tempdir().expect("work");
    let work = work.path();
    let ca = TestCa::new();
    let ca_file = work.join("upstream-ca.pem");
    std::fs::write(&ca_file, ca.cert_pem()).expect("ca file");

    // files and the pip index: one nginx
    let root = tempfile::tempdir().expect("nginx root");
    std::fs::create_dir_all(root.path().join("files")).expect("files dir");
    std::fs::write(root.path().join("files/small.txt"), "hello, archive\n").expect("small");
    write_random_file(&root.path().join("files/big.bin"), 3_000_000, 15);
    let nginx = Nginx::start(root.path(), &ca, &[INDEX, FILES, DOWNLOADS]);
    let port = nginx.port();
    let mut gen = Command::new("python3");
    client_env(&mut gen);
    run_ok(
        gen.arg(py_script("pip_index.py"))
            .arg(root.path())
            .arg(format!("https://{FILES}:{port}")),
    );
    // the registry, and a second one on the same storage to push to
    let storage = tempfile::tempdir().expect("registry storage");
    let registry = DockerRegistry::start(
        &ca,
        storage.path(),
        &[REGISTRY],
        &RegistryOptions::default(),
    );
    let pusher = DockerRegistry::start(
        &ca,
        storage.path(),
        &["push.example.test"],
        &RegistryOptions::default(),
    );
    let layout = write_oci_layout(&work.join("layout"), "1.0", &["amd64", "arm64"], "archive");
    let certs = work.join("push-certs");
    std::fs::create_dir_all(&certs).expect("push certs");
    std::fs::write(certs.join("ca.crt"), ca.cert_pem()).expect("ca.crt");
    run_ok(
        skopeo(work, &[])
            .args(["copy", "--all", "--dest-cert-dir"])
            .arg(&certs)
            .arg(layout.reference())
            .arg(format!("docker://127.0.0.1:{}/app:1.0", pusher.port())),
    );
    pusher.stop();
    let reg = format!("{REGISTRY}:{}", registry.port());

    // --- record on the first server ---
    let first = btrfly(&ca_file);
    let a = Cli::new(&first, work, "a");
    let env = a.start("record", "build");
    let recorded = build(work, &env, port, &reg, "rec");
    let summary = a.stop_clean("record");
    let recorded_entries = field(&summary, "recorded");
    assert!(recorded_entries >= 15, "{summary}");

    // --- export ---
    let warc = work.join("out/build.warc.gz");
    std::fs::create_dir_all(work.join("out")).expect("out dir");
    let out = run_ok(a.cmd(&["export", "--tag", "build", "-o"]).arg(&warc));
    let said = text(&out.stderr);
    assert!(said.contains("exported tag build to"), "{said}");
    assert_eq!(
        std::fs::read_dir(work.join("out")).expect("out").count(),
        1,
        "only the WARC file, no temporary file left behind"
    );
    // warcio: every record's digests present and correct, one gzip member
    // per record, every entry a response record with its target URI
    let check = run(Command::new(venv_bin("warcio"))
        .args(["check", "-v"])
        .arg(&warc));
    let check_text = text(&check.stdout);
    assert!(
        check.status.success(),
        "{check_text}{}",
        text(&check.stderr)
    );
    let records = 1 + 2 * recorded_entries as usize;
    assert_eq!(
        check_text.matches("digest pass").count(),
        records,
        "{check_text}"
    );
    assert!(!check_text.contains("digest fail"), "{check_text}");
    let index = run_ok(
        Command::new(venv_bin("warcio"))
            .args([
                "index",
                "-f",
                "offset,warc-type,warc-target-uri,http:status",
            ])
            .arg(&warc),
    );
    let lines: Vec<serde_json::Value> = text(&index.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("index line"))
        .collect();
    assert_eq!(lines.len(), records);
    assert_eq!(lines[0]["warc-type"], "warcinfo");
    let offsets: std::collections::BTreeSet<_> =
        lines.iter().map(|l| l["offset"].to_string()).collect();
    assert_eq!(offsets.len(), records, "one gzip member per record");
    let target = |suffix: &str| {
        lines.iter().any(|l| {
            l["warc-type"] == "response"
                && l["warc-target-uri"]
                    .as_str()
                    .is_some_and(|u| u.ends_with(suffix))
        })
    };
    assert!(target("/files/big.bin"), "{lines:#?}");
    assert!(target("/v2/app/manifests/1.0"), "{lines:#?}");
    // no secret of the session reached the file
    let session_secret = env
        .iter()
        .find(|(k, _)| k == "HTTPS_PROXY")
        .and_then(|(_, v)| v.split('@').next())
        .and_then(|userinfo| userinfo.rsplit(':').next())
        .expect("the proxy URL holds the session secret")
        .to_owned();
    let mut plain = Vec::new();
    std::io::Read::read_to_end(
        &mut flate2::read::MultiGzDecoder::new(std::fs::File::open(&warc).expect("warc")),
        &mut plain,
    )
    .expect("gunzip");
    assert!(
        !plain
            .windows(session_secret.len())
            .any(|w| w == session_secret.as_bytes()),
        "the session secret is in the WARC"
    );
    assert!(
        !plain
            .windows(19)
            .any(|w| w.eq_ignore_ascii_case(b"proxy-authorization")),
        "a proxy credential header is in the WARC"
    );

    // --- every upstream disappears; a fresh server, an empty store ---
    nginx.stop();
    registry.stop();
    assert!(port_is_closed(port));
    drop(first);
    let second = btrfly(&ca_file);
    let b = Cli::new(&second, work, "b");
    let out = run_ok(b.cmd(&["import", "--tag", "restored"]).arg(&warc));
    let said = text(&out.stderr);
    assert!(
        said.contains(&format!("{recorded_entries} entries")),
        "every recorded entry imported: {said}"
    );
    assert!(said.contains("exported from tag build"), "{said}");

    // --- replay with every upstream gone ---
    let env = b.start("playback", "restored");
    let replayed = build(work, &env, port, &reg, "replay");
    let summary = b.stop_clean("playback");
    assert!(field(&summary, "hits") >= 15, "{summary}");
    assert_eq!(replayed.files, recorded.files);
    assert_eq!(replayed.site_packages, recorded.site_packages);
    assert!(
        recorded
            .site_packages
            .keys()
            .any(|k| k.starts_with("demo_app/")),
        "{:#?}",
        recorded.site_packages
    );
    assert_eq!(replayed.image, recorded.image);
    let arch_image = layout
        .images
        .iter()
        .find(|i| {
            recorded.image.contains_key(&format!(
                "blobs/sha256/{}",
                i.manifest.trim_start_matches("sha256:")
            ))
        })
        .expect("one of the pushed images was copied");
    for layer in &arch_image.layers {
        let hex = layer.trim_start_matches("sha256:");
        assert_eq!(
            replayed
                .image
                .get(&format!("blobs/sha256/{hex}"))
                .map(String::as_str),
            Some(hex)
        );
    }

    // --- the tag exists now: a second import is refused, nothing changes ---
    let out = run(b.cmd(&["import", "--tag", "restored"]).arg(&warc));
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("tag restored already exists: import into a new tag"),
        "{}",
        text(&out.stderr)
    );

    // --- bills of materials of the imported tag ---
    let out = run_ok(&mut b.cmd(&["tag", "manifest", "restored"]));
    let plain: serde_json::Value = serde_json::from_slice(&out.stdout).expect("manifest json");
    let entries = plain["entries"].as_array().expect("entries");
    assert_eq!(entries.len() as u64, recorded_entries);
    let purls: Vec<&str> = entries.iter().filter_map(|e| e["purl"].as_str()).collect();
    assert!(
        purls.iter().any(|p| p.starts_with("pkg:pypi/demo-app@")),
        "{purls:?}"
    );
    assert!(
        purls.iter().any(|p| p.starts_with("pkg:oci/app@sha256:")),
        "{purls:?}"
    );
    let big = entries
        .iter()
        .find(|e| {
            e["url"]
                .as_str()
                .is_some_and(|u| u.ends_with("/files/big.bin"))
        })
        .expect("big.bin listed");
    assert_eq!(big["sha256"], recorded.files["big.bin"].as_str());
    assert_eq!(big["size"], 3_000_000);

    let out = run_ok(&mut b.cmd(&["tag", "manifest", "restored", "--format", "cyclonedx"]));
    let cdx = work.join("bom.cdx.json");
    std::fs::write(&cdx, &out.stdout).expect("write cdx");
    let v = run(Command::new(venv_bin("python"))
        .arg("-c")
        .arg(CYCLONEDX_VALIDATE)
        .arg(&cdx));
    assert!(v.status.success(), "{}{}", text(&v.stdout), text(&v.stderr));

    let out = run_ok(&mut b.cmd(&["tag", "manifest", "restored", "--format", "spdx"]));
    let spdx = work.join("bom.spdx.json");
    std::fs::write(&spdx, &out.stdout).expect("write spdx");
    let v = run(Command::new(venv_bin("pyspdxtools")).arg("-i").arg(&spdx));
    assert!(v.status.success(), "{}{}", text(&v.stdout), text(&v.stderr));

    let out = run(&mut b.cmd(&["tag", "manifest", "restored", "--format", "xml"]));
    assert!(!out.status.success());
}

/// A Python program: serves three answers on loopback, fetches them with
/// warcio's `capture_http` recording into a WARC, and prints what the
/// client received: `{url: [status, sha256]}`.
const CAPTURE: &str = r#"
import hashlib, http.server, json, sys, threading
from warcio.capture_http import capture_http
import urllib.request, urllib.error

BIG = bytes((i * 2654435761 >> 13) & 0xff for i in range(500000))

class H(http.server.BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'
    def log_message(self, *a): pass
    def do_GET(self):
        if self.path == '/big.bin':
            body, ctype = BIG, 'application/octet-stream'
        elif self.path == '/note.txt':
            body, ctype = b'written by warcio\n', 'text/plain'
        else:
            self.send_response(404); self.send_header('Content-Length', '5'); self.end_headers()
            self.wfile.write(b'gone\n'); return
        self.send_response(200); self.send_header('Content-Type', ctype)
        self.send_header('Content-Length', str(len(body))); self.end_headers(); self.wfile.write(body)

server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), H)
threading.Thread(target=server.serve_forever, daemon=True).start()
base = 'http://127.0.0.1:%d' % server.server_address[1]
got = {}
with capture_http(sys.argv[1]):
    for path in ('/big.bin', '/note.txt', '/missing'):
        url = base + path
        try:
            r = urllib.request.urlopen(url, timeout=30)
            status, body = r.status, r.read()
        except urllib.error.HTTPError as e:
            status, body = e.code, e.read()
        got[url] = [status, hashlib.sha256(body).hexdigest()]
server.shutdown()
server.server_close()
print(json.dumps(got))
"#;

/// A WARC written by warcio's own recorder imports through the real
/// binary, and curl gets the recorded bodies back from the replay with the
/// upstream gone; a WARC whose payload was altered is refused with the
/// record named, leaving no tag.
#[test]
fn a_warc_from_warcios_recorder_imports_and_replays() {
    let work = tempfile::tempdir().expect("work");
    let work = work.path();
    let warc = work.join("captured.warc.gz");
    let mut py = Command::new(venv_bin("python"));
    client_env(&mut py);
    let out = run_ok(py.arg("-c").arg(CAPTURE).arg(&warc));
    let got: BTreeMap<String, (u16, String)> =
        serde_json::from_slice(&out.stdout).expect("capture prints JSON");
    assert_eq!(got.len(), 3);

    let server = BtrflyServer::start(bin(), "");
    let cli = Cli::new(&server, work, "w");
    let out = run_ok(cli.cmd(&["import", "--tag", "captured"]).arg(&warc));
    let said = text(&out.stderr);
    assert!(said.contains("3 entries"), "{said}");

    let env = cli.start("playback", "captured");
    let proxy = env
        .iter()
        .find(|(k, _)| k == "http_proxy")
        .map(|(_, v)| v.clone())
        .expect("http_proxy in the exports");
    for (i, (url, (status, sha))) in got.iter().enumerate() {
        let body = work.join(format!("body-{i}"));
        let mut c = Command::new("curl");
        client_env(&mut c);
        let out = run_ok(
            c.args([
                "-sS",
                "--noproxy",
                "",
                "-x",
                &proxy,
                "-w",
                "%{http_code}",
                "-o",
            ])
            .arg(&body)
            .arg(url),
        );
        assert_eq!(text(&out.stdout), status.to_string(), "{url}");
        assert_eq!(&sha256_file(&body), sha, "{url}");
    }
    cli.stop_clean("playback");

    // one payload byte changed: refused by its digest, no tag made
    let mut plain = Vec::new();
    std::io::Read::read_to_end(
        &mut flate2::read::MultiGzDecoder::new(std::fs::File::open(&warc).expect("warc")),
        &mut plain,
    )
    .expect("gunzip");
    let at = plain
        .windows(17)
        .position(|w| w == b"written by warcio")
        .expect("the note's body");
    plain[at] = b'W';
    let tampered = work.join("tampered.warc");
    std::fs::write(&tampered, &plain).expect("write");
    let out = run(cli.cmd(&["import", "--tag", "tampered"]).arg(&tampered));
    assert!(!out.status.success());
    let said = text(&out.stderr);
    assert!(
        said.contains("digest mismatch") && said.contains("WARC record <urn:uuid:"),
        "{said}"
    );
    let out = run(&mut cli.cmd(&["tag", "show", "tampered"]));
    assert!(!out.status.success(), "no tag from a refused import");
}

/// Two recordings of a fixture whose upstream changed one file between
/// them: `btrfly tag diff` lists that URL and exits 1; two recordings of
/// the same content exit 0; an unknown tag exits 2.
#[test]
fn tag_diff_names_the_changed_file_and_gates_on_its_exit_code() {
    let work = tempfile::tempdir().expect("work");
    let work = work.path();
    let root = tempfile::tempdir().expect("root");
    std::fs::create_dir_all(root.path().join("files")).expect("files");
    std::fs::write(root.path().join("files/a.txt"), "stays the same\n").expect("a");
    std::fs::write(root.path().join("files/b.txt"), "version one\n").expect("b");
    let ca = TestCa::new();
    let nginx = Nginx::start(root.path(), &ca, &[DOWNLOADS]);
    let server = btrfly(&nginx.ca_file());
    let cli = Cli::new(&server, work, "d");
    let fetch = |tag: &str| {
        let env = cli.start("record", tag);
        for f in ["a.txt", "b.txt"] {
            curl_sha(
                &env,
                &nginx.url(DOWNLOADS, &format!("/files/{f}")),
                &work.join(f),
            );
        }
        cli.stop_clean("record");
    };
    fetch("before");
    std::fs::write(root.path().join("files/b.txt"), "version two\n").expect("b");
    fetch("after");
    fetch("again");
    let b_url = nginx.url(DOWNLOADS, "/files/b.txt");

    let out = run(&mut cli.cmd(&["tag", "diff", "before", "after"]));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let said = text(&out.stdout);
    assert!(said.contains(&b_url), "{said}");
    assert!(!said.contains("/files/a.txt"), "{said}");

    let out = run(&mut cli.cmd(&["tag", "diff", "before", "after", "--json"]));
    assert_eq!(out.status.code(), Some(1));
    let d: serde_json::Value = serde_json::from_slice(&out.stdout).expect("diff json");
    assert_eq!(d["equal"], false);
    let changed = d["changed"].as_array().expect("changed");
    assert_eq!(changed.len(), 1, "{d:#}");
    assert_eq!(changed[0]["after"]["url"], b_url.as_str());
    assert_eq!(
        changed[0]["after"]["sha256"],
        sha256_bytes(b"version two\n").as_str()
    );
    assert!(d["added"].as_array().is_some_and(Vec::is_empty), "{d:#}");
    assert!(d["removed"].as_array().is_some_and(Vec::is_empty), "{d:#}");

    let out = run(&mut cli.cmd(&["tag", "diff", "after", "again"]));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));

    let out = run(&mut cli.cmd(&["tag", "diff", "after", "nosuch"]));
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("tag nosuch does not exist"),
        "{}",
        text(&out.stderr)
    );
    nginx.stop();
}

/// `btrfly export` of an unknown tag fails with the server's reason and
/// writes no file.
#[test]
fn export_of_an_unknown_tag_writes_nothing() {
    let work = tempfile::tempdir().expect("work");
    let server = BtrflyServer::start(bin(), "");
    let cli = Cli::new(&server, work.path(), "x");
    let target = work.path().join("nosuch.warc.gz");
    let out = run(cli.cmd(&["export", "--tag", "nosuch", "-o"]).arg(&target));
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("tag nosuch does not exist"),
        "{}",
        text(&out.stderr)
    );
    let left: Vec<_> = std::fs::read_dir(work.path())
        .expect("work")
        .map(|e| e.expect("entry").file_name())
        .filter(|n| n.to_string_lossy() != "home-x")
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

/// An export whose body cannot be read from the store after the answer
/// started (its blob is gone) fails loudly and leaves no file: the server
/// ends the response without its last chunk, the CLI keeps its temporary
/// file from becoming the export.
#[test]
fn an_export_cut_short_fails_and_leaves_no_file() {
    let work = tempfile::tempdir().expect("work");
    let work = work.path();
    let root = tempfile::tempdir().expect("root");
    std::fs::create_dir_all(root.path().join("files")).expect("files");
    std::fs::write(root.path().join("files/a.txt"), "first, and whole\n").expect("a");
    let sha = write_random_file(&root.path().join("files/z.bin"), 2_000_000, 7);
    let ca = TestCa::new();
    let nginx = Nginx::start(root.path(), &ca, &[DOWNLOADS]);
    let server = btrfly(&nginx.ca_file());
    let cli = Cli::new(&server, work, "c");
    let env = cli.start("record", "cut");
    for f in ["a.txt", "z.bin"] {
        curl_sha(
            &env,
            &nginx.url(DOWNLOADS, &format!("/files/{f}")),
            &work.join(f),
        );
    }
    cli.stop_clean("record");
    nginx.stop();
    let blob = server
        .store_dir()
        .join(format!("blobs/sha256/{}/{sha}", &sha[..2]));
    std::fs::remove_file(&blob).unwrap_or_else(|e| panic!("{}: {e}", blob.display()));

    let out_dir = work.join("out");
    std::fs::create_dir_all(&out_dir).expect("out");
    let target = out_dir.join("cut.warc.gz");
    let out = run(cli.cmd(&["export", "--tag", "cut", "-o"]).arg(&target));
    let said = text(&out.stderr);
    assert!(!out.status.success(), "{said}");
    assert!(
        said.contains("the export of tag cut was cut after")
            && said.contains(&format!("{} was not written", target.display())),
        "{said}"
    );
    let left: Vec<_> = std::fs::read_dir(&out_dir)
        .expect("out")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert!(left.is_empty(), "{left:?}");
    assert!(
        server.stderr_log().contains("export of tag cut"),
        "the server logs why: {}",
        server.stderr_log()
    );
}
