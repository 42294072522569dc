//! The explicit mirror through the real binary: `btrfly mirror add` of
//! files (without and with `--sha256`, and with a wrong one) from nginx
//! and of a multi-architecture image by digest from Debian's
//! docker-registry; the server's fetcher stores them through its own proxy
//! listener (or fails the wrong digest, naming both); then, with every
//! upstream stopped, playback of a tag that never recorded them serves
//! the files (curl, identical bytes) and the image (skopeo, by digest)
//! from the mirror, and `btrfly stop playback` counts the mirror hits.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use btrfly_test_support::*;

const FILES: &str = "files.example.test";
const REGISTRY: &str = "registry.example.test";

fn fails_with(out: &Output, needle: &str) {
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {err}");
    assert!(err.contains(needle), "expected {needle:?} in: {err}");
}

/// skopeo with a private policy and no system registries configuration.
fn skopeo(work: &Path, env: &[(String, String)]) -> Command {
    let policy = work.join("policy.json");
    std::fs::write(
        &policy,
        r#"{"default":[{"type":"insecureAcceptAnything"}]}"#,
    )
    .expect("policy");
    let empty = work.join("empty.d");
    std::fs::create_dir_all(&empty).expect("empty dir");
    let registries = work.join("registries.conf");
    std::fs::write(&registries, "").expect("registries.conf");
    let mut c = Command::new("skopeo");
    client_env(&mut c);
    apply_env(&mut c, env);
    c.env("CONTAINERS_REGISTRIES_CONF", &registries)
        .arg("--policy")
        .arg(&policy)
        .arg("--registries.d")
        .arg(&empty);
    c
}

fn mirror_ls(server: &BtrflyServer, home: &Path) -> Vec<serde_json::Value> {
    let out = run_ok(server.cli(home).args(["mirror", "ls", "--json"]));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("mirror ls --json");
    v["entries"].as_array().cloned().expect("entries")
}

fn add(server: &BtrflyServer, home: &Path, args: &[&str]) -> String {
    let out = run_ok(server.cli(home).args(["mirror", "add"]).args(args));
    let id = text(&out.stdout).trim().to_owned();
    assert_eq!(id.len(), 16, "an entry id: {id:?}");
    id
}

