//! The web UI's HTML, as maud templates (compiled in; every value
//! interpolated with `(…)` is HTML-escaped). No JavaScript: links and
//! forms only.

use btrfly_archive::diff::{DiffEntry, TagDiff};
use btrfly_core::{Entry, Scope, Summary, Tag, TagMeta, TokenName};
use maud::{html, Markup, DOCTYPE};
use time::macros::format_description;
use time::OffsetDateTime;

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

/// The pages in the navigation bar: (path, label). The mirror page will
/// be one more line here (`("/ui/mirror", "Mirror")`).
const NAV: &[(&str, &str)] = &[("/ui/", "Dashboard"), ("/ui/diff", "Diff tags")];

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

/// The dashboard.
pub fn dashboard(
    chrome: &Chrome,
    tags: &[TagRow],
    sessions: &[SessionRow],
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
            // The mirror's state (issue 13's explicit mirror) goes here, as
            // its own section.
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
    fn values_are_escaped() {
        let html = problem(None, "x", "<script>alert(1)</script>").into_string();
        assert!(!html.contains("<script>"), "{html}");
        assert!(html.contains("&lt;script&gt;"), "{html}");
    }
}
