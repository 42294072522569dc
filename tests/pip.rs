//! End-to-end tests of the pip adapter with real pip: the machine's
//! (`python3 -m pip`) and the newest from the package index (a venv that
//! `tests/run` prepares in `target/pip-venv`, or `$BTRFLY_TEST_PIP_VENV`).
//!
//! Each test builds a small package index itself (`support/pip_index.py`:
//! wheels, PEP 658 metadata files, an sdist that needs a build backend which
//! pip fetches from the same index for its isolated build), serves it with
//! nginx under `pypi.example.test` (the index) and `files.example.test` (the
//! files), records `pip install demo-app` through btrfly, stops the index,
//! replays into a fresh venv with `--no-cache-dir`, and compares every
//! installed file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use btrfly_test_support::*;

const INDEX: &str = "pypi.example.test";
const FILES: &str = "files.example.test";
/// The form pip's `Accept` negotiates: what its page keys hold.
const PIP_ACCEPT_FORMS: &str = "json";

/// Which pip runs the install.
#[derive(Clone, Copy, Debug)]
enum Pip {
    /// `python3 -m pip`: what this machine has.
    Machine,
    /// The newest pip from the package index, in its own venv.
    Newest,
}

impl Pip {
    fn python(self) -> PathBuf {
        match self {
            Pip::Machine => PathBuf::from("python3"),
            Pip::Newest => {
                let venv = std::env::var_os("BTRFLY_TEST_PIP_VENV")
                    .map(PathBuf::from)
                    .unwrap_or_else(|| repo_root().join("target/pip-venv"));
                let python = venv.join("bin/python");
                assert!(
                    python.exists(),
                    "no venv with the newest pip at {}: run `bash tests/run` once (it prepares \
                     it), or: python3 -m venv target/pip-venv && env -u PIP_FIND_LINKS \
                     PIP_CONFIG_FILE=/dev/null target/pip-venv/bin/pip install -U pip",
                    venv.display()
                );
                python
            }
        }
    }

    fn version(self) -> String {
        let out = run_ok(self.command().args(["--version"]));
        text(&out.stdout).trim().to_owned()
    }

    /// `python -m pip` with this machine's pip settings neutralised.
    fn command(self) -> Command {
        let mut c = Command::new(self.python());
        client_env(&mut c);
        c.env("PIP_DISABLE_PIP_VERSION_CHECK", "1")
            .env("PIP_NO_INPUT", "1")
            // for the pip that build isolation starts, which gets no CLI flags
            .env("PIP_NO_CACHE_DIR", "1")
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .args(["-m", "pip"]);
        c
    }
}

/// The test's package index (nginx) and a btrfly that knows its hosts.
struct World {
    /// The index's files, served by nginx (removed on drop).
    _root: tempfile::TempDir,
    nginx: Option<Nginx>,
    port: u16,
    server: BtrflyServer,
    work: tempfile::TempDir,
    /// filename → the sha256 the index pages announce
    announced: BTreeMap<String, String>,
}

