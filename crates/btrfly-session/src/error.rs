//! Why a session could not be started or stopped.

use btrfly_core::{SessionId, SessionIdError, Tag};
use btrfly_store::StoreError;

/// Why a session could not be started or stopped.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// Recording into a sealed tag without `--force`.
    #[error("tag {0} is sealed: its recording is finished. Record under a new tag, or pass --force to record into it again")]
    Sealed(Tag),
    /// Playback of a tag never recorded.
    #[error("tag {0} has no recording to play back (`btrfly tags` lists the recorded tags)")]
    UnknownTag(Tag),
    /// Playback of a tag without entries.
    #[error("tag {0} has no recorded entries: nothing to play back. Its recording saw no request (did the build use the session's exports?); record it again")]
    EmptyTag(Tag),
    /// Another session records the tag.
    #[error("tag {tag} is being recorded by session {session}; stop that session first")]
    Busy {
        /// The tag.
        tag: Tag,
        /// The session recording it.
        session: SessionId,
    },
    /// Another active session is bound to the client address.
    #[error(
        "client address {address} is already bound to session {session}; stop that session first"
    )]
    AddressTaken {
        /// The client address.
        address: std::net::IpAddr,
        /// The session bound to it.
        session: String,
    },
    /// No such session.
    #[error("no session {0} on this server (it was stopped, ended when its lease ran out — no request for `[sessions] lease` — or never started)")]
    NotFound(String),
    /// A generated id that is not one (never happens).
    #[error(transparent)]
    Id(SessionIdError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}
