//! Test machinery for btrfly, kept out of the library crates: real
//! object-store protocol servers ([`storage`]: moto, gcp-storage-emulator),
//! an OpenDAL layer that counts backend operations ([`counting`]), and the
//! end-to-end harness the tests in `tests/` (package `btrfly-e2e`) use.
//!
//! Everything here drives real processes: a throwaway CA ([`TestCa`]), a real HTTPS + HTTP/2 file server
//! ([`Nginx`]), the product binary ([`BtrflyServer`]), and time-bounded helpers
//! to run clients such as curl, wget or pip ([`run`], [`run_ok`],
//! [`client_env`]).
//!
//! A typical gateway test:
//!
//! ```ignore
//! let root = tempfile::tempdir()?;                 // root/files/... is /files/...
//! std::fs::create_dir(root.path().join("files"))?;
//! std::fs::write(root.path().join("files/small.txt"), "hello\n")?;
//! let sha = write_random_file(&root.path().join("files/big.bin"), 50_000_000, 1);
//! let ca = TestCa::new();
//! let nginx = Nginx::start(root.path(), &ca, &["files.example.test"]);
//! let extra = format!(
//!     "[upstream]\nca_file = {}\n[upstream.resolve]\n\"files.example.test\" = \"127.0.0.1\"\n",
//!     BtrflyServer::toml_str(nginx.ca_file().to_string_lossy()),
//! );
//! let server = BtrflyServer::start(bin(), &extra);
//! let home = tempfile::tempdir()?;
//! let out = run_ok(server.cli(home.path()).args(["start", "record", "--tag=t1"]));
//! let env = server.env_from_start(&String::from_utf8_lossy(&out.stdout));
//! let mut curl = Command::new("curl");
//! client_env(&mut curl);                            // then the proxy/CA vars:
//! apply_env(&mut curl, &env).args(["-sS", "--fail", "-o", "out.bin"])
//!     .arg(nginx.url("files.example.test", "/files/big.bin"));
//! run_ok(&mut curl);
//! nginx.stop();                                     // upstream gone: replay next
//! ```
//!
//! Clients on this machine (Debian 12):
//! * curl honours `https_proxy` AND `HTTPS_PROXY` for https URLs, but only
//!   lowercase `http_proxy` for http URLs; it takes its CA from
//!   `CURL_CA_BUNDLE`, `SSL_CERT_FILE` or `SSL_CERT_DIR`.
//! * wget honours only the lowercase `https_proxy` / `http_proxy`. It is
//!   built with GnuTLS, so it IGNORES `SSL_CERT_FILE`/`SSL_CERT_DIR`: give it
//!   `--ca-certificate=FILE`, or `WGETRC=FILE` where FILE holds
//!   `ca_certificate = /path/ca.pem`. It has no `--resolve`: through
//!   btrfly's proxy it sends `CONNECT name:port` and never resolves the name;
//!   to reach nginx directly use `https://127.0.0.1:PORT/...` (the
//!   certificate has an IP SAN) or [`with_etc_hosts`].
//!
//! Conventions:
//! * Only names under `example.test` are used; they never reach a real
//!   resolver: curl gets `--resolve`, btrfly gets `[upstream.resolve]`, and any
//!   other program can be given a private `/etc/hosts` with [`with_etc_hosts`].
//! * Every child process is bounded in time: one-shot commands go through
//!   [`run`] / [`run_ok`] / [`run_timeout`]; servers are killed and reaped on
//!   `Drop`.
//! * Nothing here uses `unsafe` or `.unwrap()`; failures panic with a message
//!   that includes the relevant logs.
//!
//! Dev-dependencies used: rcgen, tempfile, sha2, hex, rand, serde_json; for
//! container registries ([`DockerRegistry`], [`TokenServer`],
//! [`write_oci_layout`]) also oci-spec, flate2, ring, base64, url, rustls.

// A harness for tests: its items are documented by their use in tests/.
#![allow(missing_docs)]