impl World {
    fn new(tamper: Option<&str>) -> World {
        let root = tempfile::tempdir().expect("index root");
        let ca = TestCa::new();
        // nginx picks the port; the pages need it for their absolute links
        // to the file host, so they are written after it started (the
        // readiness check needs no file).
        let extra = NginxExtra {
            http: r#"
    map $http_accept $pypi_index {
        "~application/vnd\.pypi\.simple\.v1\+json" index.json;
        default index.html;
    }
"#
            .into(),
            server: r#"
        # PEP 691: the same pages in HTML or JSON, by Accept
        location /json/simple/ {
            index $pypi_index;
            types {
                text/html html;
                application/vnd.pypi.simple.v1+json json;
            }
            add_header Vary Accept;
        }
"#
            .into(),
        };
        let nginx = Nginx::start_with(root.path(), &ca, &[INDEX, FILES], &extra);
        let port = nginx.port();
        let mut gen = Command::new("python3");
        client_env(&mut gen);
        gen.arg(py_script("pip_index.py"))
            .arg(root.path())
            .arg(format!("https://{FILES}:{port}"));
        if let Some(t) = tamper {
            gen.args(["--tamper", t]);
        }
        let out = run_ok(&mut gen);
        let announced: BTreeMap<String, String> =
            serde_json::from_slice(&out.stdout).expect("pip_index.py prints a JSON object");
        let extra = format!(
            "[upstream]\nca_file = {ca}\n\
             [upstream.resolve]\n\"{INDEX}\" = \"127.0.0.1\"\n\"{FILES}\" = \"127.0.0.1\"\n\
             [adapters.pip]\nindex_hosts = [\"{INDEX}\"]\nfile_hosts = [\"{FILES}\"]\n",
            ca = BtrflyServer::toml_str(nginx.ca_file().to_string_lossy()),
        );
        let server = BtrflyServer::start(bin(), &extra);
        World {
            _root: root,
            nginx: Some(nginx),
            port,
            server,
            work: tempfile::tempdir().expect("work dir"),
            announced,
        }
    }

    fn index_url(&self, prefix: &str) -> String {
        format!("https://{INDEX}:{}{prefix}", self.port)
    }

    fn dir(&self, name: &str) -> PathBuf {
        let d = self.work.path().join(name);
        std::fs::create_dir_all(&d).expect("dir");
        d
    }

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

    fn entries(&self, home: &Path, tag: &str) -> Vec<serde_json::Value> {
        let out = run_ok(self.server.cli(home).args(["tag", "show", tag, "--json"]));
        let show: serde_json::Value = serde_json::from_slice(&out.stdout).expect("tag show json");
        show["entries"].as_array().cloned().unwrap_or_default()
    }

    /// A fresh, empty venv (no pip of its own: the pip under test installs
    /// into it with `--python`).
    fn venv(&self, name: &str) -> PathBuf {
        let dir = self.work.path().join(name);
        let mut c = Command::new("python3");
        client_env(&mut c);
        run_ok(c.args(["-m", "venv", "--without-pip"]).arg(&dir));
        dir
    }

    /// `pip install demo-app` from `index` into `venv`, through the session.
    fn pip_install(&self, pip: Pip, env: &[(String, String)], index: &str, venv: &Path) -> Output {
        let mut c = pip.command();
        apply_env(&mut c, env);
        c.arg("--python")
            .arg(venv.join("bin/python"))
            .args([
                "install",
                "--no-cache-dir",
                "--no-compile",
                "--index-url",
                index,
            ])
            .arg("demo-app")
            .current_dir(self.work.path());
        run(&mut c)
    }

    fn stop_index(&mut self) {
        if let Some(n) = self.nginx.take() {
            n.stop();
        }
        assert!(port_is_closed(self.port), "the index must be gone");
    }
}

/// Every file under the venv's site-packages (`__pycache__` aside), by
/// relative path, with its sha256.
fn installed(venv: &Path) -> BTreeMap<String, String> {
    fn walk(dir: &Path, base: &Path, out: &mut BTreeMap<String, String>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.expect("dir entry").path())
            .collect();
        entries.sort();
        for p in entries {
            if p.is_dir() {
                if p.file_name().is_some_and(|n| n != "__pycache__") {
                    walk(&p, base, out);
                }
            } else {
                let rel = p.strip_prefix(base).expect("under base");
                out.insert(rel.to_string_lossy().into_owned(), sha256_file(&p));
            }
        }
    }
    let site = site_packages(venv);
    let mut out = BTreeMap::new();
    walk(&site, &site, &mut out);
    out
}

fn header<'a>(entry: &'a serde_json::Value, name: &str) -> Option<&'a str> {
    entry["headers"].as_array()?.iter().find_map(|h| {
        let h = h.as_array()?;
        h.first()?
            .as_str()?
            .eq_ignore_ascii_case(name)
            .then(|| h.get(1)?.as_str())?
    })
}

