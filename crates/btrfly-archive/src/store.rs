//! Tags in a btrfly store, to and from WARC files: what the control API's
//! export and import endpoints call.

use std::collections::HashMap;
use std::sync::Arc;

use btrfly_core::{
    vary_names, Adapter, Classification, Entry, FieldValue, RecordingKey, RequestHead, Tag,
    TagMeta, VaryRecord, BODY_VARIANCE, VARY_PREFIX,
};
use btrfly_store::{BlobWriter, Store};
use bytes::Bytes;
use time::OffsetDateTime;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::warc::{
    read_exchanges, Bodies, BodySink, BodyStream, BodyWriter, Exchange, ExportOptions, Skipped,
    StoredBody, WarcReader, WarcWriter,
};
use crate::ArchiveError;

/// A tag's metadata and its entries, sorted by URL, method and key (the
/// order exports, manifests and diffs use).
///
/// # Errors
/// [`ArchiveError::NoSuchTag`]; [`ArchiveError::Store`] when the store
/// fails.
pub async fn tag_entries(store: &Store, tag: &Tag) -> Result<(TagMeta, Vec<Entry>), ArchiveError> {
    let meta = store
        .tag_meta(tag)
        .await?
        .ok_or_else(|| ArchiveError::NoSuchTag(tag.clone()))?;
    let index = store.load_index(&meta).await?;
    let mut entries: Vec<Entry> = index.entries().cloned().collect();
    sort_entries(&mut entries);
    Ok((meta, entries))
}

/// Sorts entries by URL, method and key id.
pub fn sort_entries(entries: &mut [Entry]) {
    entries.sort_by_cached_key(|e| (e.url.clone(), e.method.clone(), e.key.id()));
}

impl Bodies for Store {
    async fn open(&self, entry: &Entry) -> std::io::Result<BodyStream> {
        self.read_blob(&entry.sha256, None)
            .await
            .map_err(std::io::Error::other)
    }
}

/// Progress of an export, after each entry.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ExportProgress {
    /// Entries written so far.
    pub entries_done: usize,
    /// Entries in the tag.
    pub entries_total: usize,
    /// Body bytes written so far (uncompressed).
    pub body_bytes_done: u64,
    /// Body bytes of the whole tag (uncompressed).
    pub body_bytes_total: u64,
    /// Bytes handed to the output (compressed).
    pub bytes_written: u64,
}

/// Writes a tag as a WARC file to `out` (see [`crate::warc`] for what it
/// holds), calling `progress` after the `warcinfo` record and after each
/// entry. Returns the output and the final progress.
///
/// # Errors
/// [`ArchiveError::NoSuchTag`]; [`ArchiveError::Write`] when `out` fails;
/// [`ArchiveError::Body`]/[`ArchiveError::BodyMismatch`] when a body is
/// missing or damaged in the store (the output then ends inside a record,
/// which no WARC reader accepts as complete).
pub async fn export_tag<W: AsyncWrite + Unpin + Send>(
    store: &Store,
    tag: &Tag,
    out: W,
    options: &ExportOptions,
    mut progress: impl FnMut(&ExportProgress),
) -> Result<(W, ExportProgress), ArchiveError> {
    let (meta, entries) = tag_entries(store, tag).await?;
    let mut p = ExportProgress {
        entries_total: entries.len(),
        body_bytes_total: entries.iter().map(|e| e.size).sum(),
        ..ExportProgress::default()
    };
    let mut w = WarcWriter::new(out, options);
    w.write_warcinfo(&meta, entries.len(), options.filename.as_deref())
        .await?;
    p.bytes_written = w.bytes_written();
    progress(&p);
    for entry in &entries {
        w.write_entry(entry, store).await?;
        p.entries_done += 1;
        p.body_bytes_done += entry.size;
        p.bytes_written = w.bytes_written();
        progress(&p);
    }
    Ok((w.finish().await?, p))
}

/// Stores bodies as blobs (content-addressed: a body already stored is
/// stored once).
pub struct StoreBody(BlobWriter);

impl BodySink for Store {
    type Writer = StoreBody;
    async fn start(&mut self) -> std::io::Result<StoreBody> {
        self.blob_writer(None)
            .await
            .map(StoreBody)
            .map_err(std::io::Error::other)
    }
}

impl BodyWriter for StoreBody {
    async fn write(&mut self, chunk: Bytes) -> std::io::Result<()> {
        self.0.write(chunk).await.map_err(std::io::Error::other)
    }

    async fn finish(self) -> std::io::Result<StoredBody> {
        let blob = self.0.finish().await.map_err(std::io::Error::other)?;
        Ok(StoredBody {
            sha256: blob.sha256,
            size: blob.size,
        })
    }

    async fn abort(self) {
        self.0.abort().await;
    }
}

