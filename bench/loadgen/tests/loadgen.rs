//! The load client against real servers: Debian's nginx over TLS (HTTP/1.1
//! and HTTP/2, keep-alive and fresh connections) and a CONNECT proxy that
//! checks the credential. What is asserted is what the benchmark relies
//! on: every body read to its last byte, failures counted and turned into
//! the exit status.

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use serde_json::Value;
use sha2::Digest as _;

const FILES: usize = 12;

struct Fixture {
    dir: tempfile::TempDir,
    nginx: Child,
    port: u16,
    /// Sizes of `/files/fNN.bin`.
    sizes: Vec<u64>,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = self.nginx.kill();
        let _ = self.nginx.wait();
    }
}

impl Fixture {
    fn ca(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    fn url(&self, i: usize) -> String {
        format!("https://files.example.test:{}/files/f{i:02}.bin", self.port)
    }

    fn resolve(&self) -> String {
        format!("files.example.test:{}:127.0.0.1", self.port)
    }

    fn write_urls(&self, name: &str, urls: &[String]) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, urls.join("\n")).expect("write URL list");
        p
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

fn wait_port(port: u16, child: &mut Child) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// nginx serving FILES files of different sizes over TLS (h2 and
/// http/1.1) with a certificate for *.example.test from a fresh CA.
fn start_nginx() -> Fixture {
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path();
    std::fs::create_dir_all(d.join("www/files")).expect("www dir");
    std::fs::create_dir_all(d.join("logs")).expect("logs dir");
    let mut sizes = Vec::new();
    for i in 0..FILES {
        // Sizes across TLS record and frame boundaries; content from sha256.
        let size = 1 + i * 7919 + (i % 3) * 65_536;
        let mut body = Vec::with_capacity(size);
        let mut block = sha2::Sha256::digest(i.to_le_bytes()).to_vec();
        while body.len() < size {
            body.extend_from_slice(&block);
            block = sha2::Sha256::digest(&block).to_vec();
        }
        body.truncate(size);
        std::fs::write(d.join(format!("www/files/f{i:02}.bin")), &body).expect("write file");
        sizes.push(size as u64);
    }
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).expect("CA cert");
    std::fs::write(d.join("ca.pem"), ca_cert.pem()).expect("write CA");
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf_key = KeyPair::generate().expect("leaf key");
    let leaf = CertificateParams::new(vec!["*.example.test".to_owned()])
        .expect("leaf params")
        .signed_by(&leaf_key, &issuer)
        .expect("leaf cert");
    std::fs::write(d.join("leaf.pem"), leaf.pem()).expect("write leaf");
    std::fs::write(d.join("leaf-key.pem"), leaf_key.serialize_pem()).expect("write key");

