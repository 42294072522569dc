//! The header of a WARC record (WARC 1.1 §4, §5): a version line and named
//! fields, in order, duplicates kept.

/// The version this crate writes.
pub const WARC_VERSION: &str = "WARC/1.1";

/// `WARC-Profile` of a `revisit` whose payload equals an earlier one's
/// (WARC 1.1 §6.7.2; the 1.0 URI is read as well).
pub const PROFILE_IDENTICAL_PAYLOAD: &str =
    "http://netpreserve.org/warc/1.1/revisit/identical-payload-digest";

/// Field names of WARC 1.1 this crate writes or reads.
pub mod field {
    /// `WARC-Type`.
    pub const TYPE: &str = "WARC-Type";
    /// `WARC-Record-ID`.
    pub const RECORD_ID: &str = "WARC-Record-ID";
    /// `WARC-Date`.
    pub const DATE: &str = "WARC-Date";
    /// `Content-Length`.
    pub const CONTENT_LENGTH: &str = "Content-Length";
    /// `Content-Type`.
    pub const CONTENT_TYPE: &str = "Content-Type";
    /// `WARC-Target-URI`.
    pub const TARGET_URI: &str = "WARC-Target-URI";
    /// `WARC-Concurrent-To`.
    pub const CONCURRENT_TO: &str = "WARC-Concurrent-To";
    /// `WARC-Block-Digest`.
    pub const BLOCK_DIGEST: &str = "WARC-Block-Digest";
    /// `WARC-Payload-Digest`.
    pub const PAYLOAD_DIGEST: &str = "WARC-Payload-Digest";
    /// `WARC-Profile`.
    pub const PROFILE: &str = "WARC-Profile";
    /// `WARC-Refers-To`.
    pub const REFERS_TO: &str = "WARC-Refers-To";
    /// `WARC-Truncated`.
    pub const TRUNCATED: &str = "WARC-Truncated";
    /// `WARC-Segment-Number`.
    pub const SEGMENT_NUMBER: &str = "WARC-Segment-Number";
    /// `WARC-Filename`.
    pub const FILENAME: &str = "WARC-Filename";
    /// btrfly's own field on `response` records: the recording key of the
    /// entry as JSON (see [`crate::warc`]).
    pub const BTRFLY_KEY: &str = "Btrfly-Key";
    /// btrfly's own field on `response` records: `mutable` or `immutable`.
    pub const BTRFLY_MUTABILITY: &str = "Btrfly-Mutability";
    /// btrfly's own field on `response` records: the package URL the
    /// adapter recorded for the entry (`Entry::purl`), when it has one.
    pub const BTRFLY_PURL: &str = "Btrfly-Purl";
}

/// A record header: the version line (`WARC/1.1`) and its fields.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WarcHeader {
    /// `WARC/1.0`, `WARC/1.1`, …
    pub version: String,
    fields: Vec<(String, String)>,
}

/// A field value that a header line cannot hold (a CR or LF in it).
#[derive(Debug, Clone, thiserror::Error)]
#[error("WARC field {name} cannot hold {value:?}: it contains a line break")]
pub struct BadFieldValue {
    /// The field name.
    pub name: String,
    /// The value it refused.
    pub value: String,
}

impl WarcHeader {
    /// An empty header of [`WARC_VERSION`].
    pub fn new() -> WarcHeader {
        WarcHeader {
            version: WARC_VERSION.to_owned(),
            fields: Vec::new(),
        }
    }

    /// Appends a field.
    ///
    /// # Errors
    /// [`BadFieldValue`] when the value holds a CR or LF.
    pub fn push(&mut self, name: &str, value: impl Into<String>) -> Result<(), BadFieldValue> {
        let value = value.into();
        if value.contains(['\r', '\n']) || name.contains(['\r', '\n', ':']) {
            return Err(BadFieldValue {
                name: name.to_owned(),
                value,
            });
        }
        self.fields.push((name.to_owned(), value));
        Ok(())
    }

