//! The adapter trait: how an ecosystem turns a request into a recording key.
//!
//! Adapters answer pure questions about a request head, so they can be
//! table-tested without sockets: is this request mine, what is its key, is
//! the resource immutable (shared across tags) or mutable (frozen per tag),
//! and which digest must its body have.

use http::{HeaderMap, Method, Uri};

use crate::entry::{Entry, Mutability};
use crate::expected::ExpectedDigest;
use crate::host::Origin;
use crate::key::RecordingKey;

/// The head of a request as the gateway saw it, in absolute form.
#[derive(Clone, Debug)]
pub struct RequestHead {
    /// The request method.
    pub method: Method,
    /// Always absolute: scheme, authority (with explicit port) and path.
    pub uri: Uri,
    /// The request headers (`Proxy-Authorization` already removed).
    pub headers: HeaderMap,
}

/// A request head that could not be built from text parts.
#[derive(Debug, thiserror::Error)]
pub enum HeadError {
    /// A header name is not a token (RFC 9110 §5.1).
    #[error("header name {name:?}: {source}")]
    Name {
        /// The name as given.
        name: String,
        /// Why it is not one.
        source: http::header::InvalidHeaderName,
    },
    /// A header value holds bytes no header may carry.
    #[error("header {name}: {source}")]
    Value {
        /// The header's name.
        name: String,
        /// Why the value is refused.
        source: http::header::InvalidHeaderValue,
    },
    /// The URI does not parse.
    #[error("uri {uri:?}: {source}")]
    Uri {
        /// The URI as given.
        uri: String,
        /// Why it does not parse.
        source: http::uri::InvalidUri,
    },
}

impl RequestHead {
    /// A head from text parts (tables, tools): an absolute `uri` and
    /// `(name, value)` headers, kept in order.
    ///
    /// # Errors
    /// [`HeadError`] for a header name or value, or a URI, that HTTP does
    /// not allow.
    pub fn from_parts(
        method: Method,
        uri: &str,
        headers: &[(&str, &str)],
    ) -> Result<RequestHead, HeadError> {
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            let name = http::header::HeaderName::from_bytes(k.as_bytes()).map_err(|source| {
                HeadError::Name {
                    name: (*k).to_owned(),
                    source,
                }
            })?;
            let value = http::HeaderValue::from_str(v).map_err(|source| HeadError::Value {
                name: (*k).to_owned(),
                source,
            })?;
            map.append(name, value);
        }
        let uri = uri.parse().map_err(|source| HeadError::Uri {
            uri: uri.to_owned(),
            source,
        })?;
        Ok(RequestHead {
            method,
            uri,
            headers: map,
        })
    }

    /// The URI's scheme (`http` when it has none).
    pub fn scheme(&self) -> &str {
        self.uri.scheme_str().unwrap_or("http")
    }

    /// The URI's host (IPv6 bracketed), or empty.
    pub fn host(&self) -> &str {
        self.uri.host().unwrap_or("")
    }

    /// The port, explicit or the scheme's default.
    pub fn port(&self) -> u16 {
        self.uri
            .port_u16()
            .unwrap_or(if self.scheme() == "https" { 443 } else { 80 })
    }

    /// The `Range` header (RFC 9110 §14.2), trimmed, when it is text: a
    /// partial answer is keyed apart from the whole one.
    pub fn range(&self) -> Option<&str> {
        self.headers
            .get(http::header::RANGE)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    }

    /// The origin-form target: path and query (`/` when empty).
    pub fn path_and_query(&self) -> &str {
        self.uri.path_and_query().map_or("/", |pq| pq.as_str())
    }

    /// The URL in the one form hints are keyed by; see [`canonical_url`].
    pub fn canonical_url(&self) -> String {
        canonical_url(&self.uri)
    }

    /// Scheme, host and port of the request. Its `Display`,
    /// `scheme://host:port` with the host in lower case and the port always
    /// written, is the origin every adapter's key starts from (after the
    /// method), so one request has one origin in every namespace.
    pub fn origin(&self) -> Origin {
        Origin::new(self.scheme() == "https", self.host(), self.port())
    }
}

