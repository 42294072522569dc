//! Running the real `btrfly serve` binary.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use super::process::{client_env, clip, sigterm, wait_child};

const START_TIMEOUT: Duration = Duration::from_secs(20);
const STOP_GRACE: Duration = Duration::from_secs(10);

/// Base config tables that `config_toml_extra` may replace by declaring the
/// same header itself.
const BASE_TABLES: &[&str] = &["storage", "proxy", "control"];

/// Everything [`BtrflyServer::start_with`] can vary.
#[derive(Default, Clone, Debug)]
pub struct StartOptions {
    /// Top-level `key = value` lines, placed after `data_dir` and before
    /// any table.
    pub top_level: String,
    /// TOML appended after the base tables; see [`BtrflyServer::start`].
    pub extra: String,
    /// Extra environment for `btrfly serve` (e.g. `RUST_LOG`), applied
    /// after [`client_env`].
    pub env: Vec<(String, String)>,
    /// A data dir whose identity (`ca.pem`, `ca-key.pem`, `token`) is
    /// copied into this server's data dir before it first starts: how the
    /// README starts a second replica of one store.
    pub identity_from: Option<PathBuf>,
    /// A command the server runs under: `btrfly serve --config …` is
    /// appended to it, and `{store}` in it is replaced by the fs store
    /// root (e.g. `unshare -m` and a shell that mounts a small tmpfs
    /// there first, for a disk that fills up).
    pub wrapper: Vec<String>,
}

/// The files that make a replica's identity, in its data dir.
pub const IDENTITY_FILES: [&str; 3] = ["ca.pem", "ca-key.pem", "token"];

/// A running `btrfly serve` (the product binary) with its own temp dir:
/// `<dir>/config.toml`, `<dir>/data` (data_dir), `<dir>/store` (fs storage
/// root), `<dir>/serve.stderr.log`. Killed and reaped on `Drop`; the temp
/// dir lives as long as this value, across [`BtrflyServer::stop`] and
/// [`BtrflyServer::restart`].
pub struct BtrflyServer {
    bin: PathBuf,
    dir: tempfile::TempDir,
    env: Vec<(String, String)>,
    wrapper: Vec<String>,
    child: Option<Child>,
    pid: u32,
    listeners: HashMap<String, String>,
    stdout_lines: Arc<Mutex<Vec<String>>>,
}

impl BtrflyServer {
    /// Starts `bin serve --config <dir>/config.toml`. The config is
    ///
    /// ```toml
    /// data_dir = "<dir>/data"
    ///
    /// [storage]
    /// backend = "fs"
    /// root = "<dir>/store"
    ///
    /// [proxy]
    /// listen = "127.0.0.1:0"
    ///
    /// [control]
    /// listen = "127.0.0.1:0"
    /// ```
    ///
    /// followed by `config_toml_extra`, which therefore must start with a
    /// table header (`[upstream]`, `[upstream.resolve]`, ...; checked:
    /// a bare `key = value` before the first header would land in
    /// `[control]`). If the extra declares `[storage]`, `[proxy]` or
    /// `[control]` itself, that base table is left out (replace it whole).
    /// Top-level keys go in [`StartOptions::top_level`]. Use
    /// [`toml_str`](BtrflyServer::toml_str) to quote paths.
    ///
    /// Returns once stdout has shown `listening on ADDR (proxy)` and
    /// `listening on ADDR (control)` (all such lines are kept, e.g. `dns`);
    /// panics after 20 s, or if btrfly exits, with its stderr log.
    /// The server runs with [`client_env`] applied (no proxy or CA-bundle
    /// variables from this machine) and `RUST_BACKTRACE=1`.
    pub fn start(bin: &Path, config_toml_extra: &str) -> BtrflyServer {
        BtrflyServer::start_with(
            bin,
            StartOptions {
                extra: config_toml_extra.to_string(),
                ..StartOptions::default()
            },
        )
    }

