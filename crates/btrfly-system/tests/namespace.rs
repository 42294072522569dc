//! apply → restore on the machine's own paths (`System::host()`: /etc,
//! /usr/local/share/ca-certificates, /var/lib/btrfly-client), each test in
//! a private mount namespace where /etc, /var and the local CA directory are
//! copy-on-write overlays over a tmpfs: the host's resolver and trust store
//! are never changed. The real `update-ca-certificates` runs with its real
//! hooks (ca-certificates-java rewrites Java's keystore through dpkg
//! triggers, inside the overlays), and real clients (curl, Python, git,
//! keytool) decide whether they trust btrfly's CA.

mod common;

use std::fs;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use btrfly_system::test_support::mount_ns::PrivateMounts;
use btrfly_system::test_support::tree::{assert_same, picture, Tree};
use btrfly_system::{
    Manager, Plan, ResolvConfKind, ResolverAction, ResolverPlan, System, SystemError,
};
use common::{plan, TestCa};

const GATEWAY: &str = "192.0.2.53";
const NAME: &str = "pkgs.example.test";

/// The host paths this crate may change, pictured together.
fn trust_and_resolver() -> Tree {
    let mut t = Tree::new();
    for p in [
        "/etc/resolv.conf",
        "/etc/ssl/certs",
        "/usr/local/share/ca-certificates",
        "/etc/ca-certificates.conf",
    ] {
        for (k, v) in picture(Path::new(p), &[]) {
            t.insert(Path::new(p).join(k), v);
        }
    }
    t
}

/// Overlays over everything apply may write, directly or through the
/// tool's hooks (dpkg's trigger state and log live under /var).
fn private_machine(ns: &PrivateMounts) {
    ns.overlay("/etc");
    ns.overlay("/usr/local/share/ca-certificates");
    ns.overlay("/var");
}

/// Environment variables that would make a client use another CA file or
/// a proxy: the test clients run without them, as on a build machine.
const CLIENT_ENV: &[&str] = &[
    "CURL_CA_BUNDLE",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "REQUESTS_CA_BUNDLE",
    "GIT_SSL_CAINFO",
    "NIX_SSL_CERT_FILE",
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
    "ALL_PROXY",
    "all_proxy",
];

fn client(program: &str) -> Command {
    let mut cmd = Command::new(program);
    for v in CLIENT_ENV {
        cmd.env_remove(v);
    }
    cmd.env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", "/nonexistent");
    cmd
}

/// An HTTPS server on loopback with a leaf for `NAME` minted by `ca`
/// (`openssl s_server -www`); killed on drop.
struct TlsServer {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl TlsServer {
    fn start(ca: &TestCa) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let (cert, key) = ca.leaf(NAME);
        fs::write(dir.path().join("cert.pem"), cert).expect("join");
        fs::write(dir.path().join("key.pem"), key).expect("join");
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .expect("bind")
            .local_addr()
            .expect("local_addr")
            .port();
        let child = Command::new("openssl")
            .args(["s_server", "-quiet", "-www", "-accept"])
            .arg(format!("127.0.0.1:{port}"))
            .arg("-cert")
            .arg(dir.path().join("cert.pem"))
            .arg("-key")
            .arg(dir.path().join("key.pem"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start openssl s_server");
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let started = Instant::now();
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "s_server did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Self {
            child,
            port,
            _dir: dir,
        }
    }

    fn url(&self) -> String {
        format!("https://{NAME}:{}/", self.port)
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("output")
}

/// What three clients with no CA options decide about the server.
fn clients_trust(server: &TlsServer) -> [bool; 3] {
    let curl = run(client("curl")
        .args(["-sS", "-o", "/dev/null", "--max-time", "10"])
        .arg(server.url()));
    let python = run(client("/usr/bin/python3").args([
        "-c",
        "import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=10)",
        &server.url(),
    ]));
    // s_server is no git server: past TLS, git fails for another reason.
    // Debian's git (libcurl with GnuTLS) says "certificate verification
    // failed"; with OpenSSL, "SSL certificate problem".
    let git = run(client("/usr/bin/git").args(["ls-remote", &format!("{}repo.git", server.url())]));
    let git_err = String::from_utf8_lossy(&git.stderr);
    println!("git: {git_err}");
    let git_tls_ok = !git_err.contains("certificate");
    [curl.status.success(), python.status.success(), git_tls_ok]
}

fn java_trusts_btrfly() -> Option<bool> {
    if !Path::new("/etc/ssl/certs/java/cacerts").exists()
        || Command::new("keytool").arg("-help").output().is_err()
    {
        return None;
    }
    let out = run(Command::new("keytool").args(["-list", "-cacerts", "-storepass", "changeit"]));
    Some(String::from_utf8_lossy(&out.stdout).contains("btrfly-ca"))
}

#[test]
fn host_paths_apply_restore_with_real_clients() {
    let Some(ns) = PrivateMounts::enter("host_paths_apply_restore_with_real_clients") else {
        return;
    };
    private_machine(&ns);
    let mut hosts = fs::read_to_string("/etc/hosts").unwrap_or_default();
    hosts.push_str(&format!("\n127.0.0.1 {NAME}\n"));
    fs::write("/etc/hosts", hosts).unwrap();

    let before = trust_and_resolver();
    let ca = TestCa::new("btrfly namespace test CA");
    let server = TlsServer::start(&ca);
    assert_eq!(
        clients_trust(&server),
        [false; 3],
        "curl, python, git before apply"
    );
    let java_before = java_trusts_btrfly();

    let system = System::host();
    let applied = system.apply(&plan(&ca, &[GATEWAY])).unwrap();
    println!("{applied}");
    assert_eq!(
        clients_trust(&server),
        [true; 3],
        "curl, python, git after apply"
    );
    if java_before.is_some() {
        // Debian's ca-certificates-java hook: Java trusts it too.
        assert_eq!(java_trusts_btrfly(), Some(true));
        let t = applied.trust.as_ref().unwrap();
        assert!(
            t.changed.iter().any(|p| p.ends_with("java/cacerts")),
            "{t:?}"
        );
    }
    let resolv = fs::read_to_string("/etc/resolv.conf").unwrap();
    assert!(
        resolv.contains(&format!("nameserver {GATEWAY}\n")),
        "{resolv}"
    );
    assert!(Path::new("/var/lib/btrfly-client/state.json").is_file());
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &fs::metadata("/var/lib/btrfly-client")
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o700, "the state directory is root-only");

