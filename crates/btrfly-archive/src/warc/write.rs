//! Writing a tag as WARC 1.1: one gzip member per record, bodies streamed.

use std::future::Future;
use std::io::Write as _;
use std::pin::Pin;

use btrfly_core::{Entry, Mutability, RecordingKey, TagMeta, VARY_PREFIX};
use bytes::Bytes;
use flate2::write::GzEncoder;
use flate2::Compression;
use futures::{Stream, StreamExt};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use tokio::io::{AsyncWrite, AsyncWriteExt};

use super::header::{field, WarcHeader};
use crate::digest::{Algorithm, WarcDigest};
use crate::ArchiveError;

/// A body as a stream of chunks (what `btrfly_store::Store::read_blob`
/// returns).
pub type BodyStream = Pin<Box<dyn Stream<Item = std::io::Result<Bytes>> + Send>>;

/// Where the bodies of a tag's entries come from. The writer opens each
/// body twice: once to compute `WARC-Block-Digest` (which precedes the
/// block in the record) and once to write it, so that no body is ever held
/// in memory.
pub trait Bodies: Sync {
    /// A fresh stream of the body of `entry` (whose sha256 and size the
    /// entry names).
    fn open(&self, entry: &Entry) -> impl Future<Output = std::io::Result<BodyStream>> + Send;
}

/// How a WARC file is written.
#[derive(Clone, Debug)]
pub struct ExportOptions {
    /// One gzip member per record (`.warc.gz`, the default); `None` writes
    /// a plain `.warc`.
    pub gzip: Option<Compression>,
    /// `WARC-Filename` of the `warcinfo` record, when the output has a name.
    pub filename: Option<String>,
}

impl Default for ExportOptions {
    fn default() -> Self {
        ExportOptions {
            gzip: Some(Compression::default()),
            filename: None,
        }
    }
}

/// The record ids written for one entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntryRecords {
    /// The `WARC-Record-ID` of the response record.
    pub response_id: String,
    /// The `WARC-Record-ID` of the request record.
    pub request_id: String,
}

/// Writes WARC records to `out`. Memory stays bounded whatever the body
/// sizes: a body goes through in the chunks its stream yields, each
/// compressed into a buffer that is handed to `out` before the next chunk
/// is read (deflate's own window is 32 KiB).
pub struct WarcWriter<W> {
    out: W,
    gzip: Option<Compression>,
    written: u64,
}

impl<W: AsyncWrite + Unpin + Send> WarcWriter<W> {
    /// A writer of WARC records to `out`.
    pub fn new(out: W, options: &ExportOptions) -> WarcWriter<W> {
        WarcWriter {
            out,
            gzip: options.gzip,
            written: 0,
        }
    }

    /// Bytes handed to the output so far (compressed, when gzip is on).
    pub fn bytes_written(&self) -> u64 {
        self.written
    }

    /// Flushes and returns the output.
    ///
    /// # Errors
    /// [`ArchiveError::Write`] when the output fails.
    pub async fn finish(mut self) -> Result<W, ArchiveError> {
        self.out.flush().await.map_err(ArchiveError::Write)?;
        Ok(self.out)
    }

