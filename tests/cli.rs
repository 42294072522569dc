//! End-to-end tests of the CLI as people meet it: the real `btrfly`
//! binary, a real HTTPS upstream (nginx) and curl, and the exact messages
//! a user reads when something is not right — server addresses, tokens,
//! sessions that cannot be told to stop, empty recordings, failing
//! commands, `eval "$(btrfly stop)"`, `tags` and `tag show`, and the
//! server's own start-up errors.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use btrfly_test_support::*;

const NAME: &str = "files.example.test";

/// An upstream with two small files and a btrfly server that trusts it.
struct Fixture {
    _root: tempfile::TempDir,
    nginx: Nginx,
    server: BtrflyServer,
    work: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Fixture {
        Self::with(StartOptions::default())
    }

    fn with(mut opts: StartOptions) -> Fixture {
        let root = tempfile::tempdir().expect("root");
        std::fs::create_dir_all(root.path().join("files")).expect("files dir");
        std::fs::write(root.path().join("files/a.txt"), "aaa\n").expect("a");
        std::fs::write(root.path().join("files/b.txt"), "bbb\n").expect("b");
        let ca = TestCa::new();
        let nginx = Nginx::start(root.path(), &ca, &[NAME]);
        opts.extra = format!(
            "{}[upstream]\nca_file = {}\n[upstream.resolve]\n\"{NAME}\" = \"127.0.0.1\"\n",
            opts.extra,
            BtrflyServer::toml_str(nginx.ca_file().to_string_lossy())
        );
        let server = BtrflyServer::start_with(bin(), opts);
        Fixture {
            _root: root,
            nginx,
            server,
            work: tempfile::tempdir().expect("work"),
        }
    }

    fn url(&self, file: &str) -> String {
        format!("https://{NAME}:{}/files/{file}", self.nginx.port())
    }

    fn home(&self, name: &str) -> PathBuf {
        let h = self.work.path().join(format!("home-{name}"));
        std::fs::create_dir_all(&h).expect("home");
        h
    }

    fn cli(&self, home: &Path) -> Command {
        self.server.cli(home)
    }

    fn start(&self, home: &Path, mode: &str, tag: &str) -> Vec<(String, String)> {
        let out = run_ok(
            self.cli(home)
                .args(["start", mode, &format!("--tag={tag}")]),
        );
        parse_exports(&text(&out.stdout))
    }

    fn curl(&self, env: &[(String, String)], file: &str) -> Output {
        let mut c = Command::new("curl");
        client_env(&mut c);
        apply_env(&mut c, env);
        run(c
            .args(["-sS", "--fail", "--max-time", "60", "-o", "/dev/null"])
            .arg(self.url(file)))
    }

