//! The CLI's client commands: sessions, tags and the CA, through the
//! control API.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use btrfly_core::api::{StartRequest, StopRequest, Summary};
use btrfly_core::{Mode, Tag};
use time::OffsetDateTime;

use crate::args::{CacheArgs, ModeArg, ServerArgs};
use crate::control::ClientError;
use crate::exports;
use crate::home::{self, ActiveSession};
use crate::target::{connect, Target};

fn parse_tag(tag: &str) -> Result<Tag> {
    Ok(Tag::new(tag)?)
}

/// Asks the server for a session and prepares the local files its exports
/// point at (CA bundles, client configuration, the cache directory).
async fn open_session(
    target: &Target,
    home: &Path,
    mode: ModeArg,
    tag: &Tag,
    force: bool,
    caches: CacheArgs,
) -> Result<ActiveSession> {
    let started = target
        .client
        .start(&StartRequest {
            tag: tag.to_string(),
            mode: mode.into(),
            force,
        })
        .await
        .map_err(|e| target.explain(e))?;
    for w in &started.warnings {
        eprintln!("btrfly: warning: {w}");
    }
    home::write_bundles(home, &started.ca_pem)?;
    let cache_dir = if caches.keep_caches {
        None
    } else {
        Some(home::new_cache_dir(home, &started.id)?)
    };
    let mut session = ActiveSession {
        server: target.client.base().to_owned(),
        id: started.id,
        secret: started.secret,
        tag: started.tag,
        mode: started.mode,
        proxy: started.proxy,
        cache_dir,
        previous: Default::default(),
    };
    let names: Vec<&str> = exports::session_env(&session, home)
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    session.previous = exports::previous_values(&names, home);
    exports::prepare_caches(&session)?;
    Ok(session)
}

fn print_exports(s: &ActiveSession, home: &Path) {
    for (k, v) in exports::session_env(s, home) {
        println!("{}", exports::export_line(k, &v));
    }
}

/// `btrfly start`: a new session, its exports on stdout.
///
/// # Errors
/// A session already active in this `BTRFLY_HOME`, an invalid tag, the
/// server unreachable or refusing (sealed tag, unknown or empty tag, token).
pub async fn start(
    args: &ServerArgs,
    mode: ModeArg,
    tag: &str,
    force: bool,
    caches: CacheArgs,
) -> Result<ExitCode> {
    let home = home::home();
    let session = start_session(args, mode, tag, force, caches).await?;
    print_exports(&session, &home);
    let caches = match &session.cache_dir {
        Some(d) => format!("fresh client caches in {}", d.display()),
        None => "the user's client caches".to_owned(),
    };
    eprintln!(
        "btrfly: {} session {} for tag {} started ({caches}); exports printed for eval",
        session.mode, session.id, session.tag
    );
    Ok(ExitCode::SUCCESS)
}

/// Starts a session on the server and makes it this `BTRFLY_HOME`'s
/// active one.
pub(crate) async fn start_session(
    args: &ServerArgs,
    mode: ModeArg,
    tag: &str,
    force: bool,
    caches: CacheArgs,
) -> Result<ActiveSession> {
    let tag = parse_tag(tag)?;
    let home = home::home();
    if let Some(active) = home::load_active(&home)? {
        bail!(
            "a {} session for tag {} is already active in BTRFLY_HOME {} (one session at a time per BTRFLY_HOME). Use it in this shell with `eval \"$(btrfly env)\"`, end it with `eval \"$(btrfly stop)\"`, or give this shell its own with `export BTRFLY_HOME=DIR`",
            active.mode,
            active.tag,
            home.display()
        );
    }
    let target = connect(args, None)?;
    let session = open_session(&target, &home, mode, &tag, force, caches).await?;
    if let Err(e) = home::save_active(&home, &session) {
        // Not startable locally: end it on the server again.
        let _ = target
            .client
            .stop(
                &session.id,
                &StopRequest {
                    seal: false,
                    secret: Some(session.secret.clone()),
                },
            )
            .await;
        return Err(e);
    }
    Ok(session)
}

