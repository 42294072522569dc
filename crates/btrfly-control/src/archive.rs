//! The archive routes: tags out of and into WARC files, bills of
//! materials, diffs (the work is `btrfly-archive`'s; these handlers only
//! stream and translate errors to statuses).
//!
//! | method | path                                   | answer |
//! |--------|----------------------------------------|--------|
//! | GET    | /v1/tags/{tag}/export[?filename=NAME]   | `200` `application/warc`, the tag as a WARC 1.1 file, one gzip member per record, streamed; `X-Btrfly-Export-Entries` and `X-Btrfly-Export-Body-Bytes` give the entry count and the sum of their body sizes (uncompressed) for a progress bar |
//! | POST   | /v1/tags/{tag}/import                  | the request body is a `.warc` or `.warc.gz`; `201` with the import summary (JSON), `409` when the tag exists, `422` with the reason for a digest mismatch, an unresolved revisit or broken framing (nothing is written to the tag) |
//! | GET    | /v1/tags/{tag}/manifest?format=F       | the bill of materials: `json` (default), `cyclonedx` (CycloneDX 1.5 JSON), `spdx` (SPDX 2.3 JSON) |
//! | GET    | /v1/tags/{a}/diff/{b}[?format=text]    | what changed from tag `a` to tag `b`: JSON (with `"equal"`), or text with `X-Btrfly-Diff: equal` or `different` |
//!
//! An export that fails after its head was sent ends the response without
//! its last chunk (the client sees a cut body, never a clean end), and the
//! server logs why.

use crate::auth::{Need, Read, Record};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use btrfly_archive::bom::Manifest;
use btrfly_archive::diff::TagDiff;
use btrfly_archive::store::{export_tag, import_tag, tag_entries};
use btrfly_archive::warc::ExportOptions;
use btrfly_archive::ArchiveError;
use btrfly_core::{Adapter, Classification, RequestHead, Tag};
use btrfly_store::Store;
use futures::StreamExt;
use http::{header, HeaderValue, StatusCode};
use serde::Deserialize;
use tokio::io::AsyncWriteExt;
use tokio_util::io::{ReaderStream, StreamReader};

use crate::server::{error, json, ControlState};

/// The first adapter that claims a request and its verdict: the gateway's
/// adapter registry, so that an imported exchange gets the key a recording
/// of the same request would have made.
pub type Classifier =
    Arc<dyn Fn(&RequestHead) -> Option<(Arc<dyn Adapter>, Classification)> + Send + Sync>;

type Shared = State<Arc<ControlState>>;

/// Bytes of WARC buffered between the exporting task and the response.
const EXPORT_BUFFER: usize = 256 * 1024;

/// The archive routes (see the module docs).
pub fn routes() -> Router<Arc<ControlState>> {
    Router::new()
        .route("/v1/tags/{tag}/export", get(export))
        .route("/v1/tags/{tag}/import", post(import))
        .route("/v1/tags/{tag}/manifest", get(manifest))
        .route("/v1/tags/{a}/diff/{b}", get(diff))
}

fn parse_tag(name: &str) -> Result<Tag, Response> {
    Tag::new(name).map_err(|e| error(StatusCode::BAD_REQUEST, e.to_string()))
}

/// The status an archive error answers with: whose fault it was.
fn archive_error(e: &ArchiveError) -> Response {
    let status = match e {
        ArchiveError::NoSuchTag(_) => StatusCode::NOT_FOUND,
        ArchiveError::TagExists(_) => StatusCode::CONFLICT,
        ArchiveError::DigestMismatch { .. }
        | ArchiveError::UnresolvedRevisit { .. }
        | ArchiveError::Malformed { .. }
        | ArchiveError::Read { .. } => StatusCode::UNPROCESSABLE_ENTITY,
        ArchiveError::Store(_) | ArchiveError::Sink { .. } => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    error(status, e.to_string())
}

#[derive(Deserialize)]
struct ExportQuery {
    /// `WARC-Filename` of the `warcinfo` record.
    filename: Option<String>,
}

async fn export(
    _: Need<Read>,
    State(state): Shared,
    Path(name): Path<String>,
    Query(query): Query<ExportQuery>,
) -> Response {
    let tag = match parse_tag(&name) {
        Ok(t) => t,
        Err(resp) => return resp,
    };
    let store = state.sessions.store().clone();
    // Counted before the first byte so that the client can draw a bar.
    let (count, body_bytes) = match tag_entries(&store, &tag).await {
        Ok((_, entries)) => (entries.len(), entries.iter().map(|e| e.size).sum::<u64>()),
        Err(e) => return archive_error(&e),
    };
    let (writer, reader) = tokio::io::duplex(EXPORT_BUFFER);
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<Result<(), String>>();
    let options = ExportOptions {
        filename: query.filename,
        ..ExportOptions::default()
    };
    let exported = tag.clone();
    tokio::spawn(async move {
        let result = match export_tag(&store, &exported, writer, &options, |_| {}).await {
            Ok((mut w, _)) => w.shutdown().await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        if let Err(e) = &result {
            tracing::warn!("export of tag {exported}: {e}");
        }
        // The response is gone when nobody listens any more.
        let _ = done_tx.send(result);
    });
    // After the last byte, the export's outcome: an error becomes a stream
    // error, which ends the response without its last chunk.
    let outcome = futures::stream::once(async move {
        match done_rx.await {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(Err(std::io::Error::other(e))),
            Err(_) => Some(Err(std::io::Error::other("the export task ended early"))),
        }
    })
    .filter_map(std::future::ready);
    let body = Body::from_stream(ReaderStream::new(reader).chain(outcome));
    (
        StatusCode::OK,
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/warc"),
            ),
            (
                header::HeaderName::from_static("x-btrfly-export-entries"),
                HeaderValue::from(count),
            ),
            (
                header::HeaderName::from_static("x-btrfly-export-body-bytes"),
                HeaderValue::from(body_bytes),
            ),
        ],
        body,
    )
        .into_response()
}

