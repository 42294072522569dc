//! Running child processes with a deadline, and a clean client environment.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Deadline used by [`run`] and [`run_ok`].
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

/// Variables this machine (or a developer's shell) presets that would leak
/// into the clients under test: proxies, CA bundle overrides, pip settings,
/// and btrfly's own client variables.
const LEAKY_VARS: &[&str] = &[
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
    "ALL_PROXY",
    "all_proxy",
    "NO_PROXY",
    "no_proxy",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
    "PIP_CERT",
    "PIP_FIND_LINKS",
    "PIP_INDEX_URL",
    "PIP_EXTRA_INDEX_URL",
    "GIT_SSL_CAINFO",
    "NODE_EXTRA_CA_CERTS",
    // Also preset on this machine, all pointing at the system bundle.
    "AWS_CA_BUNDLE",
    "NIX_SSL_CERT_FILE",
    "HTTPLIB2_CA_CERTS",
    "CLOUDSDK_CORE_CUSTOM_CA_CERTS_FILE",
    "GRPC_DEFAULT_SSL_ROOTS_FILE_PATH",
    "BTRFLY_SERVER",
    "BTRFLY_TOKEN",
    "BTRFLY_HOME",
    "BTRFLY_CONFIG",
    "BTRFLY_DATA_DIR",
    // What `btrfly start` exports, in case a developer's shell has a
    // session open.
    "BTRFLY_SESSION",
    "BTRFLY_TAG",
    "NPM_CONFIG_CAFILE",
    "WGETRC",
    "APT_CONFIG",
];

/// Removes from `cmd`'s environment the proxy, CA-bundle and pip variables
/// this machine presets (HTTPS_PROXY https_proxy HTTP_PROXY http_proxy
/// ALL_PROXY all_proxy NO_PROXY no_proxy SSL_CERT_FILE SSL_CERT_DIR
/// REQUESTS_CA_BUNDLE CURL_CA_BUNDLE PIP_CERT PIP_FIND_LINKS GIT_SSL_CAINFO
/// NODE_EXTRA_CA_CERTS, plus PIP_INDEX_URL PIP_EXTRA_INDEX_URL AWS_CA_BUNDLE
/// NIX_SSL_CERT_FILE HTTPLIB2_CA_CERTS CLOUDSDK_CORE_CUSTOM_CA_CERTS_FILE
/// GRPC_DEFAULT_SSL_ROOTS_FILE_PATH, BTRFLY_SERVER/TOKEN/HOME/CONFIG/DATA_DIR
/// and what a developer's open session exports) and sets
/// `PIP_CONFIG_FILE=/dev/null` (this machine has an /etc/pip.conf).
///
/// Call it before setting the variables a test wants (e.g. the ones from
/// `btrfly start`): a later `env` on the same name wins over `env_remove`.
pub fn client_env(cmd: &mut Command) -> &mut Command {
    for var in LEAKY_VARS {
        cmd.env_remove(var);
    }
    cmd.env("PIP_CONFIG_FILE", "/dev/null")
}

/// A shell-like rendering of `cmd`: environment changes, program, arguments.
pub fn describe(cmd: &Command) -> String {
    fn q(s: &OsStr) -> String {
        let s = s.to_string_lossy();
        if !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./:=@%+,".contains(c))
        {
            s.into_owned()
        } else {
            format!("'{}'", s.replace('\'', r"'\''"))
        }
    }
    let mut parts = Vec::new();
    if let Some(dir) = cmd.get_current_dir() {
        parts.push(format!("cd {} &&", q(dir.as_os_str())));
    }
    for (k, v) in cmd.get_envs() {
        // Removals (env_remove) are left out: noise in logs.
        if let Some(v) = v {
            parts.push(format!("{}={}", k.to_string_lossy(), q(v)));
        }
    }
    parts.push(q(cmd.get_program()));
    parts.extend(cmd.get_args().map(q));
    parts.join(" ")
}

/// Runs `cmd` to completion (stdin from /dev/null, stdout and stderr
/// captured) with the [`DEFAULT_TIMEOUT`]. Prints the command line (shown by
/// the test harness if the test fails), and prints its output if it exits
/// non-zero. Panics only if it cannot be started or times out; the exit
/// status is the caller's to check.
pub fn run(cmd: &mut Command) -> Output {
    run_timeout(cmd, DEFAULT_TIMEOUT)
}

/// Like [`run`], but panics with the command, its status, stdout and stderr
/// unless it exits 0.
pub fn run_ok(cmd: &mut Command) -> Output {
    let out = run(cmd);
    if !out.status.success() {
        panic!(
            "command failed ({}): {}\n{}",
            out.status,
            describe(cmd),
            format_output(&out.stdout, &out.stderr)
        );
    }
    out
}

