//! cargo through btrfly's exports, with the cargo that runs these tests
//! and a fresh `CARGO_HOME` per session. The test writes a sparse
//! registry (`config.json` with a `dl` template, index lines, `.crate`
//! files it packs with `tar`), served by nginx over HTTPS as
//! `crates.example.test` (a name btrfly's `upstream.resolve` maps) and
//! configured in a project as `[registries.local]`. `cargo
//! generate-lockfile` and `cargo fetch` record it; with nginx stopped the
//! same commands replay into a fresh `CARGO_HOME`: the same Cargo.lock and
//! the same `.crate` bytes. A `.crate` whose bytes are not the ones the
//! index's `cksum` names is refused at record time.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use btrfly_test_support::*;

const REGISTRY: &str = "crates.example.test";

/// A crate version of the test's registry.
struct Crate {
    name: &'static str,
    /// The index directory (cargo's layout for the name).
    dir: &'static str,
    source: &'static str,
}

const CRATES: &[Crate] = &[
    Crate {
        name: "demo-lib",
        dir: "de/mo",
        source: "pub fn name() -> &'static str { \"demo-lib 1.0.0\" }\n",
    },
    Crate {
        name: "abc",
        dir: "3/a",
        source: "pub fn name() -> &'static str { \"abc 1.0.0\" }\n",
    },
];

const VERSION: &str = "1.0.0";

/// The `dl` template of the registry: not the default form, so the
/// download URL comes from the template.
const DL: &str = "/files/{lowerprefix}/{crate}/{crate}-{version}.crate";

/// Packs a `.crate` (a gzip'd tar of `{name}-{version}/`) with `source`
/// as its lib.rs, into `out`.
fn pack(work: &Path, c: &Crate, source: &str, out: &Path) {
    let top = format!("{}-{VERSION}", c.name);
    let dir = work.join(format!("pack-{}", c.name));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join(&top).join("src")).expect("crate dir");
    std::fs::write(
        dir.join(&top).join("Cargo.toml"),
        format!(
            "[package]\nname = \"{}\"\nversion = \"{VERSION}\"\nedition = \"2021\"\n\n[lib]\npath = \"src/lib.rs\"\n",
            c.name
        ),
    )
    .expect("Cargo.toml");
    std::fs::write(dir.join(&top).join("src/lib.rs"), source).expect("lib.rs");
    std::fs::create_dir_all(out.parent().expect("parent")).expect("out dir");
    run_ok(
        Command::new("tar")
            .arg("-czf")
            .arg(out)
            .arg("-C")
            .arg(&dir)
            .arg(&top),
    );
}

/// The registry's files under `root`: `index/config.json`, one index file
/// per crate, the `.crate` files where the template puts them. Returns
/// each crate's sha256 (the index's `cksum`).
fn write_registry(root: &Path, work: &Path, port: u16) -> BTreeMap<String, String> {
    let index = root.join("index");
    std::fs::create_dir_all(&index).expect("index dir");
    std::fs::write(
        index.join("config.json"),
        format!("{{\"dl\":\"https://{REGISTRY}:{port}{DL}\",\"api\":null}}\n"),
    )
    .expect("config.json");
    let mut sums = BTreeMap::new();
    for c in CRATES {
        let file = crate_path(root, c);
        pack(work, c, c.source, &file);
        let cksum = sha256_file(&file);
        let dir = index.join(c.dir);
        std::fs::create_dir_all(&dir).expect("index file dir");
        std::fs::write(
            dir.join(c.name),
            format!(
                "{{\"name\":\"{}\",\"vers\":\"{VERSION}\",\"deps\":[],\"cksum\":\"{cksum}\",\"features\":{{}},\"yanked\":false}}\n",
                c.name
            ),
        )
        .expect("index file");
        sums.insert(c.name.to_owned(), cksum);
    }
    sums
}

/// Where the `dl` template puts a crate's file.
fn crate_path(root: &Path, c: &Crate) -> PathBuf {
    let lower = c.dir.to_ascii_lowercase();
    root.join("files")
        .join(lower)
        .join(c.name)
        .join(format!("{}-{VERSION}.crate", c.name))
}

/// Every `.crate` file in a cargo home's registry cache (file name →
/// sha256).
fn cached_crates(cargo_home: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let cache = cargo_home.join("registry/cache");
    for registry in std::fs::read_dir(&cache).into_iter().flatten().flatten() {
        for f in std::fs::read_dir(registry.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            let p = f.path();
            if p.extension().is_some_and(|x| x == "crate") {
                out.insert(
                    p.file_name().expect("name").to_string_lossy().into_owned(),
                    sha256_file(&p),
                );
            }
        }
    }
    out
}

