//! The explicit mirror's JSON routes: declare an artifact (`POST
//! /v1/mirror`, record scope), list the entries (`GET /v1/mirror`) and
//! show one (`GET /v1/mirror/{id}`, read scope). The fetcher
//! (`btrfly-mirror`) picks declared entries up from the store; a
//! declaration here wakes this replica's fetcher at once.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use btrfly_core::api::{MirrorAddRequest, MirrorList};
use btrfly_core::mirror::{valid_entry_id, MirrorSourceError};
use btrfly_core::{MirrorEntry, MirrorSource, MirrorState};
use http::StatusCode;
use rand::Rng;
use time::OffsetDateTime;

use crate::auth::{Need, Read, Record};
use crate::server::{error, json, parse_json, ControlState};

type Shared = State<Arc<ControlState>>;

/// The longest note kept (bytes); a longer one is refused, not cut.
pub const MAX_NOTE: usize = 4096;

/// `/v1/mirror` and `/v1/mirror/{id}`.
pub(crate) fn routes() -> Router<Arc<ControlState>> {
    Router::new()
        .route("/v1/mirror", get(list).post(add))
        .route("/v1/mirror/{id}", get(show))
}

/// A fresh entry id: 16 lower-case hex digits (64 random bits).
fn new_id() -> String {
    format!("{:016x}", rand::rng().random::<u64>())
}

/// Why a declaration was refused ([`declare`]).
#[derive(Debug, thiserror::Error)]
pub enum DeclareError {
    /// The note is blank.
    #[error("a mirror entry needs a note saying why it is needed")]
    NoNote,
    /// The note is longer than [`MAX_NOTE`] bytes.
    #[error("the note is {0} bytes; at most {MAX_NOTE} are kept")]
    NoteTooLong(usize),
    /// The source is not a URL or an image by digest (a tag-only image
    /// says why digests are required).
    #[error(transparent)]
    Source(#[from] MirrorSourceError),
    /// The store could not keep the entry.
    #[error("keeping the mirror entry: {0}")]
    Store(#[from] btrfly_store::StoreError),
}

impl DeclareError {
    /// `400` for what the caller sent, `503` when the store failed.
    pub fn status(&self) -> StatusCode {
        match self {
            DeclareError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

/// Declares a mirror entry: the one path of `POST /v1/mirror` and the web
/// UI's mirror form. Checks the note (mandatory, at most [`MAX_NOTE`]
/// bytes, trimmed) and the source ([`MirrorSource::parse`]; a blank
/// `sha256` counts as none), keeps the entry `pending` in the store with
/// `added_by` (the calling token's name) and the time, and wakes this
/// replica's fetcher.
///
/// # Errors
/// [`DeclareError`]: nothing is stored then.
pub async fn declare(
    state: &ControlState,
    added_by: &str,
    req: &MirrorAddRequest,
) -> Result<MirrorEntry, DeclareError> {
    let note = req.note.trim();
    if note.is_empty() {
        return Err(DeclareError::NoNote);
    }
    if note.len() > MAX_NOTE {
        return Err(DeclareError::NoteTooLong(note.len()));
    }
    let sha256 = req
        .sha256
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty());
    let source = MirrorSource::parse(&req.source, sha256)?;
    let now = OffsetDateTime::now_utc();
    let entry = MirrorEntry {
        id: new_id(),
        source,
        note: note.to_owned(),
        added_by: added_by.to_owned(),
        added_at: now,
        state: MirrorState::Pending,
        reason: None,
        attempts: 0,
        updated_at: now,
    };
    state.sessions.store().put_mirror_entry(&entry).await?;
    tracing::info!(id = %entry.id, source = %entry.source, by = %entry.added_by, "mirror entry added");
    state.mirror_added.notify_one();
    Ok(entry)
}

async fn add(
    need: Need<Record>,
    State(state): Shared,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let req: MirrorAddRequest = match parse_json(body, None) {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    match declare(&state, need.caller.name.as_str(), &req).await {
        Ok(entry) => json(StatusCode::CREATED, &entry),
        Err(e) => error(e.status(), e.to_string()),
    }
}

async fn list(_: Need<Read>, State(state): Shared) -> Response {
    match state.sessions.store().list_mirror_entries().await {
        Ok(entries) => json(StatusCode::OK, &MirrorList { entries }),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

async fn show(_: Need<Read>, State(state): Shared, Path(id): Path<String>) -> Response {
    if !valid_entry_id(&id) {
        return error(
            StatusCode::BAD_REQUEST,
            format!("{id:?} is not a mirror entry id (letters and digits, as `btrfly mirror ls` shows them)"),
        );
    }
    match state.sessions.store().get_mirror_entry(&id).await {
        Ok(Some(entry)) => json(StatusCode::OK, &entry),
        Ok(None) => error(StatusCode::NOT_FOUND, format!("no mirror entry {id}")),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}
