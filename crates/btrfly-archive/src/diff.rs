//! What changed between two tags: entries added, removed and changed.
//!
//! Entries are matched by their recording key (the same request, for
//! replay). An entry is *changed* when both tags hold its key but the
//! answers differ: another body (sha256), or another status with the same
//! body (an empty `200` that became an empty `404`). Header-only
//! differences (a new `Date`) are not changes: a build gets the same
//! bytes.

use std::collections::BTreeMap;

use btrfly_core::Tag;
use serde::Serialize;

use crate::bom::{Item, Manifest};

/// One side of an entry in a diff.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DiffEntry {
    /// The recording key, as `btrfly tag show` prints it.
    pub key: String,
    /// The request method.
    pub method: String,
    /// The URL requested.
    pub url: String,
    /// The recorded status code.
    pub status: u16,
    /// sha256 of the body, lower-case hex.
    pub sha256: String,
    /// Body size in bytes.
    pub size: u64,
    /// The package identity, when known.
    pub purl: Option<String>,
}

/// An entry both tags hold, answered differently.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Changed {
    /// The entry in the first tag.
    pub before: DiffEntry,
    /// The entry in the second tag.
    pub after: DiffEntry,
}

/// The difference from tag `a` to tag `b`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TagDiff {
    /// The first tag (the one compared against).
    pub a: Tag,
    /// The second tag.
    pub b: Tag,
    /// In `b`, not in `a`.
    pub added: Vec<DiffEntry>,
    /// In `a`, not in `b`.
    pub removed: Vec<DiffEntry>,
    /// Entries of both tags under the same key whose body digest or status differ.
    pub changed: Vec<Changed>,
    /// Entries with the same key and answer in both.
    pub unchanged: usize,
}

fn side(item: &Item) -> DiffEntry {
    let e = &item.entry;
    DiffEntry {
        key: e.key.to_string(),
        method: e.method.clone(),
        url: e.url.clone(),
        status: e.status,
        sha256: e.sha256.to_string(),
        size: e.size,
        purl: item.purl.clone(),
    }
}

impl TagDiff {
    /// Compares two manifests (their purls are carried into the diff).
    /// Each list is sorted by URL, method and key.
    pub fn between(a: &Manifest, b: &Manifest) -> TagDiff {
        let index = |m: &'_ Manifest| -> BTreeMap<String, usize> {
            m.items
                .iter()
                .enumerate()
                .map(|(i, item)| (item.entry.key.id(), i))
                .collect()
        };
        let (ia, ib) = (index(a), index(b));
        let mut diff = TagDiff {
            a: a.meta.tag.clone(),
            b: b.meta.tag.clone(),
            added: Vec::new(),
            removed: Vec::new(),
            changed: Vec::new(),
            unchanged: 0,
        };
        // Walk in manifest order so the lists come out sorted.
        for item in &a.items {
            match ib.get(&item.entry.key.id()) {
                None => diff.removed.push(side(item)),
                Some(&j) => {
                    let other = &b.items[j];
                    if other.entry.sha256 != item.entry.sha256
                        || other.entry.status != item.entry.status
                    {
                        diff.changed.push(Changed {
                            before: side(item),
                            after: side(other),
                        });
                    } else {
                        diff.unchanged += 1;
                    }
                }
            }
        }
        for item in &b.items {
            if !ia.contains_key(&item.entry.key.id()) {
                diff.added.push(side(item));
            }
        }
        diff
    }

    /// Whether the two tags answer every request alike (the CLI's exit
    /// code: 0 when equal, 1 when not).
    pub fn is_equal(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }

    /// The JSON form: `{"a", "b", "added": [...], "removed": [...],
    /// "changed": [{"before", "after"}], "unchanged": N, "equal": bool}`.
    pub fn to_json(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(self).unwrap_or_default();
        if let Some(o) = v.as_object_mut() {
            o.insert("equal".into(), self.is_equal().into());
        }
        v
    }

    /// The text form: one line per difference, then a summary line.
    ///
    /// ```text
    /// + GET https://files.example.test/new.tar.gz 200 sha256:1a2b3c4d5e6f (12 bytes)
    /// - GET https://files.example.test/old.tar.gz 200 sha256:… (…)
    /// ~ GET https://files.example.test/tool.tar.gz 200 sha256:… → 200 sha256:… pkg:…
    /// 1 added, 1 removed, 1 changed, 4 unchanged (a → b)
    /// ```
    pub fn to_text(&self) -> String {
        let short = |d: &DiffEntry| {
            format!(
                "{} sha256:{}",
                d.status,
                &d.sha256[..d.sha256.len().min(12)]
            )
        };
        let purl = |d: &DiffEntry| d.purl.as_ref().map(|p| format!(" {p}")).unwrap_or_default();
        let mut out = String::new();
        for d in &self.added {
            out.push_str(&format!(
                "+ {} {} {} ({} bytes){}\n",
                d.method,
                d.url,
                short(d),
                d.size,
                purl(d)
            ));
        }
        for d in &self.removed {
            out.push_str(&format!(
                "- {} {} {} ({} bytes){}\n",
                d.method,
                d.url,
                short(d),
                d.size,
                purl(d)
            ));
        }
        for c in &self.changed {
            out.push_str(&format!(
                "~ {} {} {} → {}{}\n",
                c.after.method,
                c.after.url,
                short(&c.before),
                short(&c.after),
                purl(&c.after)
            ));
        }
        out.push_str(&format!(
            "{} added, {} removed, {} changed, {} unchanged ({} → {})\n",
            self.added.len(),
            self.removed.len(),
            self.changed.len(),
            self.unchanged,
            self.a,
            self.b
        ));
        out
    }
}