/// `scheme://host:port/path?query`: lower-case host, explicit port, no
/// fragment. Digest hints (see [`Adapter::digest_hints`]) name URLs in this
/// form so that they match the requests the gateway sees.
pub fn canonical_url(uri: &Uri) -> String {
    let scheme = uri.scheme_str().unwrap_or("http");
    let host = uri.host().unwrap_or("").to_ascii_lowercase();
    let host = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host
    };
    let port = uri
        .port_u16()
        .unwrap_or(if scheme == "https" { 443 } else { 80 });
    let pq = uri.path_and_query().map_or("/", |pq| pq.as_str());
    format!("{scheme}://{host}:{port}{pq}")
}

/// A digest one recorded response announced for another resource (an index
/// page listing files with their sha256, a checksum database's answer for
/// a module version): the later download must match it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DigestHint {
    /// The resource: a URL in [`canonical_url`] form, or a subject an
    /// adapter names for it (see [`Classification::subject`]) when the
    /// announcement does not know the download's URL.
    pub url: String,
    /// The digest the body of that resource must have.
    pub digest: ExpectedDigest,
}

/// An adapter's verdict on a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Classification {
    /// The recording key the answer is stored and found under.
    pub key: RecordingKey,
    /// Shared across tags, or frozen per tag.
    pub mutability: Mutability,
    /// When known from the protocol, the digest the response body must
    /// have; a body that does not match is not recorded.
    pub expected: Option<ExpectedDigest>,
    /// The package this resource belongs to, as a package URL (purl,
    /// `pkg:type/namespace/name@version`, built with [`crate::purl()`]);
    /// recorded in [`Entry::purl`].
    pub package: Option<String>,
    /// A name for the artifact that digest hints may use instead of its URL
    /// (`go:zip:example.test/m@v1.0.0`, `cargo:serde@1.0.0`), for
    /// protocols where the page announcing a digest does not know where
    /// the artifact will be downloaded from. Only looked up when no hint
    /// names the URL.
    pub subject: Option<String>,
}

impl Classification {
    /// A classification with no expected digest, package or subject.
    pub fn new(key: RecordingKey, mutability: Mutability) -> Classification {
        Classification {
            key,
            mutability,
            expected: None,
            package: None,
            subject: None,
        }
    }
}

