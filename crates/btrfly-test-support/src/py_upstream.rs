//! A Python HTTPS upstream (`fidelity_upstream.py`) with the behaviours
//! nginx cannot produce on demand: interim answers, `Vary`, redirects to
//! signed storage, a success then errors, bodies closed without TLS
//! `close_notify`, header bytes that are not UTF-8.

use std::io::{BufRead, BufReader};

use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use super::ca::TestCa;
use super::process::{client_env, port_is_closed};

const START_TIMEOUT: Duration = Duration::from_secs(20);

/// The running script; killed and reaped on `Drop` (or [`PyUpstream::stop`]).
pub struct PyUpstream {
    child: Option<Child>,
    port: u16,
    /// What the script printed after its port (a JSON object).
    pub info: serde_json::Value,
    _dir: tempfile::TempDir,
}

impl PyUpstream {
    /// Starts the script with a leaf for `names` from `ca`; returns once it
    /// listens.
    pub fn start(ca: &TestCa, names: &[&str]) -> PyUpstream {
        let dir = tempfile::tempdir().expect("upstream dir");
        let (cert, key) = ca.issue(names);
        let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        std::fs::write(&cert_path, cert).expect("cert");
        std::fs::write(&key_path, key).expect("key");
        let script = crate::py_script("fidelity_upstream.py");
        let mut cmd = Command::new("python3");
        client_env(&mut cmd);
        cmd.arg(script)
            .arg(&cert_path)
            .arg(&key_path)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = cmd.spawn().expect("start python3 fidelity_upstream.py");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let port = lines.next().and_then(|l| l.ok());
            let info = lines.next().and_then(|l| l.ok());
            let _ = tx.send((port, info));
            // keep draining so the script never blocks on its stdout
            for _ in lines {}
        });
        let (port, info) = match rx.recv_timeout(START_TIMEOUT) {
            Ok((Some(p), Some(i))) => (p, i),
            other => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("fidelity_upstream.py did not start: {other:?}");
            }
        };
        let port = port
            .strip_prefix("listening on ")
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line {port:?}"));
        let info = serde_json::from_str(&info).unwrap_or_else(|e| panic!("{info}: {e}"));
        PyUpstream {
            child: Some(child),
            port,
            info,
            _dir: dir,
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Kills the server and waits until its port is closed.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        assert!(port_is_closed(self.port), "the upstream must be gone");
    }
}

impl Drop for PyUpstream {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
