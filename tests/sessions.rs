//! Session leases and the session list, through the real binary: a
//! session not heard of for `[sessions] lease` is ended (a record
//! session's tag left unsealed), `btrfly sessions` lists the active ones,
//! and `btrfly stop --session ID` ends another's session with an admin
//! token only.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use btrfly_test_support::*;

const NAME: &str = "lease.example.test";
/// The lease the test's server runs with.
const LEASE: Duration = Duration::from_secs(3);

struct Fx {
    nginx: Nginx,
    server: BtrflyServer,
    work: tempfile::TempDir,
}

impl Fx {
    fn home(&self, name: &str) -> PathBuf {
        let h = self.work.path().join(name);
        std::fs::create_dir_all(&h).expect("home");
        h
    }

    fn curl(&self, env: &[(String, String)], path: &str) -> std::process::Output {
        let mut c = Command::new("curl");
        client_env(&mut c);
        apply_env(&mut c, env);
        run(c
            .args([
                "-sS",
                "--max-time",
                "30",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
            ])
            .arg(self.nginx.url(NAME, path)))
    }

    fn sessions(&self, home: &Path) -> serde_json::Value {
        let out = run_ok(self.server.cli(home).args(["sessions", "--json"]));
        serde_json::from_slice(&out.stdout).expect("sessions JSON")
    }
}

fn ids(list: &serde_json::Value) -> Vec<String> {
    list["sessions"]
        .as_array()
        .expect("sessions")
        .iter()
        .map(|s| s["id"].as_str().expect("id").to_owned())
        .collect()
}

/// An ended session's credential: the CONNECT is answered 407.
fn assert_refused(out: &std::process::Output) {
    assert!(
        text(&out.stderr).contains("CONNECT tunnel failed, response 407"),
        "{} {}",
        text(&out.stdout),
        text(&out.stderr)
    );
}

fn session_id(env: &[(String, String)]) -> String {
    env.iter()
        .find(|(k, _)| k == "BTRFLY_SESSION")
        .map(|(_, v)| v.clone())
        .expect("BTRFLY_SESSION exported")
}

