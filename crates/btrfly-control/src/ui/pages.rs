//! The web UI's HTML, as maud templates (compiled in; every value
//! interpolated with `(…)` is HTML-escaped). No JavaScript: links and
//! forms only.

use btrfly_archive::diff::{DiffEntry, TagDiff};
use btrfly_core::mirror::MIRROR_TAG;
use btrfly_core::{
    Entry, MirrorEntry, MirrorSource, MirrorState, Scope, Summary, Tag, TagMeta, TokenName,
};
use maud::{html, Markup, DOCTYPE};
use time::macros::format_description;
use time::OffsetDateTime;

use super::session::Notice;
use super::table::{Column, View};

/// What every logged-in page shows around its content: who is signed in
/// and the logout form (with the session's CSRF token).
pub struct Chrome {
    /// The token's name.
    pub name: TokenName,
    /// The token's scope.
    pub scope: Scope,
    /// The session's CSRF token, for the page's forms.
    pub csrf: String,
}

/// The pages in the navigation bar: (path, label).
const NAV: &[(&str, &str)] = &[
    ("/ui/", "Dashboard"),
    ("/ui/diff", "Diff tags"),
    ("/ui/mirror", "Mirror"),
];

/// A time in UTC to the second: `2026-11-30 09:31:40Z`.
fn when(t: OffsetDateTime) -> String {
    let utc = t.to_offset(time::UtcOffset::UTC);
    utc.format(format_description!(
        "[year]-[month]-[day] [hour]:[minute]:[second]Z"
    ))
    .unwrap_or_else(|_| utc.to_string())
}

/// `1234567` → `1.2 MiB` (the exact count goes in a `title`).
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

fn csrf_field(csrf: &str) -> Markup {
    html! { input type="hidden" name="csrf" value=(csrf); }
}

fn page(title: &str, chrome: Option<&Chrome>, refresh: Option<u32>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                @if let Some(secs) = refresh {
                    meta http-equiv="refresh" content=(secs);
                }
                title { (title) " · btrfly" }
                link rel="stylesheet" href="/ui/style.css";
            }
            body {
                header {
                    a.brand href="/ui/" { "btrfly" }
                    @if let Some(c) = chrome {
                        nav {
                            @for (href, label) in NAV {
                                a href=(href) { (label) }
                            }
                        }
                        form.logout method="post" action="/ui/logout" {
                            span.who { "signed in as " strong { (c.name) } " (" (c.scope) ")" }
                            (csrf_field(&c.csrf))
                            button type="submit" { "Log out" }
                        }
                    }
                }
                main { h1 { (title) } (body) }
            }
        }
    }
}

/// The login form. `csrf` is also in the login cookie (double submit).
pub fn login(csrf: &str, problem: Option<&str>) -> Markup {
    page(
        "Log in",
        None,
        None,
        html! {
            @if let Some(p) = problem {
                p.error role="alert" { (p) }
            }
            form.login method="post" action="/ui/login" {
                label for="token" { "Control token" }
                input #token type="password" name="token" autocomplete="off" required autofocus;
                (csrf_field(csrf))
                button type="submit" { "Log in" }
            }
            p.hint {
                "Any control token works: the one " code { "btrfly serve" }
                " wrote to " code { "<data_dir>/token" } ", or one made with "
                code { "btrfly token create" } ". Reading needs the read scope."
            }
        },
    )
}

/// An error page: what went wrong, in words.
pub fn problem(chrome: Option<&Chrome>, title: &str, message: &str) -> Markup {
    page(
        title,
        chrome,
        None,
        html! {
            p.error role="alert" { (message) }
            p { a href="/ui/" { "Back to the dashboard" } }
        },
    )
}

/// One tag on the dashboard.
pub struct TagRow {
    /// The tag.
    pub meta: TagMeta,
    /// Its entries and their total body size, or why they could not be read.
    pub counts: Result<(usize, u64), String>,
}

