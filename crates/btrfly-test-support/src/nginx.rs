//! A real HTTPS + HTTP/2 static file server (nginx) as a test upstream.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::ca::TestCa;
use super::process::{client_env, clip, free_port, port_is_closed, sigterm, wait_child};

/// How many ports [`Nginx::start`] tries before giving up.
const START_ATTEMPTS: usize = 5;
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// A running nginx serving `root_dir` over HTTPS (TLS with a certificate
/// from a [`TestCa`]) and HTTP/2 (ALPN h2, HTTP/1.1 also accepted) on
/// 127.0.0.1:[`Nginx::port`].
///
/// URL layout (for any Host/SNI; the certificate covers `names` and
/// 127.0.0.1):
/// * `/<path>` — files under `root_dir` (so `root_dir/files/big.bin` is
///   `/files/big.bin`), with ETag, Last-Modified, Range and `sendfile on`
///   (nginx defaults); `.bin` is served as application/octet-stream,
///   `.txt` as text/plain.
/// * `/redirect/1` — 302 to `/redirect/2`, which is a 301 to
///   `/files/small.txt` (relative `Location`s, `absolute_redirect off`, so
///   the host:port is kept by the client). The test creates
///   `root_dir/files/small.txt`.
/// * `/redirect/abs` — 302 to the absolute `https://$host:PORT/redirect/2`.
/// * `/__ready` — 200 "ok" (used for the readiness check).
///
/// nginx runs in the foreground, single-process (`master_process off`), so
/// killing that one process frees the port, and as root it reads files as
/// root (no `user`/worker privilege drop, which would fail on the 0700
/// temp dirs). All its files (config, certs, pid, logs, temp paths) are in
/// its own temp dir. The process is killed and reaped on `Drop`.
pub struct Nginx {
    child: Option<Child>,
    port: u16,
    plain_port: u16,
    dir: tempfile::TempDir,
    names: Vec<String>,
}

impl Nginx {
    /// Starts nginx serving `root_dir` with a leaf certificate for `names`
    /// issued by `ca`, and returns once an HTTPS request for
    /// `https://names[0]:PORT/__ready` (curl, `--cacert` the CA, `--resolve`
    /// to 127.0.0.1) succeeds. Picks a free port, retrying with another one
    /// if nginx fails to start (e.g. the port was taken meanwhile). Panics
    /// after 10 s per attempt, with nginx's error log.
    pub fn start(root_dir: &Path, ca: &TestCa, names: &[&str]) -> Nginx {
        Nginx::start_with(root_dir, ca, names, &NginxExtra::default())
    }

    /// [`Nginx::start`] with extra configuration: `extra.http` goes into
    /// the `http` block (e.g. a `map`), `extra.server` into the HTTPS
    /// `server` block (e.g. `location`s), before the built-in locations.
    pub fn start_with(root_dir: &Path, ca: &TestCa, names: &[&str], extra: &NginxExtra) -> Nginx {
        assert!(!names.is_empty(), "Nginx::start needs at least one name");
        let root_dir = root_dir
            .canonicalize()
            .unwrap_or_else(|e| panic!("root_dir {}: {e}", root_dir.display()));
        let dir = tempfile::Builder::new()
            .prefix("nginx-")
            .tempdir()
            .expect("nginx temp dir");
        let d = dir.path();
        for sub in [
            "logs",
            "tmp/body",
            "tmp/proxy",
            "tmp/fastcgi",
            "tmp/uwsgi",
            "tmp/scgi",
        ] {
            std::fs::create_dir_all(d.join(sub)).expect("create nginx dirs");
        }
        let (cert, key) = ca.issue(names);
        std::fs::write(d.join("server.crt"), cert).expect("write server.crt");
        std::fs::write(d.join("server.key"), key).expect("write server.key");
        ca.write_pem(d);

        let mut last_error = String::new();
        for attempt in 1..=START_ATTEMPTS {
            let port = free_port();
            let plain_port = free_port();
            let conf = config(d, &root_dir, port, plain_port, names, extra);
            let conf_path = d.join("nginx.conf");
            std::fs::write(&conf_path, conf).expect("write nginx.conf");
            // A fresh error log per attempt, so a failure shows its own cause.
            let _ = std::fs::remove_file(d.join("logs/error.log"));
            let stderr = std::fs::File::create(d.join("logs/stderr.log")).expect("stderr.log");
            let mut child = Command::new(nginx_bin())
                .arg("-p")
                .arg(format!("{}/", d.display()))
                .arg("-c")
                .arg(&conf_path)
                .arg("-e")
                .arg(d.join("logs/error.log"))
                .arg("-g")
                .arg("daemon off;")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(stderr)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", nginx_bin()));
            match wait_ready(&mut child, d, port, names[0]) {
                Ok(()) => {
                    return Nginx {
                        child: Some(child),
                        port,
                        plain_port,
                        dir,
                        names: names.iter().map(|s| s.to_string()).collect(),
                    }
                }
                Err(e) => {
                    last_error = format!("attempt {attempt} on port {port}: {e}");
                    eprintln!("nginx did not start: {last_error}");
                    stop_child(&mut child);
                }
            }
        }
        panic!("nginx failed to start {START_ATTEMPTS} times; last: {last_error}");
    }