    /// The first value of a field (name compared case-insensitively).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every value of a field, in order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.fields
            .iter()
            .filter(move |(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every field, in order.
    pub fn fields(&self) -> &[(String, String)] {
        &self.fields
    }

    /// `WARC-Type`, lower case (`""` when missing).
    pub fn record_type(&self) -> String {
        self.get(field::TYPE)
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase()
    }

    /// `WARC-Record-ID` (`""` when missing).
    pub fn record_id(&self) -> &str {
        self.get(field::RECORD_ID).unwrap_or_default().trim()
    }

    /// `WARC-Target-URI` without the angle brackets WARC 1.0 examples put
    /// around it.
    pub fn target_uri(&self) -> Option<&str> {
        self.get(field::TARGET_URI).map(|u| {
            let u = u.trim();
            u.strip_prefix('<')
                .and_then(|u| u.strip_suffix('>'))
                .unwrap_or(u)
        })
    }

    /// `Content-Length`, when it is a number.
    pub fn content_length(&self) -> Option<u64> {
        self.get(field::CONTENT_LENGTH)?.trim().parse().ok()
    }

    /// The header as written: version line, `Name: value` lines, empty line.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + self.fields.len() * 48);
        out.extend_from_slice(self.version.as_bytes());
        out.extend_from_slice(b"\r\n");
        for (k, v) in &self.fields {
            out.extend_from_slice(k.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(v.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out
    }

    /// Parses the lines after the version line (each without its line
    /// end); a line starting with a space or tab continues the previous
    /// field's value (WARC 1.1 §4, like RFC 2616 folding). Lines that are
    /// not `name: value` are errors.
    pub(crate) fn parse_fields(version: String, lines: &[Vec<u8>]) -> Result<WarcHeader, String> {
        let mut header = WarcHeader {
            version,
            fields: Vec::new(),
        };
        for line in lines {
            let text = String::from_utf8_lossy(line);
            if text.starts_with([' ', '\t']) {
                match header.fields.last_mut() {
                    Some((_, v)) => {
                        v.push(' ');
                        v.push_str(text.trim());
                    }
                    None => return Err(format!("continuation line {text:?} before any field")),
                }
                continue;
            }
            let Some((name, value)) = text.split_once(':') else {
                return Err(format!("header line {text:?} is not `name: value`"));
            };
            let name = name.trim();
            if name.is_empty() || name.contains(char::is_whitespace) {
                return Err(format!("header line {text:?} has no field name"));
            }
            header
                .fields
                .push((name.to_owned(), value.trim().to_owned()));
        }
        Ok(header)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_keep_order_and_duplicates_and_refuse_line_breaks() {
        let mut h = WarcHeader::new();
        h.push(field::TYPE, "response").expect("type");
        h.push(field::CONCURRENT_TO, "<urn:uuid:a>").expect("a");
        h.push("warc-concurrent-to", "<urn:uuid:b>").expect("b");
        assert_eq!(
            h.get_all(field::CONCURRENT_TO).collect::<Vec<_>>(),
            ["<urn:uuid:a>", "<urn:uuid:b>"]
        );
        assert!(h.push(field::TARGET_URI, "http://a/\r\nX: y").is_err());
        assert_eq!(
            String::from_utf8(h.to_bytes()).expect("text"),
            "WARC/1.1\r\nWARC-Type: response\r\nWARC-Concurrent-To: <urn:uuid:a>\r\n\
             warc-concurrent-to: <urn:uuid:b>\r\n\r\n"
        );
    }

    #[test]
    fn parses_folded_lines_and_bracketed_uris() {
        let lines: Vec<Vec<u8>> = [
            "WARC-Type: response",
            "WARC-Target-URI: <http://a.example.test/x>",
            "X-Long: one",
            "\ttwo",
            "Content-Length: 12",
        ]
        .iter()
        .map(|l| l.as_bytes().to_vec())
        .collect();
        let h = WarcHeader::parse_fields("WARC/1.0".into(), &lines).expect("parses");
        assert_eq!(h.record_type(), "response");
        assert_eq!(h.target_uri(), Some("http://a.example.test/x"));
        assert_eq!(h.get("x-long"), Some("one two"));
        assert_eq!(h.content_length(), Some(12));
        assert!(WarcHeader::parse_fields("WARC/1.0".into(), &[b"no colon".to_vec()]).is_err());
    }
}