/// The first adapter that claims a request, and its verdict (what
/// `btrfly_gateway::Adapters::classify` answers).
pub type Classify<'a> =
    &'a (dyn Fn(&RequestHead) -> Option<(Arc<dyn Adapter>, Classification)> + Send + Sync);

/// What an import did (the control API's answer, as JSON).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ImportSummary {
    /// The new tag, sealed.
    pub meta: TagMeta,
    /// Entries the tag holds.
    pub entries: usize,
    /// Exchanges that were not imported, with the reason (records that are
    /// not HTTP, answers no adapter claims, a later error where an earlier
    /// success stands, …).
    pub skipped: Vec<Skipped>,
    /// `btrfly-tag` of the file's `warcinfo`, when btrfly wrote it.
    pub source_tag: Option<String>,
    /// Body bytes read (revisits not counted).
    pub body_bytes: u64,
}

/// Loads a WARC file into a new tag of `store`, sealed, so that playback
/// answers from it as from a recording.
///
/// Every body is streamed into the store (content-addressed: one copy per
/// distinct body, whatever the number of records holding it). Exchanges
/// that btrfly exported keep their recorded key, mutability and header
/// bytes (`Btrfly-Key`). Exchanges from other tools are keyed as a
/// recording would key them: the first adapter of `classify` that claims
/// the request (method, `WARC-Target-URI`, the request record's headers;
/// `GET` without headers when there is no request record), the request
/// body's digest, and the request headers its `Vary` names; hop-by-hop
/// headers are dropped and the adapter normalises the head and decides
/// whether the answer is recorded at all, as when recording. Within the
/// file the first good answer stands: a later error never replaces an
/// earlier success under the same key.
///
/// Nothing is written to the tag until the whole file has been read and
/// checked: a refused file leaves no tag (bodies it already stored stay,
/// unreferenced, under their content address).
///
/// # Errors
/// [`ArchiveError::TagExists`] when the tag exists; every error of
/// [`read_exchanges`] (digest mismatch, unresolved revisit, malformed
/// framing); [`ArchiveError::Store`].
pub async fn import_tag<R: AsyncRead + Send + 'static>(
    store: &Store,
    tag: &Tag,
    input: R,
    classify: Classify<'_>,
) -> Result<ImportSummary, ArchiveError> {
    if store.tag_meta(tag).await?.is_some() {
        return Err(ArchiveError::TagExists(tag.clone()));
    }
    let mut reader = WarcReader::new(input).await?;
    let mut sink = store.clone();
    let contents = read_exchanges(&mut reader, &mut sink).await?;
    let mut skipped = contents.skipped;
    let mut entries: Vec<Entry> = Vec::new();
    let mut vary: Vec<VaryRecord> = Vec::new();
    let mut by_key: HashMap<String, usize> = HashMap::new();
    let mut body_bytes = 0;
    for ex in &contents.exchanges {
        if ex.revisit_of.is_none() {
            body_bytes += ex.body.size;
        }
        let (entry, record) = match entry_of(ex, classify) {
            Ok(v) => v,
            Err(reason) => {
                skipped.push(Skipped {
                    record_id: ex.record_id.clone(),
                    record_type: if ex.revisit_of.is_some() {
                        "revisit".into()
                    } else {
                        "response".into()
                    },
                    target_uri: Some(ex.target_uri.clone()),
                    reason,
                });
                continue;
            }
        };
        let id = entry.key.id();
        match by_key.get(&id) {
            Some(&i) if entries[i].status < 400 && entry.status >= 400 => {
                skipped.push(Skipped {
                    record_id: ex.record_id.clone(),
                    record_type: "response".into(),
                    target_uri: Some(ex.target_uri.clone()),
                    reason: format!(
                        "a {} for a key whose earlier answer ({}) stands",
                        entry.status, entries[i].status
                    ),
                });
                continue;
            }
            Some(&i) => entries[i] = entry,
            None => {
                by_key.insert(id, entries.len());
                entries.push(entry);
            }
        }
        if let Some(r) = record {
            if !vary.contains(&r) {
                vary.push(r);
            }
        }
    }
    if store.tag_meta(tag).await?.is_some() {
        return Err(ArchiveError::TagExists(tag.clone()));
    }
    let meta = TagMeta {
        tag: tag.clone(),
        created_at: OffsetDateTime::now_utc(),
        sealed: false,
        sealed_at: None,
    };
    store.put_tag_meta(&meta).await?;
    for r in &vary {
        store.put_vary(tag, r).await?;
    }
    for e in &entries {
        store.put_entry(tag, e).await?;
    }
    let meta = store.seal_tag(meta).await?;
    let source_tag = contents
        .warcinfo
        .iter()
        .find(|(k, _)| k == "btrfly-tag")
        .map(|(_, v)| v.clone());
    Ok(ImportSummary {
        meta,
        entries: entries.len(),
        skipped,
        source_tag,
        body_bytes,
    })
}

