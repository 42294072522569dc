//! `btrfly`: the gateway server and the CLI that drives it.

use std::path::PathBuf;
use std::process::ExitCode;

use btrfly_client::args::{CacheArgs, ModeArg, ServerArgs};
use btrfly_client::{archive, commands as client};
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

mod serve;
mod verify;

#[derive(Parser)]
#[command(
    name = "btrfly",
    version,
    about = "The HTTP time machine for reproducible builds: record every HTTP(S) response a build receives under a tag, and play the build back later with every upstream gone."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway: proxy, control API (and DNS when configured).
    Serve {
        /// TOML configuration; without one: fs storage and the CA in the
        /// default data dir, proxy on 127.0.0.1:3128, control API on
        /// 127.0.0.1:3129.
        #[arg(long, env = "BTRFLY_CONFIG", value_name = "FILE")]
        config: Option<PathBuf>,
        /// How log lines look on stderr: human (text; colour on a
        /// terminal), or json (one JSON object a line, for log pipelines).
        /// Either way each request ends with one `request` line naming its
        /// session, tag, adapter, key, outcome, status and duration.
        #[arg(
            long,
            env = "BTRFLY_LOG_FORMAT",
            value_name = "FORMAT",
            default_value = "human"
        )]
        log_format: serve::LogFormat,
    },
    /// Start a session and print shell exports for it: eval "$(btrfly start record --tag=T)".
    Start {
        /// record, or playback.
        mode: ModeArg,
        /// The tag to record into or play back from (A-Z a-z 0-9 . _ -).
        #[arg(long, value_name = "TAG")]
        tag: String,
        /// Record into a sealed tag again (its entries are kept; the ones
        /// recorded again are replaced).
        #[arg(long)]
        force: bool,
        /// Transparent mode for this whole machine (as root): bind the
        /// session to this machine's address on the gateway, point the
        /// resolver at btrfly's DNS and trust btrfly's CA in the system
        /// store; prints what it changed. `btrfly stop` puts it all back.
        #[arg(long)]
        system: bool,
        /// With --system: the address the gateway sees this machine's
        /// connections come from, when it is not the one the control API
        /// sees (NAT).
        #[arg(long, value_name = "IP", requires = "system")]
        client_ip: Option<std::net::IpAddr>,
        #[command(flatten)]
        caches: CacheArgs,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// What is configured on this machine now: the active session, the
    /// resolver and the trust store (transparent mode).
    Status,
    /// Stop the active session and print its summary (to stderr), and on
    /// stdout the shell commands that undo the session's exports:
    /// eval "$(btrfly stop)". A playback with misses exits 1 and lists them.
    Stop {
        /// The mode of the session to stop (checked against the active one).
        mode: Option<ModeArg>,
        /// Stop this session instead of the active one: any session on the
        /// server, e.g. an abandoned one (`btrfly sessions` lists them).
        /// Needs a token with the admin scope.
        #[arg(long, value_name = "ID", conflicts_with_all = ["mode", "allow_incomplete"])]
        session: Option<String>,
        /// Print the summary as JSON on stdout (and no shell commands).
        #[arg(long)]
        json: bool,
        /// Exit 0 from a recording even when some answers the build received
        /// could not be recorded (they are still listed under problems).
        #[arg(long)]
        allow_incomplete: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Print the exports of the active session again (for another shell).
    Env,
    /// Run one command inside a session: btrfly run --record --tag=T -- make.
    Run {
        /// Record the command's downloads into the tag; the tag is sealed
        /// only when the command succeeds.
        #[arg(long, conflicts_with = "playback")]
        record: bool,
        /// Play the command's downloads back from the tag.
        #[arg(long)]
        playback: bool,
        /// The tag to record into or play back from (A-Z a-z 0-9 . _ -).
        #[arg(long, value_name = "TAG")]
        tag: String,
        /// Record into a sealed tag again.
        #[arg(long)]
        force: bool,
        /// Like `stop --allow-incomplete`.
        #[arg(long)]
        allow_incomplete: bool,
        #[command(flatten)]
        caches: CacheArgs,
        #[command(flatten)]
        server: ServerArgs,
        /// The command and its arguments, after `--`.
        #[arg(
            trailing_var_arg = true,
            required = true,
            allow_hyphen_values = true,
            value_name = "COMMAND"
        )]
        command: Vec<String>,
    },
    /// List the active sessions: id, tag, mode, started, last seen and
    /// lease end (UTC), counters. A session not heard of for the server's
    /// `[sessions] lease` is ended (see the README, "Sessions").
    Sessions {
        /// Print the list as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// List the recorded tags: name, state, created and sealed times (UTC).
    Tags {
        /// Print the list as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Write a tag as a WARC 1.1 file (one gzip member per record): the
    /// file appears only when the whole export arrived.
    Export {
        /// The tag to export.
        #[arg(long, value_name = "TAG")]
        tag: String,
        /// The file to write (`-`: stdout).
        #[arg(short = 'o', long, value_name = "FILE")]
        output: PathBuf,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Load a WARC file (.warc or .warc.gz, btrfly's or another tool's) into
    /// a new sealed tag that plays back like a recording.
    Import {
        /// The WARC file.
        file: PathBuf,
        /// The new tag (must not exist).
        #[arg(long, value_name = "TAG")]
        tag: String,
        /// Print the import summary as JSON on stdout.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Inspect one tag.
    Tag {
        #[command(subcommand)]
        action: TagAction,
    },
    /// Check the store: re-hash every blob against its address, name the
    /// entries of each corrupt or missing one, and sweep temp objects left
    /// by crashed writes. Reads the store with the server's config (no
    /// server needed). Exits 1 when anything is wrong.
    Verify {
        /// The server's TOML configuration (the store to check).
        #[arg(long, env = "BTRFLY_CONFIG", value_name = "FILE")]
        config: Option<PathBuf>,
        /// Check only the blobs this tag uses (repeatable); without it,
        /// every blob in the store.
        #[arg(long = "tag", value_name = "TAG")]
        tags: Vec<String>,
        /// Remove temp objects (under tmp/) older than this many seconds;
        /// younger ones may be a replica's write in flight.
        #[arg(long, value_name = "SECONDS", default_value_t = btrfly_store::DEFAULT_SWEEP_AGE.as_secs())]
        sweep_age: u64,
    },
    /// Control API tokens (admin scope): create, list, revoke.
    Token {
        #[command(subcommand)]
        action: TokenAction,
    },
    /// The explicit mirror: artifacts declared on purpose, with a note
    /// saying why, fetched by the server and never purged; playback
    /// answers from it what a tag did not record.
    Mirror {
        #[command(subcommand)]
        action: MirrorAction,
    },
    /// The certificate authority btrfly intercepts TLS with.
    Ca {
        #[command(subcommand)]
        action: CaAction,
    },
}

#[derive(Subcommand)]
enum TagAction {
    /// Print a tag's entries: method, URL, status, size, sha256, key and
    /// response headers.
    Show {
        /// The tag.
        tag: String,
        /// Print the tag as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Print a tag's bill of materials: what the build downloaded, with
    /// sha256, size, time and package identities (purl) where known.
    Manifest {
        /// The tag.
        tag: String,
        /// json, cyclonedx (CycloneDX 1.5) or spdx (SPDX 2.3).
        #[arg(long, value_enum, default_value = "json")]
        format: ManifestFormat,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Compare two tags: entries added, removed and changed (same request,
    /// another body or status). Exit 0 when equal, 1 when different, 2 on
    /// error.
    Diff {
        /// The tag compared against (the earlier one).
        a: String,
        /// The other tag.
        b: String,
        /// Print the diff as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
}

/// Formats of `btrfly tag manifest`.
#[derive(Clone, Copy, clap::ValueEnum)]
enum ManifestFormat {
    /// btrfly's plain JSON: every entry with URL, sha256, size, time, purl.
    Json,
    /// A CycloneDX 1.5 SBOM (JSON).
    Cyclonedx,
    /// An SPDX 2.3 document (JSON).
    Spdx,
}

impl ManifestFormat {
    fn name(self) -> &'static str {
        match self {
            ManifestFormat::Json => "json",
            ManifestFormat::Cyclonedx => "cyclonedx",
            ManifestFormat::Spdx => "spdx",
        }
    }
}

#[derive(Subcommand)]
enum TokenAction {
    /// Create a token and print it (only this once) on stdout.
    Create {
        /// Who holds it (A-Z a-z 0-9 . _ - @); mirror entries it adds
        /// record this name.
        #[arg(long, value_name = "NAME")]
        name: String,
        /// read: look at tags, sessions, the mirror; record: also start and
        /// stop sessions and add mirror entries; admin: also manage tokens.
        #[arg(long, value_name = "SCOPE")]
        scope: ScopeArg,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// List the tokens: id, name, scope, created, by whom, live or revoked.
    Ls {
        /// Print the list as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Revoke a token: it is refused from then on.
    Revoke {
        /// The token's id (from `btrfly token ls`).
        id: String,
        #[command(flatten)]
        server: ServerArgs,
    },
}

#[derive(Subcommand)]
enum MirrorAction {
    /// Declare a file (an http(s) URL) or an image
    /// (REGISTRY/REPOSITORY@sha256:DIGEST; never by tag only) and print the
    /// new entry's id. The server fetches it in the background.
    Add {
        /// The URL, or the image by digest.
        source: String,
        /// Why it is needed (kept with the entry, with who added it and
        /// when).
        #[arg(long, value_name = "TEXT")]
        note: String,
        /// The sha256 the file's body must have; a body that differs ends
        /// the entry `failed`.
        #[arg(long, value_name = "HEX")]
        sha256: Option<String>,
        /// Wait until the server has fetched it: exit status 0 when it is
        /// stored, 1 when it failed (the reason on stderr).
        #[arg(long)]
        wait: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// List the entries: id, state, added, by whom, source, note.
    Ls {
        /// Print the list as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Show one entry: source, state, why it failed, note.
    Show {
        /// The entry's id (from `btrfly mirror ls`).
        id: String,
        /// Print the entry as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
}

/// A token's scope on the command line.
#[derive(Clone, Copy, clap::ValueEnum)]
enum ScopeArg {
    /// Look at tags, sessions, the mirror, the web UI.
    Read,
    /// Also start and stop sessions, add mirror entries.
    Record,
    /// Also manage tokens.
    Admin,
}

impl From<ScopeArg> for btrfly_core::Scope {
    fn from(s: ScopeArg) -> Self {
        match s {
            ScopeArg::Read => btrfly_core::Scope::Read,
            ScopeArg::Record => btrfly_core::Scope::Record,
            ScopeArg::Admin => btrfly_core::Scope::Admin,
        }
    }
}

#[derive(Subcommand)]
enum CaAction {
    /// Print the CA certificate (PEM) for clients to trust.
    Export {
        #[command(flatten)]
        server: ServerArgs,
    },
}

/// Where the `server` argument of the (sub)command that ran came from.
fn server_source(matches: &clap::ArgMatches) -> Option<&'static str> {
    let mut m = matches;
    while let Some((_, sub)) = m.subcommand() {
        m = sub;
    }
    match m.try_get_raw("server").ok().flatten()?.len() {
        0 => None,
        _ => match m.value_source("server")? {
            clap::parser::ValueSource::EnvVariable => Some("BTRFLY_SERVER"),
            _ => Some("--server"),
        },
    }
}

fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    let source = server_source(&matches);
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(c) => c,
        Err(e) => e.exit(),
    };
    let with_source = |mut s: ServerArgs| {
        s.server_source = source;
        s
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("btrfly: starting the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Serve { config, log_format } => serve::serve(config, log_format).await,
            Command::Start {
                mode,
                tag,
                force,
                system: true,
                client_ip,
                caches: _,
                server,
            } => {
                btrfly_client::system::start_system(
                    &with_source(server),
                    mode,
                    &tag,
                    force,
                    client_ip,
                )
                .await
            }
            Command::Start {
                mode,
                tag,
                force,
                system: false,
                client_ip: _,
                caches,
                server,
            } => client::start(&with_source(server), mode, &tag, force, caches).await,
            Command::Status => btrfly_client::system::status(),
            Command::Stop {
                session: Some(id),
                json,
                server,
                ..
            } => client::stop_session(&with_source(server), &id, json).await,
            Command::Stop {
                mode,
                json,
                allow_incomplete,
                server,
                session: None,
            } => client::stop(&with_source(server), mode, json, allow_incomplete).await,
            Command::Env => client::env().await,
            Command::Run {
                record,
                playback,
                tag,
                force,
                allow_incomplete,
                caches,
                server,
                command,
            } => {
                let mode = match (record, playback) {
                    (true, _) => ModeArg::Record,
                    (_, true) => ModeArg::Playback,
                    _ => usage_error(
                        "run",
                        "btrfly run needs --record (record the command's downloads into the tag) or --playback (play them back from it)",
                    ),
                };
                client::run(
                    &with_source(server),
                    mode,
                    &tag,
                    force,
                    allow_incomplete,
                    caches,
                    &command,
                )
                .await
            }
            Command::Tags { json, server } => client::tags(&with_source(server), json).await,
            Command::Sessions { json, server } => {
                client::sessions(&with_source(server), json).await
            }
            Command::Tag {
                action: TagAction::Show { tag, json, server },
            } => client::tag_show(&with_source(server), &tag, json).await,
            Command::Export {
                tag,
                output,
                server,
            } => archive::export(&with_source(server), &tag, &output).await,
            Command::Import {
                file,
                tag,
                json,
                server,
            } => archive::import(&with_source(server), &file, &tag, json).await,
            Command::Tag {
                action:
                    TagAction::Manifest {
                        tag,
                        format,
                        server,
                    },
            } => archive::manifest(&with_source(server), &tag, format.name()).await,
            Command::Tag {
                action: TagAction::Diff { a, b, json, server },
            } => Ok(archive::diff(&with_source(server), &a, &b, json).await),
            Command::Verify {
                config,
                tags,
                sweep_age,
            } => {
                verify::verify(verify::VerifyArgs {
                    config,
                    tags,
                    sweep_age: std::time::Duration::from_secs(sweep_age),
                })
                .await
            }
            Command::Token { action } => match action {
                TokenAction::Create {
                    name,
                    scope,
                    server,
                } => btrfly_client::tokens::create(&with_source(server), &name, scope.into()).await,
                TokenAction::Ls { json, server } => {
                    btrfly_client::tokens::ls(&with_source(server), json).await
                }
                TokenAction::Revoke { id, server } => {
                    btrfly_client::tokens::revoke(&with_source(server), &id).await
                }
            },
            Command::Mirror { action } => match action {
                MirrorAction::Add {
                    source,
                    note,
                    sha256,
                    wait,
                    server,
                } => {
                    btrfly_client::mirror::add(
                        &with_source(server),
                        &source,
                        sha256.as_deref(),
                        &note,
                        wait,
                    )
                    .await
                }
                MirrorAction::Ls { json, server } => {
                    btrfly_client::mirror::ls(&with_source(server), json).await
                }
                MirrorAction::Show { id, json, server } => {
                    btrfly_client::mirror::show(&with_source(server), &id, json).await
                }
            },
            Command::Ca {
                action: CaAction::Export { server },
            } => client::ca_export(&with_source(server)).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("btrfly: {}", error_chain(&e));
            ExitCode::FAILURE
        }
    }
}

/// Exits like clap does for a usage error, with the usage of `sub`.
fn usage_error(sub: &str, message: &str) -> ! {
    let mut cli = Cli::command();
    cli.build();
    let kind = clap::error::ErrorKind::MissingRequiredArgument;
    match cli.find_subcommand_mut(sub) {
        Some(cmd) => cmd.error(kind, message).exit(),
        None => cli.error(kind, message).exit(),
    }
}

/// The error and its causes joined by `: `, leaving out a cause whose text
/// the message already holds (many errors print their source themselves).
fn error_chain(e: &anyhow::Error) -> String {
    let mut msg = e.to_string();
    for cause in e.chain().skip(1) {
        let text = cause.to_string();
        if !msg.contains(&text) {
            msg.push_str(": ");
            msg.push_str(&text);
        }
    }
    msg
}
