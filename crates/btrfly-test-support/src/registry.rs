//! Debian's `docker-registry` (distribution 2.8) as a test upstream: TLS on
//! loopback, its storage in a directory the test owns, optionally with
//! token authentication or with blob downloads redirected to another host.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::ca::TestCa;
use super::process::{clip, free_port, port_is_closed, sigterm, wait_child};

const START_ATTEMPTS: usize = 5;
const READY_TIMEOUT: Duration = Duration::from_secs(15);

/// Bearer-token authentication for [`DockerRegistry`] (see
/// [`super::TokenServer`]).
#[derive(Clone, Debug)]
pub struct RegistryTokenAuth {
    /// `https://auth.example.test:PORT/token`
    pub realm: String,
    pub service: String,
    pub issuer: String,
    /// PEM certificate(s) whose keys sign the tokens.
    pub root_cert_bundle: PathBuf,
}

/// What a [`DockerRegistry`] runs with besides TLS and its storage.
#[derive(Clone, Debug, Default)]
pub struct RegistryOptions {
    /// Token authentication; none means anonymous pull and push.
    pub token_auth: Option<RegistryTokenAuth>,
    /// Blob downloads answered `307` to the scheme and host of `base` with
    /// the storage path of the blob (`/docker/registry/v2/blobs/sha256/
    /// ab/<hex>/data`; distribution's `redirect` storage middleware, which
    /// drops any path or query of `base`).
    pub redirect_base: Option<String>,
}

/// A running `docker-registry serve CONFIG` on 127.0.0.1:[`port`], TLS with
/// a certificate from a [`TestCa`] for `names` (and 127.0.0.1). It speaks
/// HTTP/2 over TLS. Killed and reaped on `Drop`; the storage directory
/// belongs to the caller, so several registries (or a restart) can serve
/// the same content.
///
/// [`port`]: DockerRegistry::port
pub struct DockerRegistry {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
}

impl DockerRegistry {
    /// Starts a registry storing under `storage` and returns once
    /// `GET /v2/` answers (200, or 401 with token auth). Retries on another
    /// port if it fails to start; panics with its log after 5 attempts.
    pub fn start(ca: &TestCa, storage: &Path, names: &[&str], opts: &RegistryOptions) -> Self {
        assert!(!names.is_empty(), "DockerRegistry::start needs a name");
        std::fs::create_dir_all(storage).expect("registry storage dir");
        let dir = tempfile::Builder::new()
            .prefix("registry-")
            .tempdir()
            .expect("registry temp dir");
        let d = dir.path();
        let (cert, key) = ca.issue(names);
        std::fs::write(d.join("server.crt"), cert).expect("write server.crt");
        std::fs::write(d.join("server.key"), key).expect("write server.key");
        ca.write_pem(d);
        let mut last_error = String::new();
        for attempt in 1..=START_ATTEMPTS {
            let port = free_port();
            let conf = config(d, storage, port, opts);
            std::fs::write(d.join("config.yml"), conf).expect("write config.yml");
            let log = std::fs::File::create(d.join("registry.log")).expect("registry.log");
            let mut child = Command::new("docker-registry")
                .arg("serve")
                .arg(d.join("config.yml"))
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("dup log"))
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| {
                    panic!("cannot start docker-registry (apt-get install docker-registry): {e}")
                });
            match wait_ready(&mut child, d, port) {
                Ok(()) => {
                    return DockerRegistry {
                        child: Some(child),
                        port,
                        dir,
                    }
                }
                Err(e) => {
                    last_error = format!("attempt {attempt} on port {port}: {e}");
                    eprintln!("docker-registry did not start: {last_error}");
                    stop_child(&mut child);
                }
            }
        }
        panic!("docker-registry failed to start {START_ATTEMPTS} times; last: {last_error}");
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The CA certificate (PEM) the registry's certificate chains to.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("test-ca.pem")
    }

    /// A directory for `--cert-dir`/`--dest-cert-dir` of skopeo and podman:
    /// the CA as `ca.crt`.
    pub fn cert_dir(&self) -> PathBuf {
        let d = self.dir.path().join("certs.d");
        std::fs::create_dir_all(&d).expect("certs.d");
        std::fs::copy(self.ca_file(), d.join("ca.crt")).expect("copy ca.crt");
        d
    }

    /// Everything the registry logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// Stops the registry and checks that its port refuses connections.
    pub fn stop(mut self) {
        if let Some(mut child) = self.child.take() {
            stop_child(&mut child);
        }
        let port = self.port;
        super::wait_until(Duration::from_secs(5), "registry port to close", || {
            port_is_closed(port).then_some(())
        });
    }
}

impl Drop for DockerRegistry {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            stop_child(&mut child);
        }
    }
}

fn config(dir: &Path, storage: &Path, port: u16, opts: &RegistryOptions) -> String {
    let q = |p: &Path| serde_json::to_string(&p.to_string_lossy()).expect("json string");
    let mut text = format!(
        "version: 0.1\n\
         log:\n  level: info\n  accesslog:\n    disabled: false\n\
         storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n  maintenance:\n    uploadpurging:\n      enabled: false\n\
         http:\n  addr: 127.0.0.1:{port}\n  secret: btrfly-test-secret\n  tls:\n    certificate: {}\n    key: {}\n",
        q(storage),
        q(&dir.join("server.crt")),
        q(&dir.join("server.key")),
    );
    if let Some(auth) = &opts.token_auth {
        text.push_str(&format!(
            "auth:\n  token:\n    realm: {}\n    service: {}\n    issuer: {}\n    rootcertbundle: {}\n",
            serde_json::to_string(&auth.realm).expect("json"),
            serde_json::to_string(&auth.service).expect("json"),
            serde_json::to_string(&auth.issuer).expect("json"),
            q(&auth.root_cert_bundle),
        ));
    }
    if let Some(base) = &opts.redirect_base {
        text.push_str(&format!(
            "middleware:\n  storage:\n    - name: redirect\n      options:\n        baseurl: {}\n",
            serde_json::to_string(base).expect("json"),
        ));
    }
    text
}

fn wait_ready(child: &mut Child, dir: &Path, port: u16) -> Result<(), String> {
    let deadline = Instant::now() + READY_TIMEOUT;
    let log = || clip(&std::fs::read_to_string(dir.join("registry.log")).unwrap_or_default());
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("exited with {status}\n{}", log()));
        }
        let out = Command::new("curl")
            .args([
                "-sS",
                "--noproxy",
                "*",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
            ])
            .arg("--cacert")
            .arg(dir.join("test-ca.pem"))
            .arg(format!("https://127.0.0.1:{port}/v2/"))
            .env_remove("HTTPS_PROXY")
            .env_remove("https_proxy")
            .output();
        if let Ok(out) = out {
            let code = String::from_utf8_lossy(&out.stdout);
            if code == "200" || code == "401" {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            return Err(format!("not ready after {READY_TIMEOUT:?}\n{}", log()));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn stop_child(child: &mut Child) {
    sigterm(child.id());
    if wait_child(child, Duration::from_secs(5)).is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
}