/// What the recording of `pip install demo-app` must hold, whichever pip
/// and form: pages frozen per tag under the negotiated form, files
/// immutable and keyed without their query, heads normalised.
fn check_recording(entries: &[serde_json::Value], announced: &BTreeMap<String, String>) {
    let urls: Vec<&str> = entries.iter().filter_map(|e| e["url"].as_str()).collect();
    for e in entries {
        let url = e["url"].as_str().unwrap_or_default();
        assert_eq!(e["key"]["namespace"], "pip", "{url} was not keyed by pip");
        for volatile in ["date", "etag", "last-modified"] {
            assert!(header(e, volatile).is_none(), "{url} kept {volatile}: {e}");
        }
        let primary = e["key"]["primary"].as_str().unwrap_or_default();
        let is_page = url.contains("/simple/");
        if is_page {
            assert_eq!(e["mutability"], "mutable", "{url}");
            assert_eq!(e["key"]["variance"]["accept"], PIP_ACCEPT_FORMS, "{url}");
            assert_eq!(header(e, "cache-control"), Some("no-cache"), "{url}");
        } else {
            assert_eq!(e["mutability"], "immutable", "{url}");
            assert!(
                !primary.contains('?'),
                "a file key keeps no query: {primary}"
            );
            assert_eq!(
                header(e, "cache-control"),
                Some("max-age=31536000, immutable"),
                "{url}"
            );
        }
        // every file's body is the one its page announced
        let name = url
            .split(['?', '#'])
            .next()
            .and_then(|u| u.rsplit('/').next())
            .unwrap_or_default();
        if let Some(sha) = announced.get(name) {
            assert_eq!(e["sha256"].as_str(), Some(sha.as_str()), "{url}");
        }
    }
    for project in [
        "demo-app",
        "demo-lib",
        "tiny-util-extra",
        "demo-sdist",
        "tinybuild",
    ] {
        assert!(
            urls.iter()
                .any(|u| u.ends_with(&format!("/simple/{project}/"))),
            "no page for {project} in {urls:#?}"
        );
    }
    for file in [
        "demo_app-1.0-py3-none-any.whl",
        "demo_lib-1.1-py3-none-any.whl",
        "tiny_util_extra-0.1-py3-none-any.whl",
        // stored without its query: the key ignores it (README: secrets)
        "demo_sdist-2.0.tar.gz",
        "tinybuild-0.1-py3-none-any.whl",
    ] {
        assert!(
            urls.iter().any(|u| u.ends_with(file)),
            "{file} not recorded in {urls:#?}"
        );
    }
    assert!(
        urls.iter()
            .any(|u| u.ends_with("demo_lib-1.1-py3-none-any.whl.metadata")),
        "pip resolved without the PEP 658 metadata file: {urls:#?}"
    );
}