    /// `curl` of one file, as a command line for `btrfly run`.
    fn curl_argv(&self, file: &str) -> Vec<String> {
        [
            "curl",
            "-sS",
            "--fail",
            "--max-time",
            "60",
            "-o",
            "/dev/null",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain([self.url(file)])
        .collect()
    }
}

/// Everything after the last line that starts with `btrfly:` and the line
/// itself: the message a user reads last.
fn last_message(stderr: &str) -> &str {
    stderr
        .trim_end()
        .rsplit('\n')
        .find(|l| l.starts_with("btrfly:"))
        .unwrap_or_default()
}

fn tag_meta(fx: &Fixture, home: &Path, tag: &str) -> serde_json::Value {
    let out = run_ok(fx.cli(home).args(["tags", "--json"]));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("tags json");
    v["tags"]
        .as_array()
        .expect("tags")
        .iter()
        .find(|t| t["tag"] == tag)
        .cloned()
        .unwrap_or_else(|| panic!("no tag {tag} in {v}"))
}

/// The options and arguments of a help text whose description is empty.
/// Short help puts the description on the line of the flag, after two or
/// more spaces; long help on the lines below it, indented further.
fn undescribed(help: &str) -> (Vec<String>, usize) {
    let lines: Vec<&str> = help.lines().collect();
    let mut missing = Vec::new();
    let mut seen = 0;
    let mut in_list = false;
    for (i, line) in lines.iter().enumerate() {
        if line.ends_with(':') && !line.starts_with(' ') {
            in_list = matches!(*line, "Options:" | "Arguments:");
            continue;
        }
        let indent = line.len() - line.trim_start().len();
        let spec = line.trim_start();
        if !in_list || indent > 6 || !(spec.starts_with('-') || spec.starts_with('<')) {
            continue;
        }
        seen += 1;
        let same_line = spec
            .split_once("  ")
            .is_some_and(|(_, d)| !d.trim().is_empty());
        let next_line = lines
            .get(i + 1)
            .is_some_and(|n| n.len() - n.trim_start().len() > indent + 2 && !n.trim().is_empty());
        if !(same_line || next_line) {
            missing.push((*line).to_owned());
        }
    }
    (missing, seen)
}

/// `--help` (and `-h`) of every command describes every option and
/// argument.
#[test]
fn help_describes_every_option() {
    // the check itself finds a bare option, in either layout
    let bare = "Options:\n      --tag <TAG>\n\n  -h, --help  Print help\n";
    assert_eq!(undescribed(bare).0, ["      --tag <TAG>"]);
    for cmd in [
        &["serve"][..],
        &["start"],
        &["stop"],
        &["env"],
        &["run"],
        &["tags"],
        &["tag", "show"],
        &["ca", "export"],
    ] {
        for flag in ["--help", "-h"] {
            let out = run_ok(Command::new(bin()).args(cmd).arg(flag));
            let help = text(&out.stdout);
            let (missing, seen) = undescribed(&help);
            assert!(
                missing.is_empty() && seen >= 1,
                "`btrfly {} {flag}`: no description for {missing:?}\n{help}",
                cmd.join(" ")
            );
        }
    }
}

/// Addresses, tags and modes that cannot work are refused before anything
/// is sent, each with a message saying what to write instead.
#[test]
fn bad_addresses_tags_and_modes_get_clear_messages() {
    let home = tempfile::tempdir().expect("home");
    let cli = || {
        let mut c = Command::new(bin());
        client_env(&mut c);
        c.env("BTRFLY_HOME", home.path());
        c
    };
    let out = run(cli().args(["tags", "--server", "127.0.0.1:3129"]));
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "btrfly: server address \"127.0.0.1:3129\" (from --server): has no scheme: write http://127.0.0.1:3129\n"
    );
    let out = run(cli()
        .env("BTRFLY_SERVER", "https://btrfly.example.test:3129")
        .args(["tags"]));
    assert_eq!(
        text(&out.stderr),
        "btrfly: server address \"https://btrfly.example.test:3129\" (from BTRFLY_SERVER): the control API speaks plain HTTP, not HTTPS: write http://btrfly.example.test:3129\n"
    );
    let out = run(cli().args(["tag", "show", "a/b"]));
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "btrfly: invalid tag \"a/b\": use 1-128 characters from A-Z a-z 0-9 . _ -, starting with a letter or digit\n"
    );
    let out = run(cli().args(["run", "--tag=x", "--", "true"]));
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.starts_with("error: btrfly run needs --record (record the command's downloads into the tag) or --playback (play them back from it)\n\nUsage: btrfly run "),
        "{err}"
    );
    let closed = free_port();
    let out = run(cli().args(["tags", "--server", &format!("http://127.0.0.1:{closed}")]));
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.starts_with(&format!(
            "btrfly: cannot reach the btrfly server at http://127.0.0.1:{closed}/v1/tags: "
        )) && err
            .ends_with("(is `btrfly serve` running there? pass --server or set BTRFLY_SERVER)\n"),
        "{err}"
    );
}

