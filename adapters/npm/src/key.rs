//! What an npm request is, and its recording key.
//!
//! Pure functions of the request head, table-tested in `tests.rs`. The
//! npm registry's layout under a registry root (`/`, or a path prefix
//! such as `/api/npm/repo/`):
//!
//! | resource | path under the root | recognised | primary key (method, scheme, host, port, root, then) | variance | mutability |
//! |---|---|---|---|---|---|
//! | packument | `{name}`, `@{scope}%2f{name}` or `@{scope}/{name}` | on a registry host, or with npm's request headers (`npm-command`, or an `Accept` naming the abbreviated form) | `packument {name}` (`@scope/name` decoded, whichever encoding was asked) | `accept`: the negotiated form | mutable |
//! | tarball | `{name}/-/{name}-{version}.tgz`, `@{scope}/{name}/-/{name}-{version}.tgz` (or `@{scope}%2f{name}/-/…`) | anywhere, by the path alone | `tarball {name}@{version}` | — | immutable |
//! | another `.tgz` | any | on a registry host | the path | — | immutable |
//! | another page (`/-/…`, anything with a query) | any | on a registry host | the path and query | — | mutable |
//!
//! Only `GET` and `HEAD` are the adapter's (publishing, and npm's audit
//! `POST`, go to the next adapter). A `Range` is variance everywhere.
//! Tarballs whose URL shows neither tarball shape (a registry that lays
//! them out otherwise) are verified all the same: a recorded packument
//! announces its `dist.integrity` for the URL its `dist.tarball` names,
//! whichever adapter claims it (see [`crate::packument`]).

use btrfly_core::{Classification, Mutability, RecordingKey, RequestHead};
use http::Method;
use percent_encoding::percent_decode_str;

use crate::config::NpmConfig;

/// The adapter's name and key namespace.
pub const NAME: &str = "npm";

/// The media type of the abbreviated packument ("corgi"), which npm asks
/// for when installing.
pub const ABBREVIATED: &str = "application/vnd.npm.install-v1+json";

/// The media type of the full packument.
pub const FULL: &str = "application/json";

/// The request header npm sends with every registry request, naming the
/// npm command (`npm-command: install`).
pub const COMMAND_HEADER: &str = "npm-command";

/// What a request asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resource {
    /// A package document (packument).
    Packument {
        /// The registry root in canonical form (origin, path prefix,
        /// trailing `/`).
        root: String,
        /// The package name, `name` or `@scope/name`.
        name: String,
    },
    /// A package version's tarball.
    Tarball {
        /// The registry root in canonical form, as for packuments.
        root: String,
        /// The package name, `name` or `@scope/name`.
        name: String,
        /// The version.
        version: String,
    },
    /// Another `.tgz` file of a registry host.
    File,
    /// Another page of a registry host.
    Page,
}

/// The forms of a packument a client can negotiate with `Accept`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Form {
    /// `application/vnd.npm.install-v1+json`: the versions' install
    /// fields only.
    Abbreviated,
    /// `application/json`: the whole document, the registry's default.
    Full,
    /// The header accepts neither.
    None,
}

impl Form {
    /// The form's name as keys hold it: `abbreviated`, `full`, `none`.
    pub fn name(self) -> &'static str {
        match self {
            Form::Abbreviated => "abbreviated",
            Form::Full => "full",
            Form::None => "none",
        }
    }
}

/// Whether `part` can be a package name or a scope (without its `@`):
/// 1 to 214 URL-safe characters (ASCII letters, digits, `-`, `.`, `_`,
/// `~`), not starting with `.` or `_`, and not `-` (the registry's own
/// path segment), `node_modules` or `favicon.ico` (names npm refuses).
/// Upper case is allowed: old packages have it.
pub fn is_name_part(part: &str) -> bool {
    !part.is_empty()
        && part.len() <= 214
        && part
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
        && !part.starts_with(['.', '_'])
        && !matches!(part, "-" | "node_modules" | "favicon.ico")
}

/// Whether `name` is a package name: `name` or `@scope/name`, each part
/// by [`is_name_part`], 214 characters at most in all.
pub fn is_package_name(name: &str) -> bool {
    if name.len() > 214 {
        return false;
    }
    match name.strip_prefix('@') {
        Some(scoped) => scoped
            .split_once('/')
            .is_some_and(|(scope, bare)| is_name_part(scope) && is_name_part(bare)),
        None => is_name_part(name),
    }
}

/// The scope (with its `@`) and bare name of a package name.
pub fn split_scope(name: &str) -> (Option<&str>, &str) {
    match name.split_once('/') {
        Some((scope, bare)) if scope.starts_with('@') => (Some(scope), bare),
        _ => (None, name),
    }
}

