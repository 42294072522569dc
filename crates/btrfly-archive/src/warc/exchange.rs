//! From WARC records to HTTP exchanges: responses (and revisits) paired
//! with their requests, bodies streamed into a [`BodySink`], digests
//! checked.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::future::Future;

use btrfly_core::{FieldValue, Mutability, RecordingKey};
use bytes::Bytes;
use time::OffsetDateTime;

use super::header::{field, WarcHeader, PROFILE_IDENTICAL_PAYLOAD};
use super::http::{self, Dechunker, MAX_HTTP_HEAD};
use super::read::WarcReader;
use crate::digest::{Digester, Digests, WarcDigest};
use crate::ArchiveError;

/// Where imported bodies go (a store, a directory, memory in tests).
pub trait BodySink {
    /// The writer of one body.
    type Writer: BodyWriter + Send;
    /// Starts a new body.
    fn start(&mut self) -> impl Future<Output = std::io::Result<Self::Writer>> + Send;
}

/// One body being stored, chunk by chunk.
pub trait BodyWriter {
    /// Takes the next chunk of the body.
    fn write(&mut self, chunk: Bytes) -> impl Future<Output = std::io::Result<()>> + Send;
    /// The body is complete: its sha256 and size.
    fn finish(self) -> impl Future<Output = std::io::Result<StoredBody>> + Send;
    /// The body is refused (a digest did not match): drop what was written.
    fn abort(self) -> impl Future<Output = ()> + Send;
}

/// A body a [`BodySink`] holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredBody {
    /// sha256 of the body.
    pub sha256: btrfly_core::Sha256,
    /// Body size in bytes.
    pub size: u64,
}

/// btrfly's own fields of a response it exported.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BtrflyFields {
    /// The recording key btrfly recorded the answer under.
    pub key: RecordingKey,
    /// Whether the entry was shared across tags or frozen per tag.
    pub mutability: Mutability,
    /// The package URL the adapter recorded (`Btrfly-Purl`), if any.
    pub purl: Option<String>,
}

/// The request of an exchange, from its `request` record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExchangeRequest {
    /// The request record's `WARC-Record-ID`.
    pub record_id: String,
    /// The request method.
    pub method: String,
    /// The request target as written in the request line.
    pub target: String,
    /// The request's header fields, in order.
    pub headers: Vec<(String, FieldValue)>,
    /// sha256 (hex) of the request body, when it has one.
    pub body_sha256: Option<String>,
}

/// One HTTP exchange of a WARC file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exchange {
    /// The `response` (or `revisit`) record.
    pub record_id: String,
    /// For a `revisit`: the record whose payload it stands for.
    pub revisit_of: Option<String>,
    /// `WARC-Target-URI`.
    pub target_uri: String,
    /// `WARC-Date` of the response.
    pub date: OffsetDateTime,
    /// `None` when no `request` record belongs to the response.
    pub request: Option<ExchangeRequest>,
    /// The response status code.
    pub status: u16,
    /// Response header fields, byte for byte; `Transfer-Encoding` removed
    /// when the body was de-chunked.
    pub headers: Vec<(String, FieldValue)>,
    /// The entity body as the client received it (transfer coding
    /// removed, content coding kept), in the sink.
    pub body: StoredBody,
    /// Present when btrfly wrote the record.
    pub btrfly: Option<BtrflyFields>,
}

/// A record that does not become an exchange, and why.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Skipped {
    /// The record's `WARC-Record-ID`.
    pub record_id: String,
    /// The record's `WARC-Type`.
    pub record_type: String,
    /// The record's `WARC-Target-URI`, when it has one.
    pub target_uri: Option<String>,
    /// Why it was skipped.
    pub reason: String,
}

/// Everything read from one WARC file.
#[derive(Clone, Debug, Default)]
pub struct WarcContents {
    /// The fields of the first `warcinfo` record, in order.
    pub warcinfo: Vec<(String, String)>,
    /// Exchanges in the order of their response records.
    pub exchanges: Vec<Exchange>,
    /// Exchange records that were not imported, with the reason.
    pub skipped: Vec<Skipped>,
    /// How many records of other types (`metadata`, `resource`, …) there
    /// were; they are not exchanges.
    pub other_records: BTreeMap<String, usize>,
}

struct Pending {
    exchange: Exchange,
    concurrent_to: Vec<String>,
}