/// The CLI finds a server started with `--config` and its own data dir
/// through the same config (`--config` or `BTRFLY_CONFIG`): its control
/// address and its token. A missing or foreign token names the file tried.
#[test]
fn the_cli_reads_the_servers_config_and_names_the_token_it_tried() {
    let port = free_port();
    let fx = Fixture::with(StartOptions {
        extra: format!("[control]\nlisten = \"127.0.0.1:{port}\"\n"),
        ..StartOptions::default()
    });
    let user = tempfile::tempdir().expect("user home");
    let bare = || {
        let mut c = Command::new(bin());
        client_env(&mut c);
        c.env("HOME", user.path())
            .env_remove("XDG_DATA_HOME")
            .env("BTRFLY_HOME", user.path().join(".btrfly"));
        c
    };
    let config = fx.server.config_path();
    let out = run(bare().arg("tags").arg("--config").arg(&config));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = run(bare().env("BTRFLY_CONFIG", &config).arg("tags"));
    assert!(out.status.success(), "{}", text(&out.stderr));

    // No config: the default data dir has no token.
    let server = format!("http://127.0.0.1:{port}");
    let out = run(bare().args(["tags", "--server", &server]));
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        format!(
            "btrfly: the btrfly server at {server} needs its control token: none was given (--token, BTRFLY_TOKEN) and {}/.local/share/btrfly/token could not be read (it does not exist). Pass the server's config with --config or BTRFLY_CONFIG (the token is <data_dir>/token), or the token with --token or BTRFLY_TOKEN\n",
            user.path().display()
        )
    );
    // Another server's token file.
    let other = user.path().join("other-data");
    std::fs::create_dir_all(&other).expect("other");
    std::fs::write(other.join("token"), "not-this-servers\n").expect("token");
    let out = run(bare()
        .env("BTRFLY_DATA_DIR", &other)
        .args(["tags", "--server", &server]));
    assert_eq!(
        text(&out.stderr),
        format!(
            "btrfly: the btrfly server at {server} refused the control token read from {}/token: that file belongs to another server. Pass this server's config with --config or BTRFLY_CONFIG, or its token with --token or BTRFLY_TOKEN\n",
            other.display()
        )
    );
    let out = run(bare()
        .env("BTRFLY_TOKEN", "wrong")
        .args(["tags", "--server", &server]));
    assert_eq!(
        text(&out.stderr),
        format!("btrfly: the btrfly server at {server} refused the control token in BTRFLY_TOKEN (the server's token is in its <data_dir>/token)\n")
    );

    // A config whose control port is 0 cannot say where the server is.
    let zero = user.path().join("zero.toml");
    std::fs::write(&zero, "[control]\nlisten = \"127.0.0.1:0\"\n").expect("zero");
    let out = run(bare().arg("tags").arg("--config").arg(&zero));
    assert_eq!(
        text(&out.stderr),
        "btrfly: control.listen of --config is 127.0.0.1:0 (port 0: the server picked a free port at start): pass --server http://HOST:PORT with the address `btrfly serve` printed (listening on ADDR (control))\n"
    );
}

/// One session per BTRFLY_HOME, said clearly; another BTRFLY_HOME holds
/// another session at the same time.
#[test]
fn one_session_per_btrfly_home() {
    let fx = Fixture::new();
    let home = fx.home("one");
    let started = run_ok(fx.cli(&home).args(["start", "record", "--tag=first"]));
    let out = run(fx.cli(&home).args(["start", "playback", "--tag=first"]));
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        format!(
            "btrfly: a record session for tag first is already active in BTRFLY_HOME {} (one session at a time per BTRFLY_HOME). Use it in this shell with `eval \"$(btrfly env)\"`, end it with `eval \"$(btrfly stop)\"`, or give this shell its own with `export BTRFLY_HOME=DIR`\n",
            home.display()
        )
    );
    let again = run_ok(fx.cli(&home).args(["env"]));
    assert_eq!(text(&again.stdout), text(&started.stdout));
    // a second shell with its own BTRFLY_HOME records another tag at once
    let other = fx.home("two");
    let env_two = fx.start(&other, "record", "second");
    let env_one = parse_exports(&text(&started.stdout));
    assert!(fx.curl(&env_one, "a.txt").status.success());
    assert!(fx.curl(&env_two, "b.txt").status.success());
    for (h, n) in [(&home, "first"), (&other, "second")] {
        let stop = run(fx.cli(h).args(["stop", "record"]));
        assert!(stop.status.success(), "{}", text(&stop.stderr));
        assert_eq!(field(&text(&stop.stderr), "recorded"), 1, "{n}");
    }
}