    /// The TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The port of the plain-HTTP (no TLS, HTTP/1.1) listener serving the
    /// same root.
    pub fn plain_port(&self) -> u16 {
        self.plain_port
    }

    /// The names the certificate was issued for (as passed to `start`).
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// `https://{name}:{port}{path}` (`path` starts with `/`).
    pub fn url(&self, name: &str, path: &str) -> String {
        format!("https://{name}:{}{path}", self.port)
    }

    /// The CA certificate (PEM file) this server's certificate chains to.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("test-ca.pem")
    }

    /// nginx's private temp dir (config, certs, logs).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A `curl` command that reaches this server DIRECTLY (no proxy) as
    /// `name`: `curl -sS --fail --noproxy '*' --cacert CA --resolve
    /// name:PORT:127.0.0.1`, with [`client_env`] applied. Add the URL (see
    /// [`Nginx::url`]) and any other options.
    pub fn curl(&self, name: &str) -> Command {
        curl_cmd(self.dir.path(), name, self.port)
    }

    /// The access log so far (nginx "combined" format, one line per
    /// request), e.g. to count how often the upstream was really hit.
    pub fn access_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("logs/access.log")).unwrap_or_default()
    }

    /// The error log so far.
    pub fn error_log(&self) -> String {
        read_error_log(self.dir.path())
    }

    /// Stops nginx (SIGTERM, then SIGKILL after 5 s), reaps it, and checks
    /// that its port now refuses connections: the upstream is gone.
    pub fn stop(mut self) {
        self.kill();
        let port = self.port;
        super::wait_until(Duration::from_secs(5), "nginx port to close", || {
            port_is_closed(port).then_some(())
        });
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            stop_child(&mut child);
        }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        self.kill();
    }
}

/// SIGTERM, up to 5 s grace, then SIGKILL; always reaps.
fn stop_child(child: &mut Child) {
    sigterm(child.id());
    if wait_child(child, Duration::from_secs(5)).is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
}

fn curl_cmd(dir: &Path, name: &str, port: u16) -> Command {
    let mut cmd = Command::new("curl");
    client_env(&mut cmd);
    cmd.args([
        "-sS",
        "--fail",
        "--noproxy",
        "*",
        "--max-time",
        "120",
        "--cacert",
    ])
    .arg(dir.join("test-ca.pem"))
    .arg("--resolve")
    .arg(format!("{name}:{port}:127.0.0.1"));
    cmd
}

fn read_error_log(dir: &Path) -> String {
    let mut log = std::fs::read_to_string(dir.join("logs/error.log")).unwrap_or_default();
    log.push_str(&std::fs::read_to_string(dir.join("logs/stderr.log")).unwrap_or_default());
    log
}

/// Polls `https://name:port/__ready` until it answers 200, nginx exits, or
/// [`READY_TIMEOUT`] passes.
fn wait_ready(child: &mut Child, dir: &Path, port: u16, name: &str) -> Result<(), String> {
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!(
                "nginx exited ({status})\n{}",
                clip(&read_error_log(dir))
            ));
        }
        let out = curl_cmd(dir, name, port)
            .args(["--max-time", "2"])
            .arg(format!("https://{name}:{port}/__ready"))
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run curl: {e}"))?;
        if out.status.success() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "not ready after {READY_TIMEOUT:?}; last curl error: {}\nnginx error log:\n{}",
                String::from_utf8_lossy(&out.stderr),
                clip(&read_error_log(dir))
            ));
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// The nginx binary: `$BTRFLY_TEST_NGINX`, else /usr/sbin/nginx if present,
/// else `nginx` on PATH.
fn nginx_bin() -> String {
    if let Ok(bin) = std::env::var("BTRFLY_TEST_NGINX") {
        return bin;
    }
    if Path::new("/usr/sbin/nginx").exists() {
        "/usr/sbin/nginx".to_string()
    } else {
        "nginx".to_string()
    }
}

