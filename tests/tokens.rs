//! Control tokens with scopes through the real binary: the server's first
//! token (`<data_dir>/token`) is an admin token, `btrfly token create`
//! makes `read` and `record` tokens that can do what their scope says and
//! nothing more, `btrfly token revoke` makes a token useless, the store
//! never holds a secret, and tokens outlive a restart (they live in the
//! store, not in the server's memory).

use std::path::Path;
use std::process::{Command, Output};

use btrfly_test_support::*;

const NAME: &str = "files.example.test";

fn as_token(mut cmd: Command, token: &str) -> Command {
    cmd.env("BTRFLY_TOKEN", token);
    cmd
}

fn fails_with(out: &Output, needle: &str) {
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {err}");
    assert!(err.contains(needle), "expected {needle:?} in: {err}");
}

/// Every file under `dir`, recursively.
fn files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).expect("read_dir").flatten() {
            let p = e.path();
            if p.is_dir() {
                todo.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

fn tokens_json(server: &BtrflyServer, home: &Path) -> serde_json::Value {
    let out = run_ok(server.cli(home).args(["token", "ls", "--json"]));
    serde_json::from_slice(&out.stdout).expect("token ls --json")
}

fn create(server: &BtrflyServer, home: &Path, name: &str, scope: &str) -> String {
    let out = run_ok(
        server
            .cli(home)
            .args(["token", "create", "--name", name, "--scope", scope]),
    );
    let token = text(&out.stdout).trim().to_owned();
    assert_eq!(token.len(), 48, "a token of 48 hex digits: {token:?}");
    assert!(token.bytes().all(|b| b.is_ascii_hexdigit()));
    assert!(
        text(&out.stderr).contains("it is shown only this once"),
        "{}",
        text(&out.stderr)
    );
    token
}

#[test]
fn tokens_have_scopes_are_hashed_in_the_store_and_can_be_revoked() {
    let root = tempfile::tempdir().expect("root");
    std::fs::create_dir_all(root.path().join("files")).expect("files dir");
    std::fs::write(root.path().join("files/a.txt"), "aaa\n").expect("a");
    let ca = TestCa::new();
    let nginx = Nginx::start(root.path(), &ca, &[NAME]);
    let mut server = BtrflyServer::start(
        bin(),
        &format!(
            "[upstream]\nca_file = {}\n[upstream.resolve]\n\"{NAME}\" = \"127.0.0.1\"\n",
            BtrflyServer::toml_str(nginx.ca_file().to_string_lossy())
        ),
    );
    let work = tempfile::tempdir().expect("work");
    let home = work.path();
    let admin = server.token();

    // The first token: admin, made by the server, listed without a secret.
    let listed = tokens_json(&server, home);
    let first = &listed["tokens"][0];
    assert_eq!(
        listed["tokens"].as_array().map(Vec::len),
        Some(1),
        "{listed}"
    );
    assert_eq!(first["name"], "admin");
    assert_eq!(first["scope"], "admin");
    assert_eq!(first["created_by"], "btrfly serve");
    assert!(first.get("token").is_none() && first.get("sha256").is_none());

    let ci = create(&server, home, "ci", "record");
    let viewer = create(&server, home, "viewer", "read");
    fails_with(
        &run(server
            .cli(home)
            .args(["token", "create", "--name", "ci", "--scope", "read"])),
        "a token named ci already exists",
    );

    // read: may look, may not record or manage tokens.
    let out = run(as_token(server.cli(home), &viewer)
        .args(["token", "create", "--name", "x", "--scope", "admin"]));
    fails_with(
        &out,
        "this needs a token with the admin scope; the token viewer (",
    );
    assert!(
        text(&out.stderr).contains(") has read"),
        "{}",
        text(&out.stderr)
    );
    let url = format!("https://{NAME}:{}/files/a.txt", nginx.port());
    let curl = [
        "curl",
        "-sS",
        "--fail",
        "--max-time",
        "60",
        "-o",
        "/dev/null",
    ];
    fails_with(
        &run(as_token(server.cli(home), &viewer)
            .args(["run", "--record", "--tag=t1", "--"])
            .args(curl)
            .arg(&url)),
        "this needs a token with the record scope; the token viewer (",
    );

    // record: records (and a read token sees the tag).
    run_ok(
        as_token(server.cli(home), &ci)
            .args(["run", "--record", "--tag=t1", "--"])
            .args(curl)
            .arg(&url),
    );
    let out = run_ok(as_token(server.cli(home), &viewer).args(["tag", "show", "t1", "--json"]));
    let shown: serde_json::Value = serde_json::from_slice(&out.stdout).expect("tag json");
    assert_eq!(shown["entries"][0]["url"], url);
    fails_with(
        &run(as_token(server.cli(home), &ci).args(["token", "ls"])),
        "this needs a token with the admin scope; the token ci (",
    );

    // No secret anywhere in the store; the digest of each is.
    for f in files(&server.store_dir()) {
        let bytes = std::fs::read(&f).expect("read");
        let body = String::from_utf8_lossy(&bytes);
        for secret in [&admin, &ci, &viewer] {
            assert!(
                !body.contains(secret.as_str()),
                "{} holds a token",
                f.display()
            );
        }
    }
    let stored: Vec<String> = files(&server.store_dir().join("tokens"))
        .iter()
        .map(|f| std::fs::read_to_string(f).expect("token json"))
        .collect();
    assert_eq!(stored.len(), 3);
    for secret in [&admin, &ci, &viewer] {
        let digest = sha256_bytes(secret.as_bytes());
        assert!(
            stored.iter().any(|s| s.contains(&digest)),
            "digest of a token stored"
        );
    }

    // Revoked: refused, and listed as revoked.
    let viewer_id = tokens_json(&server, home)["tokens"]
        .as_array()
        .expect("tokens")
        .iter()
        .find(|t| t["name"] == "viewer")
        .map(|t| t["id"].as_str().expect("id").to_owned())
        .expect("viewer listed");
    let out = run_ok(server.cli(home).args(["token", "revoke", &viewer_id]));
    assert!(text(&out.stderr).contains(&format!("revoked token {viewer_id} (name viewer)")));
    fails_with(
        &run(as_token(server.cli(home), &viewer).args(["tags"])),
        "refused the control token in BTRFLY_TOKEN",
    );
    fails_with(
        &run(server.cli(home).args(["token", "revoke", &viewer_id])),
        "is already revoked",
    );
    let out = run_ok(server.cli(home).args(["token", "ls"]));
    let table = text(&out.stdout);
    let row = table
        .lines()
        .find(|l| l.starts_with(&viewer_id))
        .unwrap_or_else(|| panic!("no row for {viewer_id}: {table}"));
    assert!(
        row.contains("viewer") && row.contains("revoked 20"),
        "{row}"
    );
    assert!(table.starts_with("ID "), "{table}");

    // The tokens live in the store: a restart keeps them all, and does not
    // add a second record of the first admin token.
    server.restart();
    run_ok(as_token(server.cli(home), &ci).args(["tags"]));
    run_ok(as_token(server.cli(home), &admin).args(["token", "ls"]));
    fails_with(
        &run(as_token(server.cli(home), &viewer).args(["tags"])),
        "refused the control token",
    );
    assert_eq!(
        tokens_json(&server, home)["tokens"]
            .as_array()
            .map(Vec::len),
        Some(3)
    );
}