/// Record `pip install demo-app`, stop the index, replay into a fresh venv,
/// compare what got installed.
fn record_and_replay(pip: Pip, prefix: &str, tag: &str) {
    let mut w = World::new(None);
    eprintln!("pip under test: {}", pip.version());
    let home = w.dir("home");
    let index = w.index_url(prefix);

    let env = w.start(&home, "record", tag);
    let recorded_venv = w.venv("venv-recorded");
    let out = w.pip_install(pip, &env, &index, &recorded_venv);
    assert!(
        out.status.success(),
        "pip install while recording failed:\n{}\n{}\nbtrfly log:\n{}",
        text(&out.stdout),
        text(&out.stderr),
        w.server.stderr_log()
    );
    let stop = w.stop(&home, "record");
    let summary = text(&stop.stderr);
    assert!(stop.status.success(), "{summary}{}", text(&stop.stderr));
    assert!(!summary.contains("problems:"), "{summary}");
    assert!(field(&summary, "recorded") >= 11, "{summary}");
    check_recording(&w.entries(&home, tag), &w.announced);

    let before = installed(&recorded_venv);
    for must in [
        "demo_app/__init__.py",
        "demo_lib/__init__.py",
        "tiny_util_extra/__init__.py",
        "demo_sdist/__init__.py",
        "demo_sdist/data.txt",
        "demo_sdist-2.0.dist-info/WHEEL",
    ] {
        assert!(
            before.contains_key(must),
            "{must} not installed: {before:#?}"
        );
    }
    let wheel_info = std::fs::read_to_string(
        before
            .keys()
            .find(|k| k.ends_with("demo_sdist-2.0.dist-info/WHEEL"))
            .map(|k| site_packages(&recorded_venv).join(k))
            .expect("WHEEL"),
    )
    .expect("read WHEEL");
    assert!(
        wheel_info.contains("Generator: tinybuild"),
        "demo-sdist was not built by the backend from the index: {wheel_info}"
    );
    assert!(
        !before.keys().any(|k| k.starts_with("tinybuild")),
        "the build backend belongs to the isolated build, not the venv"
    );

    // --- the index is gone: replay ---
    w.stop_index();
    let env = w.start(&home, "playback", tag);
    let replayed_venv = w.venv("venv-replayed");
    let out = w.pip_install(pip, &env, &index, &replayed_venv);
    let stop = w.stop(&home, "playback");
    let summary = text(&stop.stderr);
    assert!(
        out.status.success(),
        "pip install from the replay failed:\n{}\n{}\n{summary}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(stop.status.success(), "{summary}{}", text(&stop.stderr));
    assert_eq!(field(&summary, "misses"), 0, "{summary}");
    assert!(field(&summary, "hits") >= 11, "{summary}");
    assert_eq!(
        installed(&replayed_venv),
        before,
        "the replayed install differs from the recorded one"
    );
}

fn site_packages(venv: &Path) -> PathBuf {
    let lib = venv.join("lib");
    std::fs::read_dir(&lib)
        .unwrap_or_else(|e| panic!("{}: {e}", lib.display()))
        .map(|e| e.expect("dir entry").path().join("site-packages"))
        .find(|p| p.is_dir())
        .unwrap_or_else(|| panic!("no site-packages under {}", lib.display()))
}

#[test]
fn machine_pip_records_and_replays_an_html_index() {
    record_and_replay(Pip::Machine, "/simple/", "pip-machine");
}

#[test]
fn newest_pip_records_and_replays_an_html_index() {
    record_and_replay(Pip::Newest, "/simple/", "pip-newest");
}

/// The JSON form (PEP 691): pip negotiates JSON from an index that serves
/// both; the replay answers each client the form it asks for.
#[test]
fn json_form_is_recorded_and_each_client_gets_its_form_back() {
    let mut w = World::new(None);
    let home = w.dir("home");
    let index = w.index_url("/json/simple/");
    let page = w.index_url("/json/simple/demo-lib/");
    let curl = |env: &[(String, String)], accept: &str, out: &Path| {
        let mut c = Command::new("curl");
        client_env(&mut c);
        apply_env(&mut c, env);
        c.args(["-sS", "--fail", "--max-time", "60", "-H"])
            .arg(format!("Accept: {accept}"))
            .args(["-w", "%{content_type}", "-D"])
            .arg(out.with_extension("head"))
            .arg("-o")
            .arg(out)
            .arg(&page);
        text(&run_ok(&mut c).stdout)
    };

    let env = w.start(&home, "record", "pip-json");
    let venv = w.venv("venv-recorded");
    let out = w.pip_install(Pip::Newest, &env, &index, &venv);
    assert!(out.status.success(), "{}", text(&out.stderr));
    // an HTML client of the same page, in the same session
    let html_rec = w.dir("out").join("html-recorded");
    let ct = curl(&env, "text/html", &html_rec);
    assert!(ct.starts_with("text/html"), "{ct}");
    let live_head = std::fs::read_to_string(html_rec.with_extension("head")).expect("head");
    let stop = w.stop(&home, "record");
    assert!(stop.status.success());
    assert!(
        !text(&stop.stderr).contains("problems:"),
        "{}",
        text(&stop.stderr)
    );

    let entries = w.entries(&home, "pip-json");
    let pages: Vec<&serde_json::Value> = entries
        .iter()
        .filter(|e| e["url"].as_str().is_some_and(|u| u.ends_with("/demo-lib/")))
        .collect();
    let mut forms: Vec<(&str, &str)> = pages
        .iter()
        .map(|e| {
            (
                e["key"]["variance"]["accept"].as_str().unwrap_or_default(),
                header(e, "content-type").unwrap_or_default(),
            )
        })
        .collect();
    forms.sort();
    assert_eq!(
        forms,
        [
            ("html", "text/html"),
            (PIP_ACCEPT_FORMS, "application/vnd.pypi.simple.v1+json")
        ],
        "one recording per negotiated form"
    );
    let pip_entries: Vec<serde_json::Value> = entries
        .iter()
        .filter(|e| !(e["key"]["variance"]["accept"] == "html"))
        .cloned()
        .collect();
    check_recording(&pip_entries, &w.announced);
    // nginx sends validators; the head btrfly passed on (and recorded) has
    // none, and caching is restated for a page frozen per tag
    let direct = run_ok(
        w.nginx
            .as_ref()
            .expect("index running")
            .curl(INDEX)
            .args([
                "-sS",
                "-o",
                "/dev/null",
                "-D",
                "-",
                "-H",
                "Accept: text/html",
            ])
            .arg(&page),
    );
    let direct = text(&direct.stdout).to_ascii_lowercase();
    let live_head = live_head.to_ascii_lowercase();
    for volatile in ["\netag:", "\nlast-modified:"] {
        assert!(direct.contains(volatile), "{direct}");
        assert!(!live_head.contains(volatile), "{live_head}");
    }
    assert!(
        live_head.contains("\ncache-control: no-cache"),
        "{live_head}"
    );

    w.stop_index();
    let env = w.start(&home, "playback", "pip-json");
    let replayed = w.venv("venv-replayed");
    let out = w.pip_install(Pip::Newest, &env, &index, &replayed);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let html_rep = w.dir("out").join("html-replayed");
    let json_rep = w.dir("out").join("json-replayed");
    let ct = curl(&env, "text/html", &html_rep);
    assert!(ct.starts_with("text/html"), "{ct}");
    let ct = curl(
        &env,
        "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, text/html; q=0.01",
        &json_rep,
    );
    assert!(
        ct.starts_with("application/vnd.pypi.simple.v1+json"),
        "{ct}"
    );
    // The key holds the negotiated form, not the header: other Accept
    // headers that rank the same form first replay it.
    let browser_rep = w.dir("out").join("browser-replayed");
    let ct = curl(
        &env,
        "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8",
        &browser_rep,
    );
    assert!(ct.starts_with("text/html"), "{ct}");
    assert_eq!(
        std::fs::read(&browser_rep).expect("html"),
        std::fs::read(&html_rec).expect("html")
    );
    let q_rep = w.dir("out").join("q-replayed");
    let ct = curl(
        &env,
        "application/vnd.pypi.simple.v1+json;q=0.9, text/html;q=0.1",
        &q_rep,
    );
    assert!(
        ct.starts_with("application/vnd.pypi.simple.v1+json"),
        "{ct}"
    );
    assert_eq!(
        std::fs::read(&q_rep).expect("json"),
        std::fs::read(&json_rep).expect("json")
    );
    // a form never recorded is a miss, never the other form
    let mut c = Command::new("curl");
    client_env(&mut c);
    apply_env(&mut c, &env);
    let never = run_ok(
        c.args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", "-H"])
            .arg("Accept: application/vnd.pypi.simple.v1+html")
            .arg(&page),
    );
    assert_eq!(text(&never.stdout), "404");
    let stop = w.stop(&home, "playback");
    assert_eq!(stop.status.code(), Some(1), "{}", text(&stop.stderr));
    assert_eq!(field(&text(&stop.stderr), "misses"), 1);

    assert_eq!(
        std::fs::read(&html_rep).expect("html"),
        std::fs::read(&html_rec).expect("html"),
        "the HTML client gets the HTML it got while recording"
    );
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&json_rep).expect("json")).expect("a JSON page");
    assert_eq!(json["name"], "demo-lib");
    let replay_head = std::fs::read_to_string(html_rep.with_extension("head"))
        .expect("head")
        .to_ascii_lowercase();
    for volatile in ["\netag:", "\nlast-modified:"] {
        assert!(
            !replay_head.contains(volatile),
            "{volatile} in {replay_head}"
        );
    }
    assert!(
        replay_head.contains("\ncache-control: no-cache"),
        "{replay_head}"
    );
    assert_eq!(installed(&replayed), installed(&venv));
}

