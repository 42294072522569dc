//! Sessions, modes and tags.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

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

impl std::str::FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "record" => Ok(Mode::Record),
            "playback" | "replay" => Ok(Mode::Playback),
            other => Err(format!(
                "unknown mode {other:?}: expected \"record\" or \"playback\""
            )),
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

#[derive(Debug, thiserror::Error)]
#[error("invalid tag {0:?}: use 1-128 characters from A-Z a-z 0-9 . _ -, starting with a letter or digit")]
pub struct TagError(pub String);

impl Tag {
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

/// A session as the server stores it. The secret is what a client presents
/// (as the password of its proxy URL) to be routed into this session.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SessionInfo {
    pub id: String,
    /// sha256 of the session secret; the secret itself is never stored.
    pub secret_sha256: String,
    pub tag: Tag,
    pub mode: Mode,
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
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
        assert!("nope".parse::<Mode>().unwrap_err().contains("record"));
    }
}