#[test]
fn declared_files_and_images_are_fetched_and_serve_playback_with_the_upstreams_gone() {
    let root = tempfile::tempdir().expect("root");
    let files = root.path().join("files");
    std::fs::create_dir_all(&files).expect("files dir");
    let a = write_random_file(&files.join("a.bin"), 300_000, 1);
    let b = write_random_file(&files.join("b.bin"), 200_000, 2);
    let c = write_random_file(&files.join("c.bin"), 1000, 3);
    std::fs::write(files.join("other.txt"), "recorded by the build\n").expect("other");
    let ca = TestCa::new();
    let nginx = Nginx::start(root.path(), &ca, &[FILES]);
    let storage = tempfile::tempdir().expect("registry storage");
    let registry = DockerRegistry::start(
        &ca,
        storage.path(),
        &[REGISTRY],
        &RegistryOptions::default(),
    );
    let work = tempfile::tempdir().expect("work");
    let home = work.path().join("home");
    std::fs::create_dir_all(&home).expect("home");

    // A two-platform image, pushed straight to the registry.
    let image = write_oci_layout(
        &work.path().join("layout"),
        "1.0",
        &["amd64", "arm64"],
        "mirror",
    );
    let certs = work.path().join("push-certs");
    std::fs::create_dir_all(&certs).expect("certs");
    std::fs::write(certs.join("ca.crt"), ca.cert_pem()).expect("ca.crt");
    run_ok(
        skopeo(work.path(), &[])
            .args(["copy", "--all", "--dest-cert-dir"])
            .arg(&certs)
            .arg(image.reference())
            .arg(format!(
                "docker://127.0.0.1:{}/team/app:1.0",
                registry.port()
            )),
    );

    let upstream_ca = work.path().join("upstream-ca.pem");
    std::fs::write(&upstream_ca, ca.cert_pem()).expect("ca file");
    let server = BtrflyServer::start(
        bin(),
        &format!(
            "[upstream]\nca_file = {}\n[upstream.resolve]\n\"{FILES}\" = \"127.0.0.1\"\n\"{REGISTRY}\" = \"127.0.0.1\"\n[mirror]\nretry_delay_secs = 0\n",
            BtrflyServer::toml_str(upstream_ca.to_string_lossy())
        ),
    );
    let files_port = nginx.port();
    let url = |f: &str| format!("https://{FILES}:{files_port}/files/{f}");
    let reg = format!("{REGISTRY}:{}", registry.port());

    // --- refusals: a tag-only image, a blank note, no note ---
    fails_with(
        &run(server.cli(&home).args([
            "mirror",
            "add",
            &format!("{reg}/team/app:1.0"),
            "--note",
            "x",
        ])),
        "images are mirrored by digest only",
    );
    fails_with(
        &run(server
            .cli(&home)
            .args(["mirror", "add", &url("a.bin"), "--note", "  "])),
        "needs a note",
    );
    let out = run(server.cli(&home).args(["mirror", "add", &url("a.bin")]));
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("--note"),
        "{}",
        text(&out.stderr)
    );
    assert!(mirror_ls(&server, &home).is_empty());

    // --- declarations ---
    let plain = add(
        &server,
        &home,
        &[&url("a.bin"), "--note", "the compiler tarball"],
    );
    let pinned = add(
        &server,
        &home,
        &[
            &url("b.bin"),
            "--note",
            "firmware blob, pinned",
            "--sha256",
            &b,
            "--wait",
        ],
    );
    // --wait followed it to the end (exit 0 is `stored`)
    assert!(
        mirror_ls(&server, &home)
            .iter()
            .any(|e| e["id"] == pinned.as_str() && e["state"] == "stored"),
        "--wait returned before {pinned} was stored"
    );
    let wrong = sha256_bytes(b"not the body of c.bin");
    let waited = run(server.cli(&home).args([
        "mirror",
        "add",
        &url("c.bin"),
        "--note",
        "pinned to the wrong digest",
        "--sha256",
        &wrong,
        "--wait",
    ]));
    let said = text(&waited.stderr);
    assert_eq!(
        waited.status.code(),
        Some(1),
        "--wait on a failing entry: {said}"
    );
    assert!(
        said.contains("failed:") && said.contains(&c) && said.contains(&wrong),
        "{said}"
    );
    let mismatch = text(&waited.stdout).trim().to_owned();
    let img = add(
        &server,
        &home,
        &[
            &format!("{reg}/team/app@{}", image.index),
            "--note",
            "the build image",
        ],
    );

    // --- the fetcher settles every entry ---
    let entries = wait_until(Duration::from_secs(180), "mirror entries settled", || {
        let e = mirror_ls(&server, &home);
        e.iter().all(|e| e["state"] != "pending").then_some(e)
    });
    let by_id: BTreeMap<String, serde_json::Value> = entries
        .iter()
        .map(|e| (e["id"].as_str().expect("id").to_owned(), e.clone()))
        .collect();
    for id in [&plain, &pinned, &img] {
        assert_eq!(by_id[id]["state"], "stored", "{:#}", by_id[id]);
        assert_eq!(by_id[id]["added_by"], "admin", "{:#}", by_id[id]);
    }
    let failed = &by_id[&mismatch];
    assert_eq!(failed["state"], "failed", "{failed:#}");
    let reason = failed["reason"].as_str().expect("a reason");
    eprintln!("failed entry's reason: {reason}");
    assert!(reason.contains(&c) && reason.contains(&wrong), "{reason}");
    assert_eq!(by_id[&plain]["note"], "the compiler tarball");
    let shown = run_ok(server.cli(&home).args(["mirror", "show", &mismatch]));
    let shown = text(&shown.stdout);
    assert!(
        shown.contains("state:    failed") && shown.contains(&wrong),
        "{shown}"
    );
    assert!(shown.contains("pinned to the wrong digest"), "{shown}");
    let table = text(&run_ok(server.cli(&home).args(["mirror", "ls"])).stdout);
    assert!(
        table
            .lines()
            .any(|l| l.starts_with(&img) && l.contains("stored")),
        "{table}"
    );

    // The wrong body was not recorded into the mirror's tag.
    let tag = run_ok(
        server
            .cli(&home)
            .args(["tag", "show", "btrfly-mirror", "--json"]),
    );
    let tag: serde_json::Value = serde_json::from_slice(&tag.stdout).expect("tag json");
    let recorded = tag["entries"].as_array().expect("entries");
    assert!(
        recorded.iter().any(|e| e["sha256"] == a.as_str()),
        "{tag:#}"
    );
    assert!(!recorded
        .iter()
        .any(|e| e["url"].as_str().is_some_and(|u| u.ends_with("c.bin"))));
    // The mirror's tag is the fetcher's alone.
    fails_with(
        &run(server
            .cli(&home)
            .args(["start", "record", "--tag=btrfly-mirror"])),
        "recorded by the server's mirror fetcher only",
    );

    // --- a build records something else ---
    run_ok(
        server
            .cli(&home)
            .args(["run", "--record", "--tag=build", "--"])
            .args([
                "curl",
                "-sS",
                "--fail",
                "--max-time",
                "60",
                "-o",
                "/dev/null",
            ])
            .arg(url("other.txt")),
    );

    // --- every upstream goes away ---
    nginx.stop();
    registry.stop();

    // --- playback of `build`: the declared artifacts come from the mirror ---
    let out = run_ok(server.cli(&home).args(["start", "playback", "--tag=build"]));
    let env = server.env_from_start(&text(&out.stdout));
    for (file, digest) in [("a.bin", &a), ("b.bin", &b)] {
        let dest = work.path().join(format!("played-{file}"));
        let mut curl = Command::new("curl");
        client_env(&mut curl);
        apply_env(&mut curl, &env);
        run_ok(
            curl.args(["-sS", "--fail", "--max-time", "60", "-o"])
                .arg(&dest)
                .arg(url(file)),
        );
        assert_eq!(&sha256_file(&dest), digest, "{file} from the mirror");
    }
    let dir = work.path().join("played-image");
    run_ok(
        skopeo(work.path(), &env)
            .args(["copy", "--all"])
            .arg(format!("docker://{reg}/team/app@{}", image.index))
            .arg(format!("dir:{}", dir.display())),
    );
    for platform in &image.images {
        for layer in &platform.layers {
            let hex = layer.trim_start_matches("sha256:");
            assert_eq!(sha256_file(&dir.join(hex)), hex, "{} layer", platform.arch);
        }
    }
    let stop = run(server.cli(&home).args(["stop", "playback"]));
    let summary = text(&stop.stderr);
    eprintln!("{summary}");
    assert!(stop.status.success(), "{summary}");
    assert_eq!(field(&summary, "misses"), 0, "{summary}");
    assert_eq!(field(&summary, "hits"), 0, "{summary}");
    // two files, the version check, the index, two manifests, two configs
    // and three distinct layers (the base layer is shared)
    assert!(field(&summary, "mirror hits") >= 8, "{summary}");
}

