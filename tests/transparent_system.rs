//! The issue's end-to-end test of transparent mode for a whole machine:
//! three network namespaces the test creates — a client, the gateway, an
//! upstream — where the client has no route to the upstream and the gateway
//! does not forward. On the client, `btrfly start record --system`, then
//! plain `curl https://…`, `curl http://…`, Debian's `pip download` from a
//! PEP 503 index and Debian's `git clone https://…` (dumb HTTP) with no proxy variables; `btrfly stop`
//! puts resolv.conf and the trust store back byte for byte; the upstream
//! namespace is deleted and the same commands succeed in playback with
//! identical bytes; a second client address with no session is refused.
//!
//! All of it runs in a private mount namespace with overlays over /etc,
//! /var/lib and /usr/local/share/ca-certificates: the host's resolver and
//! trust store are never touched.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use btrfly_system::test_support::mount_ns::PrivateMounts;
use btrfly_system::test_support::netns::{link, Netns};
use btrfly_system::test_support::tree;
use btrfly_test_support::*;

const FILES: &str = "files.example.test";
const INDEX: &str = "pypi.example.test";
const GIT: &str = "git.example.test";
const CLIENT_IP: &str = "10.214.1.2";
const STRANGER_IP: &str = "10.214.1.3";
const GATEWAY_IP: &str = "10.214.1.1";
const UPSTREAM_IP: &str = "10.214.2.2";
const PRIOR_RESOLV: &str =
    "# the client's own resolver\nnameserver 10.214.1.99\nsearch example.test\n";

/// nginx in the upstream namespace on 443 (TLS) and 80, for every name.
struct NsNginx {
    child: Child,
}

impl Drop for NsNginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_nginx(ns: &Netns, dir: &Path, root: &Path, ca: &TestCa) -> NsNginx {
    let (cert, key) = ca.issue(&[FILES, INDEX, GIT]);
    std::fs::write(dir.join("cert.pem"), cert).expect("cert");
    std::fs::write(dir.join("key.pem"), key).expect("key");
    std::fs::create_dir_all(dir.join("logs")).expect("logs");
    let conf = format!(
        r#"master_process off;
daemon off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/logs/error.log info;
events {{ worker_connections 64; }}
http {{
    access_log {d}/logs/access.log;
    client_body_temp_path {d}/tmp;
    proxy_temp_path {d}/tmp;
    fastcgi_temp_path {d}/tmp;
    uwsgi_temp_path {d}/tmp;
    scgi_temp_path {d}/tmp;
    types {{ text/html html; application/octet-stream bin whl gz; }}
    server {{
        listen {UPSTREAM_IP}:443 ssl http2;
        listen {UPSTREAM_IP}:80;
        server_name {FILES} {INDEX} {GIT};
        ssl_certificate {d}/cert.pem;
        ssl_certificate_key {d}/key.pem;
        root {root};
        index index.html;
    }}
}}
"#,
        d = dir.display(),
        root = root.display(),
    );
    std::fs::write(dir.join("nginx.conf"), conf).expect("nginx.conf");
    let child = ns
        .exec(["/usr/sbin/nginx", "-p"])
        .arg(dir)
        .arg("-c")
        .arg(dir.join("nginx.conf"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("nginx in the upstream namespace");
    let nginx = NsNginx { child };
    let ca_file = dir.join("test-ca.pem");
    std::fs::write(&ca_file, ca.cert_pem()).expect("ca");
    wait_until(Duration::from_secs(20), "upstream nginx ready", || {
        let out = ns
            .exec([
                "curl",
                "-sS",
                "-o",
                "/dev/null",
                "--max-time",
                "2",
                "--cacert",
            ])
            .arg(&ca_file)
            .arg("--resolve")
            .arg(format!("{FILES}:443:{UPSTREAM_IP}"))
            .arg(format!("https://{FILES}/files/small.txt"))
            .output()
            .ok()?;
        out.status.success().then_some(())
    });
    nginx
}

/// `ip netns exec CLIENT program…` with no proxy or CA variables.
fn on_client(client: &Netns, program: &str) -> Command {
    let mut c = client.exec([program]);
    client_env(&mut c);
    c.env("PIP_NO_CACHE_DIR", "1")
        .env("PIP_DISABLE_PIP_VERSION_CHECK", "1")
        .env("GIT_TERMINAL_PROMPT", "0");
    c
}

/// What the build does, with no proxy settings; returns the sha256 of each
/// result, in order: https file, http file, pip wheel, cloned file.
fn build(client: &Netns, out: &Path) -> Vec<String> {
    std::fs::create_dir_all(out).expect("out");
    let https_file = out.join("data.bin");
    run_ok(
        on_client(client, "curl")
            .args(["-sS", "--fail", "--max-time", "60", "-o"])
            .arg(&https_file)
            .arg(format!("https://{FILES}/files/data.bin")),
    );
    let http_file = out.join("small.txt");
    run_ok(
        on_client(client, "curl")
            .args(["-sS", "--fail", "--max-time", "60", "-o"])
            .arg(&http_file)
            .arg(format!("http://{FILES}/files/small.txt")),
    );
    let wheels = out.join("wheels");
    // Debian's pip (python3-pip), which reads the OS bundle.
    run_ok(
        on_client(client, "/usr/bin/python3")
            .args(["-m", "pip", "download", "--no-deps", "-i"])
            .arg(format!("https://{INDEX}/simple/"))
            .arg("-d")
            .arg(&wheels)
            .arg("demo-lib==1.1"),
    );
    let wheel = std::fs::read_dir(&wheels)
        .expect("wheels dir")
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "whl"))
        .expect("pip downloaded a wheel");
    let clone = out.join("clone");
    run_ok(
        on_client(client, "/usr/bin/git")
            .args(["clone", "-q"])
            .arg(format!("https://{GIT}/repo.git"))
            .arg(&clone),
    );
    vec![
        sha256_file(&https_file),
        sha256_file(&http_file),
        sha256_file(&wheel),
        sha256_file(&clone.join("hello.txt")),
    ]
}