/// A file whose bytes are not what its index page announced is not
/// recorded, pip fails, and both say why. A small file fails before its
/// head went out (btrfly answers 502 with the reason); a large one is cut
/// off before its last chunk, and a resumed download of it is refused.
fn tampered(pip: Pip, tag: &str, bad: &str) {
    let w = World::new(Some(bad));
    eprintln!("pip under test: {}", pip.version());
    let home = w.dir("home");
    let env = w.start(&home, "record", tag);
    let venv = w.venv("venv");
    let out = w.pip_install(pip, &env, &w.index_url("/simple/"), &venv);
    let pip_says = format!("{}{}", text(&out.stdout), text(&out.stderr));
    eprintln!("--- pip said ---\n{pip_says}");
    assert!(!out.status.success(), "pip must fail:\n{pip_says}");
    assert!(
        pip_says.contains(bad),
        "pip's error names the file:\n{pip_says}"
    );
    // pip says it in its own words: btrfly's reason phrase on the refusal,
    // or pip's hash check of the cut-off file
    assert!(
        pip_says.contains("Body Does Not Match Its Announced Digest")
            || pip_says.contains("DO NOT MATCH THE HASHES"),
        "{pip_says}"
    );
    let stop = w.stop(&home, "record");
    let stderr = text(&stop.stderr);
    eprintln!("--- btrfly stop said ---\n{stderr}");
    // the recording fails as a whole, saying what and why
    assert_eq!(stop.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("did not match the digest"), "{stderr}");
    let problems = stderr
        .split_once("problems:\n")
        .map(|(_, p)| p)
        .unwrap_or_else(|| panic!("no problems listed:\n{stderr}"));
    let first = problems.lines().next().unwrap_or_default();
    assert!(
        first.contains(bad)
            && first.contains(&format!("does not match the expected {}", w.announced[bad])),
        "{problems}"
    );
    assert!(
        !problems.contains("BodyDigestMismatch"),
        "one clear line per refusal, no internal noise:\n{problems}"
    );
    assert!(
        field(&stderr, "recorded") >= 10,
        "the rest was recorded: {stderr}"
    );
    // nothing of the tampered file is in the tag, not even a part of it
    let entries = w.entries(&home, tag);
    assert!(
        !entries
            .iter()
            .any(|e| e["url"].as_str().is_some_and(|u| u.ends_with(bad))),
        "the tampered file was recorded: {entries:#?}"
    );
}