/// `eval "$(btrfly stop)"` leaves the shell's environment exactly as it
/// was before `eval "$(btrfly start …)"` (a variable the shell had, like
/// SSL_CERT_FILE, gets its value back); the summary goes to stderr.
#[test]
fn eval_stop_undoes_exactly_what_start_exported() {
    let fx = Fixture::new();
    let home = fx.home("undo");
    let script = format!(
        r#"set -u
export SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
snapshot() {{ env | grep -v '^_=' | sort; }}
before=$(snapshot)
eval "$("$BTRFLY" start record --tag=undo)"
[ -n "${{HTTPS_PROXY:-}}" ] && [ -n "${{NPM_CONFIG_CAFILE:-}}" ] && [ -d "${{PIP_CACHE_DIR%/pip}}" ] || {{ echo "not started"; exit 3; }}
cache=${{PIP_CACHE_DIR%/pip}}
curl -sS --fail -o /dev/null "{url}" || exit 4
eval "$("$BTRFLY" stop record)"
after=$(snapshot)
if [ "$before" = "$after" ]; then echo SAME; else diff <(echo "$before") <(echo "$after"); fi
[ -e "$cache" ] && echo "cache left behind: $cache"
exit 0
"#,
        url = fx.url("a.txt")
    );
    let mut bash = Command::new("bash");
    bash.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", fx.work.path())
        .env("BTRFLY_HOME", &home)
        .env("BTRFLY_SERVER", fx.server.control_url())
        .env("BTRFLY_TOKEN", fx.server.token())
        .env("BTRFLY", bin())
        .args(["-c", &script]);
    let out = run_ok(&mut bash);
    assert_eq!(text(&out.stdout), "SAME\n", "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(
        err.contains("requests: 1\n") && err.contains("recorded: 1\n"),
        "{err}"
    );

    // Plain `btrfly stop` works too: the undo lines on stdout (harmless at
    // a terminal), the summary on stderr; they name exactly what start
    // exported.
    let started = run_ok(fx.cli(&home).args(["start", "record", "--tag=plain"]));
    let exported: Vec<String> = parse_exports(&text(&started.stdout))
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert!(fx
        .curl(&parse_exports(&text(&started.stdout)), "b.txt")
        .status
        .success());
    let stop = run(fx.cli(&home).args(["stop"]));
    assert!(stop.status.success(), "{}", text(&stop.stderr));
    let stdout = text(&stop.stdout);
    // unset what was not set before, give the rest its old value back
    // (here CARGO_HOME, when the test runs under cargo)
    let mut undone: Vec<String> = stdout
        .lines()
        .find_map(|l| l.strip_prefix("unset "))
        .map(|l| l.split(' ').map(str::to_owned).collect())
        .unwrap_or_default();
    undone.extend(parse_exports(&stdout).into_iter().map(|(k, _)| k));
    let mut exported = exported;
    exported.sort();
    undone.sort();
    assert_eq!(undone, exported, "{stdout}");
    assert!(text(&stop.stderr).contains("recorded: 1\n"));
}

/// `btrfly stop` always ends the local session: when the server is gone
/// or does not know the session it warns and exits 1; the session file is
/// gone and a new session can start.
#[test]
fn stop_always_ends_the_local_session() {
    let mut fx = Fixture::new();
    let home = fx.home("gone");
    let env = fx.start(&home, "record", "gone");
    let id = env
        .iter()
        .find(|(k, _)| k == "BTRFLY_SESSION")
        .map(|(_, v)| v.clone())
        .expect("BTRFLY_SESSION");
    let url = fx.server.control_url();
    let cli_of_dead = fx.cli(&home);
    fx.server.stop();
    let mut cli_of_dead = cli_of_dead;
    let out = run(cli_of_dead.args(["stop", "record"]));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stdout).starts_with("unset HTTPS_PROXY "),
        "{}",
        text(&out.stdout)
    );
    let err = text(&out.stderr);
    assert!(
        err.starts_with(&format!(
            "btrfly: warning: cannot reach the btrfly server at {url}/v1/sessions/{id}/stop: "
        )) && err.ends_with(&format!(
            "(is `btrfly serve` running there? pass --server or set BTRFLY_SERVER). The local record session {id} for tag gone is ended anyway; the server was not told, so nothing was summed up or sealed\n"
        )),
        "{err}"
    );
    assert!(!home.join("session.json").exists());

    // The server is back on other ports; BTRFLY_SERVER (set by `cli`)
    // says where, and a new session starts.
    fx.server.restart();
    let env = fx.start(&home, "record", "moved");
    // Without --server or BTRFLY_SERVER, stop uses the server the session
    // was started on.
    assert!(fx.curl(&env, "a.txt").status.success());
    let out = run(fx.cli(&home).env_remove("BTRFLY_SERVER").args(["stop"]));
    assert!(out.status.success(), "{}", text(&out.stderr));

    // A session the server does not know (stopped from elsewhere).
    let env = fx.start(&home, "record", "twice");
    assert!(fx.curl(&env, "a.txt").status.success());
    let copy = fx.home("copy");
    std::fs::copy(home.join("session.json"), copy.join("session.json")).expect("copy");
    assert!(run(fx.cli(&home).args(["stop"])).status.success());
    let id = env
        .iter()
        .find(|(k, _)| k == "BTRFLY_SESSION")
        .map(|(_, v)| v.clone())
        .expect("BTRFLY_SESSION");
    let out = run(fx.cli(&copy).args(["stop"]));
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        last_message(&text(&out.stderr)),
        format!(
            "btrfly: warning: the btrfly server at {} does not know the session: no session {id} on this server (it was stopped, ended when its lease ran out — no request for `[sessions] lease` — or never started). The local record session {id} for tag twice is ended anyway; the server was not told, so nothing was summed up or sealed",
            fx.server.control_url()
        )
    );
    assert!(!copy.join("session.json").exists());
}

