//! npm through btrfly's exports alone, on a machine whose npmrc sets
//! `cafile` (as Debian's does): npm then ignores NODE_EXTRA_CA_CERTS, so
//! the session must export NPM_CONFIG_CAFILE. A small registry the test
//! builds (packuments, one of them scoped, and tarballs with their sha512
//! integrity, served by nginx over HTTPS as `npm.example.test`; one
//! tarball laid out elsewhere than the registry's usual path) is recorded
//! by `npm install` into a fresh cache through the npm adapter, with no
//! `[adapters.npm]` hosts configured; with the registry stopped the same
//! install replays into a fresh project and a fresh cache: every installed
//! file and the lockfile identical, each tarball named by its purl. A
//! tarball whose bytes are not the ones the packument's integrity names is
//! refused at record time.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use base64::Engine;
use btrfly_test_support::*;

const REGISTRY: &str = "npm.example.test";

/// The abbreviated packument's media type.
const ABBREVIATED: &str = "application/vnd.npm.install-v1+json";

/// One package version: its files, its dependencies.
struct Package {
    name: &'static str,
    version: &'static str,
    deps: &'static [(&'static str, &'static str)],
    main: &'static str,
}

const PACKAGES: &[Package] = &[
    Package {
        name: "demo-app",
        version: "1.0.0",
        deps: &[
            ("tiny-pad", "^1.0.0"),
            ("tiny-util", "^2.0.0"),
            ("@demo/scoped-util", "^1.0.0"),
        ],
        main: "module.exports = () => require('tiny-pad')(require('tiny-util').name, 12);\n",
    },
    Package {
        name: "tiny-pad",
        version: "1.0.0",
        deps: &[],
        main: "module.exports = (s, n) => String(s).padStart(n);\n",
    },
    Package {
        name: "tiny-util",
        version: "2.0.0",
        deps: &[],
        main: "exports.name = 'tiny-util 2.0.0';\n",
    },
    Package {
        name: "tiny-util",
        version: "2.1.0",
        deps: &[],
        main: "exports.name = 'tiny-util 2.1.0';\n",
    },
    Package {
        name: "@demo/scoped-util",
        version: "1.0.0",
        deps: &[],
        main: "exports.scoped = true;\n",
    },
];

/// The package whose tarball the registry serves from another layout
/// (`/tarballs/{name}-{version}.tgz`): checked by the URL its packument's
/// `dist.tarball` names.
const ELSEWHERE: &str = "tiny-pad";

/// A package's tarball under the registry root: `{name}/-/{bare}-{version}.tgz`
/// (the scope stays in the directory), or the other layout for
/// [`ELSEWHERE`].
fn tarball_path(name: &str, version: &str) -> String {
    let bare = name.rsplit('/').next().unwrap_or(name);
    if name == ELSEWHERE {
        format!("tarballs/{bare}-{version}.tgz")
    } else {
        format!("{name}/-/{bare}-{version}.tgz")
    }
}

/// A package version's tarball (`package/package.json`, `package/index.js`).
fn pack(p: &Package, main: &str) -> Vec<u8> {
    let deps: serde_json::Map<String, serde_json::Value> = p
        .deps
        .iter()
        .map(|(n, r)| ((*n).to_owned(), serde_json::Value::from(*r)))
        .collect();
    let package_json = serde_json::to_vec_pretty(&manifest(p, deps)).expect("json");
    gzip(&tar(&[
        ("package/package.json", &package_json),
        ("package/index.js", main.as_bytes()),
    ]))
}

fn manifest(p: &Package, deps: serde_json::Map<String, serde_json::Value>) -> serde_json::Value {
    serde_json::json!({
        "name": p.name,
        "version": p.version,
        "main": "index.js",
        "license": "MIT",
        "dependencies": deps,
    })
}