/// One active session on the dashboard.
pub struct SessionRow {
    /// Its counters so far.
    pub summary: Summary,
    /// When it started.
    pub started_at: OffsetDateTime,
}

/// The explicit mirror's entries by state (the dashboard's mirror section).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MirrorCounts {
    /// Declared, not fetched yet.
    pub pending: usize,
    /// In the store.
    pub stored: usize,
    /// Given up on.
    pub failed: usize,
}

/// The dashboard; `mirror` is the mirror's counts, or why they could not
/// be read.
pub fn dashboard(
    chrome: &Chrome,
    tags: &[TagRow],
    sessions: &[SessionRow],
    mirror: &Result<MirrorCounts, String>,
    backend: &str,
    location: &str,
) -> Markup {
    page(
        "Dashboard",
        Some(chrome),
        Some(10),
        html! {
            section #sessions {
                h2 { "Active sessions on this server" }
                @if sessions.is_empty() {
                    p.empty { "No session is recording or playing back." }
                } @else {
                    table {
                        thead { tr {
                            th { "Session" } th { "Tag" } th { "Mode" } th { "Started" }
                            th.num { "Requests" } th.num { "Hits" } th.num { "Misses" }
                            th.num { "Recorded" } th.num { "Bytes" }
                        } }
                        tbody {
                            @for s in sessions {
                                tr data-session=(s.summary.id) {
                                    td { code { (s.summary.id) } }
                                    td { a href={ "/ui/tags/" (s.summary.tag) } { (s.summary.tag) } }
                                    td { (s.summary.mode) }
                                    td { (when(s.started_at)) }
                                    td.num.requests { (s.summary.requests) }
                                    td.num.hits { (s.summary.hits) }
                                    td.num.misses { (s.summary.misses) }
                                    td.num.recorded { (s.summary.recorded) }
                                    td.num title={ (s.summary.bytes) " bytes" } { (human_bytes(s.summary.bytes)) }
                                }
                            }
                        }
                    }
                }
            }
            section #tags {
                h2 { "Tags" }
                @if tags.is_empty() {
                    p.empty { "No tag yet: record one with " code { "btrfly run --record --tag=NAME -- COMMAND" } "." }
                } @else {
                    table {
                        thead { tr {
                            th { "Tag" } th { "State" } th { "Created" }
                            th.num { "Entries" } th.num { "Total size" }
                        } }
                        tbody {
                            @for t in tags {
                                tr data-tag=(t.meta.tag) {
                                    td { a href={ "/ui/tags/" (t.meta.tag) } { (t.meta.tag) } }
                                    td {
                                        @if t.meta.sealed { "sealed" } @else { "open" }
                                    }
                                    td { (when(t.meta.created_at)) }
                                    @match &t.counts {
                                        Ok((n, bytes)) => {
                                            td.num.entries { (n) }
                                            td.num.size title={ (bytes) " bytes" } { (human_bytes(*bytes)) }
                                        }
                                        Err(e) => { td.error colspan="2" { (e) } }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            section #mirror {
                h2 { a href="/ui/mirror" { "Mirror" } }
                @match mirror {
                    Ok(c) => {
                        @if c.pending + c.stored + c.failed == 0 {
                            p.empty { "Nothing declared yet: " a href="/ui/mirror" { "add an entry" } "." }
                        } @else {
                            dl {
                                dt { "Stored" } dd.mirror-stored { (c.stored) }
                                dt { "Pending" } dd.mirror-pending { (c.pending) }
                                dt { "Failed" } dd.mirror-failed { (c.failed) }
                            }
                        }
                    }
                    Err(e) => { p.error { (e) } }
                }
            }
            section #storage {
                h2 { "Storage" }
                dl {
                    dt { "Backend" } dd.backend { (backend) }
                    dt { "Location" } dd { (location) }
                }
            }
        },
    )
}

/// `/ui/tags/TAG?q=…&sort=…&order=…`: the link of a view.
pub fn view_link(tag: &Tag, q: &str, sort: Column, descending: bool) -> String {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    if !q.is_empty() {
        query.append_pair("q", q);
    }
    query.append_pair("sort", sort.as_str());
    query.append_pair("order", if descending { "desc" } else { "asc" });
    format!("/ui/tags/{tag}?{}", query.finish())
}

/// The download link of an entry's recorded body.
pub fn body_link(tag: &Tag, entry: &Entry) -> String {
    format!("/ui/tags/{tag}/entries/{}/body", entry.key.id())
}

/// A tag's page: the search form and the (filtered, sorted) table.
pub fn tag_page(
    chrome: &Chrome,
    meta: &TagMeta,
    total: usize,
    matched: &[&Entry],
    limit: usize,
    view: &View,
) -> Markup {
    let tag = &meta.tag;
    let title = format!("Tag {tag}");
    let shown = &matched[..matched.len().min(limit)];
    page(
        &title,
        Some(chrome),
        None,
        html! {
            p.meta {
                @if meta.sealed { "Sealed" } @else { "Open (not sealed)" }
                " · created " (when(meta.created_at))
                @if let Some(at) = meta.sealed_at { " · sealed " (when(at)) }
                " · " (total) " entries"
            }
            form.search method="get" action={ "/ui/tags/" (tag) } {
                label for="q" { "Search" }
                input #q type="search" name="q" value=(view.q) placeholder="URL, adapter, status or sha256";
                input type="hidden" name="sort" value=(view.sort.as_str());
                input type="hidden" name="order" value=(if view.descending { "desc" } else { "asc" });
                button type="submit" { "Filter" }
                @if !view.q.is_empty() {
                    a.clear href={ "/ui/tags/" (tag) } { "Clear" }
                }
            }
            p #count {
                @if view.q.is_empty() {
                    (matched.len()) " entries"
                } @else {
                    (matched.len()) " of " (total) " entries match"
                }
                @if matched.len() > limit {
                    " (the first " (limit) " are shown: narrow the search)"
                }
            }
            table #entries {
                thead { tr {
                    @for c in Column::ALL {
                        @let active = c == view.sort;
                        @let next_desc = active && !view.descending;
                        th class=(if matches!(c, Column::Size | Column::Status) { "num" } else { "" }) {
                            a.sort href=(view_link(tag, &view.q, c, next_desc)) data-column=(c.as_str()) {
                                (c.title())
                                @if active { @if view.descending { " ▼" } @else { " ▲" } }
                            }
                        }
                    }
                    th { "Body" }
                } }
                tbody {
                    @for e in shown {
                        tr {
                            td.url { span.method { (e.method) } " " (e.url) }
                            td.adapter { (e.key.namespace) }
                            td.num.status { (e.status) }
                            td.num.size title={ (e.size) " bytes" } { (human_bytes(e.size)) }
                            td.sha { code title=(e.sha256) { (&e.sha256.as_str()[..12]) "…" } }
                            td.recorded { (when(e.recorded_at)) }
                            td { a.download href=(body_link(tag, e)) { "download" } }
                        }
                    }
                }
            }
        },
    )
}

/// `1 entry`, `2 entries`, `3 attempts`.
fn plural(n: usize, one: &str) -> String {
    match (n, one.strip_suffix('y')) {
        (1, _) => format!("1 {one}"),
        (_, Some(stem)) => format!("{n} {stem}ies"),
        (_, None) => format!("{n} {one}s"),
    }
}

/// One entry of the mirror page.
pub struct MirrorRow {
    /// The declaration and its state.
    pub entry: MirrorEntry,
    /// For a stored file, its recording in the mirror's tag (the body's
    /// sha256 and download link), when found.
    pub body: Option<Entry>,
}

/// The sha256 cell of a mirror entry: a file's pinned digest, an image's
/// digest, or a stored file's body digest (with its download link).
fn mirror_sha(row: &MirrorRow) -> Markup {
    let (digest, what) = match (&row.entry.source, &row.body) {
        (MirrorSource::Image { digest, .. }, _) => (Some(digest.as_str()), "image digest"),
        (
            MirrorSource::Url {
                sha256: Some(d), ..
            },
            _,
        ) => (Some(d.as_str()), "pinned"),
        (MirrorSource::Url { sha256: None, .. }, Some(body)) => {
            (Some(body.sha256.as_str()), "stored body")
        }
        (MirrorSource::Url { sha256: None, .. }, None) => (None, ""),
    };
    html! {
        @match digest {
            None => { span.absent { "—" } }
            Some(d) => {
                code title=(d) { (&d[..d.len().min(12)]) "…" }
                " " span.hint { (what) }
            }
        }
        @if let Some(body) = &row.body {
            @if let Ok(tag) = Tag::new(MIRROR_TAG) {
                " · " a.download href=(body_link(&tag, body)) { "download" }
            }
        }
    }
}

/// The mirror page: the form declaring an entry (with the outcome of the
/// last one, once), and every entry, newest first.
pub fn mirror_page(chrome: &Chrome, rows: &[MirrorRow], notice: Option<&Notice>) -> Markup {
    let field = |name: &str| notice.map_or("", |n| n.field(name)).to_owned();
    page(
        "Mirror",
        Some(chrome),
        None,
        html! {
            p.meta {
                "Artifacts declared on purpose, each with a note saying why it is needed, "
                "fetched by the server into the tag " a href={ "/ui/tags/" (MIRROR_TAG) } { code { (MIRROR_TAG) } }
                " and served in playback to builds that never recorded them. Entries are never purged."
            }
            @if let Some(n) = notice {
                @if n.refused {
                    p #notice.error role="alert" { (n.message) }
                } @else {
                    p #notice.done role="status" { (n.message) }
                }
            }
            section #declare {
                h2 { "Declare an entry" }
                @if !chrome.scope.allows(Scope::Record) {
                    p.hint {
                        "Your token (" (chrome.scope) ") may look, not declare: adding an entry needs a token with the record scope."
                    }
                }
                form.mirror method="post" action="/ui/mirror" {
                    label for="source" { "URL or image" }
                    input #source type="text" name="source" required value=(field("source"))
                        placeholder="https://files.example.test/tool-1.2.tar.gz or registry.example.test/team/app@sha256:…";
                    label for="sha256" { "sha256 (a file's, optional)" }
                    input #sha256 type="text" name="sha256" value=(field("sha256"))
                        placeholder="the digest the file's body must have";
                    label for="note" { "Note: why it is needed" }
                    textarea #note name="note" required rows="3" { (field("note")) }
                    (csrf_field(&chrome.csrf))
                    button type="submit" { "Add to the mirror" }
                }
                p.hint {
                    "A file by its " code { "http://" } " or " code { "https://" } " URL; an image by digest only, "
                    code { "REGISTRY/REPOSITORY@sha256:DIGEST" } ": a tag can be moved to other content at any time. "
                    "The same as " code { "btrfly mirror add SOURCE --note …" } "."
                }
            }
            section #entries {
                h2 { "Entries" }
                @if rows.is_empty() {
                    p.empty { "Nothing declared yet." }
                } @else {
                    p #count { (plural(rows.len(), "entry")) ", newest first · " a href="/ui/mirror" { "reload" } " to follow their states" }
                    table #mirror {
                        thead { tr {
                            th { "State" } th { "Source" } th { "Note" } th { "Added by" }
                            th { "Added at" } th { "sha256" }
                        } }
                        tbody {
                            @for r in rows {
                                @let e = &r.entry;
                                tr id={ "entry-" (e.id) } data-entry=(e.id) data-state=(e.state.as_str()) {
                                    td.state {
                                        span class={ "state state-" (e.state.as_str()) } { (e.state) }
                                        @if e.state != MirrorState::Stored && e.attempts > 0 {
                                            " " span.hint { "(" (plural(e.attempts as usize, "attempt")) ")" }
                                        }
                                        @if let Some(why) = &e.reason {
                                            div.reason { (why) }
                                        }
                                    }
                                    td.source {
                                        code { (e.source) }
                                        " " span.hint {
                                            @match &e.source { MirrorSource::Url { .. } => "file", MirrorSource::Image { .. } => "image" }
                                        }
                                        div.hint { "id " code { (e.id) } }
                                    }
                                    td.note { (e.note) }
                                    td.by { (e.added_by) }
                                    td.added { (when(e.added_at)) }
                                    td.sha { (mirror_sha(r)) }
                                }
                            }
                        }
                    }
                }
            }
        },
    )
}