    /// [`BtrflyServer::start`] with top-level keys and environment too.
    pub fn start_with(bin: &Path, opts: StartOptions) -> BtrflyServer {
        let dir = tempfile::Builder::new()
            .prefix("btrfly-")
            .tempdir()
            .expect("btrfly temp dir");
        let config = base_config(dir.path(), &opts.top_level, &opts.extra);
        std::fs::write(dir.path().join("config.toml"), config).expect("write config.toml");
        if let Some(from) = &opts.identity_from {
            let data = dir.path().join("data");
            std::fs::create_dir_all(&data).expect("data dir");
            for f in IDENTITY_FILES {
                std::fs::copy(from.join(f), data.join(f))
                    .unwrap_or_else(|e| panic!("copy {f} from {}: {e}", from.display()));
            }
        }
        let mut server = BtrflyServer {
            bin: bin.to_path_buf(),
            dir,
            env: opts.env,
            wrapper: opts.wrapper,
            child: None,
            pid: 0,
            listeners: HashMap::new(),
            stdout_lines: Arc::new(Mutex::new(Vec::new())),
        };
        server.spawn();
        server
    }

    /// Quotes `s` as a TOML basic string (JSON string escaping is valid TOML).
    pub fn toml_str(s: impl AsRef<str>) -> String {
        serde_json::to_string(s.as_ref()).expect("string to JSON")
    }

