//! btrfly-client: what the `btrfly` CLI needs to drive a server, without
//! the data plane: the control API client ([`control`]), the commands
//! (`start`, `stop`, `run`, `tags`, …: [`commands`]; `token`: [`tokens`];
//! `mirror`: [`mirror`]), which server and
//! token ([`target`]), the files in `BTRFLY_HOME` ([`home`]: the active
//! session, CA bundles), what a session exports to each client
//! ([`exports`]) and the archive commands (export, import, manifest,
//! diff: [`archive`]).

pub mod archive;
pub mod args;
pub mod commands;
pub mod control;
pub mod exports;
pub mod home;
pub mod mirror;
pub mod system;
pub mod target;
pub mod tokens;

pub use control::{parse_server_url, ClientError, ControlClient};
