//! `btrfly mirror add|ls|show`: the explicit mirror's entries, declared
//! with a note, fetched by the server in the background.

use std::process::ExitCode;

use anyhow::Result;
use btrfly_core::api::MirrorAddRequest;
use btrfly_core::{MirrorEntry, MirrorSource, MirrorState};

use crate::args::ServerArgs;
use crate::commands::rfc3339;
use crate::target::connect;
use crate::tokens::print_table;

/// `btrfly mirror add SOURCE --note N [--sha256 HEX] [--wait]`: declares a
/// file URL or an image by digest; prints the new entry's id on stdout. The
/// source is checked here first (a tag-only image is refused with why
/// digests are required), then by the server. With `wait`, follows the
/// entry until the server has fetched it (a spinner on a terminal, quiet
/// in pipes): exit status 0 when `stored`, 1 when `failed` (the reason on
/// stderr).
///
/// # Errors
/// A source [`MirrorSource::parse`] refuses, a blank note, a calling token
/// without the record scope, the server unreachable.
pub async fn add(
    args: &ServerArgs,
    source: &str,
    sha256: Option<&str>,
    note: &str,
    wait: bool,
) -> Result<ExitCode> {
    MirrorSource::parse(source, sha256)?;
    if note.trim().is_empty() {
        anyhow::bail!("a mirror entry needs a note saying why it is needed (--note \"…\")");
    }
    let target = connect(args, None)?;
    let entry = target
        .client
        .mirror_add(&MirrorAddRequest {
            source: source.to_owned(),
            sha256: sha256.map(str::to_owned),
            note: note.to_owned(),
        })
        .await
        .map_err(|e| target.explain(e))?;
    println!("{}", entry.id);
    if !wait {
        eprintln!(
            "btrfly: mirror entry {} added ({}); the server fetches it in the background: `btrfly mirror show {}`",
            entry.id, entry.source, entry.id
        );
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!("btrfly: mirror entry {} added ({})", entry.id, entry.source);
    let id = entry.id.clone();
    let progress = spinner(&format!("fetching {}", entry.source));
    let done = loop {
        let now = target
            .client
            .mirror_entry(&id)
            .await
            .map_err(|e| target.explain(e))?;
        match now.state {
            MirrorState::Pending => {
                let why = now
                    .reason
                    .as_deref()
                    .map(|r| format!(" (last try: {})", first_line(r)))
                    .unwrap_or_default();
                progress.set_message(format!(
                    "fetching {}: attempt {}{why}",
                    now.source,
                    now.attempts.max(1)
                ));
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            }
            _ => break now,
        }
    };
    progress.finish_and_clear();
    if done.state == MirrorState::Stored {
        eprintln!("btrfly: mirror entry {id} stored");
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!(
            "btrfly: mirror entry {id} failed: {}",
            done.reason.as_deref().unwrap_or("no reason given")
        );
        Ok(ExitCode::FAILURE)
    }
}

/// A spinner with a message on a terminal; hidden in pipes and files.
fn spinner(what: &str) -> indicatif::ProgressBar {
    use std::io::IsTerminal;
    if !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_message(what.to_owned());
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    bar
}

/// `btrfly mirror ls [--json]`: every entry, oldest first.
///
/// # Errors
/// A calling token without the read scope, the server unreachable.
pub async fn ls(args: &ServerArgs, json: bool) -> Result<ExitCode> {
    let target = connect(args, None)?;
    let list = target
        .client
        .mirror_list()
        .await
        .map_err(|e| target.explain(e))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(ExitCode::SUCCESS);
    }
    let mut rows = vec![["ID", "STATE", "ADDED", "BY", "SOURCE", "NOTE"]
        .map(str::to_owned)
        .to_vec()];
    for e in &list.entries {
        rows.push(vec![
            e.id.clone(),
            e.state.to_string(),
            rfc3339(e.added_at),
            e.added_by.clone(),
            e.source.to_string(),
            first_line(&e.note),
        ]);
    }
    print_table(&rows);
    Ok(ExitCode::SUCCESS)
}

fn first_line(note: &str) -> String {
    let line = note.lines().next().unwrap_or_default();
    let short: String = line.chars().take(60).collect();
    if short.len() < note.len() {
        format!("{short}…")
    } else {
        short
    }
}

/// `btrfly mirror show ID [--json]`: one entry, with its note, state and
/// the reason of a failure.
///
/// # Errors
/// An unknown id, a calling token without the read scope, the server
/// unreachable.
pub async fn show(args: &ServerArgs, id: &str, json: bool) -> Result<ExitCode> {
    let target = connect(args, None)?;
    let entry = target
        .client
        .mirror_entry(id)
        .await
        .map_err(|e| target.explain(e))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&entry)?);
    } else {
        print_entry(&entry);
    }
    Ok(ExitCode::SUCCESS)
}

fn print_entry(e: &MirrorEntry) {
    println!("id:       {}", e.id);
    match &e.source {
        MirrorSource::Url { url, sha256 } => {
            println!("url:      {url}");
            if let Some(d) = sha256 {
                println!("sha256:   {d}");
            }
        }
        MirrorSource::Image { .. } => println!("image:    {}", e.source),
    }
    println!("state:    {}", e.state);
    if let Some(r) = &e.reason {
        println!("reason:   {r}");
    }
    println!("attempts: {}", e.attempts);
    println!("added:    {} by {}", rfc3339(e.added_at), e.added_by);
    println!("updated:  {}", rfc3339(e.updated_at));
    println!("note:");
    for line in e.note.lines() {
        println!("  {line}");
    }
}
