//! Real object-store protocol servers for tests: moto (S3) and
//! gcp-storage-emulator (GCS), each started on a free loopback port and
//! killed on `Drop`.
//!
//! They are Python programs installed by `tests/run` into a venv whose path
//! it exports as `BTRFLY_TEST_VENV` (default: `target/test-venv` of this
//! workspace). A missing server is a test failure with instructions, never
//! a silent skip: CI must exercise every backend.
//!
//! The store's behaviour suite, the gateway's and the end-to-end tests use
//! them; a test builds its store options from [`Moto::endpoint`] (or
//! [`GcsEmulator::endpoint`]) and the test credentials.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The variable `tests/run` exports: the venv holding the servers.
pub const VENV_VAR: &str = "BTRFLY_TEST_VENV";

const READY_TIMEOUT: Duration = Duration::from_secs(60);
const START_ATTEMPTS: usize = 3;

/// Access key and secret the tests give moto (any key works unless moto
/// enforces authentication, see [`Moto::start_enforcing_auth`]).
pub const TEST_ACCESS_KEY: &str = "btrflytestkey";
pub const TEST_SECRET_KEY: &str = "btrflytestsecret";
pub const TEST_REGION: &str = "us-east-1";

/// The venv's `bin/NAME`, or a panic that says how to install it.
pub fn venv_bin(name: &str) -> PathBuf {
    let venv = std::env::var_os(VENV_VAR)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/test-venv")
        });
    let bin = venv.join("bin").join(name);
    if !bin.exists() {
        panic!(
            "{name} is not installed at {}: the storage tests need real S3 and GCS protocol \
             servers. Run `bash tests/run` (it installs them), or: \
             python3 -m venv target/test-venv && \
             target/test-venv/bin/pip install 'moto[server]' gcp-storage-emulator \
             (or point {VENV_VAR} at a venv that has them)",
            bin.display()
        );
    }
    bin
}

/// A random lower-case name for a bucket or prefix: `{stem}-{16 hex}`.
pub fn random_name(stem: &str) -> String {
    use rand::Rng;
    let n: u64 = rand::rng().random();
    format!("{stem}-{n:016x}")
}

fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free loopback port: {e}"))
}

/// Sends one HTTP/1.0 request to 127.0.0.1:`port`; returns (status, body).
pub fn http(port: u16, method: &str, path: &str, body: &[u8]) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect((Ipv4Addr::LOCALHOST, port))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    let head = format!(
        "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes())?;
    s.write_all(body)?;
    let mut out = Vec::new();
    s.read_to_end(&mut out)?;
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}

/// A server process with its log file.
struct Server {
    name: &'static str,
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Server {
    fn start(name: &'static str, command: impl Fn(u16) -> Command, ready_path: &str) -> Server {
        let mut last = String::new();
        for _ in 0..START_ATTEMPTS {
            let port = free_port();
            let log = std::env::temp_dir().join(format!("{}.log", random_name(name)));
            let file = std::fs::File::create(&log)
                .unwrap_or_else(|e| panic!("create {}: {e}", log.display()));
            let err = file
                .try_clone()
                .unwrap_or_else(|e| panic!("dup {}: {e}", log.display()));
            let mut cmd = command(port);
            cmd.stdin(Stdio::null())
                .stdout(Stdio::from(file))
                .stderr(Stdio::from(err));
            let child = cmd
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
            let mut server = Server {
                name,
                child,
                port,
                log,
            };
            match server.wait_ready(ready_path) {
                Ok(()) => return server,
                Err(e) => last = e,
            }
        }
        panic!("{name} did not start after {START_ATTEMPTS} attempts: {last}");
    }

    fn wait_ready(&mut self, path: &str) -> Result<(), String> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!(
                    "{} exited ({status}) on port {}:\n{}",
                    self.name,
                    self.port,
                    self.log_text()
                ));
            }
            if let Ok((code, _)) = http(self.port, "GET", path, b"") {
                if code > 0 {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "{} not answering on port {} after {READY_TIMEOUT:?}:\n{}",
                    self.name,
                    self.port,
                    self.log_text()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

/// moto's S3 server on 127.0.0.1.
pub struct Moto {
    server: Server,
}

impl Moto {
    /// Starts moto; any credentials are accepted.
    pub fn start() -> Moto {
        Moto::start_env(&[])
    }

    /// Starts moto enforcing authentication: every access key is unknown,
    /// so every request is refused (to test bad credentials).
    pub fn start_enforcing_auth() -> Moto {
        Moto::start_env(&[("INITIAL_NO_AUTH_ACTION_COUNT", "0")])
    }

    fn start_env(env: &[(&str, &str)]) -> Moto {
        let bin = venv_bin("moto_server");
        let server = Server::start(
            "moto",
            |port| {
                let mut c = Command::new(&bin);
                c.args(["-H", "127.0.0.1", "-p", &port.to_string()]);
                for (k, v) in env {
                    c.env(k, v);
                }
                c
            },
            "/moto-api/",
        );
        Moto { server }
    }

    pub fn port(&self) -> u16 {
        self.server.port
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.server.port)
    }

    /// Freezes (`SIGSTOP`) or thaws (`SIGCONT`) the server: a store that
    /// keeps its connections open and never answers, then answers again
    /// with its data intact.
    pub fn freeze(&self, frozen: bool) {
        let signal = if frozen { "-STOP" } else { "-CONT" };
        let status = Command::new("kill")
            .arg(signal)
            .arg(self.server.child.id().to_string())
            .status()
            .unwrap_or_else(|e| panic!("kill {signal}: {e}"));
        assert!(status.success(), "kill {signal} moto");
    }

    /// Creates a bucket (moto takes unsigned requests).
    pub fn create_bucket(&self, bucket: &str) {
        let (code, body) = http(self.server.port, "PUT", &format!("/{bucket}"), b"")
            .unwrap_or_else(|e| panic!("create bucket {bucket}: {e}"));
        assert_eq!(code, 200, "create bucket {bucket}: {body}");
    }

    /// A fresh random bucket, created.
    pub fn new_bucket(&self) -> String {
        let bucket = random_name("btrfly");
        self.create_bucket(&bucket);
        bucket
    }

    /// The server's output so far.
    pub fn log(&self) -> String {
        self.server.log_text()
    }
}

/// gcp-storage-emulator on 127.0.0.1, in memory.
pub struct GcsEmulator {
    server: Server,
}

impl GcsEmulator {
    pub fn start() -> GcsEmulator {
        let bin = venv_bin("gcp-storage-emulator");
        let server = Server::start(
            "gcs-emulator",
            |port| {
                let mut c = Command::new(&bin);
                c.args([
                    "start",
                    "-H",
                    "127.0.0.1",
                    "--port",
                    &port.to_string(),
                    "--in-memory",
                ]);
                c
            },
            "/storage/v1/b?project=btrfly",
        );
        GcsEmulator { server }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.server.port)
    }

    pub fn create_bucket(&self, bucket: &str) {
        let body = format!("{{\"name\":\"{bucket}\"}}");
        let (code, text) = http(
            self.server.port,
            "POST",
            "/storage/v1/b?project=btrfly",
            body.as_bytes(),
        )
        .unwrap_or_else(|e| panic!("create bucket {bucket}: {e}"));
        assert_eq!(code, 200, "create bucket {bucket}: {text}");
    }

    pub fn new_bucket(&self) -> String {
        let bucket = random_name("btrfly");
        self.create_bucket(&bucket);
        bucket
    }

    pub fn log(&self) -> String {
        self.server.log_text()
    }
}