    let restored = system.restore().unwrap();
    println!("{restored}");
    assert_eq!(
        clients_trust(&server),
        [false; 3],
        "curl, python, git after restore"
    );
    if java_before.is_some() {
        assert_eq!(java_trusts_btrfly(), Some(false));
    }
    assert_same(
        "resolver and trust store after restore",
        &before,
        &trust_and_resolver(),
    );
    assert!(!system.restore().unwrap().was_applied());
    assert_same("after a second restore", &before, &trust_and_resolver());
}

#[test]
fn bind_mounted_resolv_conf_is_written_in_place() {
    let Some(ns) = PrivateMounts::enter("bind_mounted_resolv_conf_is_written_in_place") else {
        return;
    };
    private_machine(&ns);
    // As Docker does: the container's resolv.conf is a file of the runtime,
    // bind-mounted over /etc/resolv.conf.
    let source = Path::new("/var/lib/docker/containers/0123abcd/resolv.conf");
    fs::create_dir_all(source.parent().unwrap()).unwrap();
    let prior = "nameserver 10.255.0.1\nsearch example.test\n";
    fs::write(source, prior).unwrap();
    ns.bind(source, "/etc/resolv.conf");
    let before = trust_and_resolver();

    let system = System::host();
    let applied = system
        .apply(&plan(&TestCa::new("btrfly CA"), &[GATEWAY]))
        .unwrap();
    println!("{applied}");
    let r = applied.resolver.as_ref().unwrap();
    assert!(
        matches!(r.before, ResolvConfKind::BindMount { ref source } if source.ends_with("containers/0123abcd/resolv.conf")),
        "{:?}",
        r.before
    );
    assert_eq!(
        r.manager,
        Manager::BindMount {
            runtime: "Docker".into()
        }
    );
    assert_eq!(r.action, ResolverAction::WroteInPlace);
    // Written through the mount: the runtime's file has btrfly's text.
    let through = fs::read_to_string(source).unwrap();
    assert!(
        through.contains(&format!("nameserver {GATEWAY}")),
        "{through}"
    );
    assert_eq!(through, fs::read_to_string("/etc/resolv.conf").unwrap());
    assert!(system
        .status()
        .unwrap()
        .to_string()
        .contains("Docker (bind mount)"));

    system.restore().unwrap();
    assert_eq!(fs::read_to_string(source).unwrap(), prior);
    assert_same("after restore", &before, &trust_and_resolver());
    // Still the mount it was.
    let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(mounts.lines().any(|l| l.contains(" /etc/resolv.conf ")));
}

#[test]
fn read_only_resolv_conf_rolls_back_the_trust_store() {
    let Some(ns) = PrivateMounts::enter("read_only_resolv_conf_rolls_back_the_trust_store") else {
        return;
    };
    private_machine(&ns);
    // The last step (the resolver) fails after the CA was installed.
    ns.bind("/etc/resolv.conf", "/etc/resolv.conf");
    ns.read_only("/etc/resolv.conf");
    let before = trust_and_resolver();
    let java_before = java_trusts_btrfly();

    let err = System::host()
        .apply(&plan(&TestCa::new("btrfly CA"), &[GATEWAY]))
        .unwrap_err();
    let text = err.to_string();
    println!("{text}");
    assert!(matches!(err, SystemError::RolledBack { .. }), "{text}");
    assert!(
        text.contains("/etc/resolv.conf") && text.contains("Read-only"),
        "{text}"
    );
    assert_same("after a rolled-back apply", &before, &trust_and_resolver());
    assert_eq!(java_trusts_btrfly(), java_before);
    assert!(!Path::new("/var/lib/btrfly-client/state.json").exists());
}

#[test]
fn resolver_only_plan_leaves_the_trust_store() {
    let Some(ns) = PrivateMounts::enter("resolver_only_plan_leaves_the_trust_store") else {
        return;
    };
    private_machine(&ns);
    let before = trust_and_resolver();
    let system = System::host();
    system
        .apply(&Plan {
            session: "dns only".into(),
            resolver: Some(ResolverPlan {
                nameservers: vec![GATEWAY.parse().unwrap()],
            }),
            trust: None,
        })
        .unwrap();
    let status = system.status().unwrap();
    assert_eq!(status.trust.ca_in_bundle, None);
    assert!(status.resolver.written_by_btrfly);
    system.restore().unwrap();
    assert_same("after restore", &before, &trust_and_resolver());
}