/// nginx's version as (major, minor, patch), from `nginx -v`.
fn nginx_version() -> (u32, u32, u32) {
    static VERSION: OnceLock<(u32, u32, u32)> = OnceLock::new();
    *VERSION.get_or_init(|| {
        let out = Command::new(nginx_bin())
            .arg("-v")
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {} -v: {e}", nginx_bin()));
        let text = String::from_utf8_lossy(&out.stderr).into_owned()
            + &String::from_utf8_lossy(&out.stdout);
        let v = text
            .split("nginx/")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("cannot parse nginx -v output: {text:?}"));
        let mut nums = v.split('.').map(|n| n.parse::<u32>().unwrap_or(0));
        (
            nums.next().unwrap_or(0),
            nums.next().unwrap_or(0),
            nums.next().unwrap_or(0),
        )
    })
}

/// A double-quoted nginx config string.
fn q(path: &Path) -> String {
    let s = path.to_string_lossy();
    assert!(!s.contains('$'), "nginx paths must not contain '$': {s}");
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Extra nginx configuration for [`Nginx::start_with`].
#[derive(Clone, Debug, Default)]
pub struct NginxExtra {
    /// Directives for the `http` block.
    pub http: String,
    /// Directives for the HTTPS `server` block.
    pub server: String,
}

fn config(
    d: &Path,
    root: &Path,
    port: u16,
    plain_port: u16,
    names: &[&str],
    extra: &NginxExtra,
) -> String {
    // nginx < 1.25.1 (Debian 12 has 1.22) only knows `listen ... http2`;
    // newer ones deprecate it in favour of `http2 on;`.
    let (listen, http2) = if nginx_version() >= (1, 25, 1) {
        (format!("listen 127.0.0.1:{port} ssl;"), "http2 on;")
    } else {
        (format!("listen 127.0.0.1:{port} ssl http2;"), "")
    };
    format!(
        r#"# Written by btrfly-test-support (nginx.rs)
master_process off;
worker_processes 1;
pid {pid};
error_log {error_log} info;

events {{
    worker_connections 1024;
}}

http {{
    access_log {access_log};
    client_body_temp_path {body};
    proxy_temp_path {proxy};
    fastcgi_temp_path {fastcgi};
    uwsgi_temp_path {uwsgi};
    scgi_temp_path {scgi};

    types {{
        text/plain txt;
        text/html html;
        application/json json;
        application/octet-stream bin;
        application/gzip gz tgz;
        application/x-tar tar;
        application/zip zip whl jar;
    }}
    default_type application/octet-stream;

    sendfile on;
    tcp_nopush on;
    keepalive_timeout 65s;
{extra_http}
    server {{
        {listen}
        {http2}
        server_name {names};

        ssl_certificate {cert};
        ssl_certificate_key {key};

        root {root};
        absolute_redirect off;
{extra_server}
        location = /__ready {{
            default_type text/plain;
            return 200 "ok\n";
        }}
        location = /redirect/1 {{
            return 302 /redirect/2;
        }}
        location = /redirect/2 {{
            return 301 /files/small.txt;
        }}
        location = /redirect/abs {{
            return 302 https://$host:{port}/redirect/2;
        }}
    }}

    server {{
        listen 127.0.0.1:{plain_port};
        server_name {names};
        root {root};
        absolute_redirect off;
    }}
}}
"#,
        pid = q(&d.join("nginx.pid")),
        error_log = q(&d.join("logs/error.log")),
        access_log = q(&d.join("logs/access.log")),
        body = q(&d.join("tmp/body")),
        proxy = q(&d.join("tmp/proxy")),
        fastcgi = q(&d.join("tmp/fastcgi")),
        uwsgi = q(&d.join("tmp/uwsgi")),
        scgi = q(&d.join("tmp/scgi")),
        names = names.join(" "),
        cert = q(&d.join("server.crt")),
        key = q(&d.join("server.key")),
        root = q(root),
        extra_http = extra.http,
        extra_server = extra.server,
    )
}