/// Writes the registry into `root`: packuments at
/// `packuments/{name}.json` (served at `/{name}`, `/@scope%2f{name}`) and
/// each tarball where [`tarball_path`] puts it.
fn write_registry(root: &Path, base: &str) {
    let mut packuments: BTreeMap<&str, serde_json::Value> = BTreeMap::new();
    for p in PACKAGES {
        let tgz = pack(p, p.main);
        let rel = tarball_path(p.name, p.version);
        let file = root.join(&rel);
        std::fs::create_dir_all(file.parent().expect("parent")).expect("tarball dir");
        std::fs::write(&file, &tgz).expect("tgz");
        let sha512 = ring::digest::digest(&ring::digest::SHA512, &tgz);
        let sha1 = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, &tgz);
        let deps = p
            .deps
            .iter()
            .map(|(n, r)| ((*n).to_owned(), serde_json::Value::from(*r)))
            .collect();
        let mut version = manifest(p, deps);
        version["dist"] = serde_json::json!({
            "tarball": format!("{base}/{rel}"),
            "integrity": format!(
                "sha512-{}",
                base64::engine::general_purpose::STANDARD.encode(sha512.as_ref())
            ),
            "shasum": hex::encode(sha1.as_ref()),
        });
        let doc = packuments.entry(p.name).or_insert_with(
            || serde_json::json!({"name": p.name, "dist-tags": {}, "versions": {}}),
        );
        doc["versions"][p.version] = version;
        doc["dist-tags"]["latest"] = serde_json::Value::from(p.version);
    }
    for (name, doc) in packuments {
        let file = root.join("packuments").join(format!("{name}.json"));
        std::fs::create_dir_all(file.parent().expect("parent")).expect("packument dir");
        std::fs::write(file, serde_json::to_vec_pretty(&doc).expect("json")).expect("packument");
    }
}