    fn spawn(&mut self) {
        let log_path = self.stderr_log_path();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .unwrap_or_else(|e| panic!("open {}: {e}", log_path.display()));
        let mut cmd = match self.wrapper.split_first() {
            None => Command::new(&self.bin),
            Some((program, args)) => {
                let store = self.store_dir();
                let store = store.to_string_lossy();
                let mut c = Command::new(program);
                c.args(args.iter().map(|a| a.replace("{store}", &store)))
                    .arg(&self.bin);
                c
            }
        };
        client_env(&mut cmd);
        cmd.env("RUST_BACKTRACE", "1");
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd.arg("serve")
            .arg("--config")
            .arg(self.config_path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log);
        eprintln!("$ {}", super::describe(&cmd));
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.bin.display()));
        self.pid = child.id();
        let stdout = child.stdout.take().expect("piped stdout");
        self.child = Some(child);
        self.listeners.clear();

        // The reader keeps draining stdout for the server's whole life.
        let (tx, rx) = mpsc::channel::<(String, String)>();
        let lines = Arc::clone(&self.stdout_lines);
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let listening = parse_listening(&line);
                if let Ok(mut all) = lines.lock() {
                    all.push(line);
                }
                if let Some(l) = listening {
                    let _ = tx.send(l);
                }
            }
        });

        let deadline = Instant::now() + START_TIMEOUT;
        while !(self.listeners.contains_key("proxy") && self.listeners.contains_key("control")) {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok((what, addr)) => {
                    self.listeners.insert(what, addr);
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    self.kill();
                    panic!(
                        "btrfly serve did not report proxy+control listeners within \
                         {START_TIMEOUT:?} (saw {:?})\n--- stdout ---\n{}\n--- stderr log ---\n{}",
                        self.listeners,
                        self.stdout(),
                        clip(&self.stderr_log())
                    );
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = self
                        .child
                        .as_mut()
                        .and_then(|c| wait_child(c, Duration::from_secs(5)));
                    self.kill();
                    panic!(
                        "btrfly serve exited during startup ({status:?}; saw {:?})\n\
                         --- stdout ---\n{}\n--- stderr log ---\n{}",
                        self.listeners,
                        self.stdout(),
                        clip(&self.stderr_log())
                    );
                }
            }
        }
        // Later listener lines (if any) are still in `stdout()`.
    }

    /// The proxy's listening address.
    pub fn proxy_addr(&self) -> SocketAddr {
        self.listener("proxy").expect("proxy listener")
    }

    /// `http://ADDR` of the control API.
    pub fn control_url(&self) -> String {
        format!(
            "http://{}",
            self.listener("control").expect("control listener")
        )
    }

    /// The address reported as `listening on ADDR (what)` (seen before
    /// `start` returned), if any.
    pub fn listener(&self, what: &str) -> Option<SocketAddr> {
        self.listeners.get(what).map(|a| {
            a.parse()
                .unwrap_or_else(|e| panic!("listener {what} address {a:?}: {e}"))
        })
    }

    /// All listeners reported at startup: WHAT -> ADDR as printed.
    pub fn listeners(&self) -> &HashMap<String, String> {
        &self.listeners
    }

    /// The server's temp dir (holds config.toml, data/, store/, logs).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The config file passed to `serve`.
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("config.toml")
    }

    /// The configured `data_dir` (`<dir>/data`).
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The fs storage root (`<dir>/store`).
    pub fn store_dir(&self) -> PathBuf {
        self.dir.path().join("store")
    }

    /// The control API token: `<data_dir>/token`, trimmed.
    pub fn token(&self) -> String {
        let path = self.data_dir().join("token");
        std::fs::read_to_string(&path)
            .unwrap_or_else(|e| {
                panic!(
                    "read {}: {e}\n--- stderr log ---\n{}",
                    path.display(),
                    clip(&self.stderr_log())
                )
            })
            .trim()
            .to_string()
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Peak resident set size in KiB (`VmHWM` in /proc/PID/status).
    pub fn peak_rss_kib(&self) -> u64 {
        self.proc_status_kib("VmHWM")
    }

    /// Current resident set size in KiB (`VmRSS` in /proc/PID/status).
    pub fn current_rss_kib(&self) -> u64 {
        self.proc_status_kib("VmRSS")
    }

    fn proc_status_kib(&self, field: &str) -> u64 {
        let path = format!("/proc/{}/status", self.pid);
        let status = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("read {path} (is btrfly still running?): {e}"));
        status
            .lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("no {field} in {path}"))
    }

    fn stderr_log_path(&self) -> PathBuf {
        self.dir.path().join("serve.stderr.log")
    }

    /// Everything `btrfly serve` wrote to stderr so far (all runs, if
    /// restarted).
    pub fn stderr_log(&self) -> String {
        std::fs::read_to_string(self.stderr_log_path()).unwrap_or_default()
    }

    /// Everything `btrfly serve` wrote to stdout so far, one line each.
    pub fn stdout(&self) -> String {
        self.stdout_lines
            .lock()
            .map(|l| l.join("\n"))
            .unwrap_or_default()
    }

    /// Graceful stop: SIGTERM, wait up to 10 s, then SIGKILL. Returns the
    /// exit status (`None` if it had to be killed, or was not running). The
    /// temp dir (data, store, logs) stays until this value is dropped.
    pub fn stop(&mut self) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        sigterm(child.id());
        match wait_child(&mut child, STOP_GRACE) {
            Some(status) => Some(status),
            None => {
                eprintln!("btrfly serve ignored SIGTERM for {STOP_GRACE:?}; killing it");
                let _ = child.kill();
                let _ = child.wait();
                None
            }
        }
    }

    /// Stops the server if running and starts it again with the same
    /// config, data dir and store (new ports, since they are `:0`).
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// SIGKILL, as a crash or the OOM killer would: no shutdown runs. The
    /// temp dir stays; [`BtrflyServer::restart`] starts it again.
    pub fn kill_hard(&mut self) {
        self.kill();
    }

    /// True while the server process has not exited.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// A command for the same binary as a client of this server:
    /// [`client_env`] applied, then `BTRFLY_SERVER=control_url`,
    /// `BTRFLY_TOKEN=token`, `BTRFLY_HOME=home`. Run it with
    /// [`super::run_ok`] / [`super::run`] (time-bounded).
    pub fn cli(&self, home: &Path) -> Command {
        let mut cmd = Command::new(&self.bin);
        client_env(&mut cmd);
        cmd.env("BTRFLY_SERVER", self.control_url())
            .env("BTRFLY_TOKEN", self.token())
            .env("BTRFLY_HOME", home)
            .env("RUST_BACKTRACE", "1");
        cmd
    }

    /// Waits (at most 20 s) until `tag` holds at least `n` entries, read
    /// with `btrfly tag show TAG --json`. A recording commits just after
    /// its client has the whole body: a test whose next step depends on
    /// the commit (a retry that must not join it in flight, a disk filled
    /// behind it) waits for it here.
    ///
    /// # Panics
    /// When the tag does not reach `n` entries in time.
    pub fn wait_for_entries(&self, home: &Path, tag: &str, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let show = super::run(self.cli(home).args(["tag", "show", tag, "--json"]));
            let count = serde_json::from_slice::<serde_json::Value>(&show.stdout)
                .ok()
                .and_then(|v| v["entries"].as_array().map(Vec::len))
                .unwrap_or(0);
            if count >= n {
                return;
            }
            assert!(Instant::now() < deadline, "{tag} never reached {n} entries");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Parses the `export NAME='VALUE'` lines printed by
    /// `btrfly start record --tag=T` (for `eval`); see [`parse_exports`].
    pub fn env_from_start(&self, output_stdout: &str) -> Vec<(String, String)> {
        parse_exports(output_stdout)
    }
}

