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
use btrfly_core::mirror::valid_entry_id;
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

async fn add(
    need: Need<Record>,
    State(state): Shared,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let req: MirrorAddRequest = match parse_json(body, None) {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let note = req.note.trim();
    if note.is_empty() {
        return error(
            StatusCode::BAD_REQUEST,
            "a mirror entry needs a note saying why it is needed (--note \"…\")",
        );
    }
    if note.len() > MAX_NOTE {
        return error(
            StatusCode::BAD_REQUEST,
            format!(
                "the note is {} bytes; at most {MAX_NOTE} are kept",
                note.len()
            ),
        );
    }
    let source = match MirrorSource::parse(&req.source, req.sha256.as_deref()) {
        Ok(s) => s,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.to_string()),
    };
    let now = OffsetDateTime::now_utc();
    let entry = MirrorEntry {
        id: new_id(),
        source,
        note: note.to_owned(),
        added_by: need.caller.name.to_string(),
        added_at: now,
        state: MirrorState::Pending,
        reason: None,
        attempts: 0,
        updated_at: now,
    };
    if let Err(e) = state.sessions.store().put_mirror_entry(&entry).await {
        return error(StatusCode::SERVICE_UNAVAILABLE, e.to_string());
    }
    tracing::info!(id = %entry.id, source = %entry.source, by = %entry.added_by, "mirror entry added");
    state.mirror_added.notify_one();
    json(StatusCode::CREATED, &entry)
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