/// Every file under `dir` (relative path → sha256).
fn files(dir: &Path) -> BTreeMap<String, String> {
    fn walk(dir: &Path, base: &Path, out: &mut BTreeMap<String, String>) {
        for e in std::fs::read_dir(dir).expect("read_dir").flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, base, out);
            } else {
                let rel = p.strip_prefix(base).expect("prefix").display().to_string();
                out.insert(rel, sha256_file(&p));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

struct World {
    root: tempfile::TempDir,
    nginx: Option<Nginx>,
    port: u16,
    server: BtrflyServer,
    work: tempfile::TempDir,
}

impl World {
    fn new() -> World {
        World::with_config("")
    }

    /// The registry and a server with `config` appended to its upstream
    /// settings (e.g. `[adapters.npm] hosts`).
    fn with_config(config: &str) -> World {
        let root = tempfile::tempdir().expect("registry root");
        let ca = TestCa::new();
        let extra = NginxExtra {
            http: String::new(),
            // a packument is /{name} or /@scope%2f{name} (nginx matches
            // the decoded path), its file packuments/{name}.json
            server: r#"
        location ~ "^/(?<pkg>(@[a-z0-9._-]+/)?[a-z0-9][a-z0-9._-]*)$" {
            try_files /packuments/$pkg.json =404;
        }
"#
            .into(),
        };
        let nginx = Nginx::start_with(root.path(), &ca, &[REGISTRY], &extra);
        let port = nginx.port();
        write_registry(root.path(), &format!("https://{REGISTRY}:{port}"));
        let server = BtrflyServer::start(
            bin(),
            &format!(
                "[upstream]\nca_file = {}\n[upstream.resolve]\n\"{REGISTRY}\" = \"127.0.0.1\"\n{config}",
                BtrflyServer::toml_str(nginx.ca_file().to_string_lossy())
            ),
        );
        let w = World {
            root,
            nginx: Some(nginx),
            port,
            server,
            work: tempfile::tempdir().expect("work"),
        };
        // The machine as Debian sets it up: a global npmrc naming the
        // system CA bundle, nothing else.
        std::fs::write(
            w.path("npmrc-global"),
            "cafile=/etc/ssl/certs/ca-certificates.crt\n",
        )
        .expect("global npmrc");
        std::fs::create_dir_all(w.path("user")).expect("user home");
        w
    }

    fn path(&self, name: &str) -> PathBuf {
        self.work.path().join(name)
    }

    /// A project depending on demo-app, using the test registry.
    fn project(&self, name: &str) -> PathBuf {
        let dir = self.path(name);
        std::fs::create_dir_all(&dir).expect("project");
        std::fs::write(
            dir.join("package.json"),
            r#"{"name": "btrfly-npm-test", "version": "0.0.0", "private": true, "dependencies": {"demo-app": "^1.0.0"}}"#,
        )
        .expect("package.json");
        std::fs::write(
            dir.join(".npmrc"),
            // npm's defaults, audit included: npm POSTs its lockfile to
            // `/-/npm/v1/security/…`, which this static registry answers
            // 404 over HTTP/2 before reading the body; that answer must
            // say `Connection: close`, or npm's next request on the
            // connection meets a close ("socket hang up", no retries).
            format!("registry=https://{REGISTRY}:{}/\n", self.port),
        )
        .expect(".npmrc");
        dir
    }

    fn start(&self, mode: &str, tag: &str) -> Vec<(String, String)> {
        let out = run_ok(self.server.cli(&self.path("btrfly-home")).args([
            "start",
            mode,
            &format!("--tag={tag}"),
        ]));
        parse_exports(&text(&out.stdout))
    }

    fn stop(&self) -> Output {
        run(self.server.cli(&self.path("btrfly-home")).args(["stop"]))
    }

    /// `GET /{name}` with `accept` through the session's proxy (curl, with
    /// npm's `npm-command` header, which makes it npm's on a registry host
    /// btrfly was not told about): the status and the body.
    fn curl_packument(
        &self,
        env: &[(String, String)],
        name: &str,
        accept: &str,
    ) -> (String, Vec<u8>) {
        let body = self.path("curl-body");
        let mut c = Command::new("curl");
        client_env(&mut c);
        apply_env(&mut c, env);
        c.args(["-sS", "-o"])
            .arg(&body)
            .args(["-w", "%{http_code}", "-H", "npm-command: view", "-H"])
            .arg(format!("Accept: {accept}"))
            .arg(format!("https://{REGISTRY}:{}/{name}", self.port));
        let out = run_ok(&mut c);
        (
            text(&out.stdout).trim().to_owned(),
            std::fs::read(&body).unwrap_or_default(),
        )
    }

    /// `GET {path}` through the session's proxy as a plain client asks
    /// (curl's own `Accept: */*`, no npm header): the status.
    fn curl_plain(&self, env: &[(String, String)], path: &str) -> String {
        let mut c = Command::new("curl");
        client_env(&mut c);
        apply_env(&mut c, env);
        c.args(["-sS", "-o", "/dev/null", "-w", "%{http_code}"])
            .arg(format!("https://{REGISTRY}:{}{path}", self.port));
        text(&run_ok(&mut c).stdout).trim().to_owned()
    }

    /// `npm install --cache {cache}` in `project` with the session's
    /// exports and nothing else of btrfly's; `cache` must not exist yet.
    fn npm_install(&self, project: &Path, cache: &str, env: &[(String, String)]) -> Output {
        self.npm("install", project, cache, env)
    }

    /// `npm {command} --cache {cache}` in `project`, as [`World::npm_install`].
    fn npm(&self, command: &str, project: &Path, cache: &str, env: &[(String, String)]) -> Output {
        let cache = self.path(cache);
        assert!(!cache.exists(), "a fresh cache");
        let mut c = Command::new("npm");
        client_env(&mut c);
        c.env("HOME", self.path("user"))
            .env("NPM_CONFIG_GLOBALCONFIG", self.path("npmrc-global"))
            .env_remove("NPM_CONFIG_USERCONFIG")
            .env_remove("NPM_CONFIG_CACHE")
            .env_remove("NPM_CONFIG_UPDATE_NOTIFIER")
            .env("NPM_CONFIG_FETCH_RETRIES", "0");
        apply_env(&mut c, env);
        c.args([command, "--no-progress", "--cache"])
            .arg(&cache)
            .current_dir(project);
        let out = run(&mut c);
        if !out.status.success() {
            // what a failure needs to be understood: both sides' logs
            println!("--- btrfly serve log ---\n{}", self.server.stderr_log());
            for e in std::fs::read_dir(cache.join("_logs"))
                .into_iter()
                .flatten()
                .flatten()
            {
                println!(
                    "--- npm log {} ---\n{}",
                    e.path().display(),
                    std::fs::read_to_string(e.path()).unwrap_or_default()
                );
            }
        }
        out
    }
}

/// The entries of a tag, from `btrfly tag show --json`.
fn entries(w: &World, tag: &str) -> Vec<serde_json::Value> {
    let show = run_ok(
        w.server
            .cli(&w.path("btrfly-home"))
            .args(["tag", "show", tag, "--json"]),
    );
    let show: serde_json::Value = serde_json::from_slice(&show.stdout).expect("json");
    show["entries"].as_array().expect("entries").clone()
}

/// The entry whose URL ends with `path`.
fn entry<'a>(entries: &'a [serde_json::Value], path: &str) -> &'a serde_json::Value {
    entries
        .iter()
        .find(|e| e["url"].as_str().is_some_and(|u| u.ends_with(path)))
        .unwrap_or_else(|| panic!("{path} not recorded: {entries:#?}"))
}