impl Drop for BtrflyServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Parses `listening on ADDR (WHAT)` anywhere in a line into (WHAT, ADDR).
fn parse_listening(line: &str) -> Option<(String, String)> {
    let rest = &line[line.find("listening on ")? + "listening on ".len()..];
    let rest = rest.trim_end().strip_suffix(')')?;
    let (addr, what) = rest.rsplit_once(" (")?;
    Some((what.trim().to_string(), addr.trim().to_string()))
}

fn base_config(dir: &Path, top_level: &str, extra: &str) -> String {
    // The extra text goes after the base tables, so anything before its
    // first table header would silently become part of [control].
    if let Some(first) = extra
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
    {
        assert!(
            first.starts_with('['),
            "config_toml_extra must start with a [table] header (top-level keys go in \
             StartOptions::top_level), got: {first:?}"
        );
    }
    let declared: Vec<String> = extra
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            let name = l.strip_prefix('[')?.split(']').next()?.trim();
            (!l.starts_with("[[")).then(|| name.to_string())
        })
        .collect();
    let p = |sub: &str| BtrflyServer::toml_str(dir.join(sub).to_string_lossy());
    let mut text = format!(
        "# Written by btrfly-test-support (server.rs)\ndata_dir = {}\n",
        p("data")
    );
    if !top_level.trim().is_empty() {
        text.push_str(top_level.trim_end());
        text.push('\n');
    }
    for table in BASE_TABLES {
        if declared.iter().any(|d| d == table) {
            continue;
        }
        let body = match *table {
            "storage" => format!("backend = \"fs\"\nroot = {}\n", p("store")),
            _ => "listen = \"127.0.0.1:0\"\n".to_string(),
        };
        text.push_str(&format!("\n[{table}]\n{body}"));
    }
    if !extra.trim().is_empty() {
        text.push_str("\n# --- config_toml_extra ---\n");
        text.push_str(extra.trim_end());
        text.push('\n');
    }
    text
}

/// Parses shell `export NAME='VALUE'` lines (as printed for `eval`) into
/// (NAME, VALUE) pairs, in order. Values are single-quoted words with
/// `'\''` for a quote (any concatenation of '...' parts, backslash-escaped
/// characters and bare characters is understood; a quoted value may span
/// lines). Lines that are not `export` statements are ignored; a malformed
/// `export` panics.
pub fn parse_exports(text: &str) -> Vec<(String, String)> {
    let mut vars = Vec::new();
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    let mut line_start = true;
    while i < chars.len() {
        if !line_start {
            if chars[i] == '\n' {
                line_start = true;
            }
            i += 1;
            continue;
        }
        // At the start of a line: skip indentation, look for `export `.
        while i < chars.len() && (chars[i] == ' ' || chars[i] == '\t') {
            i += 1;
        }
        let rest: String = chars[i..chars.len().min(i + 7)].iter().collect();
        if rest != "export " {
            line_start = false;
            continue;
        }
        i += 7;
        while i < chars.len() && chars[i] == ' ' {
            i += 1;
        }
        let name_start = i;
        while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
            i += 1;
        }
        let name: String = chars[name_start..i].iter().collect();
        if name.is_empty() || i >= chars.len() || chars[i] != '=' {
            let line: String = chars[name_start..]
                .iter()
                .take_while(|c| **c != '\n')
                .collect();
            panic!("malformed export line: export {line}");
        }
        i += 1;
        let mut value = String::new();
        loop {
            match chars.get(i) {
                None | Some(' ') | Some('\t') | Some('\n') | Some(';') => break,
                Some('\'') => {
                    i += 1;
                    loop {
                        match chars.get(i) {
                            None => panic!("unterminated quote in export {name}"),
                            Some('\'') => {
                                i += 1;
                                break;
                            }
                            Some(c) => {
                                value.push(*c);
                                i += 1;
                            }
                        }
                    }
                }
                Some('\\') => {
                    if let Some(c) = chars.get(i + 1) {
                        value.push(*c);
                    }
                    i += 2;
                }
                Some('"') => panic!("double quotes are not supported (export {name})"),
                Some(c) => {
                    value.push(*c);
                    i += 1;
                }
            }
        }
        vars.push((name, value));
        line_start = false;
    }
    vars
}

/// Sets each (NAME, VALUE) from [`parse_exports`] on `cmd`.
pub fn apply_env<'a>(cmd: &'a mut Command, vars: &[(String, String)]) -> &'a mut Command {
    for (k, v) in vars {
        cmd.env(k, v);
    }
    cmd
}