#[test]
fn machine_pip_tampered_small_file_fails_the_recording() {
    tampered(
        Pip::Machine,
        "pip-tampered-machine",
        "tiny_util_extra-0.1-py3-none-any.whl",
    );
}

#[test]
fn newest_pip_tampered_large_file_fails_the_recording() {
    tampered(
        Pip::Newest,
        "pip-tampered-newest",
        "demo_lib-1.1-py3-none-any.whl",
    );
}

/// `pip install demo-app` as a user runs it: no cache flags, the user's
/// own HOME (and so `~/.cache/pip`), btrfly's exports applied as given.
fn user_pip_install(w: &World, user: &Path, env: &[(String, String)], venv: &Path) -> Output {
    let mut c = Command::new(Pip::Machine.python());
    client_env(&mut c);
    for var in ["PIP_CACHE_DIR", "PIP_NO_CACHE_DIR", "XDG_CACHE_HOME"] {
        c.env_remove(var);
    }
    c.env("HOME", user)
        .env("PIP_DISABLE_PIP_VERSION_CHECK", "1")
        .env("PIP_NO_INPUT", "1")
        .env("PYTHONDONTWRITEBYTECODE", "1");
    apply_env(&mut c, env);
    c.args(["-m", "pip", "--python"])
        .arg(venv.join("bin/python"))
        .args(["install", "--no-compile", "--index-url"])
        .arg(w.index_url("/simple/"))
        .arg("demo-app")
        .current_dir(w.work.path());
    run(&mut c)
}