    for _attempt in 0..5 {
        let port = free_port();
        let conf = format!(
            "pid {d}/nginx.pid;\nevents {{}}\nhttp {{\n access_log off;\n \
             client_body_temp_path {d}/tmp;\n proxy_temp_path {d}/tmp;\n fastcgi_temp_path {d}/tmp;\n \
             uwsgi_temp_path {d}/tmp;\n scgi_temp_path {d}/tmp;\n \
             server {{\n  listen 127.0.0.1:{port} ssl http2;\n  ssl_certificate {d}/leaf.pem;\n  \
             ssl_certificate_key {d}/leaf-key.pem;\n  root {d}/www;\n }}\n}}\n",
            d = d.display()
        );
        std::fs::write(d.join("nginx.conf"), conf).expect("write nginx.conf");
        let mut nginx = Command::new("nginx")
            .arg("-p")
            .arg(format!("{}/", d.display()))
            .arg("-c")
            .arg(d.join("nginx.conf"))
            .arg("-e")
            .arg(d.join("logs/error.log"))
            .args(["-g", "daemon off; master_process off;"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nginx (Debian's nginx-light; tests/run installs it)");
        if wait_port(port, &mut nginx) {
            return Fixture {
                dir,
                nginx,
                port,
                sizes,
            };
        }
        let _ = nginx.kill();
        let _ = nginx.wait();
    }
    panic!(
        "nginx did not start: {}",
        std::fs::read_to_string(d.join("logs/error.log")).unwrap_or_default()
    );
}

/// Runs the load client; returns its exit code and parsed JSON (Null when
/// it printed none) and its stderr.
fn loadgen(args: &[&str]) -> (i32, Value, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_btrfly-loadgen"))
        .args(args)
        .env_remove("HTTPS_PROXY")
        .env_remove("https_proxy")
        .output()
        .expect("run btrfly-loadgen");
    let json = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (
        out.status.code().unwrap_or(-1),
        json,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

#[test]
fn keep_alive_runs_read_every_byte_over_http1_and_http2() {
    let f = start_nginx();
    // Every file three times, interleaved.
    let urls: Vec<String> = (0..3 * FILES).map(|i| f.url(i % FILES)).collect();
    let list = f.write_urls("urls.txt", &urls);
    let expected: u64 = 3 * f.sizes.iter().sum::<u64>();
    let nginx_pid = f.nginx.id().to_string();
    for http in ["1.1", "2"] {
        let (code, r, err) = loadgen(&[
            "--urls",
            path(&list),
            "--cacert",
            path(&f.ca()),
            "--resolve",
            &f.resolve(),
            "--connections",
            "4",
            "--http",
            http,
            "--label",
            "t",
            "--server-pid",
            &nginx_pid,
        ]);
        assert_eq!(code, 0, "HTTP/{http}: {err}\n{r}");
        assert_eq!(r["http"], http);
        assert_eq!(r["connections"], 4);
        assert_eq!(r["connection_use"], "keep-alive");
        assert_eq!(r["requests"], 3 * FILES);
        assert_eq!(r["ok"], 3 * FILES);
        assert_eq!(r["statuses"]["200"], 3 * FILES);
        assert_eq!(r["bytes"], expected, "HTTP/{http}: body bytes");
        assert!(r["latency"]["p50_us"].as_u64().unwrap() > 0);
        assert!(r["latency"]["p99_us"].as_u64() >= r["latency"]["p50_us"].as_u64());
        assert!(r["requests_per_s"].as_f64().unwrap() > 0.0);
        assert!(r["client_cpu_s"].as_f64().unwrap() >= 0.0);
        assert!(r["connect"].is_null(), "keep-alive runs time no connects");
        // nginx encrypted every body: its CPU time over the run is seen.
        assert!(r["server_cpu_s"].as_f64().unwrap() > 0.0, "{r}");
        assert!(r["server_runqueue_wait_s"].as_f64().is_some(), "{r}");
    }
}

#[test]
fn fresh_connections_time_each_handshake_and_failures_set_the_exit_status() {
    let f = start_nginx();
    let urls: Vec<String> = (0..4).map(|i| f.url(i)).collect();
    let list = f.write_urls("fresh.txt", &urls);
    let (ca, resolve) = (f.ca(), f.resolve());
    let common = [
        "--cacert",
        path(&ca),
        "--resolve",
        &resolve,
        "--fresh-connections",
    ];
    let (code, r, err) = loadgen(&[&["--urls", path(&list)][..], &common[..]].concat());
    assert_eq!(code, 0, "{err}\n{r}");
    assert_eq!(r["connection_use"], "fresh");
    assert_eq!(r["ok"], 4);
    assert_eq!(r["bytes"], f.sizes[..4].iter().sum::<u64>());
    assert!(r["tls"]["p50_us"].as_u64().unwrap() > 0, "{r}");
    assert!(r["connect"]["p50_us"].as_u64().unwrap() > 0, "{r}");
    assert!(r["latency"]["p50_us"].as_u64() >= r["tls"]["p50_us"].as_u64());

    // A missing file: counted, listed, and the exit status says so.
    let missing = format!("https://files.example.test:{}/files/nope.bin", f.port);
    let list = f.write_urls("missing.txt", &[f.url(0), missing]);
    let (code, r, err) = loadgen(&[&["--urls", path(&list)][..], &common[..]].concat());
    assert_eq!(code, 1, "{err}\n{r}");
    assert_eq!(r["failed"], 1);
    assert_eq!(r["statuses"]["404"], 1);
    assert!(err.contains("1 of 2 requests failed"), "{err}");

    // A certificate from another CA is refused: nothing is measured.
    let other = f.dir.path().join("other-ca.pem");
    let key = KeyPair::generate().expect("key");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    std::fs::write(&other, params.self_signed(&key).expect("cert").pem()).expect("write");
    let list = f.write_urls("one.txt", &[f.url(1)]);
    let (code, r, err) = loadgen(&[
        "--urls",
        path(&list),
        "--cacert",
        path(&other),
        "--resolve",
        &f.resolve(),
    ]);
    assert_eq!(code, 2, "{err}\n{r}");
    assert!(
        err.contains("TLS handshake with files.example.test"),
        "{err}"
    );
}

/// The proxy script, started; killed on drop.
struct ConnectProxy {
    child: Child,
    port: u16,
    log: std::sync::mpsc::Receiver<String>,
}

impl Drop for ConnectProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_proxy(expected_authorization: &str) -> ConnectProxy {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/connect_proxy.py");
    let mut child = Command::new("python3")
        .arg(script)
        .arg(expected_authorization)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start python3 connect_proxy.py");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let first = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("proxy prints `listening on PORT`");
    let port = first
        .strip_prefix("listening on ")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("unexpected proxy line {first:?}"));
    ConnectProxy {
        child,
        port,
        log: rx,
    }
}

#[test]
fn connect_through_a_proxy_sends_the_credential_of_the_proxy_url() {
    let f = start_nginx();
    // "sess-1:s3cr@t", percent-encoded in the URL as clients get it.
    let proxy = start_proxy("Basic c2Vzcy0xOnMzY3JAdA==");
    let urls: Vec<String> = (0..2 * FILES).map(|i| f.url(i % FILES)).collect();
    let list = f.write_urls("proxied.txt", &urls);
    let proxy_url = format!("http://sess-1:s3cr%40t@127.0.0.1:{}", proxy.port);
    let (code, r, err) = loadgen(&[
        "--urls",
        path(&list),
        "--cacert",
        path(&f.ca()),
        "--proxy",
        &proxy_url,
        "--connections",
        "3",
        "--http",
        "2",
    ]);
    assert_eq!(code, 0, "{err}\n{r}");
    assert_eq!(r["via_proxy"], true);
    assert_eq!(r["ok"], 2 * FILES);
    assert_eq!(r["bytes"], 2 * f.sizes.iter().sum::<u64>());
    // One tunnel per keep-alive connection, to the URL's authority.
    let tunnels: Vec<String> = proxy.log.try_iter().collect();
    assert_eq!(
        tunnels,
        vec![format!("CONNECT files.example.test:{}", f.port); 3]
    );

    // A wrong credential: the proxy's 407 is the error, and nothing ran.
    let wrong = format!("http://sess-1:nope@127.0.0.1:{}", proxy.port);
    let (code, _, err) = loadgen(&[
        "--urls",
        path(&list),
        "--cacert",
        path(&f.ca()),
        "--proxy",
        &wrong,
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("the proxy answered 407 Proxy Authentication Required"),
        "{err}"
    );
    assert!(!err.contains("nope"), "the credential is not echoed: {err}");
}
