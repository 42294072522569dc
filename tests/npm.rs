//! npm through btrfly's exports alone, on a machine whose npmrc sets
//! `cafile` (as Debian's does): npm then ignores NODE_EXTRA_CA_CERTS, so
//! the session must export NPM_CONFIG_CAFILE. A small registry the test
//! builds (packuments and tarballs with their sha512 integrity, served by
//! nginx over HTTPS as `npm.example.test`) is recorded by `npm install`,
//! stopped, and the same install replays into a fresh project with an
//! empty cache: every installed file and the lockfile identical.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use base64::Engine;
use btrfly_test_support::*;

const REGISTRY: &str = "npm.example.test";

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
        deps: &[("tiny-pad", "^1.0.0"), ("tiny-util", "^2.0.0")],
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
];

/// Writes the registry into `root`: `/<name>.json` packuments (served at
/// `/<name>`) and `/tarballs/<name>-<version>.tgz`.
fn write_registry(root: &Path, base: &str) {
    std::fs::create_dir_all(root.join("tarballs")).expect("tarballs");
    let mut packuments: BTreeMap<&str, serde_json::Value> = BTreeMap::new();
    for p in PACKAGES {
        let deps: serde_json::Map<String, serde_json::Value> = p
            .deps
            .iter()
            .map(|(n, r)| ((*n).to_owned(), serde_json::Value::from(*r)))
            .collect();
        let manifest = serde_json::json!({
            "name": p.name,
            "version": p.version,
            "main": "index.js",
            "license": "MIT",
            "dependencies": deps,
        });
        let package_json = serde_json::to_vec_pretty(&manifest).expect("json");
        let tgz = gzip(&tar(&[
            ("package/package.json", &package_json),
            ("package/index.js", p.main.as_bytes()),
        ]));
        let file = format!("{}-{}.tgz", p.name, p.version);
        std::fs::write(root.join("tarballs").join(&file), &tgz).expect("tgz");
        let sha512 = ring::digest::digest(&ring::digest::SHA512, &tgz);
        let sha1 = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, &tgz);
        let mut version = manifest.clone();
        version["dist"] = serde_json::json!({
            "tarball": format!("{base}/tarballs/{file}"),
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
        std::fs::write(
            root.join(format!("{name}.json")),
            serde_json::to_vec_pretty(&doc).expect("json"),
        )
        .expect("packument");
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
    _root: tempfile::TempDir,
    nginx: Option<Nginx>,
    port: u16,
    server: BtrflyServer,
    work: tempfile::TempDir,
}

impl World {
    fn new() -> World {
        let root = tempfile::tempdir().expect("registry root");
        let ca = TestCa::new();
        let extra = NginxExtra {
            http: String::new(),
            // a packument is /<name>, its file /<name>.json
            server: r#"
        location ~ "^/(?<pkg>[a-z0-9][a-z0-9._-]*)$" {
            try_files /$pkg.json =404;
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
                "[upstream]\nca_file = {}\n[upstream.resolve]\n\"{REGISTRY}\" = \"127.0.0.1\"\n",
                BtrflyServer::toml_str(nginx.ca_file().to_string_lossy())
            ),
        );
        let w = World {
            _root: root,
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

    /// `npm install` in `project` with the session's exports and nothing
    /// else of btrfly's.
    fn npm_install(&self, project: &Path, env: &[(String, String)]) -> Output {
        let mut c = Command::new("npm");
        client_env(&mut c);
        c.env("HOME", self.path("user"))
            .env("NPM_CONFIG_GLOBALCONFIG", self.path("npmrc-global"))
            .env_remove("NPM_CONFIG_USERCONFIG")
            .env_remove("NPM_CONFIG_CACHE")
            .env_remove("NPM_CONFIG_UPDATE_NOTIFIER")
            .env("NPM_CONFIG_FETCH_RETRIES", "0");
        apply_env(&mut c, env);
        c.args(["install", "--no-progress"]).current_dir(project);
        run(&mut c)
    }
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
    let out = w.npm_install(&w.project("control"), &without);
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
    let out = w.npm_install(&recorded, &env);
    assert!(
        out.status.success(),
        "{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let stop = w.stop();
    let summary = text(&stop.stderr);
    assert!(stop.status.success(), "{summary}");
    assert_eq!(field(&summary, "misses"), 0, "{summary}");
    assert!(
        !w.path("user/.npm").exists(),
        "the session's npm cache, not the user's, was used"
    );
    let show = run_ok(
        w.server
            .cli(&w.path("btrfly-home"))
            .args(["tag", "show", "npm-1", "--json"]),
    );
    let show: serde_json::Value = serde_json::from_slice(&show.stdout).expect("json");
    let urls: Vec<String> = show["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| e["url"].as_str().unwrap_or_default().to_owned())
        .collect();
    for want in [
        "/demo-app",
        "/tiny-pad",
        "/tiny-util",
        "/tarballs/demo-app-1.0.0.tgz",
        "/tarballs/tiny-pad-1.0.0.tgz",
        "/tarballs/tiny-util-2.1.0.tgz",
    ] {
        assert!(
            urls.iter().any(|u| u.ends_with(want)),
            "{want} not recorded: {urls:#?}"
        );
    }
    // npm's own update check stays out of the tag
    assert!(
        !urls
            .iter()
            .any(|u| u.ends_with("/npm") || u.contains("/npm/latest")),
        "{urls:#?}"
    );
    let installed = files(&recorded.join("node_modules"));
    assert_eq!(
        installed.get("tiny-util/index.js").map(String::as_str),
        Some(sha256_bytes(b"exports.name = 'tiny-util 2.1.0';\n").as_str())
    );
    let lock = std::fs::read(recorded.join("package-lock.json")).expect("lockfile");

    // --- the registry is gone; replay into a fresh project ---
    if let Some(n) = w.nginx.take() {
        n.stop();
    }
    assert!(port_is_closed(w.port));
    let env = w.start("playback", "npm-1");
    let replayed = w.project("replayed");
    let out = w.npm_install(&replayed, &env);
    assert!(
        out.status.success(),
        "{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let stop = w.stop();
    let summary = text(&stop.stderr);
    assert!(stop.status.success(), "{summary}");
    assert_eq!(field(&summary, "misses"), 0, "{summary}");
    assert!(field(&summary, "hits") >= 6, "{summary}");
    assert_eq!(files(&replayed.join("node_modules")), installed);
    assert_eq!(
        std::fs::read(replayed.join("package-lock.json")).expect("lockfile"),
        lock
    );
}
