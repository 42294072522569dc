//! What a Go request is, and its recording key.
//!
//! Pure functions of the request head, table-tested in `tests.rs`:
//!
//! | resource (path shape) | primary key (method, scheme, host, port, then) | mutability |
//! |---|---|---|
//! | module proxy `…/<module>/@v/list`, `…/<module>/@latest` | `mod <module> list`/`latest` (module decoded) | mutable |
//! | module proxy `…/<module>/@v/<version>.info`, `.mod`, `.zip` | `mod <module>@<version>.<ext>` (decoded) | immutable |
//! | checksum database `…/lookup/<module>@<version>` | the path | mutable (it carries the signed tree head) |
//! | checksum database `…/tile/<H>/<L>/…` | the path | immutable (a tile URL names fixed content) |
//! | checksum database `…/latest`, `…/supported` (on a sumdb host or under `/sumdb/`) | the path | mutable |
//! | direct mode `?go-get=1` page, git `info/refs`, `POST …/git-upload-pack` (the request body enters the key), dumb-HTTP `HEAD`, `objects/info/*` | path and query | mutable |
//! | dumb-HTTP loose object `objects/xx/<38 hex>`, pack `objects/pack/pack-<40 hex>.pack`/`.idx` | the path | immutable |
//!
//! A `Range` is variance everywhere; so is git's `Git-Protocol` request
//! header in direct mode (a git server answers `info/refs` by it). Module paths and versions in URLs are
//! case-encoded (`!x` is `X`; an upper-case letter is not allowed); they
//! are decoded for keys and identity (after percent-decoding: `go` sends
//! `!` as `%21`), and a path that is not a valid encoding is not a Go
//! request. Segments in front of the module path (a
//! proxy served under a path prefix) are dropped: a module path's first
//! element holds a dot.

use btrfly_core::{Classification, ExpectedDigest, Mutability, RecordingKey, RequestHead};
use http::Method;

use crate::config::GoConfig;

/// The adapter's name and key namespace.
pub const NAME: &str = "go";

/// A module proxy file of one version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VersionFile {
    /// `.info`: JSON with the version and its time.
    Info,
    /// `.mod`: the version's go.mod.
    Mod,
    /// `.zip`: the module's files.
    Zip,
}

impl VersionFile {
    fn ext(self) -> &'static str {
        match self {
            VersionFile::Info => "info",
            VersionFile::Mod => "mod",
            VersionFile::Zip => "zip",
        }
    }
}

/// What a request asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resource {
    /// `@v/list` of a module.
    List {
        /// The decoded module path.
        module: String,
    },
    /// `@latest` of a module.
    Latest {
        /// The decoded module path.
        module: String,
    },
    /// `@v/<version>.<ext>`.
    Version {
        /// The decoded module path.
        module: String,
        /// The decoded version.
        version: String,
        /// Which file.
        file: VersionFile,
    },
    /// `lookup/<module>@<version>` of a checksum database.
    Lookup {
        /// The decoded module path.
        module: String,
        /// The decoded version.
        version: String,
    },
    /// A checksum database tile.
    Tile,
    /// A checksum database's `latest` signed tree head, or a proxy's
    /// `supported` answer.
    SumdbState,
    /// Direct mode: a `?go-get=1` page or git over HTTP, as asked.
    Direct,
    /// A git object by its hash (dumb HTTP).
    GitObject,
}

/// Decodes a case-encoded module path or version (`!x` is `X`); `None`
/// for an upper-case letter, a `!` not before a lower-case letter, or an
/// empty text.
pub fn decode_case(text: &str) -> Option<String> {
    let mut out = String::with_capacity(text.len());
    let mut bang = false;
    for c in text.chars() {
        if bang {
            if !c.is_ascii_lowercase() {
                return None;
            }
            out.push(c.to_ascii_uppercase());
            bang = false;
        } else if c == '!' {
            bang = true;
        } else if c.is_ascii_uppercase() {
            return None;
        } else {
            out.push(c);
        }
    }
    (!bang && !out.is_empty()).then_some(out)
}

