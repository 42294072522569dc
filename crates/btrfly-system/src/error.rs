//! The one error type of this crate.

use std::io;
use std::path::PathBuf;

/// Why applying, restoring or reading a machine configuration failed.
///
/// Every variant names the path or the tool it is about. Whether the machine
/// was left changed is part of the variant: [`SystemError::RolledBack`] (apply
/// failed, everything it did was undone), [`SystemError::RollbackFailed`] and
/// [`SystemError::RestoreIncomplete`] (something is still changed; the state
/// file is kept so that a later `restore` finishes the job).
#[derive(Debug, thiserror::Error)]
pub enum SystemError {
    /// The plan cannot be applied as given (no part, too many nameservers...).
    #[error("invalid plan: {0}")]
    InvalidPlan(String),

    /// The CA certificate given to install is not one PEM `CERTIFICATE`.
    #[error("invalid CA certificate: {0}")]
    InvalidCa(String),

    /// A configuration is applied already (its state file exists): restore
    /// it first. Also the case after a crash: the state file a crashed run
    /// left behind is what `restore` uses.
    #[error(
        "a transparent configuration is already applied on this machine (session {session}, state file {}); restore it first",
        .path.display()
    )]
    AlreadyApplied {
        /// The state file found.
        path: PathBuf,
        /// The session recorded in it.
        session: String,
    },

    /// A file-system operation failed.
    #[error("{op} {}: {source}", .path.display())]
    Io {
        /// What was being done (`"read"`, `"write in place"`, ...).
        op: &'static str,
        /// The path it was done to.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },

    /// The state file cannot be read or does not make sense. It is left
    /// where it is for a person to inspect.
    #[error("state file {}: {reason}", .path.display())]
    State {
        /// The state file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// The resolver configuration path is neither a file, a symbolic link,
    /// nor absent (a directory, a socket...).
    #[error("{} is not a regular file or a symbolic link; refusing to change it", .path.display())]
    NotAFile {
        /// The path.
        path: PathBuf,
    },

    /// An external tool could not be started, exited with a failure status or
    /// ran past its deadline.
    #[error("{} {args}: {reason}", .tool.display())]
    Tool {
        /// The program.
        tool: PathBuf,
        /// Its arguments, space separated.
        args: String,
        /// Exit status and the tail of its standard error, or why it did not run.
        reason: String,
    },

    /// The trust-store tool ran but the bundle the clients read does not hold
    /// btrfly's CA afterwards.
    #[error("{} does not contain btrfly's CA (sha256 {fingerprint}) after {step}", .bundle.display())]
    NotInBundle {
        /// The bundle file.
        bundle: PathBuf,
        /// The CA's SHA-256 fingerprint (hex of its DER).
        fingerprint: String,
        /// What should have put it there.
        step: String,
    },

    /// Apply failed and everything it had changed was restored.
    #[error("{cause}; everything changed so far was restored")]
    RolledBack {
        /// The failure.
        #[source]
        cause: Box<SystemError>,
    },

    /// Apply failed and restoring what it had changed failed too. The state
    /// file is kept: run `restore` again once the cause is fixed.
    #[error(
        "{cause}; restoring what was changed also failed ({rollback}); state file {} kept for the next restore",
        .state_file.display()
    )]
    RollbackFailed {
        /// The failure of apply.
        #[source]
        cause: Box<SystemError>,
        /// Why the rollback failed.
        rollback: Box<SystemError>,
        /// The state file kept.
        state_file: PathBuf,
    },

    /// Restore could not put back everything. What did succeed stays
    /// restored; the state file is kept so a second `restore` retries the rest.
    #[error(
        "restore incomplete: {}; state file {} kept, run restore again",
        .failures.join("; "),
        .state_file.display()
    )]
    RestoreIncomplete {
        /// One message per path that could not be restored.
        failures: Vec<String>,
        /// The state file kept.
        state_file: PathBuf,
    },
}

impl SystemError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Self::Io {
            op,
            path: path.into(),
            source,
        }
    }
}

/// This crate's result type.
pub type Result<T, E = SystemError> = std::result::Result<T, E>;