/// `btrfly env`: the active session's exports again.
///
/// # Errors
/// No active session.
pub async fn env() -> Result<ExitCode> {
    let home = home::home();
    let Some(active) = home::load_active(&home)? else {
        bail!(
            "no active session in BTRFLY_HOME {}: start one with `btrfly start record|playback --tag=TAG`",
            home.display()
        );
    };
    print_exports(&active, &home);
    Ok(ExitCode::SUCCESS)
}

fn print_summary(s: &Summary) {
    let mut out = String::new();
    out.push_str(&format!("{} session {} for tag {}\n", s.mode, s.id, s.tag));
    out.push_str(&format!("requests: {}\n", s.requests));
    out.push_str(&format!("hits: {}\n", s.hits));
    out.push_str(&format!("misses: {}\n", s.misses));
    if s.mode == Mode::Playback {
        out.push_str(&format!("mirror hits: {}\n", s.mirror_hits));
    }
    out.push_str(&format!("recorded: {}\n", s.recorded));
    out.push_str(&format!("bytes: {}\n", s.bytes));
    if s.egress_refused > 0 {
        out.push_str(&format!("egress refused: {}\n", s.egress_refused));
    }
    if !s.missed.is_empty() {
        out.push_str("missed:\n");
        for m in &s.missed {
            out.push_str(&format!("  {m}\n"));
        }
    }
    if !s.errors.is_empty() {
        out.push_str("problems:\n");
        for e in &s.errors {
            out.push_str(&format!("  {e}\n"));
        }
    }
    eprint!("{out}");
}

/// The exit status a finished session earns, with the message saying why
/// it is not 0. `allow_incomplete` turns "some answers could not be
/// recorded" into a warning.
fn outcome(s: &Summary, allow_incomplete: bool) -> ExitCode {
    if s.mode == Mode::Playback && s.unserved > 0 {
        // The store no longer holds what was recorded: the build got an
        // error or a cut response instead of the recorded bytes.
        eprintln!(
            "btrfly: playback of tag {} could not serve {} recorded answer(s) intact: their bodies are missing from the store or no longer match their digests (see problems); check the store with `btrfly verify --tag {}`",
            s.tag, s.unserved, s.tag
        );
        if s.misses > 0 {
            eprintln!(
                "btrfly: playback of tag {} also missed {} request(s)",
                s.tag, s.misses
            );
        }
        ExitCode::from(1)
    } else if s.mode == Mode::Playback && s.misses > 0 {
        eprintln!(
            "btrfly: playback of tag {} missed {} request(s): the build asked for something that was not recorded",
            s.tag, s.misses
        );
        ExitCode::from(1)
    } else if s.mode == Mode::Record && s.refused > 0 {
        // The build may have carried on (a retry, a tool that ignores a cut
        // download), but the tag lacks what it fetched: fail loudly.
        eprintln!(
            "btrfly: recording of tag {} refused {} download(s) whose bytes did not match the digest announced for them (see problems); they were not recorded",
            s.tag, s.refused
        );
        ExitCode::from(1)
    } else if s.mode == Mode::Record && s.recorded == 0 {
        // The most likely first mistake: the client did not use the proxy.
        let what = if s.requests == 0 {
            "no request reached btrfly during the session. Did the client use the session's exports (HTTPS_PROXY, and btrfly's CA through SSL_CERT_FILE or the client's own variable)? See the README's client table".to_owned()
        } else {
            format!(
                "{} request(s) reached btrfly but none was recorded (see problems)",
                s.requests
            )
        };
        let state = if s.sealed {
            "The tag keeps the entries it had and was sealed"
        } else {
            "The tag was not sealed"
        };
        eprintln!(
            "btrfly: warning: the recording of tag {} is empty: {what}. {state}",
            s.tag
        );
        ExitCode::from(1)
    } else if s.mode == Mode::Record && s.unrecorded > 0 {
        // The build got answers the tag does not hold: a playback would
        // miss them. Say so now, not months later.
        let verdict = if allow_incomplete { "warning" } else { "error" };
        eprintln!(
            "btrfly: {verdict}: recording of tag {} is incomplete: {} answer(s) the build received could not be recorded (see problems){}",
            s.tag,
            s.unrecorded,
            if allow_incomplete {
                ""
            } else {
                "; pass --allow-incomplete to accept the tag as it is"
            }
        );
        if allow_incomplete {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        }
    } else {
        ExitCode::SUCCESS
    }
}

