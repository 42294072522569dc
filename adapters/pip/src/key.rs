//! Recording keys for the package index protocol.
//!
//! Pure functions of the request head, table-tested in `tests.rs`. Like a
//! cache key, a wrong key serves one response for another request, so the
//! rules are all here:
//!
//! | resource | primary (method, scheme, host, port, then) | variance | mutability |
//! |---|---|---|---|
//! | simple-API page (`…/simple/`, `…/simple/<project>/`) | path up to `simple`, the PEP 503-normalised project, the trailing `/` when asked with one; only the PEP 691 `format` query parameter | `accept`: the negotiated form | mutable |
//! | JSON API (`…/pypi/<project>[/<version>]/json`) | normalised project, no query | — | mutable |
//! | any other page of an index host | cleaned path and query | `accept` | mutable |
//! | distribution file, `.metadata` file | cleaned path, no query | — | immutable |
//!
//! A `Range` is variance everywhere. Paths are cleaned the way pip cleans
//! the links it follows (each part percent-decoded and re-encoded), so
//! `foo-1.0+local.whl` and `foo-1.0%2Blocal.whl` are one file. The query of
//! a file is never part of its key: mirrors append cache busters and
//! signatures there, and signatures are secrets.

use btrfly_core::{Classification, Mutability, RecordingKey, RequestHead};
use http::Method;
use percent_encoding::{percent_decode_str, percent_encode, AsciiSet, NON_ALPHANUMERIC};

use crate::config::PipConfig;

/// The adapter's name and key namespace.
pub const NAME: &str = "pip";

/// What a request asks for, by the shape of its URL and the host's role.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resource {
    /// A simple-API page (PEP 503 HTML, PEP 691 JSON): the project list
    /// (`project` is `None`) or one project's file list. `prefix` is the
    /// cleaned path up to and including the `simple` segment.
    SimplePage {
        /// The path up to the simple API's root.
        prefix: String,
        /// The normalised project, for a project page.
        project: Option<String>,
    },
    /// The per-project JSON API: `…/pypi/<project>[/<version>]/json`.
    JsonApi {
        /// The path up to the JSON API's root.
        prefix: String,
        /// The normalised project.
        project: String,
        /// The version, for a release page.
        version: Option<String>,
    },
    /// Any other page of a configured index host.
    IndexPage,
    /// A distribution file (wheel, sdist) or its PEP 658 metadata file.
    File,
}

/// Kinds of file names the index protocol serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DistKind {
    /// A wheel (`.whl`).
    Wheel,
    /// A source distribution.
    Sdist,
    /// `<wheel or sdist>.metadata` (PEP 658).
    Metadata,
}

/// PEP 503 name normalisation: runs of `-`, `_`, `.` become one `-`, and
/// the name is lower-cased (`Foo_Bar.baz` is `foo-bar-baz`).
pub fn normalize_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut in_run = false;
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            if !in_run {
                out.push('-');
            }
            in_run = true;
        } else {
            out.extend(c.to_lowercase());
            in_run = false;
        }
    }
    out
}

/// What Python's `urllib.parse.quote` leaves alone (with its default
/// `safe="/"`): letters, digits, `_ . - ~` and `/`.
const QUOTE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'_')
    .remove(b'.')
    .remove(b'-')
    .remove(b'~')
    .remove(b'/');

fn quote(bytes: &[u8]) -> String {
    percent_encode(bytes, QUOTE).to_string()
}

fn clean_part(part: &str) -> String {
    let decoded: Vec<u8> = percent_decode_str(part).collect();
    quote(&decoded)
}

/// Cleans a URL path the way pip cleans every link before it requests it
/// (`_clean_url_path`): split at `@` and `%2F`, which are kept (the latter
/// upper-cased), and each part percent-decoded and re-encoded.
pub fn clean_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len() + 8);
    let bytes = path.as_bytes();
    let (mut start, mut i) = (0, 0);
    while i < bytes.len() {
        if bytes[i] == b'@' {
            out.push_str(&clean_part(&path[start..i]));
            out.push('@');
            i += 1;
            start = i;
        } else if bytes[i] == b'%'
            && bytes.get(i + 1) == Some(&b'2')
            && matches!(bytes.get(i + 2), Some(b'f' | b'F'))
        {
            out.push_str(&clean_part(&path[start..i]));
            out.push_str("%2F");
            i += 3;
            start = i;
        } else {
            i += 1;
        }
    }
    out.push_str(&clean_part(&path[start..]));
    out
}