struct PendingRequest {
    request: ExchangeRequest,
    target_uri: String,
    concurrent_to: Vec<String>,
}

/// Reads every record of `reader`, streaming each response body into
/// `sink`, and pairs responses with requests: first by
/// `WARC-Concurrent-To` (either direction), then, for what is left, the
/// n-th request for a target URI with the n-th response for it.
///
/// Digests: a record's `WARC-Block-Digest` and `WARC-Payload-Digest`
/// (sha1 or sha256, any encoding [`WarcDigest::parse`] reads) are checked
/// when present. The payload digest is over the entity body as
/// transferred (after the HTTP head, before any transfer decoding); for a
/// chunked body the digest of the de-chunked bytes is accepted too, as
/// some writers compute that. A body in a content coding (gzip, …) is kept
/// encoded, with its `Content-Encoding`, as btrfly records bodies.
///
/// Only `response` and `revisit` records become exchanges; `warcinfo`
/// gives [`WarcContents::warcinfo`], other types (`metadata`, `resource`,
/// `conversion`, …) are counted. What is kept until the end of the file,
/// for pairing, is each record's head and body digest, never a body.
///
/// A `revisit` with the identical-payload-digest profile is resolved to
/// the earlier response with that payload digest (or the record its
/// `WARC-Refers-To` names); the revisit's own HTTP head, when it has one,
/// gives the status and headers.
///
/// # Errors
/// [`ArchiveError::DigestMismatch`] naming the record and both digests;
/// [`ArchiveError::Malformed`] for an input without any record;
/// [`ArchiveError::UnresolvedRevisit`]; [`ArchiveError::Malformed`] for
/// framing that is not WARC or HTTP; [`ArchiveError::Sink`] when the sink
/// fails. A body already handed to the sink for a refused record is
/// aborted.
pub async fn read_exchanges<S: BodySink>(
    reader: &mut WarcReader,
    sink: &mut S,
) -> Result<WarcContents, ArchiveError> {
    let mut contents = WarcContents::default();
    let mut responses: Vec<Pending> = Vec::new();
    let mut requests: Vec<PendingRequest> = Vec::new();
    let mut by_payload: HashMap<WarcDigest, usize> = HashMap::new();
    let mut by_id: HashMap<String, usize> = HashMap::new();
    let mut seen_warcinfo = false;
    let mut records = 0usize;

    while let Some(h) = reader.next_record().await? {
        records += 1;
        let id = h.record_id().to_owned();
        let offset = reader.record_offset();
        let malformed = |message: String| ArchiveError::Malformed {
            record_id: id.clone(),
            offset,
            message,
        };
        let kind = h.record_type();
        let skip = |reason: &str| Skipped {
            record_id: id.clone(),
            record_type: kind.clone(),
            target_uri: h.target_uri().map(str::to_owned),
            reason: reason.to_owned(),
        };
        match kind.as_str() {
            "warcinfo" if !seen_warcinfo => {
                seen_warcinfo = true;
                if let Some(block) = reader.read_small_block(MAX_HTTP_HEAD).await? {
                    contents.warcinfo = warc_fields(&block);
                }
            }
            "response" | "request" | "revisit" if !is_http(&h) => {
                contents.skipped.push(skip("not an HTTP message"));
            }
            "response" | "request" if h.get(field::SEGMENT_NUMBER).is_some() => {
                contents.skipped.push(skip(
                    "a segment of a record split over several (not supported)",
                ));
            }
            "response" if h.get(field::TRUNCATED).is_some() => {
                let why = format!(
                    "truncated by its writer ({}): not a complete answer",
                    h.get(field::TRUNCATED).unwrap_or_default()
                );
                contents.skipped.push(skip(&why));
            }
            "response" => {
                let Some(target_uri) = h.target_uri().map(str::to_owned) else {
                    contents.skipped.push(skip("no WARC-Target-URI"));
                    continue;
                };
                let date = warc_date(&h).map_err(malformed)?;
                let btrfly = btrfly_fields(&h).map_err(malformed)?;
                let (exchange, digests) =
                    read_response(reader, &h, sink, target_uri, date, btrfly).await?;
                let index = responses.len();
                for d in digests {
                    by_payload.entry(d).or_insert(index);
                }
                by_id.insert(id.clone(), index);
                responses.push(Pending {
                    exchange,
                    concurrent_to: concurrent_to(&h),
                });
            }
            "request" => {
                let Some(block) = reader.read_small_block(MAX_HTTP_HEAD).await? else {
                    contents
                        .skipped
                        .push(skip("request larger than 1 MiB (not supported)"));
                    continue;
                };
                let request = parse_request_block(&h, &block).map_err(malformed)?;
                requests.push(PendingRequest {
                    request,
                    target_uri: h.target_uri().unwrap_or_default().to_owned(),
                    concurrent_to: concurrent_to(&h),
                });
            }
            "revisit" => {
                let profile = h.get(field::PROFILE).unwrap_or_default();
                if !profile.contains("identical-payload-digest") {
                    contents.skipped.push(skip(&format!(
                        "revisit with profile {profile:?}: only {PROFILE_IDENTICAL_PAYLOAD} \
                         can be resolved"
                    )));
                    continue;
                }
                let Some(target_uri) = h.target_uri().map(str::to_owned) else {
                    contents.skipped.push(skip("no WARC-Target-URI"));
                    continue;
                };
                let date = warc_date(&h).map_err(malformed)?;
                let declared = match h.get(field::PAYLOAD_DIGEST) {
                    Some(v) => WarcDigest::parse(v).map_err(|e| malformed(e.to_string()))?,
                    None => None,
                };
                let refers_to = h.get(field::REFERS_TO).map(str::trim);
                let original = declared
                    .as_ref()
                    .and_then(|d| by_payload.get(d))
                    .or_else(|| refers_to.and_then(|r| by_id.get(r)))
                    .copied();
                let Some(original) = original else {
                    return Err(ArchiveError::UnresolvedRevisit {
                        record_id: id,
                        refers_to: declared
                            .map(|d| d.to_warc())
                            .or(refers_to.map(str::to_owned))
                            .unwrap_or_else(|| "(no payload digest)".into()),
                    });
                };
                let Some(block) = reader.read_small_block(MAX_HTTP_HEAD).await? else {
                    return Err(malformed("revisit block larger than 1 MiB".into()));
                };
                let orig = &responses[original].exchange;
                let (status, headers) = match http::head_end(&block) {
                    Some(end) if block.starts_with(b"HTTP/") => {
                        let head = http::parse_response(&block[..end]).map_err(malformed)?;
                        let mut headers = head.headers;
                        remove_transfer_encoding(&mut headers);
                        (head.status, headers)
                    }
                    _ => (orig.status, orig.headers.clone()),
                };
                let exchange = Exchange {
                    record_id: id.clone(),
                    revisit_of: Some(orig.record_id.clone()),
                    target_uri,
                    date,
                    request: None,
                    status,
                    headers,
                    body: orig.body.clone(),
                    btrfly: btrfly_fields(&h).map_err(malformed)?,
                };
                by_id.insert(id.clone(), responses.len());
                responses.push(Pending {
                    exchange,
                    concurrent_to: concurrent_to(&h),
                });
            }
            other => {
                *contents.other_records.entry(other.to_owned()).or_default() += 1;
            }
        }
    }
    if records == 0 {
        return Err(ArchiveError::Malformed {
            record_id: "(none)".into(),
            offset: 0,
            message: "the input holds no WARC record".into(),
        });
    }
    contents.exchanges = pair(responses, requests);
    Ok(contents)
}

