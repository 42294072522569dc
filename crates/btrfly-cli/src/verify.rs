//! `btrfly verify`: re-hash the stored blobs against their addresses,
//! name the entries of every blob that is corrupt or missing, and sweep
//! the temp objects crashed writes left behind.
//!
//! It reads the store directly, with the server's configuration: on the
//! server's machine, or on any machine holding the bucket's credentials
//! (an S3 or GCS store is verified where it is cheapest to read it). It
//! needs no running server.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use btrfly_config::Config;
use btrfly_core::{Sha256, Tag};
use btrfly_store::{EntryRef, Store, StoreError};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// What `btrfly verify` checks.
pub(crate) struct VerifyArgs {
    /// The server's configuration (the store to read).
    pub config: Option<PathBuf>,
    /// Only the blobs these tags use (every stored blob when empty).
    pub tags: Vec<String>,
    /// Temp objects older than this are removed.
    pub sweep_age: Duration,
}

/// One blob that is not as recorded.
enum Fault {
    /// Its bytes hash to another digest.
    Corrupt(Sha256),
    /// It is not in the store.
    Missing,
    /// It could not be read.
    Unreadable(String),
}

/// Runs `btrfly verify`; exit status 1 when any blob is corrupt, missing
/// or unreadable.
///
/// # Errors
/// An unreadable config, an unusable store, a tag that does not exist.
pub(crate) async fn verify(args: VerifyArgs) -> Result<ExitCode> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let config = match &args.config {
        Some(p) => Config::load(p)?,
        None => Config::default(),
    };
    let store = Store::open_with(
        &crate::serve::store_options(&config)?,
        crate::serve::store_timeouts(&config),
    )
    .context("storage is not usable")?;
    let tags: Option<Vec<Tag>> = if args.tags.is_empty() {
        None
    } else {
        let mut list = Vec::new();
        for t in &args.tags {
            let tag = Tag::new(t)?;
            if store.tag_meta(&tag).await?.is_none() {
                anyhow::bail!(
                    "tag {tag} is not in the store ({} at {})",
                    store.backend(),
                    store.location()
                );
            }
            list.push(tag);
        }
        Some(list)
    };

    let sweep = store
        .sweep_tmp(args.sweep_age)
        .await
        .context("sweeping temp objects")?;

    let users = store
        .blob_users(tags.as_deref())
        .await
        .context("reading the tags' entries")?;
    // Every blob the entries use, and (for the whole store) every stored
    // blob, used or not: a corrupt unused blob would be served to the
    // next recording of the same bytes.
    let mut todo: BTreeMap<Sha256, u64> = users.keys().map(|s| (s.clone(), 0)).collect();
    if tags.is_none() {
        for b in store.list_blobs().await.context("listing blobs")? {
            todo.insert(b.sha256, b.size);
        }
    }
    for (sha256, size) in todo.iter_mut() {
        if *size == 0 {
            *size = store.blob_size(sha256).await?.unwrap_or(0);
        }
    }
    let total: u64 = todo.values().sum();

    let bar = ProgressBar::with_draw_target(Some(total), draw_target());
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} verifying [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    let mut faults: Vec<(Sha256, Fault)> = Vec::new();
    let mut checked = 0usize;
    for (sha256, size) in &todo {
        bar.set_message(format!("{}…", &sha256[..12]));
        let before = bar.position();
        let result = store.verify_blob_with(sha256, |n| bar.inc(n)).await;
        // a failed read counts its whole size as done
        bar.set_position(before + size);
        checked += 1;
        match result {
            Ok(_) => {}
            Err(StoreError::DigestMismatch { actual, .. }) => {
                faults.push((sha256.clone(), Fault::Corrupt(actual)));
            }
            Err(StoreError::MissingBlob(_)) => faults.push((sha256.clone(), Fault::Missing)),
            Err(e) => faults.push((sha256.clone(), Fault::Unreadable(e.to_string()))),
        }
    }
    bar.finish_and_clear();

    let scope = match &tags {
        Some(t) => format!(
            "tag(s) {}",
            t.iter().map(Tag::as_str).collect::<Vec<_>>().join(", ")
        ),
        None => "the whole store".to_owned(),
    };
    for (sha256, fault) in &faults {
        let what = match fault {
            Fault::Corrupt(actual) => format!(
                "corrupt blob {sha256}: its bytes hash to {actual}; replay cuts every response that uses it"
            ),
            Fault::Missing => format!(
                "missing blob {sha256}: replay answers 500 to every request that uses it"
            ),
            Fault::Unreadable(e) => format!("unreadable blob {sha256}: {e}"),
        };
        println!("{what}");
        print_users(users.get(sha256));
    }
    eprintln!(
        "btrfly: verified {checked} blob(s), {} in {scope} ({} at {}): {} corrupt, {} missing, {} unreadable",
        human_bytes(total),
        store.backend(),
        store.location(),
        faults
            .iter()
            .filter(|(_, f)| matches!(f, Fault::Corrupt(_)))
            .count(),
        faults
            .iter()
            .filter(|(_, f)| matches!(f, Fault::Missing))
            .count(),
        faults
            .iter()
            .filter(|(_, f)| matches!(f, Fault::Unreadable(_)))
            .count(),
    );
    eprintln!(
        "btrfly: swept {} temp object(s) older than {}s; kept {} younger one(s) (a write may be in flight)",
        sweep.removed.len(),
        args.sweep_age.as_secs(),
        sweep.kept
    );
    if faults.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!(
            "btrfly: the store does not hold what was recorded: record the affected tags again (btrfly start record --force --tag=TAG) or restore the blobs from a backup"
        );
        Ok(ExitCode::from(1))
    }
}

fn print_users(users: Option<&Vec<EntryRef>>) {
    match users {
        Some(list) if !list.is_empty() => {
            println!("  used by:");
            for u in list {
                println!("    {u}");
            }
        }
        _ => println!("  used by no entry of the tags checked"),
    }
}

/// A progress bar for a person at a terminal; nothing in a pipe or a log.
fn draw_target() -> ProgressDrawTarget {
    if std::io::stderr().is_terminal() {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    }
}

fn human_bytes(n: u64) -> String {
    indicatif::HumanBytes(n).to_string()
}