fn decode(segment: &str) -> String {
    percent_decode_str(segment).decode_utf8_lossy().into_owned()
}

/// Whether a (decoded) file name is one the index protocol serves.
pub fn dist_kind(name: &str) -> Option<DistKind> {
    if let Some(stem) = name.strip_suffix(".metadata") {
        return dist_kind(stem)
            .filter(|k| *k != DistKind::Metadata)
            .map(|_| DistKind::Metadata);
    }
    if let Some(stem) = name.strip_suffix(".whl") {
        let parts = stem.split('-').count();
        let named = stem.split('-').all(|p| !p.is_empty());
        return ((5..=6).contains(&parts) && named).then_some(DistKind::Wheel);
    }
    const SDIST: &[&str] = &[
        ".tar.gz", ".tgz", ".zip", ".tar.bz2", ".tbz", ".tar.xz", ".txz", ".tar", ".egg",
    ];
    SDIST
        .iter()
        .find_map(|ext| name.strip_suffix(ext))
        .filter(|stem| {
            stem.split_once('-')
                .is_some_and(|(n, v)| !n.is_empty() && !v.is_empty())
        })
        .map(|_| DistKind::Sdist)
}

/// The resource a request names, or `None` when it is not part of the
/// index protocol as far as this adapter can tell.
pub fn resource(config: &PipConfig, req: &RequestHead) -> Option<Resource> {
    let (host, port) = (req.host(), req.port());
    let index_host = config.is_index_host(host, port);
    let file_host = config.is_file_host(host, port);
    let cleaned = clean_path(req.uri.path());
    let segments: Vec<&str> = cleaned.split('/').collect();
    let decoded: Vec<String> = segments.iter().map(|s| decode(s)).collect();
    let file_name = decoded.last().cloned().unwrap_or_default();
    let kind = dist_kind(&file_name);

    // `…/simple/…` (`+simple` on some index servers)
    if let Some(i) = decoded.iter().position(|s| s == "simple" || s == "+simple") {
        let prefix = segments[..=i].join("/");
        let mut rest = &segments[i + 1..];
        if rest.last() == Some(&"") {
            rest = &rest[..rest.len() - 1];
        }
        match rest {
            [] => {
                return Some(Resource::SimplePage {
                    prefix,
                    project: None,
                })
            }
            [name] if !name.is_empty() => {
                return Some(Resource::SimplePage {
                    prefix,
                    project: Some(normalize_name(&decode(name))),
                })
            }
            // files next to their project page
            [_, _] if kind.is_some() => return Some(Resource::File),
            _ => {}
        }
    }

    // `…/pypi/<project>[/<version>]/json`
    if let Some(i) = decoded.iter().position(|s| s == "pypi") {
        let mut rest = &segments[i + 1..];
        if rest.last() == Some(&"") {
            rest = &rest[..rest.len() - 1];
        }
        let prefix = segments[..=i].join("/");
        match rest {
            [name, "json"] if !name.is_empty() => {
                return Some(Resource::JsonApi {
                    prefix,
                    project: normalize_name(&decode(name)),
                    version: None,
                })
            }
            [name, version, "json"] if !name.is_empty() && !version.is_empty() => {
                return Some(Resource::JsonApi {
                    prefix,
                    project: normalize_name(&decode(name)),
                    version: Some((*version).to_owned()),
                })
            }
            _ => {}
        }
    }

    // The host's role, then the file name alone: wheels and metadata files
    // are recognised anywhere, an sdist-like name only where it is clearly
    // a package (a `packages` directory, as mirrors lay files out).
    let under_packages = decoded.iter().any(|s| s == "packages");
    match kind {
        Some(_) if file_host || index_host => Some(Resource::File),
        Some(DistKind::Wheel | DistKind::Metadata) => Some(Resource::File),
        Some(DistKind::Sdist) if under_packages => Some(Resource::File),
        _ if file_host => Some(Resource::File),
        _ if index_host => Some(Resource::IndexPage),
        _ => None,
    }
}