/// Pairs requests with responses (see [`read_exchanges`]).
fn pair(mut responses: Vec<Pending>, requests: Vec<PendingRequest>) -> Vec<Exchange> {
    let response_index: HashMap<String, usize> = responses
        .iter()
        .enumerate()
        .map(|(i, r)| (r.exchange.record_id.clone(), i))
        .collect();
    let request_index: HashMap<&str, usize> = requests
        .iter()
        .enumerate()
        .map(|(i, r)| (r.request.record_id.as_str(), i))
        .collect();
    let mut request_of: Vec<Option<usize>> = vec![None; responses.len()];
    let mut used = vec![false; requests.len()];
    for (qi, q) in requests.iter().enumerate() {
        for c in &q.concurrent_to {
            if let Some(&ri) = response_index.get(c) {
                if request_of[ri].is_none() && !used[qi] {
                    request_of[ri] = Some(qi);
                    used[qi] = true;
                }
            }
        }
    }
    for (ri, r) in responses.iter().enumerate() {
        for c in &r.concurrent_to {
            if let Some(&qi) = request_index.get(c.as_str()) {
                if request_of[ri].is_none() && !used[qi] {
                    request_of[ri] = Some(qi);
                    used[qi] = true;
                }
            }
        }
    }
    let mut by_uri: HashMap<&str, VecDeque<usize>> = HashMap::new();
    for (qi, q) in requests.iter().enumerate().filter(|(qi, _)| !used[*qi]) {
        by_uri
            .entry(q.target_uri.as_str())
            .or_default()
            .push_back(qi);
    }
    for (ri, r) in responses.iter().enumerate() {
        if request_of[ri].is_none() {
            request_of[ri] = by_uri
                .get_mut(r.exchange.target_uri.as_str())
                .and_then(VecDeque::pop_front);
        }
    }
    for (r, q) in responses.iter_mut().zip(request_of) {
        r.exchange.request = q.map(|qi| requests[qi].request.clone());
    }
    responses.into_iter().map(|r| r.exchange).collect()
}

