//! Which server the CLI talks to, and with which token: resolved once per
//! command from the flags, the environment, the server's config file and
//! the active session, remembering where each came from for messages.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;

use crate::args::ServerArgs;
use crate::control::{ClientError, ControlClient};
use anyhow::{anyhow, Context, Result};
use btrfly_config::Config;

/// The default control address, when nothing names another.
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:3129";

/// Where the token came from.
#[derive(Clone, Debug)]
enum TokenSource {
    Flag,
    Env,
    /// Read from this file.
    File(PathBuf),
    /// Not given, and this file (where it would be) could not be read.
    Missing(PathBuf, String),
}

/// A control API client and what it was resolved from.
pub struct Target {
    /// The client.
    pub client: ControlClient,
    token_source: TokenSource,
}

/// The control URL a config's `control.listen` is reached at from this
/// machine (a wildcard listen means loopback).
fn control_url(listen: SocketAddr) -> String {
    let ip = match listen.ip() {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    format!("http://{}", SocketAddr::new(ip, listen.port()))
}

/// Resolves the server and the token.
///
/// The server: `--server`/`BTRFLY_SERVER`, else `control.listen` of
/// `--config`/`BTRFLY_CONFIG`, else `session_server` (the server an active
/// session was started on), else [`DEFAULT_SERVER`]. The token:
/// `--token`/`BTRFLY_TOKEN`, else `<data_dir>/token` of the config (or of
/// the default data dir).
///
/// # Errors
/// A config file that cannot be read or parsed; a server address that is
/// not `http://HOST:PORT` (the message names where it came from).
pub fn connect(args: &ServerArgs, session_server: Option<&str>) -> Result<Target> {
    let config = match &args.config {
        Some(path) => Some(Config::load(path).context("--config (or BTRFLY_CONFIG)")?),
        None => None,
    };
    let (url, source) = match (&args.server, &config, session_server) {
        (Some(s), _, _) => (s.clone(), args.server_source.unwrap_or("--server")),
        (None, Some(c), _) if c.control.listen.port() == 0 => {
            return Err(anyhow!(
                "control.listen of --config is {} (port 0: the server picked a free port at start): pass --server http://HOST:PORT with the address `btrfly serve` printed (listening on ADDR (control))",
                c.control.listen
            ))
        }
        (None, Some(c), _) => (control_url(c.control.listen), "control.listen of --config"),
        (None, None, Some(s)) => (s.to_owned(), "the active session"),
        (None, None, None) => (DEFAULT_SERVER.to_owned(), "the default"),
    };
    let (token, token_source) = token(args, config.as_ref());
    let client = ControlClient::new(&url, token).map_err(|e| match e {
        ClientError::InvalidServer { url, message } => {
            anyhow!("server address {url:?} (from {source}): {message}")
        }
        other => anyhow!(other),
    })?;
    Ok(Target {
        client,
        token_source,
    })
}

fn token(args: &ServerArgs, config: Option<&Config>) -> (Option<String>, TokenSource) {
    if let Some(t) = args.token.clone().filter(|t| !t.is_empty()) {
        let from_env = std::env::var("BTRFLY_TOKEN").is_ok_and(|e| e == t);
        let source = if from_env {
            TokenSource::Env
        } else {
            TokenSource::Flag
        };
        return (Some(t), source);
    }
    let data_dir = config.map_or_else(btrfly_config::default_data_dir, Config::data_dir);
    let path = data_dir.join("token");
    match std::fs::read_to_string(&path) {
        Ok(t) if !t.trim().is_empty() => (Some(t.trim().to_owned()), TokenSource::File(path)),
        Ok(_) => (None, TokenSource::Missing(path, "it is empty".into())),
        Err(e) => {
            let why = match e.kind() {
                std::io::ErrorKind::NotFound => "it does not exist".to_owned(),
                std::io::ErrorKind::PermissionDenied => {
                    "it is not readable by this user (the server writes it with mode 0600)"
                        .to_owned()
                }
                _ => e.to_string(),
            };
            (None, TokenSource::Missing(path, why))
        }
    }
}

impl Target {
    /// Turns a client error into the message a user acts on: a refused
    /// token names where the token came from and how to give the right one.
    pub fn explain(&self, e: ClientError) -> anyhow::Error {
        let url = self.client.base();
        match e {
            ClientError::Unauthorized(_) => match &self.token_source {
                TokenSource::Missing(path, why) => anyhow!(
                    "the btrfly server at {url} needs its control token: none was given (--token, BTRFLY_TOKEN) and {} could not be read ({why}). Pass the server's config with --config or BTRFLY_CONFIG (the token is <data_dir>/token), or the token with --token or BTRFLY_TOKEN",
                    path.display()
                ),
                TokenSource::File(path) => anyhow!(
                    "the btrfly server at {url} refused the control token read from {}: that file belongs to another server. Pass this server's config with --config or BTRFLY_CONFIG, or its token with --token or BTRFLY_TOKEN",
                    path.display()
                ),
                TokenSource::Env => anyhow!(
                    "the btrfly server at {url} refused the control token in BTRFLY_TOKEN (the server's token is in its <data_dir>/token)"
                ),
                TokenSource::Flag => anyhow!(
                    "the btrfly server at {url} refused the control token given with --token (the server's token is in its <data_dir>/token)"
                ),
            },
            other => anyhow!(other),
        }
    }
}