/// nginx serving `root` where `files/late.bin` answers 503 until
/// `files/late.bin.ready` exists.
fn late_publisher(root: &Path) -> Nginx {
    let ca = TestCa::new();
    Nginx::start_with(
        root,
        &ca,
        &[FILES],
        &NginxExtra {
            server: r#"
        location = /files/late.bin {
            if (!-f $request_filename.ready) {
                return 503;
            }
        }
"#
            .into(),
            ..NginxExtra::default()
        },
    )
}

/// An entry whose upstream answers 503 stays `pending` with the reason and
/// is retried; a restarted server picks it up at once (the store, not the
/// process, holds the work). `/metrics` counts entries by state, and with
/// `[mirror] serve_in_playback = false` playback does not answer from the
/// mirror: the request is a miss.
#[test]
fn pending_entries_survive_a_restart_and_the_fallback_can_be_turned_off() {
    let root = tempfile::tempdir().expect("root");
    let files = root.path().join("files");
    std::fs::create_dir_all(&files).expect("files dir");
    let late = write_random_file(&files.join("late.bin"), 50_000, 7);
    std::fs::write(files.join("other.txt"), "recorded by the build\n").expect("other");
    let nginx = late_publisher(root.path());
    let work = tempfile::tempdir().expect("work");
    let home = work.path().join("home");
    std::fs::create_dir_all(&home).expect("home");
    let mut server = BtrflyServer::start(
        bin(),
        &format!(
            "[upstream]\nca_file = {}\n[upstream.resolve]\n\"{FILES}\" = \"127.0.0.1\"\n[mirror]\nattempts = 50\nretry_delay_secs = 600\nserve_in_playback = false\n",
            BtrflyServer::toml_str(nginx.ca_file().to_string_lossy())
        ),
    );
    let url = |f: &str| format!("https://{FILES}:{}/files/{f}", nginx.port());
    let id = add(
        &server,
        &home,
        &[&url("late.bin"), "--note", "published late"],
    );
    let entry = wait_until(Duration::from_secs(60), "a first attempt", || {
        let e = mirror_ls(&server, &home).pop()?;
        (e["attempts"] == 1).then_some(e)
    });
    assert_eq!(entry["state"], "pending", "{entry:#}");
    let reason = entry["reason"].as_str().expect("the attempt's error");
    assert!(reason.contains("503"), "{reason}");

    // The next attempt would be in 10 minutes; a restart starts it now.
    std::fs::write(files.join("late.bin.ready"), "").expect("ready");
    server.restart();
    let entry = wait_until(Duration::from_secs(60), "stored after the restart", || {
        let e = mirror_ls(&server, &home).pop()?;
        (e["state"] != "pending").then_some(e)
    });
    assert_eq!(entry["id"], id.as_str());
    assert_eq!(entry["state"], "stored", "{entry:#}");
    assert_eq!(entry["attempts"], 2, "{entry:#}");

    let mut metrics = Command::new("curl");
    client_env(&mut metrics);
    let metrics = run_ok(
        metrics
            .args(["-sS", "--fail", "--max-time", "30"])
            .arg(format!("{}/metrics", server.control_url())),
    );
    let metrics = text(&metrics.stdout);
    assert!(
        metrics.contains("btrfly_mirror_entries{state=\"stored\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("btrfly_mirror_entries{state=\"pending\"} 0"),
        "{metrics}"
    );

    // A build that never recorded late.bin: with the fallback off, a miss.
    run_ok(
        server
            .cli(&home)
            .args(["run", "--record", "--tag=build", "--"])
            .args([
                "curl",
                "-sS",
                "--fail",
                "--max-time",
                "60",
                "-o",
                "/dev/null",
            ])
            .arg(url("other.txt")),
    );
    let out = run_ok(server.cli(&home).args(["start", "playback", "--tag=build"]));
    let env = server.env_from_start(&text(&out.stdout));
    let mut curl = Command::new("curl");
    client_env(&mut curl);
    apply_env(&mut curl, &env);
    let got = run(curl
        .args(["-sS", "--fail", "--max-time", "60", "-o", "/dev/null"])
        .arg(url("late.bin")));
    assert!(!got.status.success(), "served although the fallback is off");
    let stop = run(server.cli(&home).args(["stop", "playback"]));
    let summary = text(&stop.stderr);
    assert_eq!(stop.status.code(), Some(1), "{summary}");
    assert_eq!(field(&summary, "misses"), 1, "{summary}");
    assert_eq!(field(&summary, "mirror hits"), 0, "{summary}");
    assert!(summary.contains("late.bin"), "{summary}");
    let _ = late;
}

/// Two replicas of one store see one mirror: an entry declared through
/// replica A (whose own retry is far off) is fetched by replica B, which
/// finds it in the store, and A's playback serves it from the mirror.
#[test]
fn an_entry_declared_through_one_replica_is_fetched_by_another_and_served_by_both() {
    let root = tempfile::tempdir().expect("root");
    let files = root.path().join("files");
    std::fs::create_dir_all(&files).expect("files dir");
    let late = write_random_file(&files.join("late.bin"), 80_000, 9);
    std::fs::write(files.join("other.txt"), "recorded by the build\n").expect("other");
    let nginx = late_publisher(root.path());
    let shared = tempfile::tempdir().expect("shared store");
    let options = |mirror: &str| {
        StartOptions {
        extra: format!(
            "[storage]\nbackend = \"fs\"\nroot = {}\n[upstream]\nca_file = {}\n[upstream.resolve]\n\"{FILES}\" = \"127.0.0.1\"\n[mirror]\n{mirror}",
            BtrflyServer::toml_str(shared.path().join("store").to_string_lossy()),
            BtrflyServer::toml_str(nginx.ca_file().to_string_lossy())
        ),
        ..StartOptions::default()
    }
    };
    let a = BtrflyServer::start_with(bin(), options("retry_delay_secs = 600\n"));
    let work = tempfile::tempdir().expect("work");
    let home = work.path().join("home");
    std::fs::create_dir_all(&home).expect("home");
    let port = nginx.port();
    let url = |f: &str| format!("https://{FILES}:{port}/files/{f}");

    let id = add(&a, &home, &[&url("late.bin"), "--note", "published late"]);
    wait_until(Duration::from_secs(60), "A's first attempt", || {
        let e = mirror_ls(&a, &home).pop()?;
        (e["attempts"] == 1 && e["state"] == "pending").then_some(())
    });
    std::fs::write(files.join("late.bin.ready"), "").expect("ready");

    // Replica B: the same store and identity, its own fetcher.
    let mut b_options = options("poll_secs = 1\n");
    b_options.identity_from = Some(a.data_dir());
    let b = BtrflyServer::start_with(bin(), b_options);
    let entry = wait_until(Duration::from_secs(60), "stored by replica B", || {
        let e = mirror_ls(&a, &home).pop()?;
        (e["state"] != "pending").then_some(e)
    });
    assert_eq!(entry["id"], id.as_str());
    assert_eq!(entry["state"], "stored", "{entry:#}");
    assert_eq!(entry["attempts"], 2, "{entry:#}");
    assert!(
        b.stderr_log().contains(&id),
        "replica B fetched it: {}",
        b.stderr_log()
    );

    // A build recorded through A, played back through A: late.bin comes
    // from the mirror B filled.
    run_ok(
        a.cli(&home)
            .args(["run", "--record", "--tag=build", "--"])
            .args([
                "curl",
                "-sS",
                "--fail",
                "--max-time",
                "60",
                "-o",
                "/dev/null",
            ])
            .arg(url("other.txt")),
    );
    nginx.stop();
    let out = run_ok(a.cli(&home).args(["start", "playback", "--tag=build"]));
    let env = a.env_from_start(&text(&out.stdout));
    let dest = work.path().join("late.bin");
    let mut curl = Command::new("curl");
    client_env(&mut curl);
    apply_env(&mut curl, &env);
    run_ok(
        curl.args(["-sS", "--fail", "--max-time", "60", "-o"])
            .arg(&dest)
            .arg(url("late.bin")),
    );
    assert_eq!(sha256_file(&dest), late);
    let stop = run(a.cli(&home).args(["stop", "playback"]));
    let summary = text(&stop.stderr);
    assert!(stop.status.success(), "{summary}");
    assert_eq!(field(&summary, "mirror hits"), 1, "{summary}");
}