async fn read_response<S: BodySink>(
    reader: &mut WarcReader,
    h: &WarcHeader,
    sink: &mut S,
    target_uri: String,
    date: OffsetDateTime,
    btrfly: Option<BtrflyFields>,
) -> Result<(Exchange, Vec<WarcDigest>), ArchiveError> {
    let id = h.record_id().to_owned();
    let offset = reader.record_offset();
    let malformed = |message: String| ArchiveError::Malformed {
        record_id: id.clone(),
        offset,
        message,
    };
    // The HTTP head, past any interim (1xx) answers in the same block.
    let mut buf = Vec::new();
    let head = loop {
        if let Some(end) = http::head_end(&buf) {
            let head = http::parse_response(&buf[..end]).map_err(&malformed)?;
            buf.drain(..end);
            if (100..200).contains(&head.status) && head.status != 101 {
                continue;
            }
            break head;
        }
        if buf.len() > MAX_HTTP_HEAD {
            return Err(malformed("HTTP head longer than 1 MiB".into()));
        }
        match reader.read_block().await? {
            Some(chunk) => buf.extend_from_slice(&chunk),
            None => return Err(malformed("the block ends inside the HTTP head".into())),
        }
    };
    let declared = match h.get(field::PAYLOAD_DIGEST) {
        Some(v) => WarcDigest::parse(v).map_err(|e| malformed(e.to_string()))?,
        None => None,
    };
    let sink_err = |source| ArchiveError::Sink {
        record_id: id.clone(),
        source,
    };
    let mut writer = sink.start().await.map_err(sink_err)?;
    let chunked = http::is_chunked(&head.headers);
    let streamed = stream_payload(reader, &id, buf, chunked, &mut writer, &malformed).await;
    let (raw, decoded, was_chunked) = match streamed {
        Ok(v) => v,
        Err(e) => {
            writer.abort().await;
            return Err(e);
        }
    };
    if let Some(d) = &declared {
        if !raw.matches(d) && !decoded.as_ref().is_some_and(|x| x.matches(d)) {
            writer.abort().await;
            return Err(ArchiveError::DigestMismatch {
                record_id: id.clone(),
                kind: "payload",
                declared: d.to_warc(),
                computed: raw.of(d.algorithm).to_warc(),
            });
        }
    }
    let body = writer.finish().await.map_err(sink_err)?;
    let mut headers = head.headers;
    if was_chunked {
        remove_transfer_encoding(&mut headers);
    }
    let mut digests = vec![raw.sha1, raw.sha256];
    if let Some(d) = decoded {
        digests.extend([d.sha1, d.sha256]);
    }
    digests.extend(declared);
    Ok((
        Exchange {
            record_id: id.clone(),
            revisit_of: None,
            target_uri,
            date,
            request: None,
            status: head.status,
            headers,
            body,
            btrfly,
        },
        digests,
    ))
}