/// `btrfly stop`: ends the active session on the server and here; the
/// undo commands on stdout, the summary on stderr (or JSON on stdout).
///
/// # Errors
/// No active session, the wrong mode, a refused token (the session is
/// kept so the stop can be repeated). An unreachable server or one that
/// does not know the session is not an error: the local session ends
/// with a warning and exit status 1.
pub async fn stop(
    args: &ServerArgs,
    mode: Option<ModeArg>,
    json: bool,
    allow_incomplete: bool,
) -> Result<ExitCode> {
    let home = home::home();
    // The machine first: it must never stay pointed at the resolver of a
    // session that is gone (also after a crash, or on a second stop).
    let restored = crate::system::restore_if_applied()?;
    let Some(active) = home::load_active(&home)? else {
        if restored {
            return Ok(ExitCode::SUCCESS);
        }
        bail!(
            "no active session to stop in BTRFLY_HOME {} (start one with `btrfly start record|playback --tag=TAG`)",
            home.display()
        );
    };
    if let Some(m) = mode {
        let m: Mode = m.into();
        if m != active.mode {
            bail!(
                "the active session is a {} session for tag {}: run `btrfly stop {}`",
                active.mode,
                active.tag,
                active.mode
            );
        }
    }
    let target = connect(args, Some(&active.server))?;
    let result = target
        .client
        .stop(
            &active.id,
            &StopRequest {
                secret: Some(active.secret.clone()),
                ..StopRequest::default()
            },
        )
        .await;
    let not_told = match result {
        Ok(summary) => {
            end_locally(&home, &active, json)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&summary)?);
            } else {
                print_summary(&summary);
            }
            return Ok(outcome(&summary, allow_incomplete));
        }
        Err(e) if e.is_unreachable() => e.to_string(),
        Err(ClientError::Server { status, message }) if status == 404 => format!(
            "the btrfly server at {} does not know the session: {message}",
            target.client.base()
        ),
        // A refused token, a server error: the session is still there
        // and can be stopped once that is fixed.
        Err(e) => return Err(target.explain(e)),
    };
    end_locally(&home, &active, json)?;
    eprintln!(
        "btrfly: warning: {not_told}. The local {} session {} for tag {} is ended anyway; the server was not told, so nothing was summed up or sealed",
        active.mode, active.id, active.tag
    );
    Ok(ExitCode::from(1))
}

/// Forgets the active session and prints (unless `json`) the shell
/// commands that undo its exports, for `eval "$(btrfly stop)"`.
fn end_locally(home: &Path, active: &ActiveSession, json: bool) -> Result<()> {
    let undo = exports::undo_lines(active, home);
    home::clear_active(home, active)?;
    if !json {
        for line in undo {
            println!("{line}");
        }
    }
    Ok(())
}

/// How a command ended, for messages: `exited with status 2`.
fn describe_status(status: &std::process::ExitStatus) -> (String, u8) {
    if let Some(code) = status.code() {
        return (
            format!("exited with status {code}"),
            code.clamp(1, 255) as u8,
        );
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(sig) = status.signal() {
            return (
                format!("was killed by signal {sig}"),
                (128 + sig).clamp(1, 255) as u8,
            );
        }
    }
    ("failed".to_owned(), 1)
}

