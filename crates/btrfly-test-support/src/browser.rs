//! A real headless browser for the web UI's tests: Debian's `chromium`
//! driven by Debian's `chromedriver` (packages `chromium` and
//! `chromium-driver`, installed by `tests/run`; nothing is downloaded at
//! test time). The WebDriver client is the test's (fantoccini).

use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::process::{free_port, wait_until};

/// Debian's paths.
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// Debian's paths.
pub const CHROMIUM: &str = "/usr/bin/chromium";

const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A running `chromedriver` on a free loopback port, killed and reaped on
/// `Drop`, with a fresh Chromium profile directory.
pub struct ChromeDriver {
    child: Child,
    port: u16,
    profile: tempfile::TempDir,
    log: PathBuf,
}

impl ChromeDriver {
    /// Starts chromedriver (`--port=N`, its log in `log_dir`) and waits
    /// until it accepts connections. Panics naming the packages when the
    /// binaries are missing.
    pub fn start(log_dir: &Path) -> ChromeDriver {
        for bin in [CHROMEDRIVER, CHROMIUM] {
            assert!(
                Path::new(bin).exists(),
                "{bin} is missing: install Debian's chromium and chromium-driver (bash tests/run does)"
            );
        }
        std::fs::create_dir_all(log_dir)
            .unwrap_or_else(|e| panic!("create {}: {e}", log_dir.display()));
        let log = log_dir.join("chromedriver.log");
        let port = free_port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {CHROMEDRIVER}: {e}"));
        let profile = tempfile::Builder::new()
            .prefix("btrfly-chromium-")
            .tempdir()
            .expect("chromium profile dir");
        let driver = ChromeDriver {
            child,
            port,
            profile,
            log,
        };
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        wait_until(START_TIMEOUT, "chromedriver to listen", || {
            TcpStream::connect_timeout(&addr, Duration::from_millis(200))
                .ok()
                .map(|_| ())
        });
        driver
    }

    /// `http://127.0.0.1:PORT`, for the WebDriver client.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The capabilities of a headless Chromium session: as root it needs
    /// `--no-sandbox`; the background-networking flags keep it from
    /// calling out (this machine's network refuses it); a fresh profile.
    pub fn capabilities(&self) -> serde_json::Map<String, serde_json::Value> {
        let args = [
            "--headless=new".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            "--disable-quic".to_owned(),
            "--no-first-run".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            "--window-size=1400,1000".to_owned(),
            format!("--user-data-dir={}", self.profile.path().display()),
        ];
        let caps = serde_json::json!({
            "browserName": "chrome",
            "goog:chromeOptions": { "binary": CHROMIUM, "args": args },
        });
        match caps {
            serde_json::Value::Object(m) => m,
            _ => unreachable!("a JSON object literal"),
        }
    }

    /// chromedriver's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// Pids of the processes whose command line holds `needle`.
fn pids_with_arg(needle: &str) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| String::from_utf8_lossy(&c).contains(needle))
                .unwrap_or(false)
        })
        .collect()
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // A test that failed before closing its WebDriver session leaves
        // its browser behind: those processes, and only those, carry this
        // profile directory on their command line.
        let mark = format!("--user-data-dir={}", self.profile.path().display());
        for pid in pids_with_arg(&mark) {
            let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
        }
    }
}