fn trust_picture() -> Vec<tree::Tree> {
    [
        "/etc/ssl",
        "/usr/local/share/ca-certificates",
        "/etc/ca-certificates.conf",
    ]
    .iter()
    .map(|p| tree::picture(Path::new(p), &[]))
    .collect()
}

/// A bare repository served as dumb HTTP (git update-server-info).
fn make_repo(root: &Path, work: &Path) {
    let src = work.join("repo-src");
    std::fs::create_dir_all(&src).expect("src");
    let git = |dir: &Path, args: &[&str]| {
        run_ok(
            Command::new("/usr/bin/git")
                .current_dir(dir)
                .env("GIT_AUTHOR_NAME", "t")
                .env("GIT_AUTHOR_EMAIL", "t@example.test")
                .env("GIT_COMMITTER_NAME", "t")
                .env("GIT_COMMITTER_EMAIL", "t@example.test")
                .args(args),
        );
    };
    git(&src, &["init", "-q", "-b", "main"]);
    std::fs::write(src.join("hello.txt"), "hello from a transparent clone\n").expect("hello");
    git(&src, &["add", "hello.txt"]);
    git(&src, &["commit", "-q", "-m", "one"]);
    let bare = root.join("repo.git");
    run_ok(
        Command::new("/usr/bin/git")
            .args(["clone", "-q", "--bare"])
            .arg(&src)
            .arg(&bare),
    );
    git(&bare, &["update-server-info"]);
}