    /// Writes the `warcinfo` record describing `meta` (WARC 1.1 §6.2): the
    /// writing software, the format, the tag, its creation and seal times
    /// and its number of entries, as `application/warc-fields`.
    ///
    /// # Errors
    /// [`ArchiveError::Write`] when the output fails.
    pub async fn write_warcinfo(
        &mut self,
        meta: &TagMeta,
        entries: usize,
        filename: Option<&str>,
    ) -> Result<String, ArchiveError> {
        let mut block = String::new();
        let mut line = |k: &str, v: &str| {
            block.push_str(k);
            block.push_str(": ");
            block.push_str(v);
            block.push_str("\r\n");
        };
        line(
            "software",
            &format!("btrfly/{} (btrfly-archive)", env!("CARGO_PKG_VERSION")),
        );
        line("format", "WARC File Format 1.1");
        line(
            "conformsTo",
            "http://iipc.github.io/warc-specifications/specifications/warc-format/warc-1.1/",
        );
        line("btrfly-tag", meta.tag.as_str());
        line("btrfly-created", &rfc3339(meta.created_at));
        match (meta.sealed, meta.sealed_at) {
            (true, Some(at)) => line("btrfly-sealed", &rfc3339(at)),
            _ => line("btrfly-sealed", "no"),
        }
        line("btrfly-entries", &entries.to_string());
        let date = meta.sealed_at.unwrap_or(meta.created_at);
        let id = record_id(&[
            b"warcinfo",
            meta.tag.as_str().as_bytes(),
            rfc3339(date).as_bytes(),
        ]);
        let mut h = WarcHeader::new();
        h.push(field::TYPE, "warcinfo")?;
        h.push(field::RECORD_ID, id.clone())?;
        h.push(field::DATE, warc_date(date))?;
        if let Some(name) = filename {
            h.push(field::FILENAME, name)?;
        }
        h.push(field::CONTENT_TYPE, "application/warc-fields")?;
        h.push(field::BLOCK_DIGEST, sha256_digest(block.as_bytes()))?;
        h.push(field::CONTENT_LENGTH, block.len().to_string())?;
        let mut m = self.member();
        m.put(&h.to_bytes()).await?;
        m.put(block.as_bytes()).await?;
        m.put(b"\r\n\r\n").await?;
        m.end().await?;
        Ok(id)
    }

    /// Writes one entry as a `response` record (the recorded status line
    /// and header bytes, then the body) and a `request` record
    /// (`WARC-Concurrent-To` the response; method, target, `Host` and the
    /// request headers the key varies on, never credentials).
    ///
    /// The body is read twice from `bodies` (digest, then copy) and must
    /// both times be the entry's sha256 and size.
    ///
    /// # Errors
    /// [`ArchiveError::Body`] / [`ArchiveError::BodyMismatch`] when the
    /// body cannot be read or is not the recorded one (the output then
    /// holds a partial record); [`ArchiveError::Write`] when the output
    /// fails.
    pub async fn write_entry<B: Bodies>(
        &mut self,
        entry: &Entry,
        bodies: &B,
    ) -> Result<EntryRecords, ArchiveError> {
        let head = response_head(entry);
        // Pass 1: the block digest (head + body), and the body checked
        // against the entry before any of it is written.
        let mut block = Sha256::new();
        block.update(&head);
        let mut check = BodyCheck::new();
        let mut body = open_body(entry, bodies).await?;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| body_error(entry, e))?;
            check.update(entry, &chunk)?;
            block.update(&chunk);
        }
        check.finish(entry)?;
        let block_digest = digest_of(block);

        let target = strip_userinfo(&entry.url);
        // The body's sha256 was just checked against it: it is 64 hex digits.
        let payload = WarcDigest::sha256_from_hex(&entry.sha256).unwrap_or(WarcDigest {
            algorithm: Algorithm::Sha256,
            bytes: Vec::new(),
        });
        let response_id = record_id(&[
            b"response",
            entry.key.id().as_bytes(),
            entry.sha256.as_bytes(),
            rfc3339(entry.recorded_at).as_bytes(),
        ]);
        let request_id = record_id(&[b"request", response_id.as_bytes()]);
        let date = warc_date(entry.recorded_at);

        let mut h = WarcHeader::new();
        h.push(field::TYPE, "response")?;
        h.push(field::RECORD_ID, response_id.clone())?;
        h.push(field::DATE, date.clone())?;
        h.push(field::TARGET_URI, target.clone())?;
        h.push(field::CONTENT_TYPE, "application/http;msgtype=response")?;
        h.push(field::PAYLOAD_DIGEST, payload.to_warc())?;
        h.push(field::BLOCK_DIGEST, block_digest)?;
        h.push(field::BTRFLY_KEY, key_json(&redacted_key(&entry.key)))?;
        h.push(
            field::BTRFLY_MUTABILITY,
            match entry.mutability {
                Mutability::Immutable => "immutable",
                Mutability::Mutable => "mutable",
            },
        )?;
        if let Some(purl) = &entry.purl {
            h.push(field::BTRFLY_PURL, purl.clone())?;
        }
        h.push(
            field::CONTENT_LENGTH,
            (head.len() as u64 + entry.size).to_string(),
        )?;

        // Pass 2: the record itself, the body streamed through.
        let mut m = self.member();
        m.put(&h.to_bytes()).await?;
        m.put(&head).await?;
        let mut check = BodyCheck::new();
        let mut body = open_body(entry, bodies).await?;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| body_error(entry, e))?;
            check.update(entry, &chunk)?;
            m.put(&chunk).await?;
        }
        check.finish(entry)?;
        m.put(b"\r\n\r\n").await?;
        m.end().await?;

        let request = request_head(entry);
        let mut h = WarcHeader::new();
        h.push(field::TYPE, "request")?;
        h.push(field::RECORD_ID, request_id.clone())?;
        h.push(field::DATE, date)?;
        h.push(field::TARGET_URI, target)?;
        h.push(field::CONCURRENT_TO, response_id.clone())?;
        h.push(field::CONTENT_TYPE, "application/http;msgtype=request")?;
        h.push(field::BLOCK_DIGEST, sha256_digest(&request))?;
        h.push(field::CONTENT_LENGTH, request.len().to_string())?;
        let mut m = self.member();
        m.put(&h.to_bytes()).await?;
        m.put(&request).await?;
        m.put(b"\r\n\r\n").await?;
        m.end().await?;
        Ok(EntryRecords {
            response_id,
            request_id,
        })
    }

    fn member(&mut self) -> Member<'_, W> {
        let enc = self.gzip.map(|level| GzEncoder::new(Vec::new(), level));
        Member { w: self, enc }
    }
}