/// `btrfly run`: one command in a fresh session, sealed (when recording)
/// only if the command succeeded. The exit status is the command's, else
/// the session's outcome (as for `stop`).
///
/// # Errors
/// An invalid tag, the server unreachable or refusing.
pub async fn run(
    args: &ServerArgs,
    mode: ModeArg,
    tag: &str,
    force: bool,
    allow_incomplete: bool,
    caches: CacheArgs,
    command: &[String],
) -> Result<ExitCode> {
    let Some((program, rest)) = command.split_first() else {
        bail!("nothing to run: btrfly run --record --tag=T -- COMMAND [ARGS...]");
    };
    let tag = parse_tag(tag)?;
    let target = connect(args, None)?;
    let home = home::home();
    let session = open_session(&target, &home, mode, &tag, force, caches).await?;
    let env = exports::session_env(&session, &home);
    // Ctrl-C at a terminal goes to the command and to btrfly alike: let
    // the command decide, and stop the session once it ended.
    #[cfg(unix)]
    let _interrupt = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt());
    let status = tokio::process::Command::new(program)
        .args(rest)
        .envs(env)
        .status()
        .await;
    // Stop the session whatever happened to the command; a recording is
    // sealed only when the command succeeded.
    let succeeded = status.as_ref().is_ok_and(|s| s.success());
    let seal = mode == ModeArg::Record && succeeded;
    let stop = StopRequest {
        seal,
        secret: Some(session.secret.clone()),
    };
    let summary = target.client.stop(&session.id, &stop).await;
    if let Some(dir) = &session.cache_dir {
        home::remove_cache_dir(dir);
    }
    let summary = summary.map_err(|e| target.explain(e))?;
    print_summary(&summary);
    let shown = command.join(" ");
    let unsealed = if mode == ModeArg::Record {
        format!("; tag {tag} was not sealed, since its recording may be incomplete: fix the command and run it again (an unsealed tag records again without --force)")
    } else {
        String::new()
    };
    match status {
        Err(e) => {
            eprintln!("btrfly: cannot run `{shown}`: {e}{unsealed}");
            let code = if e.kind() == std::io::ErrorKind::NotFound {
                127
            } else {
                126
            };
            Ok(ExitCode::from(code))
        }
        Ok(st) if !st.success() => {
            let (how, code) = describe_status(&st);
            eprintln!("btrfly: `{shown}` {how}{unsealed}");
            Ok(ExitCode::from(code))
        }
        Ok(_) => Ok(outcome(&summary, allow_incomplete)),
    }
}

/// A time as RFC 3339 in UTC, to the second: `2026-11-30T00:37:40Z`.
pub(crate) fn rfc3339(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    let t = t.replace_nanosecond(0).unwrap_or(t);
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.to_string())
}

/// `btrfly sessions`: every active session on the server — id, tag, mode,
/// started, last seen, lease end (UTC) and counters — as a table, or JSON.
///
/// # Errors
/// The server cannot be reached or refuses the token.
pub async fn sessions(args: &ServerArgs, json: bool) -> Result<ExitCode> {
    let target = connect(args, None)?;
    let list = target
        .client
        .sessions()
        .await
        .map_err(|e| target.explain(e))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(ExitCode::SUCCESS);
    }
    if list.sessions.is_empty() {
        eprintln!("no active sessions");
        return Ok(ExitCode::SUCCESS);
    }
    let mut rows = vec![[
        "ID",
        "TAG",
        "MODE",
        "STARTED",
        "LAST SEEN",
        "EXPIRES",
        "REQUESTS",
        "HITS",
        "MISSES",
        "RECORDED",
    ]
    .map(str::to_owned)];
    for s in &list.sessions {
        rows.push([
            s.id.clone(),
            s.tag.clone(),
            s.mode.to_string(),
            rfc3339(s.started_at),
            rfc3339(s.last_seen),
            rfc3339(s.expires_at),
            s.requests.to_string(),
            s.hits.to_string(),
            s.misses.to_string(),
            s.recorded.to_string(),
        ]);
    }
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|i| rows.iter().map(|r| r[i].len()).max().unwrap_or(0))
        .collect();
    for r in &rows {
        let line: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:w$}"))
            .collect();
        println!("{}", line.join("  ").trim_end());
    }
    Ok(ExitCode::SUCCESS)
}