/// The URLs a tag holds.
fn urls(entries: &[serde_json::Value]) -> Vec<String> {
    entries
        .iter()
        .map(|e| e["url"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// A record session sees every download of an isolated build even when
/// the user's pip cache already holds them all (the session's exports give
/// pip, and the nested pip of the build, a fresh cache), so the tag
/// replays on a machine with an empty cache. With `--keep-caches` the
/// same recording misses what the cache served, and its replay fails.
#[test]
fn build_isolation_with_a_warm_user_cache_is_recorded_whole() {
    let mut w = World::new(None);
    let home = w.dir("btrfly-home");
    let user = w.dir("user");
    let user_cache = user.join(".cache/pip");

    // The user has installed demo-app before: their cache is warm (HTTP
    // cache and the wheel pip built from demo-sdist).
    let out =
        run_ok(
            w.server
                .cli(&home)
                .args(["start", "record", "--tag=warm-up", "--keep-caches"]),
        );
    let env = parse_exports(&text(&out.stdout));
    let out = user_pip_install(&w, &user, &env, &w.venv("venv-warm-up"));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(w.stop(&home, "record").status.success());
    assert!(
        user_cache.join("wheels").is_dir(),
        "the user's cache is warm"
    );

    // With the user's caches kept, the recording lacks what they served.
    let out =
        run_ok(
            w.server
                .cli(&home)
                .args(["start", "record", "--tag=cached", "--keep-caches"]),
        );
    let env = parse_exports(&text(&out.stdout));
    let out = user_pip_install(&w, &user, &env, &w.venv("venv-cached"));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let _ = w.stop(&home, "record");
    let cached = urls(&w.entries(&home, "cached"));
    assert!(
        !cached.iter().any(|u| u.contains("tinybuild")),
        "the build backend came from the user's cache: {cached:#?}"
    );

    // By default the session isolates pip's cache: every download is seen.
    let env = w.start(&home, "record", "isolated");
    let recorded = w.venv("venv-isolated");
    let out = user_pip_install(&w, &user, &env, &recorded);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stop = w.stop(&home, "record");
    assert!(stop.status.success(), "{}", text(&stop.stderr));
    let isolated = urls(&w.entries(&home, "isolated"));
    for want in ["tinybuild-0.1-py3-none-any.whl", "demo_sdist-2.0.tar.gz"] {
        assert!(
            isolated.iter().any(|u| u.contains(want)),
            "{want} not recorded: {isolated:#?}"
        );
    }

    // --- the index is gone; a machine with an empty cache ---
    w.stop_index();
    let fresh = w.dir("fresh-user");
    let env = w.start(&home, "playback", "isolated");
    let replayed = w.venv("venv-replayed");
    let out = user_pip_install(&w, &fresh, &env, &replayed);
    let stop = w.stop(&home, "playback");
    let summary = text(&stop.stderr);
    assert!(out.status.success(), "{}\n{summary}", text(&out.stderr));
    assert_eq!(field(&summary, "misses"), 0, "{summary}");
    assert_eq!(installed(&replayed), installed(&recorded));

    // The tag recorded with the user's cache does not replay there.
    let env = w.start(&home, "playback", "cached");
    let out = user_pip_install(&w, &w.dir("another-user"), &env, &w.venv("venv-cached-2"));
    let stop = w.stop(&home, "playback");
    assert!(
        !out.status.success(),
        "a tag missing the build backend cannot install"
    );
    assert!(field(&text(&stop.stderr), "misses") >= 1);
}
