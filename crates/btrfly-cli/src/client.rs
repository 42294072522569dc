//! The CLI side: sessions, tags and the CA, through the control API.

use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use btrfly_control::api::{StartRequest, Summary};
use btrfly_control::ControlClient;
use btrfly_core::Mode;

use crate::home::{self, ActiveSession};
use crate::{ModeArg, ServerArgs};

/// The token: `--token`/`BTRFLY_TOKEN`, else the one the server wrote into
/// its data dir when this is the server's machine.
fn token(args: &ServerArgs) -> Option<String> {
    if let Some(t) = args.token.clone().filter(|t| !t.is_empty()) {
        return Some(t);
    }
    let path = btrfly_config::default_data_dir().join("token");
    std::fs::read_to_string(path)
        .ok()
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty())
}

fn client(args: &ServerArgs) -> ControlClient {
    ControlClient::new(&args.server, token(args))
}

async fn open_session(
    args: &ServerArgs,
    mode: ModeArg,
    tag: &str,
    force: bool,
) -> Result<ActiveSession> {
    let started = client(args)
        .start(&StartRequest {
            tag: tag.to_owned(),
            mode: mode.into(),
            force,
        })
        .await?;
    let session = ActiveSession {
        server: args.server.clone(),
        id: started.id,
        secret: started.secret,
        tag: started.tag,
        mode: started.mode,
        proxy: started.proxy,
    };
    home::write_bundles(&home::home(), &started.ca_pem)?;
    Ok(session)
}

fn print_exports(s: &ActiveSession) {
    let home = home::home();
    let env = home::session_env(s, &home.join("ca.pem"), &home.join("ca-bundle.pem"));
    for (k, v) in env {
        println!("{}", home::export_line(k, &v));
    }
}

pub async fn start(args: &ServerArgs, mode: ModeArg, tag: &str, force: bool) -> Result<ExitCode> {
    let home = home::home();
    if let Some(active) = home::load_active(&home)? {
        bail!(
            "a {} session for tag {} is already active; run `btrfly stop {}` first",
            active.mode,
            active.tag,
            active.mode
        );
    }
    let session = open_session(args, mode, tag, force).await?;
    home::save_active(&home, &session)?;
    print_exports(&session);
    eprintln!(
        "btrfly: {} session {} for tag {} started; exports printed for eval",
        session.mode, session.id, session.tag
    );
    Ok(ExitCode::SUCCESS)
}

pub async fn env() -> Result<ExitCode> {
    let Some(active) = home::load_active(&home::home())? else {
        bail!("no active session: start one with `btrfly start record|playback --tag=TAG`");
    };
    print_exports(&active);
    Ok(ExitCode::SUCCESS)
}

fn print_summary(s: &Summary, to_stderr: bool) {
    let mut out = String::new();
    out.push_str(&format!("{} session {} for tag {}\n", s.mode, s.id, s.tag));
    out.push_str(&format!("requests: {}\n", s.requests));
    out.push_str(&format!("hits: {}\n", s.hits));
    out.push_str(&format!("misses: {}\n", s.misses));
    out.push_str(&format!("recorded: {}\n", s.recorded));
    out.push_str(&format!("bytes: {}\n", s.bytes));
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
    if to_stderr {
        eprint!("{out}");
    } else {
        print!("{out}");
    }
}

fn outcome(s: &Summary, allow_incomplete: bool) -> ExitCode {
    if s.mode == Mode::Playback && s.misses > 0 {
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

pub async fn stop(
    args: &ServerArgs,
    mode: Option<ModeArg>,
    json: bool,
    allow_incomplete: bool,
) -> Result<ExitCode> {
    let home = home::home();
    let Some(active) = home::load_active(&home)? else {
        bail!(
            "no active session to stop (start one with `btrfly start record|playback --tag=TAG`)"
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
    let mut server = args.clone();
    server.server = active.server.clone();
    let summary = match client(&server).stop(&active.id).await {
        Ok(s) => s,
        Err(btrfly_control::ClientError::Server(msg)) if msg.contains("no session") => {
            home::clear_active(&home)?;
            bail!("{msg}; forgot the local session file");
        }
        Err(e) => return Err(e.into()),
    };
    home::clear_active(&home)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        print_summary(&summary, false);
    }
    Ok(outcome(&summary, allow_incomplete))
}

pub async fn run(
    args: &ServerArgs,
    mode: ModeArg,
    tag: &str,
    force: bool,
    allow_incomplete: bool,
    command: &[String],
) -> Result<ExitCode> {
    let Some((program, rest)) = command.split_first() else {
        bail!("nothing to run: btrfly run --record --tag=T -- COMMAND [ARGS...]");
    };
    let session = open_session(args, mode, tag, force).await?;
    let home = home::home();
    let env = home::session_env(&session, &home.join("ca.pem"), &home.join("ca-bundle.pem"));
    let status = tokio::process::Command::new(program)
        .args(rest)
        .envs(env)
        .status()
        .await;
    // Stop the session whatever happened to the command.
    let summary = client(args).stop(&session.id).await;
    let status = status.with_context(|| format!("running {program}"))?;
    let summary = summary?;
    print_summary(&summary, true);
    if !status.success() {
        let code = status.code().unwrap_or(1).clamp(1, 255) as u8;
        return Ok(ExitCode::from(code));
    }
    Ok(outcome(&summary, allow_incomplete))
}

pub async fn tags(args: &ServerArgs, json: bool) -> Result<ExitCode> {
    let list = client(args).tags().await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(ExitCode::SUCCESS);
    }
    if list.tags.is_empty() {
        eprintln!("no tags recorded yet");
    }
    for t in &list.tags {
        let state = if t.sealed { "sealed" } else { "recording" };
        println!("{}\t{}\t{}", t.tag, state, t.created_at);
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn tag_show(args: &ServerArgs, tag: &str, json: bool) -> Result<ExitCode> {
    let show = client(args).tag(tag).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&show)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "tag {} ({}), {} entries",
        show.meta.tag,
        if show.meta.sealed {
            "sealed"
        } else {
            "recording"
        },
        show.entries.len()
    );
    for e in &show.entries {
        println!(
            "{}\t{}\t{}\t{}\t{}",
            e.method, e.status, e.size, e.sha256, e.url
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn ca_export(args: &ServerArgs) -> Result<ExitCode> {
    let pem = client(args).ca_pem().await?;
    print!("{pem}");
    Ok(ExitCode::SUCCESS)
}
