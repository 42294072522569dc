//! What a cargo request is, and its recording key.
//!
//! Pure functions of the request head, table-tested in `tests.rs`. The
//! sparse index layout (cargo's registry index format): a crate's index
//! file is `1/{name}`, `2/{name}`, `3/{n}/{name}` (`n` its first letter)
//! or `{ab}/{cd}/{name}` (its first four letters) under the index root,
//! names in lower case; `config.json` sits at the root.
//!
//! | resource | recognised by | primary key (method, scheme, host, port, then) | mutability |
//! |---|---|---|---|
//! | `config.json` | the `cargo-protocol` request header, or an index host | the path | mutable |
//! | index file | the layout above, with the `cargo-protocol` header or on an index host | the path | mutable |
//! | another page of an index host | the host | the path | mutable |
//! | `.crate` download | `…/{crate}/{version}/download` (the default `dl`) or a last segment `{crate}-{version}.crate`, on any host | `crate {name}@{version}` (name in lower case) | immutable |
//! | another file of a download host | the host | the path | immutable |
//!
//! Only `GET` and `HEAD` are cargo's (publishing is not recorded). A
//! `Range` is variance everywhere. Downloads whose URL shows neither
//! shape (a `dl` template of another form) are verified all the same: the
//! index's checksum is announced for the URL the template gives (see
//! [`crate::index`]), whichever adapter claims it.

use btrfly_core::{Classification, Mutability, RecordingKey, RequestHead};
use http::Method;

use crate::config::CargoConfig;

/// The adapter's name and key namespace.
pub const NAME: &str = "cargo";

/// The request header cargo sends with every sparse index request
/// (`cargo-protocol: version=1`).
pub const PROTOCOL_HEADER: &str = "cargo-protocol";

/// What a request asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resource {
    /// The index's `config.json`.
    Config {
        /// The index root URL in canonical form, with its trailing `/`.
        root: String,
    },
    /// A crate's index file.
    IndexFile {
        /// The index root URL in canonical form, with its trailing `/`.
        root: String,
        /// The crate name as the path has it (lower case).
        name: String,
    },
    /// Another page of an index host.
    Page,
    /// A `.crate` download whose URL names crate and version.
    Crate {
        /// The crate name as the URL has it.
        name: String,
        /// The version.
        version: String,
    },
    /// Another file of a download host.
    File,
}

/// Whether `name` can be a crate name: ASCII letters, digits, `-` and
/// `_`, 1 to 64 of them, the first a letter or `_` (cargo refuses a
/// leading digit).
pub fn is_crate_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
}

/// Whether `v` looks like a semantic version (`MAJOR.MINOR.PATCH`, then
/// an optional `-pre` and `+build`), as index lines and download URLs
/// carry it.
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

/// The index directory of a crate name: `1`, `2`, `3/{n}` or
/// `{ab}/{cd}`, in the name's own case (cargo's `{prefix}`; lower-case it
/// for `{lowerprefix}` and for index paths).
pub fn prefix(name: &str) -> String {
    let c: Vec<char> = name.chars().collect();
    match c.len() {
        0 => String::new(),
        1 => "1".into(),
        2 => "2".into(),
        3 => format!("3/{}", c[0]),
        _ => format!("{}{}/{}{}", c[0], c[1], c[2], c[3]),
    }
}

/// The layout segments (`["se", "rd", "serde"]`) at the end of `segments`,
/// if the last one is an index file under its right directory: how many
/// segments the layout takes, and the name.
fn layout(segments: &[&str]) -> Option<(usize, String)> {
    let name = *segments.last()?;
    if !is_crate_name(name) || name.bytes().any(|b| b.is_ascii_uppercase()) {
        return None;
    }
    let want = prefix(name);
    let want: Vec<&str> = want.split('/').collect();
    let n = want.len();
    if segments.len() < n + 1 {
        return None;
    }
    let have = &segments[segments.len() - 1 - n..segments.len() - 1];
    (have == want.as_slice()).then(|| (n + 1, name.to_owned()))
}

/// The download a path names: `…/{crate}/{version}/download`, or a last
/// segment `{crate}-{version}.crate` (the version starting at the first
/// `-` whose rest is a version).
pub fn download(path: &str) -> Option<(String, String)> {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let n = segments.len();
    if n >= 3 && segments[n - 1] == "download" {
        let (name, version) = (segments[n - 3], segments[n - 2]);
        if is_crate_name(name) && is_version(version) {
            return Some((name.to_owned(), version.to_owned()));
        }
    }
    let file = segments.last()?.strip_suffix(".crate")?;
    file.match_indices('-').find_map(|(i, _)| {
        let (name, version) = (&file[..i], &file[i + 1..]);
        (is_crate_name(name) && is_version(version)).then(|| (name.to_owned(), version.to_owned()))
    })
}

/// What `req` asks for, or `None` when it is not a cargo request.
pub fn resource(config: &CargoConfig, req: &RequestHead) -> Option<Resource> {
    if req.method != Method::GET && req.method != Method::HEAD {
        return None;
    }
    let path = req.uri.path();
    let (host, port) = (req.host(), req.port());
    let index_host = config.is_index_host(host, port);
    let by_cargo = index_host || req.headers.contains_key(PROTOCOL_HEADER);
    if let Some((name, version)) = download(path) {
        return Some(Resource::Crate { name, version });
    }
    if config.is_download_host(host, port) {
        return Some(Resource::File);
    }
    if !by_cargo {
        return None;
    }
    let origin = req.origin();
    if let Some(dir) = path.strip_suffix("config.json") {
        if dir.ends_with('/') {
            return Some(Resource::Config {
                root: format!("{origin}{dir}"),
            });
        }
    }
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    if let Some((taken, name)) = layout(&segments) {
        let root_segments = &segments[..segments.len() - taken];
        let mut root = format!("{origin}/");
        for s in root_segments {
            root.push_str(s);
            root.push('/');
        }
        return Some(Resource::IndexFile { root, name });
    }
    index_host.then_some(Resource::Page)
}

/// The hint subject of a crate version (see
/// [`btrfly_core::Classification::subject`]): `cargo:{name}@{version}`,
/// the name in lower case (crate names are case-insensitive).
pub fn subject(name: &str, version: &str) -> String {
    format!("cargo:{}@{version}", name.to_ascii_lowercase())
}

/// The purl of a crate version: `pkg:cargo/{name}@{version}`.
pub fn purl(name: &str, version: &str) -> Option<String> {
    btrfly_core::purl("cargo", None, name, Some(version))
}

/// The adapter's verdict on `req`.
pub fn classify(config: &CargoConfig, req: &RequestHead) -> Option<Classification> {
    let resource = resource(config, req)?;
    let origin = format!("{} {}", req.method, req.origin());
    let (primary, mutability) = match &resource {
        Resource::Config { .. } | Resource::IndexFile { .. } | Resource::Page => {
            (format!("{origin}{}", req.uri.path()), Mutability::Mutable)
        }
        Resource::Crate { name, version } => (
            format!("{origin} crate {}@{version}", name.to_ascii_lowercase()),
            Mutability::Immutable,
        ),
        Resource::File => (format!("{origin}{}", req.uri.path()), Mutability::Immutable),
    };
    let key = RecordingKey::new(NAME, primary).with_range(req);
    let mut class = Classification::new(key, mutability);
    if let Resource::Crate { name, version } = &resource {
        class.package = purl(name, version);
        class.subject = Some(subject(name, version));
    }
    Some(class)
}