/// One record being written: a gzip member of its own, or plain bytes.
struct Member<'a, W> {
    w: &'a mut WarcWriter<W>,
    enc: Option<GzEncoder<Vec<u8>>>,
}

impl<W: AsyncWrite + Unpin + Send> Member<'_, W> {
    async fn put(&mut self, bytes: &[u8]) -> Result<(), ArchiveError> {
        match &mut self.enc {
            Some(enc) => {
                enc.write_all(bytes).map_err(ArchiveError::Write)?;
                let out = std::mem::take(enc.get_mut());
                self.emit(&out).await
            }
            None => self.emit(bytes).await,
        }
    }

    async fn emit(&mut self, bytes: &[u8]) -> Result<(), ArchiveError> {
        if bytes.is_empty() {
            return Ok(());
        }
        self.w
            .out
            .write_all(bytes)
            .await
            .map_err(ArchiveError::Write)?;
        self.w.written += bytes.len() as u64;
        Ok(())
    }

    async fn end(mut self) -> Result<(), ArchiveError> {
        if let Some(enc) = self.enc.take() {
            let out = enc.finish().map_err(ArchiveError::Write)?;
            self.emit(&out).await?;
        }
        Ok(())
    }
}

/// Opens the body of `entry`.
async fn open_body<B: Bodies>(entry: &Entry, bodies: &B) -> Result<BodyStream, ArchiveError> {
    bodies
        .open(entry)
        .await
        .map_err(|source| body_error(entry, source))
}

fn body_error(entry: &Entry, source: std::io::Error) -> ArchiveError {
    ArchiveError::Body {
        url: entry.url.clone(),
        sha256: entry.sha256.to_string(),
        source,
    }
}

/// The sha256 and size of a body as it streams by, checked against its
/// entry.
struct BodyCheck {
    hash: Sha256,
    size: u64,
}

impl BodyCheck {
    fn new() -> BodyCheck {
        BodyCheck {
            hash: Sha256::new(),
            size: 0,
        }
    }

    /// Takes the next chunk. Past the recorded size the body is wrong
    /// anyway: refuse before more than the record's `Content-Length` is
    /// written.
    fn update(&mut self, entry: &Entry, chunk: &[u8]) -> Result<(), ArchiveError> {
        self.size += chunk.len() as u64;
        if self.size > entry.size {
            return Err(ArchiveError::BodyMismatch {
                url: entry.url.clone(),
                expected: entry.sha256.to_string(),
                expected_size: entry.size,
                actual: "(a longer body)".into(),
                actual_size: self.size,
            });
        }
        self.hash.update(chunk);
        Ok(())
    }

    fn finish(self, entry: &Entry) -> Result<(), ArchiveError> {
        check_body(entry, &hex::encode(self.hash.finalize()), self.size)
    }
}