struct World {
    root: tempfile::TempDir,
    nginx: Option<Nginx>,
    port: u16,
    server: BtrflyServer,
    work: tempfile::TempDir,
    sums: BTreeMap<String, String>,
}

impl World {
    fn new() -> World {
        let root = tempfile::tempdir().expect("registry root");
        let work = tempfile::tempdir().expect("work");
        let ca = TestCa::new();
        let nginx = Nginx::start(root.path(), &ca, &[REGISTRY]);
        let port = nginx.port();
        let sums = write_registry(root.path(), work.path(), port);
        let server = BtrflyServer::start(
            bin(),
            &format!(
                "[upstream]\nca_file = {}\n[upstream.resolve]\n\"{REGISTRY}\" = \"127.0.0.1\"\n",
                BtrflyServer::toml_str(nginx.ca_file().to_string_lossy())
            ),
        );
        World {
            root,
            nginx: Some(nginx),
            port,
            server,
            work,
            sums,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.work.path().join(name)
    }

    /// A binary crate depending on both crates of the registry, which its
    /// `.cargo/config.toml` names `local`.
    fn project(&self, name: &str) -> PathBuf {
        let dir = self.path(name);
        std::fs::create_dir_all(dir.join("src")).expect("project");
        std::fs::create_dir_all(dir.join(".cargo")).expect(".cargo");
        std::fs::write(
            dir.join("Cargo.toml"),
            "[package]\nname = \"app\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[dependencies]\ndemo-lib = { version = \"1\", registry = \"local\" }\nabc = { version = \"1\", registry = \"local\" }\n",
        )
        .expect("Cargo.toml");
        std::fs::write(
            dir.join("src/main.rs"),
            "fn main() { println!(\"{} {}\", demo_lib::name(), abc::name()); }\n",
        )
        .expect("main.rs");
        std::fs::write(
            dir.join(".cargo/config.toml"),
            format!(
                "[registries.local]\nindex = \"sparse+https://{REGISTRY}:{}/index/\"\n",
                self.port
            ),
        )
        .expect("config.toml");
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

    /// `cargo args…` in `dir` with the session's exports (a fresh
    /// `CARGO_HOME`, `CARGO_HTTP_CAINFO`, `HTTPS_PROXY`); nothing of the
    /// `cargo test` that runs this test leaks in.
    fn cargo(&self, dir: &Path, env: &[(String, String)], args: &[&str]) -> Output {
        let mut c = Command::new(env!("CARGO"));
        client_env(&mut c);
        for (k, _) in std::env::vars_os() {
            let k = k.to_string_lossy();
            if k.starts_with("CARGO") || k.starts_with("RUSTC") || k == "RUSTFLAGS" {
                c.env_remove(&*k);
            }
        }
        c.env("CARGO_NET_RETRY", "0")
            .env("CARGO_TERM_COLOR", "never")
            .env("CARGO_TARGET_DIR", self.path("target"));
        apply_env(&mut c, env);
        c.args(args).current_dir(dir);
        run(&mut c)
    }
}

/// The cargo home a session's exports name.
fn cargo_home(env: &[(String, String)]) -> PathBuf {
    env.iter()
        .find(|(k, _)| k == "CARGO_HOME")
        .map(|(_, v)| PathBuf::from(v))
        .expect("the session exports CARGO_HOME")
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
fn cargo_records_and_replays_with_identical_lockfile_and_crates() {
    let mut w = World::new();

    // --- record ---
    let env = w.start("record", "cargo-1");
    let home = cargo_home(&env);
    let recorded = w.project("recorded");
    ok(&w.cargo(&recorded, &env, &["generate-lockfile"]));
    ok(&w.cargo(&recorded, &env, &["fetch"]));
    let recorded_crates = cached_crates(&home);
    let stop = w.stop();
    let summary = text(&stop.stderr);
    assert!(stop.status.success(), "{summary}");
    assert_eq!(field(&summary, "misses"), 0, "{summary}");
    let lock = std::fs::read_to_string(recorded.join("Cargo.lock")).expect("Cargo.lock");
    for c in CRATES {
        let cksum = &w.sums[c.name];
        assert!(lock.contains(&format!("checksum = \"{cksum}\"")), "{lock}");
        // the .crate cargo got is the one served
        assert_eq!(
            recorded_crates.get(&format!("{}-{VERSION}.crate", c.name)),
            Some(cksum),
            "{recorded_crates:#?}"
        );
    }

    // the tag keys each download by crate and version, names its package,
    // shares it across tags; index documents are frozen per tag
    let show = run_ok(
        w.server
            .cli(&w.path("btrfly-home"))
            .args(["tag", "show", "cargo-1", "--json"]),
    );
    let show: serde_json::Value = serde_json::from_slice(&show.stdout).expect("json");
    let entries = show["entries"].as_array().expect("entries");
    let download = entries
        .iter()
        .find(|e| {
            e["url"]
                .as_str()
                .is_some_and(|u| u.ends_with("/files/de/mo/demo-lib/demo-lib-1.0.0.crate"))
        })
        .unwrap_or_else(|| panic!("no demo-lib download: {entries:#?}"));
    assert_eq!(download["purl"], "pkg:cargo/demo-lib@1.0.0");
    assert_eq!(download["mutability"], "immutable");
    assert_eq!(download["key"]["namespace"], "cargo");
    assert!(
        download["key"]["primary"]
            .as_str()
            .is_some_and(|k| k.ends_with(" crate demo-lib@1.0.0")),
        "{download}"
    );
    for file in [
        "/index/config.json",
        "/index/de/mo/demo-lib",
        "/index/3/a/abc",
    ] {
        let e = entries
            .iter()
            .find(|e| e["url"].as_str().is_some_and(|u| u.ends_with(file)))
            .unwrap_or_else(|| panic!("no {file}: {entries:#?}"));
        assert_eq!(e["key"]["namespace"], "cargo", "{e}");
        assert_eq!(e["mutability"], "mutable", "{e}");
    }
    // the bill of materials names the same package
    let manifest = run_ok(
        w.server
            .cli(&w.path("btrfly-home"))
            .args(["tag", "manifest", "cargo-1", "--format", "json"]),
    );
    let manifest: serde_json::Value = serde_json::from_slice(&manifest.stdout).expect("json");
    let listed = manifest["entries"]
        .as_array()
        .expect("manifest entries")
        .iter()
        .find(|e| e["url"] == download["url"])
        .unwrap_or_else(|| panic!("download not in the manifest: {manifest:#}"));
    assert_eq!(listed["purl"], download["purl"]);

    // --- the registry is gone; replay into a fresh CARGO_HOME ---
    if let Some(n) = w.nginx.take() {
        n.stop();
    }
    assert!(port_is_closed(w.port));
    let env = w.start("playback", "cargo-1");
    let home = cargo_home(&env);
    assert!(cached_crates(&home).is_empty(), "a fresh CARGO_HOME");
    let replayed = w.project("replayed");
    ok(&w.cargo(&replayed, &env, &["generate-lockfile"]));
    ok(&w.cargo(&replayed, &env, &["fetch"]));
    let replayed_crates = cached_crates(&home);
    let stop = w.stop();
    let summary = text(&stop.stderr);
    assert!(stop.status.success(), "{summary}");
    assert_eq!(field(&summary, "misses"), 0, "{summary}");
    assert_eq!(
        std::fs::read(replayed.join("Cargo.lock")).expect("replayed lock"),
        lock.as_bytes(),
        "the replayed Cargo.lock is the recorded one"
    );
    assert_eq!(replayed_crates, recorded_crates);
    let _ = &w.root;
}

#[test]
fn a_crate_that_disagrees_with_the_index_checksum_is_refused() {
    let w = World::new();
    // demo-lib's file is replaced after the index named its checksum
    let demo = &CRATES[0];
    pack(
        w.work.path(),
        demo,
        "pub fn name() -> &'static str { \"evil\" }\n",
        &crate_path(w.root.path(), demo),
    );
    assert_ne!(
        sha256_file(&crate_path(w.root.path(), demo)),
        w.sums[demo.name]
    );

    let env = w.start("record", "cargo-tampered");
    let project = w.project("tampered");
    ok(&w.cargo(&project, &env, &["generate-lockfile"]));
    let fetched = w.cargo(&project, &env, &["fetch"]);
    assert!(
        !fetched.status.success(),
        "a tampered .crate must not reach cargo whole"
    );
    let stop = w.stop();
    let summary = text(&stop.stderr);
    assert!(
        summary.contains("refused 1 download") && summary.contains("demo-lib-1.0.0.crate"),
        "{summary}\n{}",
        text(&fetched.stderr)
    );
    let show = run_ok(w.server.cli(&w.path("btrfly-home")).args([
        "tag",
        "show",
        "cargo-tampered",
        "--json",
    ]));
    let show: serde_json::Value = serde_json::from_slice(&show.stdout).expect("json");
    let urls: Vec<&str> = show["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter_map(|e| e["url"].as_str())
        .collect();
    assert!(
        !urls.iter().any(|u| u.ends_with("demo-lib-1.0.0.crate")),
        "the tampered crate was recorded: {urls:#?}"
    );
    // the index that announced the checksum was recorded
    assert!(
        urls.iter().any(|u| u.ends_with("/index/de/mo/demo-lib")),
        "{urls:#?}"
    );
}
