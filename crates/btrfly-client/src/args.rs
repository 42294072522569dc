//! The command-line arguments the client commands share (clap).

use std::path::PathBuf;

use clap::{Args, ValueEnum};

/// How the CLI finds and authenticates to the server's control API.
#[derive(Args, Clone, Debug, Default)]
pub struct ServerArgs {
    /// Control API of the btrfly server, as http://HOST:PORT. Default: the
    /// control.listen of --config, else the server the active session was
    /// started on, else http://127.0.0.1:3129.
    #[arg(long, env = "BTRFLY_SERVER", value_name = "URL")]
    pub server: Option<String>,
    /// Control token. Default: <data_dir>/token of the server's config
    /// (--config), else of the default data dir: readable on the server's
    /// own machine.
    #[arg(
        long,
        env = "BTRFLY_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub token: Option<String>,
    /// The server's configuration file: the CLI takes the control address
    /// (control.listen) and the token (<data_dir>/token) from it.
    #[arg(long, env = "BTRFLY_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Where --server came from (flag or environment), for messages.
    #[arg(skip)]
    pub server_source: Option<&'static str>,
}

/// Client download caches during a session.
#[derive(Args, Clone, Copy, Debug, Default)]
pub struct CacheArgs {
    /// Let clients use the user's own download caches (pip, npm, yarn,
    /// cargo, Go). Without it, the session's exports point them at a fresh
    /// cache that is removed at stop, so that every download goes through
    /// btrfly: a recording misses nothing a cache would have served, and a
    /// playback proves the tag is complete.
    #[arg(long)]
    pub keep_caches: bool,
}

/// `record` or `playback` on the command line.
#[derive(Clone, Copy, ValueEnum, PartialEq, Eq, Debug)]
pub enum ModeArg {
    /// Forward every request upstream and record the responses.
    Record,
    /// Answer every request from the tag's recording; nothing goes upstream.
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