fn check_body(entry: &Entry, sha256: &str, size: u64) -> Result<(), ArchiveError> {
    if sha256 != entry.sha256.as_str() || size != entry.size {
        return Err(ArchiveError::BodyMismatch {
            url: entry.url.clone(),
            expected: entry.sha256.to_string(),
            expected_size: entry.size,
            actual: sha256.to_owned(),
            actual_size: size,
        });
    }
    Ok(())
}

/// `HTTP/1.1 <status> <reason>`, then the recorded header lines byte for
/// byte, then the empty line. btrfly records the status code, not the
/// protocol version or reason phrase: the line uses HTTP/1.1 and the
/// standard phrase (none for a code without one).
pub(crate) fn response_head(entry: &Entry) -> Vec<u8> {
    let reason = http::StatusCode::from_u16(entry.status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("");
    let mut out = format!("HTTP/1.1 {} {reason}\r\n", entry.status).into_bytes();
    for (name, value) in &entry.headers {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// The request as far as the tag knows it: method, origin-form target,
/// `Host`, and the request headers the key holds (a `Range`, the headers a
/// `Vary` selected), without any that could carry a secret.
pub(crate) fn request_head(entry: &Entry) -> Vec<u8> {
    let url = strip_userinfo(&entry.url);
    let (authority, target) = split_url(&url);
    let mut out = format!("{} {target} HTTP/1.1\r\n", entry.method).into_bytes();
    let host = default_port_removed(&url, authority);
    if !host.is_empty() {
        out.extend_from_slice(format!("Host: {host}\r\n").as_bytes());
    }
    for (name, value) in &entry.key.variance {
        let header = if let Some(h) = name.strip_prefix(VARY_PREFIX) {
            h
        } else if name == "range" {
            "Range"
        } else {
            continue;
        };
        if is_secret_header(header) || value.contains(['\r', '\n']) || value.is_empty() {
            continue;
        }
        out.extend_from_slice(format!("{header}: {value}\r\n").as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// Whether a request header may carry a credential: never written to a
/// WARC, whatever a key holds.
pub fn is_secret_header(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    matches!(
        n.as_str(),
        "authorization" | "proxy-authorization" | "cookie" | "set-cookie"
    ) || [
        "token",
        "secret",
        "password",
        "passwd",
        "api-key",
        "apikey",
        "auth",
        "session",
        "signature",
        "credential",
    ]
    .iter()
    .any(|s| n.contains(s))
}

/// The key as exported: `vary:` entries of headers that may hold a secret
/// are left out (such an entry imports under a key no request can match).
fn redacted_key(key: &RecordingKey) -> RecordingKey {
    let mut key = key.clone();
    key.variance.retain(|name, _| {
        name.strip_prefix(VARY_PREFIX)
            .is_none_or(|h| !is_secret_header(h))
    });
    key
}

fn key_json(key: &RecordingKey) -> String {
    // serde_json escapes control characters, so the value is one line.
    serde_json::to_string(key).unwrap_or_default()
}

/// `scheme://user:pass@host/…` → `scheme://host/…`.
pub(crate) fn strip_userinfo(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..end];
    match authority.rfind('@') {
        Some(at) => format!("{scheme}://{}{}", &authority[at + 1..], &rest[end..]),
        None => url.to_owned(),
    }
}

/// The authority and the origin-form target (`/` when empty, no fragment).
fn split_url(url: &str) -> (&str, String) {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..end];
    let target = rest[end..].split('#').next().unwrap_or_default();
    let target = if target.is_empty() {
        "/".to_owned()
    } else if target.starts_with('?') {
        format!("/{target}")
    } else {
        target.to_owned()
    };
    (authority, target)
}

fn default_port_removed<'a>(url: &str, authority: &'a str) -> &'a str {
    let default = if url.starts_with("https://") {
        ":443"
    } else {
        ":80"
    };
    authority.strip_suffix(default).unwrap_or(authority)
}

fn digest_of(hash: Sha256) -> String {
    WarcDigest {
        algorithm: Algorithm::Sha256,
        bytes: hash.finalize().to_vec(),
    }
    .to_warc()
}

fn sha256_digest(bytes: &[u8]) -> String {
    digest_of(Sha256::new_with_prefix(bytes))
}

/// A deterministic record id: a UUID (version 8, RFC 9562) made of the
/// sha256 of what the record is, so exporting the same tag twice gives the
/// same file, and different records (another tag, another body, another
/// time) different ids.
pub(crate) fn record_id(parts: &[&[u8]]) -> String {
    let mut h = Sha256::new();
    h.update(b"btrfly-warc-record-v1");
    for p in parts {
        h.update((p.len() as u64).to_be_bytes());
        h.update(p);
    }
    let d = h.finalize();
    let mut b = [0u8; 16];
    b.copy_from_slice(&d[..16]);
    b[6] = (b[6] & 0x0f) | 0x80;
    b[8] = (b[8] & 0x3f) | 0x80;
    let x = hex::encode(b);
    format!(
        "<urn:uuid:{}-{}-{}-{}-{}>",
        &x[..8],
        &x[8..12],
        &x[12..16],
        &x[16..20],
        &x[20..]
    )
}

/// `WARC-Date`: UTC, `YYYY-MM-DDThh:mm:ssZ`, with microseconds when the
/// time has a fraction of a second (WARC 1.1 §5.4 allows the precision).
pub(crate) fn warc_date(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    let base = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    );
    match t.microsecond() {
        0 => format!("{base}Z"),
        us => format!("{base}.{us:06}Z"),
    }
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use btrfly_core::FieldValue;

    fn entry() -> Entry {
        Entry {
            key: RecordingKey::new("files", "GET https://files.example.test:443/a/b?x=1")
                .vary("range", "bytes=0-9")
                .vary("vary:accept-language", "de")
                .vary("vary:x-api-key", "s3cret"),
            method: "GET".into(),
            url: "https://user:pw@files.example.test:443/a/b?x=1".into(),
            status: 206,
            headers: vec![
                ("content-type".into(), FieldValue::from("text/plain")),
                ("x-latin1".into(), FieldValue::new(b"caf\xe9".to_vec())),
            ],
            sha256: btrfly_core::Sha256::of(b"0123456789"),
            size: 10,
            mutability: Mutability::Mutable,
            recorded_at: OffsetDateTime::from_unix_timestamp_nanos(1_700_000_000_123_456_789)
                .expect("time"),
            purl: None,
        }
    }

    #[test]
    fn heads_carry_recorded_bytes_and_no_secrets() {
        let e = entry();
        let head = response_head(&e);
        assert_eq!(
            head,
            b"HTTP/1.1 206 Partial Content\r\ncontent-type: text/plain\r\nx-latin1: caf\xe9\r\n\r\n"
        );
        let req = String::from_utf8(request_head(&e)).expect("text");
        assert_eq!(
            req,
            "GET /a/b?x=1 HTTP/1.1\r\nHost: files.example.test\r\nRange: bytes=0-9\r\n\
             accept-language: de\r\n\r\n"
        );
        let key = redacted_key(&e.key);
        assert!(!key_json(&key).contains("s3cret"), "{}", key_json(&key));
        assert!(key_json(&key).contains("accept-language"));
    }

    #[test]
    fn secret_headers() {
        for secret in [
            "Authorization",
            "cookie",
            "X-Api-Key",
            "x-auth-token",
            "Private-Token",
            "X-Amz-Security-Token",
            "x-goog-signature",
        ] {
            assert!(is_secret_header(secret), "{secret}");
        }
        for plain in [
            "accept",
            "accept-encoding",
            "accept-language",
            "range",
            "origin",
        ] {
            assert!(!is_secret_header(plain), "{plain}");
        }
    }

    #[test]
    fn urls_dates_and_ids() {
        assert_eq!(
            strip_userinfo("https://u:p@a.example.test:8443/x?y#z"),
            "https://a.example.test:8443/x?y#z"
        );
        assert_eq!(
            strip_userinfo("http://a.example.test"),
            "http://a.example.test"
        );
        assert_eq!(split_url("http://a.example.test").1, "/");
        assert_eq!(split_url("http://a.example.test?q").1, "/?q");
        let e = entry();
        assert_eq!(warc_date(e.recorded_at), "2023-11-14T22:13:20.123456Z");
        let id = record_id(&[b"x"]);
        assert_eq!(id, record_id(&[b"x"]));
        assert_ne!(id, record_id(&[b"y"]));
        assert_eq!(id.len(), "<urn:uuid:>".len() + 36);
        assert_eq!(&id[24..25], "8", "{id}");
    }
}