fn ok(out: &Output) {
    assert!(
        out.status.success(),
        "{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
}

#[test]
fn npm_install_records_and_replays_through_the_exports_alone() {
    let mut w = World::new();

    // --- record ---
    let env = w.start("record", "npm-1");
    // Without NPM_CONFIG_CAFILE the npmrc's cafile wins and npm does not
    // trust btrfly: what the export is for.
    let without: Vec<(String, String)> = env
        .iter()
        .filter(|(k, _)| k != "NPM_CONFIG_CAFILE")
        .cloned()
        .collect();
    let out = w.npm_install(&w.project("control"), "cache-control", &without);
    assert!(
        !out.status.success(),
        "npm must not trust btrfly without the export"
    );
    let err = text(&out.stderr);
    assert!(
        [
            "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
            "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
            "SELF_SIGNED_CERT_IN_CHAIN",
        ]
        .iter()
        .any(|code| err.contains(code)),
        "{err}"
    );

    let recorded = w.project("recorded");
    ok(&w.npm_install(&recorded, "cache-record", &env));
    // `npm ci` from that lockfile too: its audit asks with another body
    // than `install`'s, and playback runs both
    let lock = std::fs::read(recorded.join("package-lock.json")).expect("lockfile");
    let ci = w.project("ci-record");
    std::fs::write(ci.join("package-lock.json"), &lock).expect("lockfile");
    ok(&w.npm("ci", &ci, "cache-ci-record", &env));
    let stop = w.stop();
    let summary = text(&stop.stderr);
    assert!(stop.status.success(), "{summary}");
    assert_eq!(field(&summary, "misses"), 0, "{summary}");
    assert!(
        !w.path("user/.npm").exists(),
        "the given npm cache, not the user's, was used"
    );
    assert!(w.path("cache-record/_cacache").is_dir(), "npm used --cache");

    // packuments: the npm adapter's, frozen per tag, keyed by the form npm
    // negotiated (npm 11 asks `install` for the full document; older npm
    // and other clients for the abbreviated one), whichever encoding of
    // the name
    let entries = entries(&w, "npm-1");
    let form = entry(&entries, "/demo-app")["key"]["variance"]["accept"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(["full", "abbreviated"].contains(&form.as_str()), "{form}");
    for (path, name) in [
        ("/demo-app", "demo-app"),
        ("/tiny-pad", "tiny-pad"),
        ("/tiny-util", "tiny-util"),
        ("/@demo%2fscoped-util", "@demo/scoped-util"),
    ] {
        let e = entry(&entries, path);
        assert_eq!(e["key"]["namespace"], "npm", "{e}");
        assert_eq!(e["mutability"], "mutable", "{e}");
        assert_eq!(e["key"]["variance"]["accept"], form.as_str(), "{e}");
        assert!(
            e["key"]["primary"]
                .as_str()
                .is_some_and(|k| k.ends_with(&format!(" packument {name}"))),
            "{e}"
        );
        assert!(e.get("purl").is_none_or(|p| p.is_null()), "{e}");
    }
    // tarballs: immutable, by package and version, each with its purl
    for (path, key, purl) in [
        (
            "/demo-app/-/demo-app-1.0.0.tgz",
            " tarball demo-app@1.0.0",
            "pkg:npm/demo-app@1.0.0",
        ),
        (
            "/tiny-util/-/tiny-util-2.1.0.tgz",
            " tarball tiny-util@2.1.0",
            "pkg:npm/tiny-util@2.1.0",
        ),
        (
            "/@demo/scoped-util/-/scoped-util-1.0.0.tgz",
            " tarball @demo/scoped-util@1.0.0",
            "pkg:npm/%40demo/scoped-util@1.0.0",
        ),
    ] {
        let e = entry(&entries, path);
        assert_eq!(e["key"]["namespace"], "npm", "{e}");
        assert_eq!(e["mutability"], "immutable", "{e}");
        assert!(
            e["key"]["primary"]
                .as_str()
                .is_some_and(|k| k.ends_with(key)),
            "{e}"
        );
        assert_eq!(e["purl"], purl, "{e}");
    }
    // the tarball laid out elsewhere is recorded (by the files adapter)
    entry(&entries, "/tarballs/tiny-pad-1.0.0.tgz");
    // tiny-util 2.0.0 was never asked for
    assert!(
        !entries.iter().any(|e| e["url"]
            .as_str()
            .is_some_and(|u| u.ends_with("tiny-util-2.0.0.tgz"))),
        "{entries:#?}"
    );
    // npm's own update check stays out of the tag
    assert!(
        !entries.iter().any(|e| e["url"]
            .as_str()
            .is_some_and(|u| u.ends_with("/npm") || u.contains("/npm/latest"))),
        "{entries:#?}"
    );
    // the bill of materials names the same packages
    let manifest = run_ok(
        w.server
            .cli(&w.path("btrfly-home"))
            .args(["tag", "manifest", "npm-1", "--format", "json"]),
    );
    let manifest: serde_json::Value = serde_json::from_slice(&manifest.stdout).expect("json");
    let listed: Vec<&str> = manifest["entries"]
        .as_array()
        .expect("manifest entries")
        .iter()
        .filter_map(|e| e["purl"].as_str())
        .collect();
    for purl in [
        "pkg:npm/demo-app@1.0.0",
        "pkg:npm/tiny-util@2.1.0",
        "pkg:npm/%40demo/scoped-util@1.0.0",
    ] {
        assert!(listed.contains(&purl), "{purl} not in {manifest:#}");
    }

    let installed = files(&recorded.join("node_modules"));
    assert_eq!(
        installed.get("tiny-util/index.js").map(String::as_str),
        Some(sha256_bytes(b"exports.name = 'tiny-util 2.1.0';\n").as_str())
    );
    assert_eq!(
        installed
            .get("@demo/scoped-util/index.js")
            .map(String::as_str),
        Some(sha256_bytes(b"exports.scoped = true;\n").as_str())
    );

    // --- the registry is gone; replay into a fresh project and cache ---
    if let Some(n) = w.nginx.take() {
        n.stop();
    }
    assert!(port_is_closed(w.port));
    let env = w.start("playback", "npm-1");
    let replayed = w.project("replayed");
    ok(&w.npm_install(&replayed, "cache-replay", &env));
    // and `npm ci` from the recorded lockfile (tarballs only)
    let ci = w.project("ci");
    std::fs::write(ci.join("package-lock.json"), &lock).expect("lockfile");
    ok(&w.npm("ci", &ci, "cache-ci", &env));
    let stop = w.stop();
    let summary = text(&stop.stderr);
    assert!(stop.status.success(), "{summary}");
    assert_eq!(field(&summary, "misses"), 0, "{summary}");
    // four packuments and four tarballs, then the four tarballs again, and
    // each command's audit (answered 404 by this registry)
    assert_eq!(field(&summary, "hits"), 14, "{summary}");
    assert_eq!(files(&replayed.join("node_modules")), installed);
    assert_eq!(
        std::fs::read(replayed.join("package-lock.json")).expect("lockfile"),
        lock
    );
    assert_eq!(files(&ci.join("node_modules")), installed);

    // Another Accept that negotiates the recorded form replays the same
    // document; one that negotiates the other form is a miss.
    let env = w.start("playback", "npm-1");
    let (same, other) = if form == "full" {
        ("application/json; q=1, */*;q=0.1", ABBREVIATED)
    } else {
        ("application/vnd.npm.install-v1+json", "application/json")
    };
    let recorded_doc = entry(&entries, "/demo-app")["sha256"].clone();
    let (status, body) = w.curl_packument(&env, "demo-app", same);
    assert_eq!(status, "200");
    assert_eq!(serde_json::Value::from(sha256_bytes(&body)), recorded_doc);
    let (status, _) = w.curl_packument(&env, "demo-app", other);
    assert_eq!(status, "404", "another form is a miss");
    let stop = w.stop();
    let summary = text(&stop.stderr);
    assert_eq!(
        (field(&summary, "hits"), field(&summary, "misses")),
        (1, 1),
        "{summary}"
    );
}

/// Records `npm install` with the tarball of `name`@`version` replaced
/// after its packument named its integrity: npm fails, the stop names the
/// tarball, the tag does not hold it but holds the packument (as the npm
/// adapter's: in its namespace, keyed by the negotiated form). `config`
/// is appended to the server's.
fn tampered(name: &str, version: &str, config: &str) {
    let w = World::with_config(config);
    let p = PACKAGES
        .iter()
        .find(|p| p.name == name && p.version == version)
        .expect("a package of the registry");
    let rel = tarball_path(p.name, p.version);
    let file = w.root.path().join(&rel);
    let served = sha256_file(&file);
    std::fs::write(&file, pack(p, "exports.name = 'evil';\n")).expect("tamper");
    assert_ne!(sha256_file(&file), served);
    let file_name = rel.rsplit('/').next().unwrap_or(&rel).to_owned();

    let env = w.start("record", "npm-tampered");
    let out = w.npm_install(&w.project("tampered"), "cache-tampered", &env);
    assert!(
        !out.status.success(),
        "a tampered tarball must not reach npm whole"
    );
    let stop = w.stop();
    let summary = text(&stop.stderr);
    assert!(
        !stop.status.success()
            && summary.contains("refused 1 download")
            && summary.contains(&file_name),
        "{summary}\n{}\n{}",
        text(&out.stderr),
        w.server.stderr_log()
    );
    let entries = entries(&w, "npm-tampered");
    assert!(
        !entries
            .iter()
            .any(|e| e["url"].as_str().is_some_and(|u| u.ends_with(&file_name))),
        "the tampered tarball was recorded: {entries:#?}"
    );
    // the packument that announced the integrity was recorded, by the npm
    // adapter
    let packument = entry(&entries, &format!("/{name}"));
    assert_eq!(
        packument["key"]["namespace"].as_str(),
        Some("npm"),
        "{packument:#}"
    );
    assert!(
        packument["key"]["variance"]["accept"].is_string(),
        "{packument:#}"
    );
}

#[test]
fn a_tarball_that_disagrees_with_the_packument_is_refused() {
    tampered("tiny-util", "2.1.0", "");
}

#[test]
fn a_tarball_laid_out_elsewhere_is_checked_at_its_dist_tarball_url() {
    tampered(ELSEWHERE, "1.0.0", "");
}

/// The same with the registry named in `[adapters.npm] hosts`: every
/// request to it is npm's, whatever headers it carries.
#[test]
fn on_a_configured_registry_host_a_tampered_tarball_is_refused() {
    tampered(
        "tiny-util",
        "2.1.0",
        &format!("[adapters.npm]\nhosts = [\"{REGISTRY}\"]\n"),
    );
}

/// `[adapters.npm] hosts`: every request to a named registry host is
/// npm's, whatever headers it carries. Without it, a packument asked for
/// without npm's headers (curl's `*/*`) is the files adapter's.
#[test]
fn a_configured_registry_host_makes_every_request_npms() {
    let hosts = format!("[adapters.npm]\nhosts = [\"{REGISTRY}\"]\n");
    for (config, namespace) in [("", "files"), (hosts.as_str(), "npm")] {
        let w = World::with_config(config);
        let env = w.start("record", "plain");
        assert_eq!(w.curl_plain(&env, "/tiny-pad"), "200", "{config}");
        ok(&w.stop());
        let entries = entries(&w, "plain");
        let e = entry(&entries, "/tiny-pad");
        assert_eq!(e["key"]["namespace"], namespace, "{config}: {e:#}");
    }
}