/// Runs `cmd` like [`run`], with the given deadline. The child runs in its
/// own process group; on timeout the whole group gets SIGKILL and this
/// panics with whatever output was produced so far. Output goes through
/// anonymous temp files, not pipes, so a daemon left behind by the child
/// cannot make this hang.
pub fn run_timeout(cmd: &mut Command, timeout: Duration) -> Output {
    let desc = describe(cmd);
    eprintln!("$ {desc}");
    let stdout = tempfile::tempfile().expect("temp file for stdout");
    let stderr = tempfile::tempfile().expect("temp file for stderr");
    cmd.stdin(Stdio::null())
        .stdout(Stdio::from(stdout.try_clone().expect("dup stdout file")))
        .stderr(Stdio::from(stderr.try_clone().expect("dup stderr file")))
        .process_group(0);
    let start = Instant::now();
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {desc}: {e}"));
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait());
    });
    let status = match rx.recv_timeout(timeout) {
        Ok(status) => status.unwrap_or_else(|e| panic!("wait for {desc}: {e}")),
        Err(_) => {
            kill_group(pid);
            let status = rx.recv_timeout(Duration::from_secs(10));
            panic!(
                "command timed out after {timeout:?} (killed, {status:?}): {desc}\n{}",
                format_output(&read_back(stdout), &read_back(stderr))
            );
        }
    };
    let out = Output {
        status,
        stdout: read_back(stdout),
        stderr: read_back(stderr),
    };
    if !out.status.success() {
        eprintln!(
            "  -> {} after {:.1?}\n{}",
            out.status,
            start.elapsed(),
            format_output(&out.stdout, &out.stderr)
        );
    }
    out
}

fn kill_group(pid: u32) {
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{pid}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

fn read_back(mut file: File) -> Vec<u8> {
    let mut buf = Vec::new();
    let _ = file.seek(SeekFrom::Start(0));
    let _ = file.read_to_end(&mut buf);
    buf
}

/// Formats captured stdout/stderr for a panic message, keeping the start
/// and the end of very long output.
pub(crate) fn format_output(stdout: &[u8], stderr: &[u8]) -> String {
    format!(
        "--- stdout ---\n{}\n--- stderr ---\n{}\n--------------",
        clip(&String::from_utf8_lossy(stdout)),
        clip(&String::from_utf8_lossy(stderr))
    )
}

/// Keeps the first and last ~8 KiB of `s`.
pub(crate) fn clip(s: &str) -> String {
    const KEEP: usize = 8 * 1024;
    if s.len() <= 2 * KEEP {
        return s.to_string();
    }
    let mut head = KEEP;
    while !s.is_char_boundary(head) {
        head -= 1;
    }
    let mut tail = s.len() - KEEP;
    while !s.is_char_boundary(tail) {
        tail += 1;
    }
    format!(
        "{}\n[... {} bytes elided ...]\n{}",
        &s[..head],
        tail - head,
        &s[tail..]
    )
}

/// A TCP port on 127.0.0.1 that was free a moment ago (bind to port 0, read
/// the port, close). Another process may take it before the caller binds it:
/// callers must retry on "address in use".
pub fn free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local_addr").port()
}

/// True when nothing accepts TCP connections on 127.0.0.1:`port`.
pub fn port_is_closed(port: u16) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_err()
}

/// Polls `check` every 20-200 ms until it returns `Some`, or panics after
/// `timeout` with `what` in the message.
pub fn wait_until<T>(timeout: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(20);
    loop {
        if let Some(v) = check() {
            return v;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(200));
    }
}

/// Wraps `cmd` so that it runs with a private `/etc/hosts` holding `hosts`
/// (pairs of name and IP address), via `unshare -m` and a bind mount over
/// /etc/hosts inside that new mount namespace. Needs root (tests run as root
/// here). Lets programs with no `--resolve` (wget, pip, git, ...) reach a
/// test server by its `example.test` name directly. `scratch` is a directory
/// where the hosts file is written. Program, arguments, environment changes
/// and working directory are carried over; stdio is not.
pub fn with_etc_hosts(cmd: &Command, hosts: &[(&str, &str)], scratch: &Path) -> Command {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let hosts_file = scratch.join(format!("hosts.{}.{n}", std::process::id()));
    let mut text = String::from("127.0.0.1 localhost\n::1 localhost\n");
    for (name, ip) in hosts {
        text.push_str(&format!("{ip} {name}\n"));
    }
    std::fs::write(&hosts_file, text)
        .unwrap_or_else(|e| panic!("write {}: {e}", hosts_file.display()));
    let mut wrapped = Command::new("unshare");
    wrapped
        .arg("-m")
        .arg("--propagation")
        .arg("private")
        .arg("sh")
        .arg("-c")
        .arg(r#"mount --bind "$0" /etc/hosts && exec "$@""#)
        .arg(&hosts_file)
        .arg(cmd.get_program())
        .args(cmd.get_args());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => wrapped.env(k, v),
            None => wrapped.env_remove(k),
        };
    }
    if let Some(dir) = cmd.get_current_dir() {
        wrapped.current_dir(dir);
    }
    wrapped
}

/// Waits up to `timeout` for `child` to exit; `None` if it is still running.
pub(crate) fn wait_child(child: &mut std::process::Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            Ok(None) => return None,
            Err(e) => panic!("waiting for child {}: {e}", child.id()),
        }
    }
}

/// Sends SIGTERM to `pid` (using the `kill` program: no `unsafe` here).
pub(crate) fn sigterm(pid: u32) {
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}