#[test]
fn system_mode_records_and_replays_a_machine_in_network_namespaces() {
    let Some(mounts) = PrivateMounts::enter(
        "transparent_system::system_mode_records_and_replays_a_machine_in_network_namespaces",
    ) else {
        return;
    };
    for dir in ["/etc", "/var/lib", "/usr/local/share/ca-certificates"] {
        mounts.overlay(dir);
    }
    let work = mounts.scratch().join("work");
    std::fs::create_dir_all(&work).expect("work");

    // The upstream's content: files, a PEP 503 index, a git repository.
    let root = work.join("www");
    std::fs::create_dir_all(root.join("files")).expect("files");
    let big = write_random_file(&root.join("files/data.bin"), 2 * 1024 * 1024 + 5, 214);
    std::fs::write(root.join("files/small.txt"), "plain http, no proxy\n").expect("small");
    let mut gen = Command::new("python3");
    client_env(&mut gen);
    run_ok(
        gen.arg(py_script("pip_index.py"))
            .arg(&root)
            .arg(format!("https://{FILES}")),
    );
    make_repo(&root, &work);

    // Three namespaces: client — gateway — upstream.
    let client = Netns::add("tc");
    let gw = Netns::add("tg");
    let up = Netns::add("tu");
    let (client_end, _) = link(
        &client,
        &format!("{CLIENT_IP}/24"),
        &gw,
        &format!("{GATEWAY_IP}/24"),
    );
    link(&gw, "10.214.2.1/24", &up, &format!("{UPSTREAM_IP}/24"));
    run_ok(Command::new("ip").args([
        "-n",
        client.name(),
        "addr",
        "add",
        &format!("{STRANGER_IP}/24"),
        "dev",
        &client_end.ifname,
    ]));
    let forwarding = run_ok(&mut gw.exec(["sysctl", "-n", "net.ipv4.ip_forward"]));
    assert_eq!(
        text(&forwarding.stdout).trim(),
        "0",
        "the gateway does not forward"
    );
    let resolv = client.set_resolv_conf(PRIOR_RESOLV);
    let no_route = run(on_client(&client, "curl")
        .args(["-sS", "--max-time", "5", "--resolve"])
        .arg(format!("{FILES}:80:{UPSTREAM_IP}"))
        .arg(format!("http://{FILES}/files/small.txt")));
    assert!(
        !no_route.status.success(),
        "the client cannot reach the upstream"
    );

    let ca = TestCa::new();
    let nginx_dir = work.join("nginx");
    std::fs::create_dir_all(&nginx_dir).expect("nginx dir");
    let nginx = start_nginx(&up, &nginx_dir, &root, &ca);

    // The gateway, in its namespace (a wrapper enters it).
    let wrapper = work.join("btrfly-in-gw");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nexec ip netns exec {} {} \"$@\"\n",
            gw.name(),
            bin().display()
        ),
    )
    .expect("wrapper");
    run_ok(Command::new("chmod").arg("+x").arg(&wrapper));
    let gateway = BtrflyServer::start(
        &wrapper,
        &format!(
            // The control API is reached across the namespaces' private
            // link, in plain HTTP: the explicit opt-in a network address needs.
            "[control]\nlisten = \"{GATEWAY_IP}:3129\"\ninsecure_plain_http = true\n\
             [dns]\nlisten = \"{GATEWAY_IP}:53\"\nanswer_v4 = \"{GATEWAY_IP}\"\n\
             [transparent]\nlisten_tls = \"{GATEWAY_IP}:443\"\nlisten_http = \"{GATEWAY_IP}:80\"\n\
             [upstream]\nca_file = {ca}\n\
             [upstream.resolve]\n\"{FILES}\" = \"{UPSTREAM_IP}\"\n\"{INDEX}\" = \"{UPSTREAM_IP}\"\n\"{GIT}\" = \"{UPSTREAM_IP}\"\n\
             [adapters.pip]\nindex_hosts = [\"{INDEX}\"]\nfile_hosts = [\"{FILES}\"]\n",
            ca = BtrflyServer::toml_str(nginx_dir.join("test-ca.pem").to_string_lossy()),
        ),
    );
    let home = work.join("root-home");
    std::fs::create_dir_all(&home).expect("home");
    let cli = |args: &[&str]| {
        let mut c = on_client(&client, &bin().to_string_lossy());
        c.env("BTRFLY_SERVER", gateway.control_url())
            .env("BTRFLY_TOKEN", gateway.token())
            .env("BTRFLY_HOME", &home)
            .args(args);
        c
    };

    let resolv_before = std::fs::read(&resolv).expect("resolv.conf");
    let trust_before = trust_picture();

    // Record.
    let started = run_ok(&mut cli(&["start", "record", "--tag=machine", "--system"]));
    let said = text(&started.stdout);
    assert!(
        said.contains(&format!("bound to client address {CLIENT_IP}")),
        "{said}"
    );
    assert!(said.contains(&format!("nameserver {GATEWAY_IP}")), "{said}");
    assert!(said.contains("trust: btrfly's CA"), "{said}");
    let status = text(&run_ok(&mut cli(&["status"])).stdout);
    assert!(
        status.contains("configured by session record tag=machine"),
        "{status}"
    );
    let dig = run_ok(on_client(&client, "dig").args(["+short", FILES, "A"]));
    assert_eq!(
        text(&dig.stdout).trim(),
        GATEWAY_IP,
        "the machine asks btrfly's DNS"
    );
    let recorded = build(&client, &work.join("recorded"));
    assert_eq!(recorded[0], big);
    assert_eq!(recorded[1], sha256_bytes(b"plain http, no proxy\n"));
    assert_eq!(
        recorded[3],
        sha256_bytes(b"hello from a transparent clone\n")
    );

    // A second address on the client, with no session: refused.
    let stranger = run(on_client(&client, "curl")
        .args(["-sS", "--max-time", "20", "--interface", STRANGER_IP])
        .arg(format!("https://{FILES}/files/small.txt")));
    assert!(!stranger.status.success());
    assert!(
        text(&stranger.stderr)
            .to_ascii_lowercase()
            .contains("access denied"),
        "{}",
        text(&stranger.stderr)
    );
    let stranger = run(on_client(&client, "curl")
        .args([
            "-sS",
            "--max-time",
            "20",
            "-w",
            "%{http_code}",
            "--interface",
            STRANGER_IP,
        ])
        .arg(format!("http://{FILES}/files/small.txt")));
    assert!(
        text(&stranger.stdout).ends_with("403"),
        "{}",
        text(&stranger.stdout)
    );

    let stopped = run_ok(&mut cli(&["stop"]));
    assert!(stopped.status.success());
    assert_eq!(
        std::fs::read(&resolv).expect("resolv.conf"),
        resolv_before,
        "resolv.conf byte for byte"
    );
    assert_eq!(trust_picture(), trust_before, "trust store byte for byte");
    // A second stop has nothing to stop or restore, says so, and changes nothing.
    let again = run(&mut cli(&["stop"]));
    assert!(
        text(&again.stderr).contains("no active session"),
        "{}",
        text(&again.stderr)
    );
    assert_eq!(std::fs::read(&resolv).expect("resolv.conf"), resolv_before);
    assert_eq!(trust_picture(), trust_before);

    // The upstream is gone for good; playback gives identical bytes.
    drop(nginx);
    drop(up);
    let started = run_ok(&mut cli(&[
        "start",
        "playback",
        "--tag=machine",
        "--system",
    ]));
    assert!(
        text(&started.stdout).contains("playback session"),
        "{}",
        text(&started.stdout)
    );
    let replayed = build(&client, &work.join("replayed"));
    assert_eq!(replayed, recorded);
    run_ok(&mut cli(&["stop"]));
    assert_eq!(std::fs::read(&resolv).expect("resolv.conf"), resolv_before);
    assert_eq!(trust_picture(), trust_before);

    // A client that lost its session file (a crash): stop still restores.
    run_ok(&mut cli(&["start", "record", "--tag=crashed", "--system"]));
    assert_ne!(std::fs::read(&resolv).expect("resolv.conf"), resolv_before);
    std::fs::remove_file(home.join("session.json")).expect("session file");
    let stop = run_ok(&mut cli(&["stop"]));
    assert!(stop.status.success());
    assert_eq!(std::fs::read(&resolv).expect("resolv.conf"), resolv_before);
    assert_eq!(trust_picture(), trust_before);
}