fn side(d: Option<&DiffEntry>) -> Markup {
    html! {
        @match d {
            None => { td.absent colspan="3" { "—" } }
            Some(d) => {
                td.num { (d.status) }
                td.num title={ (d.size) " bytes" } { (human_bytes(d.size)) }
                td { code title=(d.sha256) { (&d.sha256[..d.sha256.len().min(12)]) "…" } }
            }
        }
    }
}

/// The diff page: the form choosing two tags, and when both are chosen,
/// the diff (or why there is none).
pub fn diff_page(
    chrome: &Chrome,
    tags: &[Tag],
    a: Option<&str>,
    b: Option<&str>,
    result: Option<&Result<TagDiff, String>>,
) -> Markup {
    let select = |name: &str, chosen: Option<&str>| {
        html! {
            select id=(name) name=(name) required {
                option value="" { "choose a tag" }
                @for t in tags {
                    option value=(t) selected[chosen == Some(t.as_str())] { (t) }
                }
            }
        }
    };
    page(
        "Diff tags",
        Some(chrome),
        None,
        html! {
            form.diff method="get" action="/ui/diff" {
                label for="a" { "From" } (select("a", a))
                label for="b" { "to" } (select("b", b))
                button type="submit" { "Compare" }
            }
            @match result {
                None => {}
                Some(Err(e)) => { p.error role="alert" { (e) } }
                Some(Ok(d)) => {
                    p #verdict {
                        @if d.is_equal() {
                            "Equal: every request is answered alike (" (d.unchanged) " entries)."
                        } @else {
                            (d.added.len()) " added, " (d.removed.len()) " removed, "
                            (d.changed.len()) " changed, " (d.unchanged) " unchanged"
                        }
                    }
                    @if !d.is_equal() {
                        table #diff {
                            thead {
                                tr {
                                    th rowspan="2" { "Change" } th rowspan="2" { "URL" }
                                    th colspan="3" { (d.a) } th colspan="3" { (d.b) }
                                }
                                tr {
                                    th.num { "Status" } th.num { "Size" } th { "sha256" }
                                    th.num { "Status" } th.num { "Size" } th { "sha256" }
                                }
                            }
                            tbody {
                                @for e in &d.added {
                                    tr.added { td { "added" } td.url { (e.method) " " (e.url) } (side(None)) (side(Some(e))) }
                                }
                                @for e in &d.removed {
                                    tr.removed { td { "removed" } td.url { (e.method) " " (e.url) } (side(Some(e))) (side(None)) }
                                }
                                @for c in &d.changed {
                                    tr.changed { td { "changed" } td.url { (c.after.method) " " (c.after.url) } (side(Some(&c.before))) (side(Some(&c.after))) }
                                }
                            }
                        }
                    }
                }
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_people_count() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(5 * 1024 * 1024), "5.0 MiB");
    }

    #[test]
    fn counts_read_as_words() {
        assert_eq!(plural(1, "entry"), "1 entry");
        assert_eq!(plural(3, "entry"), "3 entries");
        assert_eq!(plural(2, "attempt"), "2 attempts");
    }

    #[test]
    fn values_are_escaped() {
        let html = problem(None, "x", "<script>alert(1)</script>").into_string();
        assert!(!html.contains("<script>"), "{html}");
        assert!(html.contains("&lt;script&gt;"), "{html}");
    }
}
