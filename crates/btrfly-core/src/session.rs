//! Sessions, modes and tags: the names of a recording and of the session
//! that makes or plays it, and what a session reports when it ends.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::digest::Sha256;

/// What a session does with the traffic it sees.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Forward upstream and record every response under the tag.
    Record,
    /// Answer only from the tag's recordings; never contact an upstream.
    Playback,
}

impl Mode {
    /// `record` or `playback`.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Record => "record",
            Mode::Playback => "playback",
        }
    }
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A text that names no [`Mode`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown mode {0:?}: expected \"record\" or \"playback\"")]
pub struct ModeError(pub String);

impl std::str::FromStr for Mode {
    type Err = ModeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "record" => Ok(Mode::Record),
            "playback" | "replay" => Ok(Mode::Playback),
            other => Err(ModeError(other.to_owned())),
        }
    }
}

/// A tag name, like a docker tag: a validated reference to a recording.
///
/// Tags become path segments in the store, so the alphabet is strict:
/// ASCII letters, digits, `.`, `_`, `-`, starting with a letter or digit,
/// at most 128 characters.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Tag(String);

/// A text that is not a valid [`Tag`].
#[derive(Debug, thiserror::Error)]
#[error("invalid tag {0:?}: use 1-128 characters from A-Z a-z 0-9 . _ -, starting with a letter or digit")]
pub struct TagError(pub String);

impl Tag {
    /// Checks a tag name.
    ///
    /// # Errors
    /// [`TagError`] when `name` breaks the alphabet or length rule.
    pub fn new(name: &str) -> Result<Tag, TagError> {
        let ok = !name.is_empty()
            && name.len() <= 128
            && name.as_bytes()[0].is_ascii_alphanumeric()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if ok {
            Ok(Tag(name.to_owned()))
        } else {
            Err(TagError(name.to_owned()))
        }
    }

    /// The tag name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Tag {
    type Error = TagError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Tag::new(&s)
    }
}

impl From<Tag> for String {
    fn from(t: Tag) -> String {
        t.0
    }
}

impl std::fmt::Display for Tag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A session's id: 1-64 ASCII letters and digits (btrfly makes 16 hex
/// digits). It names the session's objects in the store
/// (`sessions/<id>.json`), so nothing else can be one.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SessionId(String);

/// A text that is not a [`SessionId`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("not a session id (1-64 ASCII letters and digits): {0:?}")]
pub struct SessionIdError(pub String);

impl SessionId {
    /// Checks an id.
    ///
    /// # Errors
    /// [`SessionIdError`] for an empty or longer text, or one with other
    /// characters than ASCII letters and digits.
    pub fn new(id: &str) -> Result<SessionId, SessionIdError> {
        if !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric()) {
            Ok(SessionId(id.to_owned()))
        } else {
            Err(SessionIdError(id.to_owned()))
        }
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for SessionId {
    type Error = SessionIdError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        SessionId::new(&s)
    }
}

impl From<SessionId> for String {
    fn from(id: SessionId) -> String {
        id.0
    }
}

impl std::fmt::Display for SessionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::ops::Deref for SessionId {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl PartialEq<str> for SessionId {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for SessionId {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

/// A session as the server stores it. The secret is what a client presents
/// (as the password of its proxy URL) to be routed into this session.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SessionInfo {
    /// The session's id (the user of its proxy credential).
    pub id: SessionId,
    /// sha256 of the session secret; the secret itself is never stored.
    pub secret_sha256: Sha256,
    /// The tag it records into or plays back.
    pub tag: Tag,
    /// Record or playback.
    pub mode: Mode,
    /// When the session started.
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
}

/// What a session did, as `btrfly stop` prints it (and the control API
/// sends it as JSON).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Summary {
    /// The session.
    pub id: SessionId,
    /// Its tag.
    pub tag: Tag,
    /// Its mode.
    pub mode: Mode,
    /// Requests that reached the session (authenticated).
    pub requests: u64,
    /// Answers from the tag (playback, or a single-flight follower).
    pub hits: u64,
    /// Playback requests that were not recorded.
    pub misses: u64,
    /// Playback answers the session's tag did not have, answered from the
    /// explicit mirror (not counted in `hits`).
    #[serde(default)]
    pub mirror_hits: u64,
    /// Answers recorded into the tag.
    pub recorded: u64,
    /// Body bytes sent to clients.
    pub bytes: u64,
    /// Bodies refused (cut off, not recorded) because they did not match
    /// the digest announced for them; their messages are in `errors`.
    #[serde(default)]
    pub refused: u64,
    /// Answers the build received that could not be recorded (a body cut
    /// short, an upstream that failed, a store that refused the write);
    /// their messages are in `errors`. A recording with any is incomplete.
    #[serde(default)]
    pub unrecorded: u64,
    /// Upstream connections refused by the egress policy (an address or
    /// port the server's `[policy]` does not allow); their messages are in
    /// `errors`.
    #[serde(default)]
    pub egress_refused: u64,
    /// Playback answers found in the tag whose body could not be served:
    /// the blob is missing from the store or its bytes no longer hash to
    /// its address (the client got an error or a cut response); their
    /// messages are in `errors`. A playback with any fails.
    #[serde(default)]
    pub unserved: u64,
    /// The missed requests (`METHOD URL`, with their `Range`).
    pub missed: Vec<String>,
    /// Problems, one message each.
    pub errors: Vec<String>,
    /// Record sessions: whether stopping sealed the tag (it is not sealed
    /// when it has no entries, or when the stop asked not to seal).
    #[serde(default)]
    pub sealed: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_alphabet() {
        for ok in ["a", "example1", "v1.2.3", "build_42-x", &"a".repeat(128)] {
            assert!(Tag::new(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            ".hidden",
            "-x",
            "a/b",
            "../x",
            "a b",
            "é",
            &"a".repeat(129),
        ] {
            let err = Tag::new(bad).unwrap_err().to_string();
            assert!(err.contains("invalid tag"), "{err}");
        }
    }

    #[test]
    fn mode_parses() {
        assert_eq!("record".parse::<Mode>(), Ok(Mode::Record));
        assert_eq!("playback".parse::<Mode>(), Ok(Mode::Playback));
        assert!("nope"
            .parse::<Mode>()
            .unwrap_err()
            .to_string()
            .contains("record"));
    }
}