/// Streams the rest of the block (after the HTTP head, whose tail `rest`
/// already holds) into `writer`, de-chunked when `chunked`. Returns the
/// digests of the payload as transferred and, for a chunked payload, of
/// the de-chunked body, and whether it was de-chunked.
async fn stream_payload<W: BodyWriter>(
    reader: &mut WarcReader,
    record_id: &str,
    rest: Vec<u8>,
    chunked: bool,
    writer: &mut W,
    malformed: &impl Fn(String) -> ArchiveError,
) -> Result<(Digests, Option<Digests>, bool), ArchiveError> {
    let mut raw = Digester::new();
    let mut decoded = chunked.then(Digester::new);
    let mut dechunker = chunked.then(Dechunker::default);
    let mut out = Vec::new();
    let mut next = Some(Bytes::from(rest));
    while let Some(chunk) = next.take() {
        raw.update(&chunk);
        let body = match &mut dechunker {
            Some(d) => {
                out.clear();
                d.feed(&chunk, &mut out).map_err(malformed)?;
                Bytes::copy_from_slice(&out)
            }
            None => chunk,
        };
        if let Some(d) = &mut decoded {
            d.update(&body);
        }
        if !body.is_empty() {
            writer
                .write(body)
                .await
                .map_err(|source| ArchiveError::Sink {
                    record_id: record_id.to_owned(),
                    source,
                })?;
        }
        next = reader.read_block().await?;
    }
    let was_chunked = dechunker.as_ref().is_some_and(Dechunker::was_chunked);
    if let Some(d) = &dechunker {
        if d.was_chunked() && !d.is_complete() {
            return Err(malformed(
                "chunked body ends before its last chunk (an incomplete answer)".into(),
            ));
        }
    }
    Ok((raw.finish(), decoded.map(Digester::finish), was_chunked))
}

/// A de-chunked body has no transfer coding any more: drop
/// `Transfer-Encoding` (and a `Content-Length` a sender put beside it,
/// which RFC 9112 §6.3 says to ignore).
fn remove_transfer_encoding(headers: &mut Vec<(String, FieldValue)>) {
    let chunked = http::is_chunked(headers);
    headers.retain(|(k, _)| {
        let framing = k.eq_ignore_ascii_case("transfer-encoding")
            || (chunked && k.eq_ignore_ascii_case("content-length"));
        !framing
    });
}

fn parse_request_block(h: &WarcHeader, block: &[u8]) -> Result<ExchangeRequest, String> {
    let end = http::head_end(block).ok_or("the block ends inside the HTTP request head")?;
    let head = http::parse_request(&block[..end])?;
    let mut body = &block[end..];
    let mut decoded = Vec::new();
    if http::is_chunked(&head.headers) {
        let mut d = Dechunker::default();
        d.feed(body, &mut decoded)?;
        body = &decoded;
    }
    Ok(ExchangeRequest {
        record_id: h.record_id().to_owned(),
        method: head.method,
        target: head.target,
        headers: head.headers,
        body_sha256: (!body.is_empty()).then(|| btrfly_core::sha256_hex(body)),
    })
}

fn is_http(h: &WarcHeader) -> bool {
    let ct = h
        .get(field::CONTENT_TYPE)
        .unwrap_or_default()
        .to_ascii_lowercase();
    let uri = h.target_uri().unwrap_or_default().to_ascii_lowercase();
    ct.starts_with("application/http")
        || (ct.is_empty() && (uri.starts_with("http://") || uri.starts_with("https://")))
}

fn concurrent_to(h: &WarcHeader) -> Vec<String> {
    h.get_all(field::CONCURRENT_TO)
        .flat_map(|v| v.split_whitespace())
        .map(str::to_owned)
        .collect()
}

fn warc_date(h: &WarcHeader) -> Result<OffsetDateTime, String> {
    let v = h.get(field::DATE).ok_or("no WARC-Date")?.trim();
    OffsetDateTime::parse(v, &time::format_description::well_known::Rfc3339)
        .map_err(|e| format!("WARC-Date {v:?}: {e}"))
}

fn btrfly_fields(h: &WarcHeader) -> Result<Option<BtrflyFields>, String> {
    let Some(key) = h.get(field::BTRFLY_KEY) else {
        return Ok(None);
    };
    let key: RecordingKey =
        serde_json::from_str(key).map_err(|e| format!("{}: {e}", field::BTRFLY_KEY))?;
    let mutability = match h.get(field::BTRFLY_MUTABILITY).map(str::trim) {
        Some("immutable") => Mutability::Immutable,
        _ => Mutability::Mutable,
    };
    let purl = h.get(field::BTRFLY_PURL).map(|p| p.trim().to_owned());
    Ok(Some(BtrflyFields {
        key,
        mutability,
        purl,
    }))
}

/// `name: value` lines of an `application/warc-fields` block.
fn warc_fields(block: &[u8]) -> Vec<(String, String)> {
    String::from_utf8_lossy(block)
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .filter(|(k, _)| !k.is_empty())
        .collect()
}
