//! `btrfly`: the gateway server and the CLI that drives it.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

mod client;
mod home;
mod serve;

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

#[derive(Args, Clone)]
pub struct ServerArgs {
    /// Control API of the btrfly server.
    #[arg(
        long,
        env = "BTRFLY_SERVER",
        default_value = "http://127.0.0.1:3129",
        global = true
    )]
    pub server: String,
    /// Control token; on the server's own machine it is read from
    /// <data_dir>/token when not given.
    #[arg(long, env = "BTRFLY_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<String>,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq, Debug)]
pub enum ModeArg {
    Record,
    Playback,
}

impl From<ModeArg> for btrfly_core::Mode {
    fn from(m: ModeArg) -> Self {
        match m {
            ModeArg::Record => btrfly_core::Mode::Record,
            ModeArg::Playback => btrfly_core::Mode::Playback,
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway: proxy, control API (and DNS when configured).
    Serve {
        /// TOML configuration; without one, fs storage in the data dir.
        #[arg(long, env = "BTRFLY_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Start a session and print shell exports for it: eval "$(btrfly start record --tag=T)".
    Start {
        mode: ModeArg,
        #[arg(long)]
        tag: String,
        /// Record into a sealed tag again.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Stop the active session and print its summary; a playback with
    /// misses exits 1 and lists them.
    Stop {
        mode: Option<ModeArg>,
        /// Print the summary as JSON.
        #[arg(long)]
        json: bool,
        /// Exit 0 from a recording even when some answers the build received
        /// could not be recorded (they are still listed under problems).
        #[arg(long)]
        allow_incomplete: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Print the exports of the active session again.
    Env,
    /// Run one command inside a session: btrfly run --record --tag=T -- make.
    Run {
        #[arg(
            long,
            conflicts_with = "playback",
            required_unless_present = "playback"
        )]
        record: bool,
        #[arg(long)]
        playback: bool,
        #[arg(long)]
        tag: String,
        #[arg(long)]
        force: bool,
        /// Like `stop --allow-incomplete`.
        #[arg(long)]
        allow_incomplete: bool,
        #[command(flatten)]
        server: ServerArgs,
        #[arg(trailing_var_arg = true, required = true, allow_hyphen_values = true)]
        command: Vec<String>,
    },
    /// List the recorded tags.
    Tags {
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
    /// The certificate authority btrfly intercepts TLS with.
    Ca {
        #[command(subcommand)]
        action: CaAction,
    },
}

#[derive(Subcommand)]
enum TagAction {
    /// Print a tag's entries.
    Show {
        tag: String,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
}

#[derive(Subcommand)]
enum CaAction {
    /// Print the CA certificate (PEM) for clients to trust.
    Export {
        #[command(flatten)]
        server: ServerArgs,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
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
            Command::Serve { config } => serve::serve(config).await,
            Command::Start {
                mode,
                tag,
                force,
                server,
            } => client::start(&server, mode, &tag, force).await,
            Command::Stop {
                mode,
                json,
                allow_incomplete,
                server,
            } => client::stop(&server, mode, json, allow_incomplete).await,
            Command::Env => client::env().await,
            Command::Run {
                record,
                tag,
                force,
                allow_incomplete,
                server,
                command,
                ..
            } => {
                let mode = if record {
                    ModeArg::Record
                } else {
                    ModeArg::Playback
                };
                client::run(&server, mode, &tag, force, allow_incomplete, &command).await
            }
            Command::Tags { json, server } => client::tags(&server, json).await,
            Command::Tag {
                action: TagAction::Show { tag, json, server },
            } => client::tag_show(&server, &tag, json).await,
            Command::Ca {
                action: CaAction::Export { server },
            } => client::ca_export(&server).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("btrfly: {e:#}");
            ExitCode::FAILURE
        }
    }
}
