//! Recording keys of registry traffic, as pure functions of the request.
//!
//! | request | key (primary) | variance | kind |
//! |---|---|---|---|
//! | `/v2/` ping | `GET https://reg:443/v2/` | — | mutable |
//! | manifest by tag | `GET https://reg:443/v2/<name>/manifests/<tag>` | `accept` | mutable: frozen per tag |
//! | manifest by sha256 digest | `GET manifest sha256:<hex>` | `range` | immutable, body verified |
//! | blob by sha256 digest | `GET blob sha256:<hex>` | `range` | immutable, body verified |
//! | tags list, catalog, referrers, other `/v2/` | the exact URL | — | mutable |
//! | token request | `GET token https://auth:443/<path>` | `service` | mutable |
//!
//! Digest keys name neither registry nor repository, so one recording
//! serves every repository and registry holding the content, and a
//! registry's redirect to a signed storage URL never enters a key. Token
//! keys leave out `scope`, `account` and the like: in playback the token is
//! never checked, so any token the tag holds for that realm will do.
//! `Authorization`, cookies and query signatures never enter a key.

use btrfly_core::{RecordingKey, RequestHead};
use http::header::ACCEPT;
use http::HeaderMap;
use oci_spec::image::Digest;

/// The adapter's name and key namespace.
pub const NAME: &str = "oci";

/// `METHOD scheme://host:port/path?query`.
pub fn exact(req: &RequestHead) -> RecordingKey {
    RecordingKey::new(
        NAME,
        format!("{} {}{}", req.method, req.origin(), req.path_and_query()),
    )
}

/// The version check, `/v2` and `/v2/` alike.
pub fn ping(req: &RequestHead) -> RecordingKey {
    RecordingKey::new(NAME, format!("{} {}/v2/", req.method, req.origin()))
}

/// Whether a key is a version check's ([`ping`]).
pub fn is_ping(key: &RecordingKey) -> bool {
    key.primary.ends_with("/v2/") && key.primary.split(' ').count() == 2
}

/// A manifest by tag: its registry, repository and tag, and the media types
/// the client accepts (the registry picks the answer by them).
pub fn manifest_by_tag(req: &RequestHead) -> RecordingKey {
    let key = exact(req);
    match accept(&req.headers) {
        Some(a) => key.vary("accept", a),
        None => key,
    }
}

/// Content by digest (`what` is `manifest` or `blob`): the digest alone,
/// plus the `Range` when there is one.
pub fn by_digest(req: &RequestHead, what: &str, digest: &Digest) -> RecordingKey {
    RecordingKey::new(NAME, format!("{} {what} {digest}", req.method)).with_range(req)
}

/// Whether a key is a bearer-token request's (see [`token`]).
pub fn is_token_key(key: &RecordingKey) -> bool {
    key.namespace == NAME && key.primary.split(' ').nth(1) == Some("token")
}

/// The purl of content by digest: `pkg:oci/{last name segment}@{digest}`
/// with the `repository_url` qualifier (`host[:port]/full/name`), as the
/// purl spec's `oci` type says; `None` outside `/v2/{name}/…`.
pub fn purl(req: &RequestHead, digest: &Digest) -> Option<String> {
    let rest = req.uri.path().strip_prefix("/v2/")?;
    let name = rest
        .rsplit_once("/blobs/")
        .or_else(|| rest.rsplit_once("/manifests/"))?
        .0;
    let last = name.rsplit('/').next()?;
    let host = match req.uri.port_u16() {
        Some(p) => format!("{}:{p}", req.host().to_ascii_lowercase()),
        None => req.host().to_ascii_lowercase(),
    };
    let repository = format!("{host}/{name}");
    btrfly_core::purl_with(
        "oci",
        None,
        last,
        Some(digest.as_ref()),
        &[("repository_url", &repository)],
    )
}

/// A bearer-token request: the realm (scheme, host, port, path) and the
/// service it is for.
pub fn token(req: &RequestHead) -> RecordingKey {
    let key = RecordingKey::new(
        NAME,
        format!("{} token {}{}", req.method, req.origin(), req.uri.path()),
    );
    let service = req.uri.query().and_then(|q| {
        url::form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "service")
            .map(|(_, v)| v.into_owned())
    });
    match service {
        Some(s) => key.vary("service", s),
        None => key,
    }
}

/// Whether a query asks for a registry token: a `scope` of the token
/// protocol (`repository:<name>:<actions>`, `repository(<class>):…`,
/// `registry:catalog:*`).
pub fn is_token_query(query: Option<&str>) -> bool {
    let Some(q) = query else { return false };
    url::form_urlencoded::parse(q.as_bytes())
        .filter(|(k, _)| k == "scope")
        .any(|(_, v)| {
            v.split(' ').any(|scope| {
                let resource = scope.split(':').next().unwrap_or_default();
                let resource = resource.split('(').next().unwrap_or_default();
                scope.contains(':') && matches!(resource, "repository" | "registry")
            })
        })
}

/// The media types a client accepts, normalised: every `Accept` header
/// split at commas, parameters (`q=`) dropped as registries ignore them,
/// lower case, sorted, without duplicates. `None` without any.
pub fn accept(headers: &HeaderMap) -> Option<String> {
    let mut types: Vec<String> = headers
        .get_all(ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|t| t.split(';').next())
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty())
        .collect();
    types.sort();
    types.dedup();
    (!types.is_empty()).then(|| types.join(","))
}

/// The key a `HEAD` may be answered from in playback: its `GET`.
pub fn get_of_head(key: &RecordingKey) -> Option<RecordingKey> {
    let rest = key.primary.strip_prefix("HEAD ")?;
    let mut get = key.clone();
    get.primary = format!("GET {rest}");
    Some(get)
}