async fn import(
    _: Need<Record>,
    State(state): Shared,
    Path(name): Path<String>,
    body: Body,
) -> Response {
    let tag = match parse_tag(&name) {
        Ok(t) => t,
        Err(resp) => return resp,
    };
    // The body goes to the import through a small channel, so that when
    // the import stops early (the tag exists, a digest does not match) the
    // rest of the upload can still be read and dropped: a client that is
    // still sending only reads the answer once its body went out (hyper's
    // client fails with a broken pipe otherwise, and the reason is lost).
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<bytes::Bytes>>(4);
    let mut data = body.into_data_stream();
    let pump = tokio::spawn(async move {
        let mut importing = true;
        while let Some(chunk) = data.next().await {
            let chunk = chunk.map_err(std::io::Error::other);
            let failed = chunk.is_err();
            if importing && tx.send(chunk).await.is_err() {
                importing = false;
            }
            if failed {
                break;
            }
        }
    });
    let chunks = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|chunk| (chunk, rx))
    });
    let input = StreamReader::new(Box::pin(chunks));
    let classify = state.classify.clone();
    let result = import_tag(state.sessions.store(), &tag, input, &*classify).await;
    if result.is_err() {
        // Dropping the rest of the upload; the answer goes out after it.
        let _ = pump.await;
    }
    match result {
        Ok(summary) => {
            tracing::info!(
                "imported tag {tag}: {} entries, {} records skipped",
                summary.entries,
                summary.skipped.len()
            );
            json(StatusCode::CREATED, &summary)
        }
        Err(e) => archive_error(&e),
    }
}

#[derive(Deserialize)]
struct ManifestQuery {
    format: Option<String>,
}

/// The manifest of a tag, or the error response.
async fn manifest_of(state: &ControlState, name: &str) -> Result<Manifest, Response> {
    let tag = parse_tag(name)?;
    manifest_of_tag(state.sessions.store(), &tag)
        .await
        .map_err(|e| archive_error(&e))
}

async fn manifest_of_tag(store: &Store, tag: &Tag) -> Result<Manifest, ArchiveError> {
    let (meta, entries) = tag_entries(store, tag).await?;
    Manifest::of_entries(meta, entries)
}

/// What changed from tag `a` to tag `b` ([`TagDiff::between`] of their
/// manifests): the one diff behind `GET /v1/tags/{a}/diff/{b}` and the web
/// UI's diff page.
///
/// # Errors
/// [`ArchiveError::NoSuchTag`] naming the tag that does not exist; the
/// store failed.
pub async fn tag_diff(store: &Store, a: &Tag, b: &Tag) -> Result<TagDiff, ArchiveError> {
    let ma = manifest_of_tag(store, a).await?;
    let mb = manifest_of_tag(store, b).await?;
    Ok(TagDiff::between(&ma, &mb))
}

async fn manifest(
    _: Need<Read>,
    State(state): Shared,
    Path(name): Path<String>,
    Query(query): Query<ManifestQuery>,
) -> Response {
    let format = query.format.as_deref().unwrap_or("json");
    if !matches!(format, "json" | "cyclonedx" | "spdx") {
        return error(
            StatusCode::BAD_REQUEST,
            format!("unknown manifest format {format:?}: json, cyclonedx or spdx"),
        );
    }
    let m = match manifest_of(&state, &name).await {
        Ok(m) => m,
        Err(resp) => return resp,
    };
    let (content_type, document) = match format {
        "cyclonedx" => ("application/vnd.cyclonedx+json", m.to_cyclonedx()),
        "spdx" => ("application/spdx+json", m.to_spdx()),
        _ => return json(StatusCode::OK, &m.to_json()),
    };
    match document {
        Ok(d) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, HeaderValue::from_static(content_type))],
            d,
        )
            .into_response(),
        Err(e) => archive_error(&e),
    }
}

#[derive(Deserialize)]
struct DiffQuery {
    format: Option<String>,
}

async fn diff(
    _: Need<Read>,
    State(state): Shared,
    Path((a, b)): Path<(String, String)>,
    Query(query): Query<DiffQuery>,
) -> Response {
    let text = match query.format.as_deref() {
        None | Some("json") => false,
        Some("text") => true,
        Some(f) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("unknown diff format {f:?}: json or text"),
            )
        }
    };
    let (a, b) = match (parse_tag(&a), parse_tag(&b)) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(resp), _) | (_, Err(resp)) => return resp,
    };
    let d = match tag_diff(state.sessions.store(), &a, &b).await {
        Ok(d) => d,
        Err(e) => return archive_error(&e),
    };
    if !text {
        return json(StatusCode::OK, &d.to_json());
    }
    let verdict = if d.is_equal() { "equal" } else { "different" };
    (
        StatusCode::OK,
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            ),
            (
                header::HeaderName::from_static("x-btrfly-diff"),
                HeaderValue::from_static(verdict),
            ),
        ],
        d.to_text(),
    )
        .into_response()
}