mod browser;
mod ca;
pub mod counting;
mod files;
mod nginx;
mod oci_image;
mod process;
mod py_upstream;
mod registry;
mod server;
pub mod storage;
mod token_server;

pub use browser::ChromeDriver;
pub use ca::TestCa;
pub use files::{sha256_bytes, sha256_file, write_random_file};
pub use nginx::{Nginx, NginxExtra};
pub use oci_image::{gzip, tar, write_oci_layout, LayoutImage, OciLayoutFixture};
pub use process::{
    client_env, describe, free_port, port_is_closed, run, run_ok, run_timeout, wait_until,
    with_etc_hosts, DEFAULT_TIMEOUT,
};
pub use py_upstream::PyUpstream;
pub use registry::{DockerRegistry, RegistryOptions, RegistryTokenAuth};
pub use server::{apply_env, parse_exports, BtrflyServer, StartOptions, IDENTITY_FILES};
pub use token_server::TokenServer;

/// The product binary under test: `BTRFLY_BIN`, else the `btrfly` that
/// the same `cargo test` built beside the running test executable
/// (`target/<profile>/btrfly`; the `btrfly` package's own integration test
/// makes every `cargo test` of the workspace build it). Panics naming the
/// command that builds it when it is not there.
pub fn bin() -> &'static std::path::Path {
    static BIN: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(p) = std::env::var_os("BTRFLY_BIN").filter(|p| !p.is_empty()) {
            return std::path::PathBuf::from(p);
        }
        let exe = std::env::current_exe().unwrap_or_else(|e| panic!("the test executable: {e}"));
        // target/<profile>/deps/<test>-<hash> → target/<profile>/btrfly
        let beside = exe
            .parent()
            .and_then(|deps| deps.parent())
            .map(|profile| profile.join(format!("btrfly{}", std::env::consts::EXE_SUFFIX)));
        match beside {
            Some(p) if p.exists() => p,
            _ => panic!(
                "no btrfly binary beside {} (looked for {beside:?}): run the end-to-end tests with \
                 `cargo test --workspace` or `bash tests/run` (they build it), or set BTRFLY_BIN",
                exe.display()
            ),
        }
    })
}

/// The benchmark's load client (`bench/loadgen`): `BTRFLY_LOADGEN_BIN`,
/// else the `btrfly-loadgen` that `cargo test --workspace` built beside the
/// running test executable (its package's own integration test makes the
/// workspace's test run build it). Panics naming the command that builds
/// it when it is not there.
pub fn loadgen_bin() -> std::path::PathBuf {
    if let Some(p) = std::env::var_os("BTRFLY_LOADGEN_BIN").filter(|p| !p.is_empty()) {
        return std::path::PathBuf::from(p);
    }
    let exe = std::env::current_exe().unwrap_or_else(|e| panic!("the test executable: {e}"));
    let beside = exe
        .parent()
        .and_then(|deps| deps.parent())
        .map(|profile| profile.join(format!("btrfly-loadgen{}", std::env::consts::EXE_SUFFIX)));
    match beside {
        Some(p) if p.exists() => p,
        _ => panic!(
            "no btrfly-loadgen beside {} (looked for {beside:?}): run `cargo build -p btrfly-loadgen` \
             (or the whole suite, `bash tests/run`), or set BTRFLY_LOADGEN_BIN",
            exe.display()
        ),
    }
}

/// A Python helper script of the harness (`py/NAME`): a test upstream or
/// an index generator.
pub fn py_script(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("py")
        .join(name)
}

/// The workspace's root directory.
pub fn repo_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap_or_else(|e| panic!("the repository root: {e}"))
}

/// Lossy UTF-8 of a command's output.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A counter (`requests:`, `hits:`, `misses:`, `recorded:`, `bytes:`) from
/// the summary `btrfly stop` prints; panics with the summary if absent.
pub fn field(summary: &str, name: &str) -> u64 {
    summary
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name}: ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no `{name}:` line in summary:\n{summary}"))
}