/// An empty recording (the client ignored the proxy) is a loud warning
/// and exit 1, and the tag is not sealed; playing back a tag without
/// entries is refused.
#[test]
fn an_empty_recording_is_loud_and_cannot_be_played_back() {
    let fx = Fixture::new();
    let home = fx.home("empty");
    fx.start(&home, "record", "t-empty");
    let out = run(fx.cli(&home).args(["stop", "record"]));
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        last_message(&text(&out.stderr)),
        "btrfly: warning: the recording of tag t-empty is empty: no request reached btrfly during the session. Did the client use the session's exports (HTTPS_PROXY, and btrfly's CA through SSL_CERT_FILE or the client's own variable)? See the README's client table. The tag was not sealed"
    );
    assert_eq!(tag_meta(&fx, &home, "t-empty")["sealed"], false);
    let out = run(fx.cli(&home).args(["start", "playback", "--tag=t-empty"]));
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "btrfly: tag t-empty has no recorded entries: nothing to play back. Its recording saw no request (did the build use the session's exports?); record it again\n"
    );
    // not sealed: recording it again needs no --force
    let env = fx.start(&home, "record", "t-empty");
    assert!(fx.curl(&env, "a.txt").status.success());
    let out = run(fx.cli(&home).args(["stop", "record"]));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(tag_meta(&fx, &home, "t-empty")["sealed"], true);
}

/// `btrfly run --record` of a command that cannot start or fails does not
/// seal the tag and says so; playing back such a tag warns; running the
/// command again (no --force needed) seals it.
#[test]
fn run_record_of_a_failing_command_does_not_seal() {
    let fx = Fixture::new();
    let home = fx.home("run");
    let out = run(fx.cli(&home).args([
        "run",
        "--record",
        "--tag=r1",
        "--",
        "/nonexistent/tool",
        "x",
    ]));
    assert_eq!(out.status.code(), Some(127));
    assert_eq!(
        last_message(&text(&out.stderr)),
        "btrfly: cannot run `/nonexistent/tool x`: No such file or directory (os error 2); tag r1 was not sealed, since its recording may be incomplete: fix the command and run it again (an unsealed tag records again without --force)"
    );

    let script = format!("{} && exit 3", fx.curl_argv("a.txt").join(" "));
    let out = run(fx
        .cli(&home)
        .args(["run", "--record", "--tag=r2", "--", "sh", "-c", &script]));
    assert_eq!(out.status.code(), Some(3));
    let err = text(&out.stderr);
    assert!(err.contains("recorded: 1\n"), "{err}");
    assert_eq!(
        last_message(&err),
        format!("btrfly: `sh -c {script}` exited with status 3; tag r2 was not sealed, since its recording may be incomplete: fix the command and run it again (an unsealed tag records again without --force)")
    );
    assert_eq!(tag_meta(&fx, &home, "r2")["sealed"], false);

    // Ctrl-C (SIGINT to the whole process group, as a terminal sends it)
    // ends the command; btrfly outlives it and still stops the session.
    let script = format!("{} && kill -INT 0", fx.curl_argv("b.txt").join(" "));
    let out = run(fx
        .cli(&home)
        .args(["run", "--record", "--tag=r3", "--", "sh", "-c", &script]));
    assert_eq!(out.status.code(), Some(130), "{}", text(&out.stderr));
    assert_eq!(
        last_message(&text(&out.stderr)),
        format!("btrfly: `sh -c {script}` was killed by signal 2; tag r3 was not sealed, since its recording may be incomplete: fix the command and run it again (an unsealed tag records again without --force)")
    );
    assert!(text(&out.stderr).contains("recorded: 1\n"));

    let out = run(fx
        .cli(&home)
        .args(["run", "--playback", "--tag=r2", "--"])
        .args(fx.curl_argv("a.txt")));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).starts_with("btrfly: warning: tag r2 is not sealed: its recording did not finish (a failed `btrfly run --record`, or a record session still running); playback answers from what was recorded so far\n"),
        "{}",
        text(&out.stderr)
    );

    let out = run(fx
        .cli(&home)
        .args(["run", "--record", "--tag=r2", "--"])
        .args(fx.curl_argv("a.txt")));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(tag_meta(&fx, &home, "r2")["sealed"], true);
}

