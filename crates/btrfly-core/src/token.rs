//! Control API tokens: what a token may do ([`Scope`]), and the validated
//! names of tokens ([`TokenName`], [`TokenId`]).
//!
//! A token's secret is never stored: the store keeps its sha256 beside
//! its id, name and scope, and every replica compares the digest of a
//! presented token with those digests in constant time.

use serde::{Deserialize, Serialize};

/// What a control token may do. Each scope includes the ones below it:
/// `admin` ⊇ `record` ⊇ `read`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Look: tags, entries and their bodies, sessions, the mirror, the web UI.
    Read,
    /// Change recordings: start and stop sessions, declare mirror entries.
    Record,
    /// Manage tokens.
    Admin,
}

impl Scope {
    /// `read`, `record` or `admin`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Record => "record",
            Scope::Admin => "admin",
        }
    }

    /// Whether a token of this scope may do what needs `needed`.
    pub fn allows(self, needed: Scope) -> bool {
        self >= needed
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A text that names no [`Scope`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown scope {0:?}: expected \"read\", \"record\" or \"admin\"")]
pub struct ScopeError(pub String);

impl std::str::FromStr for Scope {
    type Err = ScopeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "read" => Ok(Scope::Read),
            "record" => Ok(Scope::Record),
            "admin" => Ok(Scope::Admin),
            other => Err(ScopeError(other.to_owned())),
        }
    }
}

/// A token's name: who holds it (`ci`, `alice@example.test`). It is what a
/// mirror entry records as "added by", so it is shown in the web UI and
/// the CLI: 1-64 characters from ASCII letters, digits, `.`, `_`, `-`,
/// `@`, starting with a letter or digit.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TokenName(String);

/// A text that is not a [`TokenName`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid token name {0:?}: use 1-64 characters from A-Z a-z 0-9 . _ - @, starting with a letter or digit")]
pub struct TokenNameError(pub String);

impl TokenName {
    /// Checks a name.
    ///
    /// # Errors
    /// [`TokenNameError`] when `name` breaks the alphabet or length rule.
    pub fn new(name: &str) -> Result<TokenName, TokenNameError> {
        let ok = !name.is_empty()
            && name.len() <= 64
            && name.as_bytes()[0].is_ascii_alphanumeric()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'@'));
        if ok {
            Ok(TokenName(name.to_owned()))
        } else {
            Err(TokenNameError(name.to_owned()))
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for TokenName {
    type Error = TokenNameError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        TokenName::new(&s)
    }
}

impl From<TokenName> for String {
    fn from(n: TokenName) -> String {
        n.0
    }
}

impl std::fmt::Display for TokenName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A token's id (btrfly makes 16 lower-case hex digits): it names the
/// token's object in the store (`tokens/<id>.json`) and is what
/// `btrfly token revoke` takes. Not a secret.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TokenId(String);

/// A text that is not a [`TokenId`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("not a token id (1-64 ASCII letters and digits): {0:?}")]
pub struct TokenIdError(pub String);

impl TokenId {
    /// Checks an id.
    ///
    /// # Errors
    /// [`TokenIdError`] for an empty or longer text, or one with other
    /// characters than ASCII letters and digits.
    pub fn new(id: &str) -> Result<TokenId, TokenIdError> {
        if !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric()) {
            Ok(TokenId(id.to_owned()))
        } else {
            Err(TokenIdError(id.to_owned()))
        }
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for TokenId {
    type Error = TokenIdError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        TokenId::new(&s)
    }
}

impl From<TokenId> for String {
    fn from(id: TokenId) -> String {
        id.0
    }
}

impl std::fmt::Display for TokenId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_include_the_ones_below() {
        assert!(Scope::Admin.allows(Scope::Record));
        assert!(Scope::Admin.allows(Scope::Read));
        assert!(Scope::Record.allows(Scope::Read));
        assert!(!Scope::Record.allows(Scope::Admin));
        assert!(!Scope::Read.allows(Scope::Record));
        assert_eq!("record".parse::<Scope>(), Ok(Scope::Record));
        assert!("root".parse::<Scope>().is_err());
        assert_eq!(
            serde_json::to_string(&Scope::Admin).expect("json"),
            "\"admin\""
        );
    }

    #[test]
    fn names_and_ids() {
        for ok in ["ci", "alice@example.test", "build-bot_2", &"a".repeat(64)] {
            assert!(TokenName::new(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-x", "a b", "a/b", "é", &"a".repeat(65)] {
            assert!(TokenName::new(bad).is_err(), "{bad}");
        }
        assert!(TokenId::new("0123abcd").is_ok());
        assert!(TokenId::new("../x").is_err());
    }
}