/// Two record sessions; one is abandoned, the other keeps making
/// requests. `btrfly sessions` lists both with their counters; the
/// abandoned one is ended once it has not been heard of for the lease
/// (3 s here) — not before — its credential then gets 407, its tag is
/// left unsealed with what it recorded, its owner's `btrfly stop` says the
/// server no longer knows it. The busy one outlives it; a `record` token
/// cannot stop it with `btrfly stop --session`, an `admin` token can.
#[test]
fn abandoned_sessions_expire_and_admins_stop_others() {
    let work = tempfile::tempdir().expect("work");
    let root = work.path().join("www");
    std::fs::create_dir_all(root.join("files")).expect("files");
    for name in ["a.txt", "b.txt"] {
        std::fs::write(root.join("files").join(name), format!("{name}\n")).expect("file");
    }
    let ca = TestCa::new();
    let nginx = Nginx::start(&root, &ca, &[NAME]);
    let server = BtrflyServer::start(
        bin(),
        &format!(
            "[upstream]\nca_file = {}\n[upstream.resolve]\n\"{NAME}\" = \"127.0.0.1\"\n[sessions]\nlease = \"{}s\"\n",
            BtrflyServer::toml_str(nginx.ca_file().to_string_lossy()),
            LEASE.as_secs()
        ),
    );
    let fx = Fx {
        nginx,
        server,
        work,
    };
    let (home_a, home_b, admin) = (fx.home("a"), fx.home("b"), fx.home("admin"));
    let recorder = text(
        &run_ok(
            fx.server
                .cli(&admin)
                .args(["token", "create", "--name", "ci", "--scope", "record"]),
        )
        .stdout,
    )
    .trim()
    .to_owned();
    let as_recorder = |home: &Path| {
        let mut c = fx.server.cli(home);
        c.env("BTRFLY_TOKEN", &recorder);
        c
    };
    let start = |home: &Path, tag: &str| {
        let out = run_ok(as_recorder(home).args(["start", "record", &format!("--tag={tag}")]));
        parse_exports(&text(&out.stdout))
    };
    let env_a = start(&home_a, "lease-a");
    let env_b = start(&home_b, "lease-b");
    let (a, b) = (session_id(&env_a), session_id(&env_b));
    assert_eq!(text(&fx.curl(&env_a, "/files/a.txt").stdout), "200");
    let a_heard = Instant::now();
    assert_eq!(text(&fx.curl(&env_b, "/files/b.txt").stdout), "200");

    // Both listed, with their counters.
    let list = fx.sessions(&admin);
    assert_eq!(list["lease_secs"], LEASE.as_secs(), "{list:#}");
    assert_eq!(ids(&list), vec![a.clone(), b.clone()], "{list:#}");
    let first = &list["sessions"][0];
    assert_eq!(first["tag"], "lease-a", "{list:#}");
    assert_eq!(first["mode"], "record", "{list:#}");
    assert_eq!(first["requests"], 1, "{list:#}");
    assert_eq!(first["recorded"], 1, "{list:#}");
    assert!(
        first["last_seen"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z')),
        "{list:#}"
    );
    let table = text(&run_ok(fx.server.cli(&admin).arg("sessions")).stdout);
    for needle in [
        "ID",
        "LAST SEEN",
        "EXPIRES",
        "RECORDED",
        &a,
        &b,
        "lease-a",
        "record",
    ] {
        assert!(table.contains(needle), "{needle}: {table}");
    }

    // B keeps making requests; A is ended once its lease ran out.
    let a_gone = wait_until(
        LEASE + Duration::from_secs(20),
        "the abandoned session is ended",
        || {
            assert_eq!(text(&fx.curl(&env_b, "/files/b.txt").stdout), "200");
            std::thread::sleep(Duration::from_millis(300));
            let listed = ids(&fx.sessions(&admin));
            assert!(listed.contains(&b), "the busy session outlives the lease");
            (!listed.contains(&a)).then(Instant::now)
        },
    );
    let idle = a_gone - a_heard;
    assert!(
        idle >= LEASE - Duration::from_millis(500),
        "ended after {idle:?} without requests, before its {LEASE:?} lease"
    );
    assert!(
        a_heard.elapsed() > LEASE,
        "B outlived A's lease by requests alone"
    );
    assert_refused(&fx.curl(&env_a, "/files/a.txt"));
    let log = fx.server.stderr_log();
    assert!(
        log.contains(&format!("session {a} expired"))
            && log.contains("without sealing tag lease-a"),
        "{log}"
    );
    let tags = text(&run_ok(fx.server.cli(&admin).args(["tags"])).stdout);
    assert!(
        tags.lines()
            .any(|l| l.starts_with("lease-a ") && l.contains("unsealed")),
        "{tags}"
    );
    let stop_a = run(as_recorder(&home_a).args(["stop", "record"]));
    assert_eq!(stop_a.status.code(), Some(1));
    assert!(
        text(&stop_a.stderr).contains("lease ran out"),
        "{}",
        text(&stop_a.stderr)
    );
    // What A recorded stayed: the tag plays back.
    let env = parse_exports(&text(
        &run_ok(as_recorder(&home_a).args(["start", "playback", "--tag=lease-a"])).stdout,
    ));
    assert_eq!(text(&fx.curl(&env, "/files/a.txt").stdout), "200");
    let stop = run(as_recorder(&home_a).args(["stop", "playback"]));
    assert!(stop.status.success(), "{}", text(&stop.stderr));

    // Another's session: admin only.
    let refused = run(as_recorder(&admin).args(["stop", "--session", &b]));
    assert!(!refused.status.success());
    assert!(
        text(&refused.stderr).contains("needs a token with the admin scope"),
        "{}",
        text(&refused.stderr)
    );
    assert_eq!(text(&fx.curl(&env_b, "/files/b.txt").stdout), "200");
    let stopped = run(fx
        .server
        .cli(&admin)
        .args(["stop", "--session", &b, "--json"]));
    assert!(stopped.status.success(), "{}", text(&stopped.stderr));
    let summary: serde_json::Value = serde_json::from_slice(&stopped.stdout).expect("JSON");
    assert_eq!(summary["id"], b.as_str(), "{summary:#}");
    assert_eq!(summary["sealed"], true, "{summary:#}");
    assert_refused(&fx.curl(&env_b, "/files/b.txt"));
    assert!(ids(&fx.sessions(&admin)).is_empty());
}
