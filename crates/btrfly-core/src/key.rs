//! The recording key: what makes two requests "the same" for replay.
//!
//! Like a cache key, getting this wrong means serving one response for
//! another request, so it is built in one place (the adapters, through
//! [`crate::Adapter::classify`]) and documented here. A key has three parts,
//! after pingora-cache's `CacheKey`:
//!
//! - `namespace`: the adapter that built it (`files`, `pip`, `oci`, ...);
//! - `primary`: the normalised identity of the resource, e.g.
//!   `GET https://files.example.test:443/a/b?x=1`;
//! - `variance`: what else selects between answers for the same identity,
//!   e.g. a negotiated `Accept`, a `Range`, or the digest of a request body.
//!
//! Secrets (`Authorization`, cookies, signed query parameters) never enter a
//! key: adapters must leave them out.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Variance entry holding the sha256 of a request body, when there is one.
pub const BODY_VARIANCE: &str = "body-sha256";

/// Prefix of the variance entries that hold a request header named by the
/// response's `Vary` (`vary:accept` → the request's `Accept`).
pub const VARY_PREFIX: &str = "vary:";

/// Request headers that never enter a key, even when a response's `Vary`
/// names them: credentials and cookies (secrets), the client's name and
/// version (a replay must not miss because a tool was updated), and what
/// the key holds in its own way (`Range`) or drops on purpose (conditionals).
pub const NEVER_VARY: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "user-agent",
    "range",
    "if-match",
    "if-none-match",
    "if-modified-since",
    "if-unmodified-since",
    "if-range",
];

/// The request headers a response's `Vary` names (RFC 9110 §12.5.5) that
/// may enter a key: lower case, sorted, without duplicates, without `*`
/// (which no request header can match: such an answer is keyed like one
/// without `Vary`) and without [`NEVER_VARY`].
pub fn vary_names(response: &http::HeaderMap) -> Vec<String> {
    let mut names: Vec<String> = response
        .get_all(http::header::VARY)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|n| n.trim().to_ascii_lowercase())
        .filter(|n| !n.is_empty() && n != "*" && !NEVER_VARY.contains(&n.as_str()))
        .collect();
    names.sort();
    names.dedup();
    names
}

/// A request header's value as a key holds it: every field line of the
/// name, split into list members, each trimmed, joined by `", "`; an absent
/// header is the empty string.
pub fn vary_value(request: &http::HeaderMap, name: &str) -> String {
    let members: Vec<String> = request
        .get_all(name)
        .iter()
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .flat_map(|v| {
            v.split(',')
                .map(|m| m.trim().to_owned())
                .collect::<Vec<_>>()
        })
        .filter(|m| !m.is_empty())
        .collect();
    members.join(", ")
}

/// What makes two requests the same for replay (see the module docs).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RecordingKey {
    /// The adapter that built it.
    pub namespace: String,
    /// The normalised identity of the resource.
    pub primary: String,
    /// What else selects between answers for the same identity.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub variance: BTreeMap<String, String>,
}

impl RecordingKey {
    /// A key without variance.
    pub fn new(namespace: impl Into<String>, primary: impl Into<String>) -> Self {
        RecordingKey {
            namespace: namespace.into(),
            primary: primary.into(),
            variance: BTreeMap::new(),
        }
    }

    /// Adds a variance component (builder style).
    pub fn vary(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.variance.insert(name.into(), value.into());
        self
    }

    /// This key with the request's `Range` (see [`RequestHead::range`](crate::RequestHead::range)) as
    /// its `range` variance, when it has one.
    #[must_use]
    pub fn with_range(self, req: &crate::RequestHead) -> Self {
        match req.range() {
            Some(range) => self.vary("range", range),
            None => self,
        }
    }

    /// This key for the representation a request selects among those of a
    /// response that named `names` in `Vary`: one `vary:<name>` entry per
    /// name, holding the request's [`vary_value`].
    pub fn with_vary(&self, names: &[String], request: &http::HeaderMap) -> RecordingKey {
        let mut key = self.clone();
        for name in names {
            key.variance
                .insert(format!("{VARY_PREFIX}{name}"), vary_value(request, name));
        }
        key
    }