/// Whether `v` is a semantic version as the registry publishes them
/// (`MAJOR.MINOR.PATCH`, then an optional `-pre` and `+build`, with no
/// leading `v`).
pub fn is_version(v: &str) -> bool {
    let core = v.split(['-', '+']).next().unwrap_or("");
    let parts: Vec<&str> = core.split('.').collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'+'))
}

/// The percent-decoded segments of a path (empty ones dropped), or `None`
/// when one does not decode to UTF-8.
fn segments(path: &str) -> Option<Vec<String>> {
    path.split('/')
        .filter(|s| !s.is_empty())
        .map(|s| {
            percent_decode_str(s)
                .decode_utf8()
                .ok()
                .map(|c| c.into_owned())
        })
        .collect()
}

/// The package name that the decoded segments end with, and how many
/// segments it takes: `@scope` then `name` (2), `@scope/name` as one
/// encoded segment (1), or `name` (1).
fn name_at_end(segments: &[String]) -> Option<(usize, String)> {
    let last = segments.last()?;
    if last.starts_with('@') {
        return is_package_name(last).then(|| (1, last.clone()));
    }
    if segments.len() >= 2 {
        let scope = &segments[segments.len() - 2];
        if scope.starts_with('@') {
            let name = format!("{scope}/{last}");
            return is_package_name(&name).then_some((2, name));
        }
    }
    is_package_name(last).then(|| (1, last.clone()))
}

/// The registry root of `req` when its path's first `keep` decoded
/// segments are the prefix: origin, the raw segments, a trailing `/`.
fn root(req: &RequestHead, keep: usize) -> String {
    let mut root = format!("{}/", req.origin());
    for s in req
        .uri
        .path()
        .split('/')
        .filter(|s| !s.is_empty())
        .take(keep)
    {
        root.push_str(s);
        root.push('/');
    }
    root
}

/// The tarball a path names: `…/{name}/-/{bare}-{version}.tgz`, where
/// `{name}` is `name`, `@scope/name` or `@scope%2fname` and `{bare}` the
/// name without its scope. Returns the number of prefix segments (before
/// the name), the name and the version.
pub fn tarball(path: &str) -> Option<(usize, String, String)> {
    let segs = segments(path)?;
    let n = segs.len();
    if n < 3 || segs[n - 2] != "-" {
        return None;
    }
    let file = segs[n - 1].strip_suffix(".tgz")?;
    let (taken, name) = name_at_end(&segs[..n - 2])?;
    let (_, bare) = split_scope(&name);
    let version = file.strip_prefix(bare)?.strip_prefix('-')?;
    if !is_version(version) {
        return None;
    }
    Some((n - 2 - taken, name, version.to_owned()))
}

/// Whether the request carries npm's own signs: the `npm-command` header,
/// or an `Accept` naming the abbreviated packument.
fn by_npm(req: &RequestHead) -> bool {
    req.headers.contains_key(COMMAND_HEADER)
        || req
            .headers
            .get_all(http::header::ACCEPT)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.to_ascii_lowercase().contains(ABBREVIATED))
}

/// What `req` asks for, or `None` when it is not an npm request.
pub fn resource(config: &NpmConfig, req: &RequestHead) -> Option<Resource> {
    if req.method != Method::GET && req.method != Method::HEAD {
        return None;
    }
    let path = req.uri.path();
    let registry_host = config.is_registry_host(req.host(), req.port());
    if let Some((prefix, name, version)) = tarball(path) {
        return Some(Resource::Tarball {
            root: root(req, prefix),
            name,
            version,
        });
    }
    if !registry_host && !by_npm(req) {
        return None;
    }
    // Segments are decoded one by one, so `@scope%2fname` stays one
    // segment and counts of decoded and raw segments agree.
    let packument = segments(path).and_then(|segs| {
        if req.uri.query().is_some() || path.ends_with(".tgz") || segs.iter().any(|s| s == "-") {
            return None;
        }
        let (taken, name) = name_at_end(&segs)?;
        Some(Resource::Packument {
            root: root(req, segs.len() - taken),
            name,
        })
    });
    if packument.is_some() {
        return packument;
    }
    if !registry_host {
        return None;
    }
    if path.ends_with(".tgz") {
        return Some(Resource::File);
    }
    Some(Resource::Page)
}

