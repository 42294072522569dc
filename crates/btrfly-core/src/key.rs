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

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RecordingKey {
    pub namespace: String,
    pub primary: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub variance: BTreeMap<String, String>,
}

impl RecordingKey {
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
        crate::sha256_hex(canon.as_bytes())
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
    fn variance_order_does_not_matter() {
        let a = RecordingKey::new("f", "p").vary("a", "1").vary("b", "2");
        let b = RecordingKey::new("f", "p").vary("b", "2").vary("a", "1");
        assert_eq!(a.id(), b.id());
    }
}