/// The module path in `path` (without the leading `/`): segments in front
/// of the first one holding a dot are a proxy's path prefix.
fn module_of(escaped: &str) -> Option<String> {
    let segments: Vec<&str> = escaped.split('/').collect();
    let first = segments.iter().position(|s| s.contains('.'))?;
    let module = decode_case(&segments[first..].join("/"))?;
    (!module
        .split('/')
        .any(|s| s.is_empty() || s == "." || s == ".."))
    .then_some(module)
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// What `req` asks for, or `None` when it is not a Go request.
pub fn resource(config: &GoConfig, req: &RequestHead) -> Option<Resource> {
    // The go command percent-encodes the `!` of case-encoded paths
    // (`%21upper`): identity is read from the decoded path.
    let decoded = percent_encoding::percent_decode_str(req.uri.path())
        .decode_utf8()
        .ok()?;
    let path: &str = &decoded;
    let query = req.uri.query().unwrap_or("");
    let (host, port) = (req.host(), req.port());
    if req.method == Method::POST {
        return path
            .ends_with("/git-upload-pack")
            .then_some(Resource::Direct);
    }
    if req.method != Method::GET && req.method != Method::HEAD {
        return None;
    }
    if query.split('&').any(|p| p == "go-get=1") {
        return Some(Resource::Direct);
    }
    if let Some((before, file)) = path.split_once("/@v/") {
        let module = module_of(before.trim_start_matches('/'))?;
        if file == "list" {
            return Some(Resource::List { module });
        }
        let (version, ext) = file.rsplit_once('.')?;
        let file = match ext {
            "info" => VersionFile::Info,
            "mod" => VersionFile::Mod,
            "zip" => VersionFile::Zip,
            _ => return None,
        };
        let version = decode_case(version).filter(|v| !v.contains('/'))?;
        return Some(Resource::Version {
            module,
            version,
            file,
        });
    }
    if let Some(before) = path.strip_suffix("/@latest") {
        return Some(Resource::Latest {
            module: module_of(before.trim_start_matches('/'))?,
        });
    }
    let sumdb = config.is_sumdb_host(host, port) || path.contains("/sumdb/");
    if let Some((_, rest)) = path.split_once("/lookup/") {
        let (module, version) = rest.rsplit_once('@')?;
        return Some(Resource::Lookup {
            module: module_of(module)?,
            version: decode_case(version)?,
        });
    }
    if let Some((_, rest)) = path.split_once("/tile/") {
        let height = rest.split('/').next()?;
        if !height.is_empty() && height.bytes().all(|b| b.is_ascii_digit()) {
            return Some(Resource::Tile);
        }
    }
    if sumdb && (path.ends_with("/latest") || path.ends_with("/supported")) {
        return Some(Resource::SumdbState);
    }
    if let Some((_, rest)) = path.split_once("/objects/") {
        let parts: Vec<&str> = rest.split('/').collect();
        let object = match parts.as_slice() {
            [dir, file] if is_hex(dir, 2) && is_hex(file, 38) => true,
            ["pack", file] => file
                .strip_prefix("pack-")
                .and_then(|f| f.strip_suffix(".pack").or_else(|| f.strip_suffix(".idx")))
                .is_some_and(|h| is_hex(h, 40) || is_hex(h, 64)),
            _ => false,
        };
        if object {
            return Some(Resource::GitObject);
        }
        if rest.starts_with("info/") {
            return Some(Resource::Direct);
        }
    }
    if path.ends_with("/info/refs") || (path.ends_with("/HEAD") && path.contains(".git")) {
        return Some(Resource::Direct);
    }
    if config.is_proxy_host(host, port) || config.is_sumdb_host(host, port) {
        // Anything else a configured host serves is its own page.
        return Some(Resource::Direct);
    }
    None
}

/// The hint subject of a module version's zip or go.mod (see
/// [`btrfly_core::Classification::subject`]): `go:zip:<module>@<version>`.
pub fn subject(file: VersionFile, module: &str, version: &str) -> Option<String> {
    match file {
        VersionFile::Zip => Some(format!("go:zip:{module}@{version}")),
        VersionFile::Mod => Some(format!("go:mod:{module}@{version}")),
        VersionFile::Info => None,
    }
}

/// The purl of a module version: `pkg:golang/<namespace>/<name>@<version>`.
pub fn purl(module: &str, version: &str) -> Option<String> {
    let (namespace, name) = match module.rsplit_once('/') {
        Some((ns, name)) => (Some(ns), name),
        None => (None, module),
    };
    btrfly_core::purl("golang", namespace, name, Some(version))
}

/// The request header in which git names its wire protocol version
/// (`version=2`), a variance of direct-mode keys.
pub const GIT_PROTOCOL: &str = "git-protocol";

/// The adapter's verdict on `req`.
pub fn classify(config: &GoConfig, req: &RequestHead) -> Option<Classification> {
    let resource = resource(config, req)?;
    let origin = format!("{} {}", req.method, req.origin());
    let (primary, mutability) = match &resource {
        Resource::List { module } => (format!("{origin} mod {module} list"), Mutability::Mutable),
        Resource::Latest { module } => {
            (format!("{origin} mod {module} latest"), Mutability::Mutable)
        }
        Resource::Version {
            module,
            version,
            file,
        } => (
            format!("{origin} mod {module}@{version}.{}", file.ext()),
            Mutability::Immutable,
        ),
        Resource::Lookup { .. } | Resource::SumdbState => {
            (format!("{origin}{}", req.uri.path()), Mutability::Mutable)
        }
        Resource::Tile | Resource::GitObject => {
            (format!("{origin}{}", req.uri.path()), Mutability::Immutable)
        }
        Resource::Direct => (
            format!("{origin}{}", req.path_and_query()),
            Mutability::Mutable,
        ),
    };
    let mut key = RecordingKey::new(NAME, primary).with_range(req);
    if resource == Resource::Direct {
        // git's wire protocol version (`version=2`) selects the answer a
        // git server gives for the same URL (a v2 capability list or a
        // v0 ref advertisement from `info/refs`), and git-http-backend
        // sends no `Vary` for it.
        if let Some(v) = req.headers.get(GIT_PROTOCOL) {
            key = key.vary(GIT_PROTOCOL, String::from_utf8_lossy(v.as_bytes()));
        }
    }
    let mut class = Classification::new(key, mutability);
    if let Resource::Version {
        module,
        version,
        file,
    } = &resource
    {
        class.package = purl(module, version);
        class.subject = subject(*file, module, version);
    }
    Some(class)
}

/// Whether a classification is a checksum database lookup (whose body
/// announces the hashes of a module version).
pub fn is_lookup(class: &Classification) -> bool {
    class.key.namespace == NAME && class.key.primary.contains("/lookup/")
}

/// The hashes a checksum database's lookup answer announces:
/// `<module> <version> h1:…` for the zip and `<module> <version>/go.mod
/// h1:…` for the go.mod, as hints for [`subject`]s. Lines for another
/// module or version than the one looked up are ignored; a malformed body
/// announces nothing.
pub fn lookup_hints(module: &str, version: &str, body: &[u8]) -> Vec<btrfly_core::DigestHint> {
    let Ok(text) = std::str::from_utf8(body) else {
        return Vec::new();
    };
    let mut hints = Vec::new();
    // The record (after the record id, up to the blank line before the note).
    for line in text.lines().skip(1).take_while(|l| !l.is_empty()) {
        let mut parts = line.split(' ');
        let (Some(m), Some(v), Some(h), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        if m != module {
            continue;
        }
        let (file, of) = if v == version {
            (VersionFile::Zip, btrfly_core::H1Of::ModuleZip)
        } else if v.strip_suffix("/go.mod") == Some(version) {
            (VersionFile::Mod, btrfly_core::H1Of::GoMod)
        } else {
            continue;
        };
        if let (Ok(digest), Some(url)) =
            (ExpectedDigest::go_h1(h, of), subject(file, module, version))
        {
            hints.push(btrfly_core::DigestHint { url, digest });
        }
    }
    hints
}