    /// This key without its `vary:` entries: the key the adapter built.
    pub fn without_vary(&self) -> RecordingKey {
        let mut key = self.clone();
        key.variance.retain(|k, _| !k.starts_with(VARY_PREFIX));
        key
    }

    /// A stable identifier for this key: the sha256 of its canonical form.
    ///
    /// The canonical form is line-based and unambiguous because no part may
    /// contain a newline (primary and variance come from a request line and
    /// header values, which cannot hold one); any newline is escaped anyway.
    pub fn id(&self) -> String {
        let mut canon = String::with_capacity(self.primary.len() + 64);
        canon.push_str("btrfly-key-v1\n");
        push_escaped(&mut canon, &self.namespace);
        push_escaped(&mut canon, &self.primary);
        for (k, v) in &self.variance {
            push_escaped(&mut canon, k);
            push_escaped(&mut canon, v);
        }
        crate::digest::sha256_hex(canon.as_bytes())
    }
}

fn push_escaped(out: &mut String, part: &str) {
    for c in part.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('\n');
}

impl std::fmt::Display for RecordingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.namespace, self.primary)?;
        for (k, v) in &self.variance {
            write!(f, " [{k}={v}]")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_is_stable_and_sensitive_to_every_part() {
        let base = RecordingKey::new("files", "GET https://a.example.test:443/x");
        assert_eq!(base.id(), base.clone().id());
        assert_eq!(base.id().len(), 64);
        let others = [
            RecordingKey::new("pip", "GET https://a.example.test:443/x"),
            RecordingKey::new("files", "GET https://a.example.test:443/y"),
            base.clone().vary("range", "bytes=0-1"),
            base.clone().vary("range", "bytes=0-2"),
        ];
        for o in &others {
            assert_ne!(o.id(), base.id(), "{o}");
        }
    }

    #[test]
    fn parts_cannot_be_shifted_into_each_other() {
        let a = RecordingKey::new("files", "a\nb");
        let b = RecordingKey::new("files\na", "b");
        assert_ne!(a.id(), b.id());
        let c = RecordingKey::new("f", "p").vary("k", "v\nw");
        let d = RecordingKey::new("f", "p").vary("k\nv", "w");
        assert_ne!(c.id(), d.id());
    }

    #[test]
    fn vary_names_and_values() {
        let mut resp = http::HeaderMap::new();
        resp.append(
            "vary",
            http::HeaderValue::from_static("Accept-Encoding, accept"),
        );
        resp.append(
            "vary",
            http::HeaderValue::from_static("Cookie, User-Agent, *, Accept-Language"),
        );
        assert_eq!(
            vary_names(&resp),
            ["accept", "accept-encoding", "accept-language"]
        );
        let mut req = http::HeaderMap::new();
        req.append(
            "accept",
            http::HeaderValue::from_static("text/html ,  */*;q=0.8"),
        );
        req.append("accept", http::HeaderValue::from_static("application/json"));
        assert_eq!(
            vary_value(&req, "accept"),
            "text/html, */*;q=0.8, application/json"
        );
        assert_eq!(vary_value(&req, "accept-language"), "");
        let base = RecordingKey::new("files", "GET https://a.example.test:443/x")
            .vary("range", "bytes=0-1");
        let names = vec!["accept".to_owned(), "accept-language".to_owned()];
        let varied = base.with_vary(&names, &req);
        assert_ne!(varied.id(), base.id());
        assert_eq!(
            varied.variance.get("vary:accept").map(String::as_str),
            Some("text/html, */*;q=0.8, application/json")
        );
        assert_eq!(varied.without_vary(), base);
    }

    #[test]
    fn variance_order_does_not_matter() {
        let a = RecordingKey::new("f", "p").vary("a", "1").vary("b", "2");
        let b = RecordingKey::new("f", "p").vary("b", "2").vary("a", "1");
        assert_eq!(a.id(), b.id());
    }
}