/// `btrfly stop --session ID`: ends any session on the server (an
/// abandoned one, someone else's), which needs a token with the `admin`
/// scope; a record session's tag is sealed when it has entries, as
/// `btrfly stop` does. The summary goes to stderr (or JSON to stdout).
/// The active session of this `BTRFLY_HOME` is not touched.
///
/// # Errors
/// The server cannot be reached, refuses the token (403 naming the admin
/// scope), or does not know the session.
pub async fn stop_session(args: &ServerArgs, id: &str, json: bool) -> Result<ExitCode> {
    let target = connect(args, None)?;
    let summary = target
        .client
        .stop(id, &StopRequest::default())
        .await
        .map_err(|e| target.explain(e))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        print_summary(&summary);
    }
    Ok(ExitCode::SUCCESS)
}

/// `btrfly tags`: every tag with its state and times.
///
/// # Errors
/// The server unreachable or refusing.
pub async fn tags(args: &ServerArgs, json: bool) -> Result<ExitCode> {
    let target = connect(args, None)?;
    let list = target.client.tags().await.map_err(|e| target.explain(e))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(ExitCode::SUCCESS);
    }
    if list.tags.is_empty() {
        eprintln!("no tags recorded yet");
        return Ok(ExitCode::SUCCESS);
    }
    let mut rows = vec![[
        "TAG".to_owned(),
        "STATE".to_owned(),
        "CREATED".to_owned(),
        "SEALED".to_owned(),
    ]];
    for t in &list.tags {
        rows.push([
            t.tag.to_string(),
            if t.sealed { "sealed" } else { "unsealed" }.to_owned(),
            rfc3339(t.created_at),
            t.sealed_at
                .filter(|_| t.sealed)
                .map_or_else(|| "-".to_owned(), rfc3339),
        ]);
    }
    let width = |i: usize| rows.iter().map(|r| r[i].len()).max().unwrap_or(0);
    let widths = [width(0), width(1), width(2)];
    for r in &rows {
        println!(
            "{:w0$}  {:w1$}  {:w2$}  {}",
            r[0],
            r[1],
            r[2],
            r[3],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2]
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `btrfly tag show`: one tag and its entries.
///
/// # Errors
/// An invalid or unknown tag, the server unreachable or refusing.
pub async fn tag_show(args: &ServerArgs, tag: &str, json: bool) -> Result<ExitCode> {
    let tag = parse_tag(tag)?;
    let target = connect(args, None)?;
    let show = target
        .client
        .tag(&tag)
        .await
        .map_err(|e| target.explain(e))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&show)?);
        return Ok(ExitCode::SUCCESS);
    }
    let m = &show.meta;
    let sealed = match (m.sealed, m.sealed_at) {
        (true, Some(at)) => format!("sealed {}", rfc3339(at)),
        (true, None) => "sealed".to_owned(),
        (false, _) => "unsealed".to_owned(),
    };
    let n = show.entries.len();
    println!(
        "tag {}: created {}, {sealed}, {n} {}",
        m.tag,
        rfc3339(m.created_at),
        if n == 1 { "entry" } else { "entries" }
    );
    for e in &show.entries {
        println!();
        println!("{} {}", e.method, e.url);
        println!("  status: {}", e.status);
        println!("  size: {}", e.size);
        println!("  sha256: {}", e.sha256);
        if let Some(purl) = &e.purl {
            println!("  package: {purl}");
        }
        println!("  key: {}", e.key);
        println!("  recorded: {}", rfc3339(e.recorded_at));
        println!("  headers:");
        for (name, value) in &e.headers {
            println!("    {name}: {value}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `btrfly ca export`: the CA certificate, PEM.
///
/// # Errors
/// The server unreachable.
pub async fn ca_export(args: &ServerArgs) -> Result<ExitCode> {
    let target = connect(args, None)?;
    let pem = target
        .client
        .ca_pem()
        .await
        .map_err(|e| target.explain(e))
        .context("fetching the CA certificate")?;
    print!("{pem}");
    Ok(ExitCode::SUCCESS)
}