/// Headers that describe one connection, not the resource (as the
/// recorder drops them).
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// The entry (and the vary record it needs) for one exchange, or why it is
/// not imported.
fn entry_of(ex: &Exchange, classify: Classify<'_>) -> Result<(Entry, Option<VaryRecord>), String> {
    let method = ex.request.as_ref().map(|r| r.method.clone());
    if let Some(own) = &ex.btrfly {
        let method = method
            .or_else(|| own.key.primary.split(' ').next().map(str::to_owned))
            .unwrap_or_else(|| "GET".into());
        let entry = Entry {
            key: own.key.clone(),
            method,
            url: ex.target_uri.clone(),
            status: ex.status,
            headers: ex.headers.clone(),
            sha256: ex.body.sha256.clone(),
            size: ex.body.size,
            mutability: own.mutability,
            recorded_at: ex.date,
            purl: own.purl.clone(),
        };
        return Ok((entry, vary_record_of(&own.key)));
    }
    let method = method.unwrap_or_else(|| "GET".into());
    let uri: http::Uri = ex
        .target_uri
        .parse()
        .map_err(|e| format!("WARC-Target-URI is not a URL: {e}"))?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.authority().is_none() {
        return Err("WARC-Target-URI is not an absolute http(s) URL".into());
    }
    let mut request_headers = http::HeaderMap::new();
    for (k, v) in ex.request.iter().flat_map(|r| &r.headers) {
        if let (Ok(name), Some(value)) = (
            http::HeaderName::from_bytes(k.as_bytes()),
            v.to_header_value(),
        ) {
            request_headers.append(name, value);
        }
    }
    let head = RequestHead {
        method: http::Method::from_bytes(method.as_bytes())
            .map_err(|e| format!("request method {method:?}: {e}"))?,
        uri,
        headers: request_headers,
    };
    let (adapter, class) = classify(&head).ok_or("no adapter claims the request")?;
    let mut response = http::HeaderMap::new();
    let connection: Vec<String> = ex
        .headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("connection"))
        .filter_map(|(_, v)| v.to_str())
        .flat_map(|v| v.split(','))
        .map(|n| n.trim().to_ascii_lowercase())
        .collect();
    for (k, v) in &ex.headers {
        let lower = k.to_ascii_lowercase();
        if HOP_BY_HOP.contains(&lower.as_str()) || connection.contains(&lower) {
            continue;
        }
        let name = http::HeaderName::from_bytes(k.as_bytes())
            .map_err(|e| format!("response header name {k:?}: {e}"))?;
        let value = v
            .to_header_value()
            .ok_or_else(|| format!("response header {k} holds bytes no header may carry"))?;
        response.append(name, value);
    }
    adapter.normalize_response_headers(&class, ex.status, &mut response);
    if !adapter.records(&head, &class, ex.status, &response) {
        return Err(format!(
            "the {} adapter does not record this answer ({})",
            adapter.name(),
            ex.status
        ));
    }
    // Only a sha256 can be checked against the archive's body digest; the
    // other announced forms (sha512, sha1, Go h1) come from pages recorded
    // in a live session (digest hints), never from a URL alone.
    if let Some(expected) = class.expected.as_ref().and_then(|d| d.as_sha256()) {
        let verified = method == "GET" && (200..300).contains(&ex.status) && ex.status != 204;
        if verified && expected != &ex.body.sha256 {
            return Err(format!(
                "the body (sha256 {}) is not the one its URL names (sha256 {expected})",
                ex.body.sha256
            ));
        }
    }
    let mut base = class.key.clone();
    if let Some(d) = ex.request.as_ref().and_then(|r| r.body_sha256.clone()) {
        base.variance.insert(BODY_VARIANCE.into(), d);
    }
    let names = adapter.vary_headers(&class, vary_names(&response));
    let key = base.with_vary(&names, &head.headers);
    let record = if names.is_empty() {
        None
    } else {
        Some(VaryRecord {
            key: base,
            vary: names,
        })
    };
    let entry = Entry {
        key,
        method,
        url: ex.target_uri.clone(),
        status: ex.status,
        headers: response
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), FieldValue::from(v)))
            .collect(),
        sha256: ex.body.sha256.clone(),
        size: ex.body.size,
        mutability: class.mutability,
        recorded_at: ex.date,
        purl: class.package.clone(),
    };
    Ok((entry, record))
}

/// The vary record a key with `vary:` parts needs to be found in playback.
pub(crate) fn vary_record_of(key: &RecordingKey) -> Option<VaryRecord> {
    let names: Vec<String> = key
        .variance
        .keys()
        .filter_map(|k| k.strip_prefix(VARY_PREFIX))
        .map(str::to_owned)
        .collect();
    (!names.is_empty()).then(|| VaryRecord {
        key: key.without_vary(),
        vary: names,
    })
}