/// An ecosystem's rules: which requests are its own, how they are keyed,
/// and what of their answers is recorded. Every method is a pure function
/// of request and response heads (table-testable); the gateway calls them
/// from one place each (classification, and the recorder).
pub trait Adapter: Send + Sync + 'static {
    /// Short stable name; also the key namespace.
    fn name(&self) -> &'static str;

    /// Claims the request and builds its key, or declines with `None` so the
    /// next adapter (finally the plain `files` adapter) gets it.
    fn classify(&self, req: &RequestHead) -> Option<Classification>;

    /// Whether this adapter wants to read a just-recorded response body
    /// (an index page) through [`Adapter::digest_hints`]. Bodies larger
    /// than [`MAX_INSPECTED_BODY`] are never shown.
    fn inspects(&self, _class: &Classification, _status: u16) -> bool {
        false
    }

    /// Digests that a recorded body announces for other URLs (or subjects,
    /// see [`Classification::subject`]). Within the session that recorded
    /// it, a later request for such a URL gets the digest as its
    /// [`Classification::expected`], so a tampered download is not
    /// recorded.
    fn digest_hints(&self, _req: &RequestHead, _entry: &Entry, _body: &[u8]) -> Vec<DigestHint> {
        Vec::new()
    }

    /// Facts an inspected body states that this adapter needs when it
    /// reads another body of the same session, as `(name, value)` notes
    /// (cargo's `config.json`: the download URL template of its index; an
    /// index file: its checksums, for a template that comes later). The
    /// session keeps them (bounded) until it ends; names should start with
    /// the adapter's name.
    fn session_notes(
        &self,
        _req: &RequestHead,
        _entry: &Entry,
        _body: &[u8],
    ) -> Vec<(String, String)> {
        Vec::new()
    }

    /// [`Adapter::digest_hints`] for adapters that need the session's
    /// notes: `notes(prefix)` lists the `(name, value)` notes whose name
    /// starts with `prefix`, this body's own [`Adapter::session_notes`]
    /// included. Of two bodies inspected at the same time, at least the
    /// later reader sees the other's notes. The default ignores the notes.
    fn digest_hints_noted(
        &self,
        req: &RequestHead,
        entry: &Entry,
        body: &[u8],
        _notes: &dyn Fn(&str) -> Vec<(String, String)>,
    ) -> Vec<DigestHint> {
        self.digest_hints(req, entry, body)
    }

    /// Rewrites the head of a response being recorded, before it goes on to
    /// the client and into the tag: the recording client and every replay
    /// then see the same head. Adapters drop volatile parts here (the
    /// moment of the fetch, per-edge cache headers, validators of a page
    /// that is frozen per tag). Never called for replies btrfly makes.
    fn normalize_response_headers(
        &self,
        _class: &Classification,
        _status: u16,
        _headers: &mut HeaderMap,
    ) {
    }

    /// Whether a response (head already normalised) is worth recording. A
    /// response that is not recorded still goes to the client. Adapters
    /// decline e.g. a redirect to a URL that has the same recording key,
    /// which a replay could only answer with itself.
    fn records(
        &self,
        _req: &RequestHead,
        _class: &Classification,
        _status: u16,
        _headers: &HeaderMap,
    ) -> bool {
        true
    }

    /// The URL (in [`canonical_url`] form) a response sends the client to
    /// for the very same resource, when that follow-up must be recorded as
    /// this request: a registry redirecting a blob download to a signed,
    /// short-lived URL on a storage host. Within the recording session the
    /// request for that URL is classified as this one (same adapter, key
    /// and expected digest), so a replay answers the original request with
    /// the body and never depends on the other URL. Usually paired with
    /// [`Adapter::records`] declining the redirect itself.
    fn redirect_alias(
        &self,
        _req: &RequestHead,
        _class: &Classification,
        _status: u16,
        _headers: &HeaderMap,
    ) -> Option<String> {
        None
    }

    /// Which of the request headers a response names in `Vary` (already
    /// filtered by [`crate::vary_names`]) select this answer among the
    /// recorded ones, i.e. enter its key. By default all of them: that is
    /// the rule for plain files and every adapter without its own. An
    /// adapter that keys a header its own way (a negotiated `Accept`) leaves
    /// it out here.
    fn vary_headers(&self, _class: &Classification, names: Vec<String>) -> Vec<String> {
        names
    }

    /// Whether the body of this answer carries nothing a client needs (a
    /// registry's version check), so that when the client hangs up before
    /// the body arrived the head is recorded alone, with an empty body.
    fn head_suffices(&self, _class: &Classification, _status: u16) -> bool {
        false
    }

    /// Keys tried in order during playback when the request's own key was
    /// not recorded (a `HEAD` answered from a recorded `GET`).
    fn replay_fallbacks(&self, _class: &Classification) -> Vec<RecordingKey> {
        Vec::new()
    }

    /// Whether a successful answer to this request hands out a credential
    /// (an OCI bearer-token answer): its body is then stored with its
    /// token fields replaced by a placeholder (see btrfly-record's
    /// `secrets`), and the client still gets the real answer.
    fn is_token_answer(&self, _class: &Classification) -> bool {
        false
    }
}

/// Largest body shown to [`Adapter::digest_hints`].
pub const MAX_INSPECTED_BODY: u64 = 32 * 1024 * 1024;
