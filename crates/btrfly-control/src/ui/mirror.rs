//! The mirror page (`/ui/mirror`): every declared entry, newest first,
//! with its note, state (and the reason of a failure), who added it and
//! when, and its sha256 where known; and the form that declares one.
//!
//! The form is a [`Posted<Record, _>`]: it declares through
//! [`crate::mirror::declare`], the function behind `POST /v1/mirror`
//! (the same checks, `added_by` the session's token name, the fetcher
//! woken at once), then answers `303` back to the page
//! (Post/Redirect/Get), which shows what happened once: the new entry's
//! id, or the refusal in words with the form filled in again.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use btrfly_archive::store::tag_entries;
use btrfly_archive::ArchiveError;
use btrfly_core::api::MirrorAddRequest;
use btrfly_core::mirror::mirror_tag;
use btrfly_core::{canonical_url, Entry, MirrorSource, MirrorState};
use btrfly_store::Store;
use http::StatusCode;
use serde::Deserialize;

use super::pages::{self, MirrorCounts, MirrorRow};
use super::session::Notice;
use super::{html, problem, Posted, Signed, UiState};
use crate::auth::{Read, Record};
use crate::mirror::declare;

/// The mirror form's fields (`csrf` is checked by [`Posted`]).
#[derive(Deserialize)]
pub(super) struct MirrorForm {
    #[serde(default)]
    source: String,
    #[serde(default)]
    sha256: String,
    #[serde(default)]
    note: String,
}

/// `GET /ui/mirror`.
pub(super) async fn page(signed: Signed<Read>, State(ui): State<Arc<UiState>>) -> Response {
    let chrome = signed.chrome();
    let store = ui.control.sessions.store();
    let mut entries = match store.list_mirror_entries().await {
        Ok(e) => e,
        Err(e) => {
            return problem(
                StatusCode::SERVICE_UNAVAILABLE,
                Some(&chrome),
                &format!("reading the mirror entries: {e}"),
            )
        }
    };
    entries.sort_by(|a, b| b.added_at.cmp(&a.added_at).then_with(|| b.id.cmp(&a.id)));
    let bodies = stored_bodies(store).await;
    let rows: Vec<MirrorRow> = entries
        .into_iter()
        .map(|entry| {
            let body = match &entry.source {
                MirrorSource::Url { url, .. } if entry.state == MirrorState::Stored => url
                    .parse::<http::Uri>()
                    .ok()
                    .and_then(|u| bodies.get(&canonical_url(&u)).cloned()),
                _ => None,
            };
            MirrorRow { entry, body }
        })
        .collect();
    let notice = ui.sessions.take_notice(&signed.session_id);
    html(
        StatusCode::OK,
        pages::mirror_page(&chrome, &rows, notice.as_ref()),
    )
}

/// The recorded `GET` answers (2xx) of the mirror's tag by canonical URL,
/// the latest recording of each: the sha256 of a stored file that was
/// declared without one. Empty when nothing was fetched yet, or the tag
/// cannot be read (the page then shows what the entries know).
async fn stored_bodies(store: &Store) -> HashMap<String, Entry> {
    let entries = match tag_entries(store, &mirror_tag()).await {
        Ok((_, entries)) => entries,
        Err(ArchiveError::NoSuchTag(_)) => Vec::new(),
        Err(e) => {
            tracing::warn!("web UI: reading the mirror's tag: {e}");
            Vec::new()
        }
    };
    let mut by_url: HashMap<String, Entry> = HashMap::new();
    for e in entries {
        if e.method != "GET" || !(200..300).contains(&e.status) {
            continue;
        }
        let Ok(uri) = e.url.parse::<http::Uri>() else {
            continue;
        };
        let url = canonical_url(&uri);
        if by_url
            .get(&url)
            .is_none_or(|seen| seen.recorded_at < e.recorded_at)
        {
            by_url.insert(url, e);
        }
    }
    by_url
}

/// The dashboard's mirror section: entries by state.
///
/// # Errors
/// The store's, in words.
pub(super) async fn counts(store: &Store) -> Result<MirrorCounts, String> {
    let entries = store
        .list_mirror_entries()
        .await
        .map_err(|e| format!("reading the mirror entries: {e}"))?;
    let mut counts = MirrorCounts::default();
    for e in &entries {
        match e.state {
            MirrorState::Pending => counts.pending += 1,
            MirrorState::Stored => counts.stored += 1,
            MirrorState::Failed => counts.failed += 1,
        }
    }
    Ok(counts)
}

/// `POST /ui/mirror`: declares an entry, then `303` back to the page,
/// which shows the outcome once.
pub(super) async fn add(
    State(ui): State<Arc<UiState>>,
    posted: Posted<Record, MirrorForm>,
) -> Response {
    let Posted { signed, form } = posted;
    let req = MirrorAddRequest {
        source: form.source.trim().to_owned(),
        sha256: Some(form.sha256.clone()),
        note: form.note.clone(),
    };
    let notice = match declare(&ui.control, signed.caller.name.as_str(), &req).await {
        Ok(entry) => Notice {
            refused: false,
            message: format!(
                "Entry {} added: the server is fetching {}. Reload this page to follow its state.",
                entry.id, entry.source
            ),
            fields: Vec::new(),
        },
        Err(e) => {
            tracing::info!(token = %signed.caller.name, "web UI mirror entry refused: {e}");
            Notice {
                refused: true,
                message: e.to_string(),
                fields: vec![
                    ("source".to_owned(), form.source),
                    ("sha256".to_owned(), form.sha256),
                    ("note".to_owned(), form.note),
                ],
            }
        }
    };
    ui.sessions.set_notice(&signed.session_id, notice);
    Redirect::to("/ui/mirror").into_response()
}
