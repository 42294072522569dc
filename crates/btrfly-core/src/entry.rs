//! What a tag index stores.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::digest::Sha256;
use crate::key::RecordingKey;
use crate::session::Tag;

/// Whether a resource may change upstream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mutability {
    /// Content-addressed or otherwise never changing (a wheel, a blob by
    /// digest): one recording can serve every tag.
    Immutable,
    /// May change upstream (an index page, a tag's manifest): frozen per tag.
    Mutable,
}

/// One recorded exchange in a tag: the response head and where its body is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The key it is found under.
    pub key: RecordingKey,
    /// The request method.
    pub method: String,
    /// The request URL (absolute).
    pub url: String,
    /// The response status.
    pub status: u16,
    /// Response headers as received (hop-by-hop headers removed), in order;
    /// values byte for byte (see [`FieldValue`]).
    pub headers: Vec<(String, FieldValue)>,
    /// sha256 of the response body; the blob's address in the store.
    pub sha256: Sha256,
    /// Length of the response body in bytes.
    pub size: u64,
    /// Shared across tags, or frozen per tag.
    pub mutability: Mutability,
    /// When it was recorded.
    #[serde(with = "time::serde::rfc3339")]
    pub recorded_at: OffsetDateTime,
    /// The package the body belongs to, as a package URL
    /// (`pkg:golang/example.test/m@v1.0.0`), when the adapter knows it;
    /// absent in entries recorded before adapters said so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purl: Option<String>,
}

impl Entry {
    /// The first value of a header (name compared case-insensitively), when
    /// it is text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| v.to_str())
    }
}

/// A header value as the bytes that were on the wire. RFC 9110 (§5.5)
/// allows bytes 0x80–0xFF (`obs-text`) in a field value, which are not
/// always UTF-8, so a value is never converted to text on its way into a
/// tag.
///
/// Stored as a JSON string when the bytes are UTF-8 (the only form tags
/// recorded before this type used, so they load unchanged), else as
/// `{"base64": "…"}`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct FieldValue(Vec<u8>);

/// Text as it is; a value that is not UTF-8 with its bytes escaped
/// (`\xe9`), for people to read. Never fed back into a message.
impl std::fmt::Display for FieldValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.to_str() {
            Some(text) => f.write_str(text),
            None => write!(f, "{}", self.0.escape_ascii()),
        }
    }
}

impl FieldValue {
    /// A value from its bytes.
    pub fn new(bytes: impl Into<Vec<u8>>) -> FieldValue {
        FieldValue(bytes.into())
    }

    /// The bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The value as text, when it is UTF-8.
    pub fn to_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.0).ok()
    }

    /// The value for an HTTP message; `None` for bytes no header may
    /// carry (control characters).
    pub fn to_header_value(&self) -> Option<http::HeaderValue> {
        http::HeaderValue::from_bytes(&self.0).ok()
    }
}

impl From<&str> for FieldValue {
    fn from(s: &str) -> FieldValue {
        FieldValue(s.as_bytes().to_vec())
    }
}

impl From<&http::HeaderValue> for FieldValue {
    fn from(v: &http::HeaderValue) -> FieldValue {
        FieldValue(v.as_bytes().to_vec())
    }
}

#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum FieldValueRepr {
    Text(String),
    Bytes { base64: String },
}

impl Serialize for FieldValue {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use base64::Engine;
        match self.to_str() {
            Some(text) => s.serialize_str(text),
            None => FieldValueRepr::Bytes {
                base64: base64::engine::general_purpose::STANDARD.encode(&self.0),
            }
            .serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for FieldValue {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<FieldValue, D::Error> {
        use base64::Engine;
        match FieldValueRepr::deserialize(d)? {
            FieldValueRepr::Text(s) => Ok(FieldValue(s.into_bytes())),
            FieldValueRepr::Bytes { base64 } => base64::engine::general_purpose::STANDARD
                .decode(base64)
                .map(FieldValue)
                .map_err(|e| serde::de::Error::custom(format!("header value: {e}"))),
        }
    }
}

/// Which request headers select between the representations recorded for
/// one resource: a response named them in `Vary` (RFC 9110 §12.5.5). Kept
/// per tag beside the entries, one record per (key, set of names), so that
/// a replay that knows only the request can find the representation
/// recorded for its header values (see [`RecordingKey::with_vary`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VaryRecord {
    /// The key as the adapter built it from the request, before any
    /// `vary:` variance.
    pub key: RecordingKey,
    /// Lower-case header names, sorted, without duplicates.
    pub vary: Vec<String>,
}

impl VaryRecord {
    /// A stable identifier of the set of names (within one key).
    pub fn names_id(&self) -> String {
        crate::digest::sha256_hex(self.vary.join("\n").as_bytes())[..16].to_owned()
    }
}

/// State of a tag.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TagMeta {
    /// The tag.
    pub tag: Tag,
    /// When its first recording started.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// A sealed tag is a finished recording: recording into it again needs `--force`.
    pub sealed: bool,
    /// When it was sealed (the snapshot `index.json` carries the same time).
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub sealed_at: Option<OffsetDateTime>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_values_keep_their_bytes_and_old_entries_load() {
        let text = FieldValue::from("attachment; filename=\"a.txt\"");
        assert_eq!(
            serde_json::to_string(&text).expect("json"),
            "\"attachment; filename=\\\"a.txt\\\"\""
        );
        let latin1 = FieldValue::new(b"attachment; filename=\"caf\xe9.txt\"".to_vec());
        let json = serde_json::to_string(&latin1).expect("json");
        assert!(json.contains("base64"), "{json}");
        let back: FieldValue = serde_json::from_str(&json).expect("back");
        assert_eq!(back, latin1);
        assert_eq!(
            back.to_header_value().expect("a header value").as_bytes(),
            latin1.as_bytes()
        );
        // an entry written before values were bytes
        let old: Vec<(String, FieldValue)> =
            serde_json::from_str(r#"[["content-type","text/plain"]]"#).expect("old form");
        assert_eq!(old[0].1.to_str(), Some("text/plain"));
    }
}