/// The simple-API forms a client can ask for (PEP 691).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Form {
    Json,
    HtmlV1,
    Html,
}

impl Form {
    const ALL: [Form; 3] = [Form::Json, Form::HtmlV1, Form::Html];

    fn name(self) -> &'static str {
        match self {
            Form::Json => "json",
            Form::HtmlV1 => "html-v1",
            Form::Html => "html",
        }
    }

    /// The media types that name this form exactly (`latest` is an alias
    /// of the newest version, v1).
    fn matches_exactly(self, media: &str) -> bool {
        match self {
            Form::Json => matches!(
                media,
                "application/vnd.pypi.simple.v1+json" | "application/vnd.pypi.simple.latest+json"
            ),
            Form::HtmlV1 => matches!(
                media,
                "application/vnd.pypi.simple.v1+html" | "application/vnd.pypi.simple.latest+html"
            ),
            Form::Html => media == "text/html",
        }
    }

    fn main_type(self) -> &'static str {
        match self {
            Form::Json | Form::HtmlV1 => "application",
            Form::Html => "text",
        }
    }
}

/// `q` in thousandths: `1`, `1.000`, `0`, `0.5`, `0.001`; `None` if invalid.
fn parse_q(v: &str) -> Option<u16> {
    let (int, frac) = v.split_once('.').unwrap_or((v, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    match int {
        "1" if frac.bytes().all(|b| b == b'0') => Some(1000),
        "0" => {
            let mut n: u16 = 0;
            for i in 0..3 {
                n = n * 10 + frac.as_bytes().get(i).map_or(0, |b| u16::from(b - b'0'));
            }
            Some(n)
        }
        _ => None,
    }
}

/// The simple-API forms an `Accept` header asks for, best first: which of
/// JSON (`application/vnd.pypi.simple.v1+json`), HTML v1
/// (`application/vnd.pypi.simple.v1+html`) and legacy HTML (`text/html`)
/// the client accepts and in which order, as PEP 691 content negotiation
/// sees it. Forms are ranked by their quality, taken from the most specific
/// media range that matches (exact, then `type/*`, then `*/*`); forms of
/// equal quality are joined by `=`, ranks by `>`, forms it refuses are left
/// out: pip's `…v1+json, …v1+html;q=0.1, text/html;q=0.01` is
/// `json>html-v1>html`, no header (or `*/*`) is `json=html-v1=html`, and a
/// header that accepts none of them is `none`. Parameters other than `q`,
/// case, spaces and order of equal-quality ranges do not matter.
pub fn negotiated_forms(accept: Option<&str>) -> String {
    let accept = accept.map(str::trim).filter(|a| !a.is_empty());
    // (specificity, q) per form; specificity 0 means no range matched.
    let mut best = [(0u8, 0u16); 3];
    match accept {
        None => best = [(1, 1000); 3],
        Some(accept) => {
            for item in accept.split(',') {
                let mut params = item.split(';');
                let media = params.next().unwrap_or("").trim().to_ascii_lowercase();
                let Some((main, sub)) = media.split_once('/') else {
                    continue;
                };
                let mut q = Some(1000);
                for p in params {
                    if let Some((k, v)) = p.split_once('=') {
                        if k.trim().eq_ignore_ascii_case("q") {
                            q = parse_q(v.trim());
                        }
                    }
                }
                let Some(q) = q else { continue };
                for (i, form) in Form::ALL.iter().enumerate() {
                    let spec = if form.matches_exactly(&media) {
                        3
                    } else if main == form.main_type() && sub == "*" {
                        2
                    } else if main == "*" && sub == "*" {
                        1
                    } else {
                        0
                    };
                    let (s, bq) = best[i];
                    if spec > s || (spec == s && spec > 0 && q > bq) {
                        best[i] = (spec, q);
                    }
                }
            }
        }
    }
    let mut ranked: Vec<(u16, Form)> = Form::ALL
        .iter()
        .zip(best)
        .filter(|(_, (spec, q))| *spec > 0 && *q > 0)
        .map(|(f, (_, q))| (q, *f))
        .collect();
    if ranked.is_empty() {
        return "none".into();
    }
    // stable: equal qualities keep the canonical order json, html-v1, html
    ranked.sort_by_key(|(q, _)| std::cmp::Reverse(*q));
    let mut out = String::new();
    for (i, (q, f)) in ranked.iter().enumerate() {
        if i > 0 {
            out.push(if ranked[i - 1].0 == *q { '=' } else { '>' });
        }
        out.push_str(f.name());
    }
    out
}

/// The form an `Accept` header negotiates (PEP 691): the form(s) it ranks
/// first in [`negotiated_forms`] — `json` for pip, `html` for a browser —
/// with ties kept (`json=html-v1=html` for `*/*` or no header) and `none`
/// when it accepts no form. This, not the header, is what a page's key
/// holds: any `Accept` that negotiates to a recorded form replays it, and
/// one that negotiates to another form is a miss.
pub fn negotiated_form(accept: Option<&str>) -> String {
    let ranked = negotiated_forms(accept);
    ranked.split('>').next().unwrap_or("none").to_owned()
}

fn header_values(req: &RequestHead, name: http::header::HeaderName) -> Option<String> {
    let values: Vec<&str> = req
        .headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    (!values.is_empty()).then(|| values.join(", "))
}

/// PEP 691's optional `format` URL parameter, which selects a form like
/// `Accept` does: the only query parameter of a simple-API page that
/// enters its key.
fn format_param(req: &RequestHead) -> Option<String> {
    let query = req.uri.query()?;
    let formats: Vec<String> = url::form_urlencoded::parse(query.as_bytes())
        .filter(|(k, _)| k == "format")
        .map(|(_, v)| v.into_owned())
        .collect();
    (!formats.is_empty()).then(|| {
        url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(formats.iter().map(|v| ("format", v.as_str())))
            .finish()
    })
}

/// The adapter's verdict: key, mutability (the expected digest comes from
/// the session's hints, set by the classify layer).
pub fn classify(config: &PipConfig, req: &RequestHead) -> Option<Classification> {
    if req.method != Method::GET && req.method != Method::HEAD {
        return None;
    }
    let resource = resource(config, req)?;
    let origin = format!("{} {}", req.method, req.origin());
    let (primary, page) = match &resource {
        Resource::SimplePage { prefix, project } => {
            // The trailing `/` stays as asked: relative links on the page
            // resolve against it, so `…/name` and `…/name/` are different
            // answers (index servers redirect one to the other).
            let slash = if req.uri.path().ends_with('/') {
                "/"
            } else {
                ""
            };
            let mut p = format!("{origin}{prefix}");
            match project {
                Some(project) => {
                    p.push('/');
                    p.push_str(&quote(project.as_bytes()));
                    p.push_str(slash);
                }
                None => p.push_str(slash),
            }
            if let Some(f) = format_param(req) {
                p.push('?');
                p.push_str(&f);
            }
            (p, true)
        }
        Resource::JsonApi {
            prefix,
            project,
            version,
        } => {
            let mut p = format!("{origin}{prefix}/{}/", quote(project.as_bytes()));
            if let Some(v) = version {
                p.push_str(v);
                p.push('/');
            }
            p.push_str("json");
            (p, false)
        }
        Resource::IndexPage => {
            let mut p = format!("{origin}{}", clean_path(req.uri.path()));
            if let Some(q) = req.uri.query() {
                p.push('?');
                p.push_str(q);
            }
            (p, true)
        }
        Resource::File => (format!("{origin}{}", clean_path(req.uri.path())), false),
    };
    let mut key = RecordingKey::new(NAME, primary);
    if page {
        let accept = header_values(req, http::header::ACCEPT);
        key = key.vary("accept", negotiated_form(accept.as_deref()));
    }
    if let Some(range) = header_values(req, http::header::RANGE) {
        key = key.vary("range", range.trim());
    }
    let mutability = match resource {
        Resource::File => Mutability::Immutable,
        _ => Mutability::Mutable,
    };
    let package = match resource {
        Resource::File => crate::purl::of_file(req.uri.path()),
        _ => None,
    };
    Some(Classification {
        key,
        mutability,
        expected: None,
        package,
        subject: None,
    })
}