/// The `q` of a media range as a whole number of thousandths (RFC 9110
/// §12.4.2: `0`, `0.` and up to three digits, `1`, `1.` and up to three
/// zeros), or `None` when it is not a qvalue.
fn qvalue(text: &str) -> Option<u16> {
    let (int, frac) = text.split_once('.').unwrap_or((text, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    match int {
        "1" if frac.bytes().all(|b| b == b'0') => Some(1000),
        "0" => Some(
            frac.bytes()
                .chain(std::iter::repeat(b'0'))
                .take(3)
                .fold(0u16, |n, b| n * 10 + u16::from(b - b'0')),
        ),
        _ => None,
    }
}

/// The packument form an `Accept` header negotiates. Each media range is
/// parsed with the `mime` crate; a form takes the quality of the most
/// specific range that matches it (exact, then `application/*`, then
/// `*/*`; of equal ones the highest). The abbreviated form is chosen only
/// when the header names it, with a quality above 0 and at least the full
/// form's (a registry sends the full document unless asked otherwise);
/// else the full form when acceptable; else [`Form::None`]. No header (or
/// an empty one) is the full form. Ranges that do not parse, or whose `q`
/// is not a qvalue, are skipped.
pub fn negotiated_form(accept: Option<&str>) -> Form {
    let Some(accept) = accept.map(str::trim).filter(|a| !a.is_empty()) else {
        return Form::Full;
    };
    // (specificity, q) of the abbreviated and the full form
    let mut best = [(0u8, 0u16); 2];
    for item in accept.split(',') {
        // RFC 9110 allows whitespace before a `;`, the `mime` parser not
        let item: Vec<&str> = item.split(';').map(str::trim).collect();
        let Ok(range) = item.join(";").parse::<mime::Mime>() else {
            continue;
        };
        let q = match range.get_param("q") {
            Some(q) => match qvalue(q.as_str()) {
                Some(q) => q,
                None => continue,
            },
            None => 1000,
        };
        let essence = range.essence_str();
        for (i, exact) in [ABBREVIATED, FULL].iter().enumerate() {
            let spec = if essence.eq_ignore_ascii_case(exact) {
                3
            } else if range.type_() == mime::APPLICATION && range.subtype() == mime::STAR {
                2
            } else if range.type_() == mime::STAR && range.subtype() == mime::STAR {
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
    let [(abbr_spec, abbr_q), (full_spec, full_q)] = best;
    let full_q = if full_spec > 0 { full_q } else { 0 };
    if abbr_spec == 3 && abbr_q > 0 && abbr_q >= full_q {
        Form::Abbreviated
    } else if full_q > 0 {
        Form::Full
    } else {
        Form::None
    }
}

/// The `Accept` values of a request, joined as one list.
fn accept(req: &RequestHead) -> Option<String> {
    let values: Vec<&str> = req
        .headers
        .get_all(http::header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    (!values.is_empty()).then(|| values.join(", "))
}

/// The hint subject of a package version (see
/// [`btrfly_core::Classification::subject`]): `npm:{name}@{version}`.
pub fn subject(name: &str, version: &str) -> String {
    format!("npm:{name}@{version}")
}

/// The purl of a package version: `pkg:npm/{name}@{version}`, or
/// `pkg:npm/%40{scope}/{name}@{version}` for a scoped one.
pub fn purl(name: &str, version: &str) -> Option<String> {
    let (scope, bare) = split_scope(name);
    btrfly_core::purl("npm", scope, bare, Some(version))
}

/// The adapter's verdict on `req`.
pub fn classify(config: &NpmConfig, req: &RequestHead) -> Option<Classification> {
    let resource = resource(config, req)?;
    let method = &req.method;
    let (primary, mutability) = match &resource {
        Resource::Packument { root, name } => (
            format!("{method} {root} packument {name}"),
            Mutability::Mutable,
        ),
        Resource::Tarball {
            root,
            name,
            version,
        } => (
            format!("{method} {root} tarball {name}@{version}"),
            Mutability::Immutable,
        ),
        Resource::File => (
            format!("{method} {}{}", req.origin(), req.uri.path()),
            Mutability::Immutable,
        ),
        Resource::Page => (
            format!("{method} {}{}", req.origin(), req.path_and_query()),
            Mutability::Mutable,
        ),
    };
    let mut key = RecordingKey::new(NAME, primary);
    if matches!(resource, Resource::Packument { .. }) {
        key = key.vary("accept", negotiated_form(accept(req).as_deref()).name());
    }
    let mut class = Classification::new(key.with_range(req), mutability);
    if let Resource::Tarball { name, version, .. } = &resource {
        class.package = purl(name, version);
        class.subject = Some(subject(name, version));
    }
    Some(class)
}