/// `btrfly tags`: a header, RFC 3339 times to the second, created and
/// sealed. `btrfly tag show`: each entry with its status, size, sha256,
/// key and response headers.
#[test]
fn tags_and_tag_show_read_like_the_readme_says() {
    let fx = Fixture::new();
    let home = fx.home("show");
    let out = run(fx
        .cli(&home)
        .args(["run", "--record", "--tag=shown", "--"])
        .args(fx.curl_argv("a.txt")));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let meta = tag_meta(&fx, &home, "shown");
    let seconds = |v: &serde_json::Value| -> String {
        // "2026-11-30T00:37:40.947229302Z" -> "2026-11-30T00:37:40Z"
        let s = v.as_str().expect("time");
        format!("{}Z", &s[..19])
    };
    let listing = text(&run_ok(fx.cli(&home).args(["tags"])).stdout);
    let lines: Vec<Vec<&str>> = listing
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(lines[0], ["TAG", "STATE", "CREATED", "SEALED"], "{listing}");
    assert_eq!(
        lines[1],
        [
            "shown",
            "sealed",
            &seconds(&meta["created_at"]),
            &seconds(&meta["sealed_at"])
        ],
        "{listing}"
    );

    let show = text(&run_ok(fx.cli(&home).args(["tag", "show", "shown"])).stdout);
    let json: serde_json::Value = serde_json::from_slice(
        &run_ok(fx.cli(&home).args(["tag", "show", "shown", "--json"])).stdout,
    )
    .expect("json");
    let e = &json["entries"][0];
    let key = format!(
        "{}:{}",
        e["key"]["namespace"].as_str().expect("namespace"),
        e["key"]["primary"].as_str().expect("primary")
    );
    let head = format!(
        "tag shown: created {}, sealed {}, 1 entry\n\nGET {}\n  status: 200\n  size: 4\n  sha256: {}\n  key: {key}\n  recorded: {}\n  headers:\n",
        seconds(&meta["created_at"]),
        seconds(&meta["sealed_at"]),
        e["url"].as_str().expect("url"),
        sha256_bytes(b"aaa\n"),
        seconds(&e["recorded_at"]),
    );
    assert!(
        show.starts_with(&head),
        "{show}\n--- expected to start with ---\n{head}"
    );
    assert!(show.contains("\n    content-type: text/plain\n"), "{show}");
}

/// The session's exports point every client at btrfly (npm through a
/// `cafile` of its own included) and at fresh caches, which `stop`
/// removes; `--keep-caches` leaves the user's caches alone.
#[test]
fn exports_cover_the_clients_and_isolate_their_caches() {
    let fx = Fixture::new();
    let home = fx.home("exports");
    let env = fx.start(&home, "record", "exports");
    let get = |name: &str| {
        env.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("{name} not exported: {env:?}"))
    };
    let bundle = home.join("ca-bundle.pem").display().to_string();
    for var in [
        "SSL_CERT_FILE",
        "REQUESTS_CA_BUNDLE",
        "PIP_CERT",
        "CURL_CA_BUNDLE",
        "GIT_SSL_CAINFO",
        "CARGO_HTTP_CAINFO",
        "AWS_CA_BUNDLE",
        "NPM_CONFIG_CAFILE",
    ] {
        assert_eq!(get(var), bundle, "{var}");
    }
    assert_eq!(
        get("NODE_EXTRA_CA_CERTS"),
        home.join("ca.pem").display().to_string()
    );
    assert_eq!(get("NPM_CONFIG_UPDATE_NOTIFIER"), "false");
    let apt = std::fs::read_to_string(get("APT_CONFIG")).expect("apt.conf");
    assert!(
        apt.contains(&format!("Acquire::https::CaInfo \"{bundle}\";")),
        "{apt}"
    );
    let id = get("BTRFLY_SESSION");
    let cache = home.join("caches").join(&id);
    for (var, sub) in [
        ("PIP_CACHE_DIR", "pip"),
        ("NPM_CONFIG_CACHE", "npm"),
        ("YARN_CACHE_FOLDER", "yarn"),
        ("CARGO_HOME", "cargo"),
        ("GOMODCACHE", "go-mod"),
    ] {
        assert_eq!(get(var), cache.join(sub).display().to_string(), "{var}");
    }
    // Go leaves its module cache read-only; stop removes it anyway.
    let ro = cache.join("go-mod/example.test/m@v1");
    std::fs::create_dir_all(&ro).expect("go dir");
    std::fs::write(ro.join("go.mod"), "module example.test/m\n").expect("go.mod");
    for p in [ro.as_path(), ro.parent().expect("parent")] {
        let mut perm = std::fs::metadata(p).expect("meta").permissions();
        perm.set_readonly(true);
        std::fs::set_permissions(p, perm).expect("chmod");
    }
    assert!(fx.curl(&env, "a.txt").status.success());
    assert!(run(fx.cli(&home).args(["stop"])).status.success());
    assert!(!cache.exists(), "the session's caches are removed at stop");

    let out = run_ok(
        fx.cli(&home)
            .args(["start", "playback", "--tag=exports", "--keep-caches"]),
    );
    let kept = parse_exports(&text(&out.stdout));
    for var in [
        "PIP_CACHE_DIR",
        "NPM_CONFIG_CACHE",
        "CARGO_HOME",
        "GOMODCACHE",
    ] {
        assert!(
            kept.iter().all(|(k, _)| k != var),
            "{var} with --keep-caches"
        );
    }
    assert!(run(fx.cli(&home).args(["stop"])).status.success());
}

/// `btrfly serve`'s own messages: a missing config file said once, a taken
/// port with a hint, logs without colour codes when not at a terminal;
/// stopping a recording neither leaves session folders behind in the fs
/// store nor makes the server's memory jump.
#[test]
fn serve_front_door_messages_and_a_lean_stop() {
    let mut cmd = Command::new(bin());
    client_env(&mut cmd);
    let out = run(cmd.args(["serve", "--config", "/nonexistent/btrfly.toml"]));
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "btrfly: cannot read config file /nonexistent/btrfly.toml: No such file or directory (os error 2)\n"
    );

    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    let dir = tempfile::tempdir().expect("dir");
    let config = dir.path().join("btrfly.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = {}\n[proxy]\nlisten = \"127.0.0.1:{port}\"\n[control]\nlisten = \"127.0.0.1:0\"\n",
            BtrflyServer::toml_str(dir.path().join("data").to_string_lossy())
        ),
    )
    .expect("config");
    let mut cmd = Command::new(bin());
    client_env(&mut cmd);
    let out = run(cmd.arg("serve").arg("--config").arg(&config));
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        last_message(&text(&out.stderr)),
        format!("btrfly: binding the proxy listener on 127.0.0.1:{port}: Address already in use (os error 98): another program listens there (another `btrfly serve`?). Stop it, or choose another address with proxy.listen in a config file (btrfly serve --config FILE; port 0 picks a free one)")
    );
    drop(taken);

    // 46 downloads recorded, then the stop that seals them.
    let fx = Fixture::new();
    let home = fx.home("lean");
    let env = fx.start(&home, "record", "lean");
    let mut curl = Command::new("curl");
    client_env(&mut curl);
    apply_env(&mut curl, &env);
    curl.args(["-sS", "--fail", "--max-time", "120"]);
    for i in 0..46 {
        curl.arg("-o").arg("/dev/null");
        curl.arg(format!("{}?n={i}", fx.url("a.txt")));
    }
    run_ok(&mut curl);
    let before = fx.server.current_rss_kib();
    let stop = run(fx.cli(&home).args(["stop", "record"]));
    assert!(stop.status.success(), "{}", text(&stop.stderr));
    assert_eq!(field(&text(&stop.stderr), "recorded"), 46);
    let after = fx.server.current_rss_kib();
    assert!(
        after < before + 16 * 1024,
        "stop record grew the server from {before} KiB to {after} KiB"
    );
    let sessions = fx.server.store_dir().join("sessions");
    let left: Vec<_> = std::fs::read_dir(&sessions)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "left in the store: {left:?}");

    let log = fx.server.stderr_log();
    assert!(log.contains("btrfly gateway ready"), "{log}");
    assert!(
        !log.contains('\u{1b}'),
        "colour codes in a log file:\n{log}"
    );
}
