//! The tag page's table: which entries a search keeps and in what order,
//! decided on the server from the query string (`?q=…&sort=…&order=…`),
//! so that it works without JavaScript and a link reproduces the view.

use std::cmp::Ordering;

use btrfly_core::Entry;

/// A column the table sorts by (`sort=` in the query string).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Column {
    /// The request URL (the default), then the method.
    Url,
    /// The adapter that keyed the entry (`files`, `pip`, `oci`, ...).
    Adapter,
    /// The recorded status code.
    Status,
    /// Body size in bytes.
    Size,
    /// The body's sha256.
    Sha256,
    /// When it was recorded.
    Recorded,
}

impl Column {
    /// Every column, in the table's order.
    pub const ALL: [Column; 6] = [
        Column::Url,
        Column::Adapter,
        Column::Status,
        Column::Size,
        Column::Sha256,
        Column::Recorded,
    ];

    /// Its name in `sort=`.
    pub fn as_str(self) -> &'static str {
        match self {
            Column::Url => "url",
            Column::Adapter => "adapter",
            Column::Status => "status",
            Column::Size => "size",
            Column::Sha256 => "sha256",
            Column::Recorded => "recorded",
        }
    }

    /// Its heading.
    pub fn title(self) -> &'static str {
        match self {
            Column::Url => "URL",
            Column::Adapter => "Adapter",
            Column::Status => "Status",
            Column::Size => "Size",
            Column::Sha256 => "sha256",
            Column::Recorded => "Recorded at",
        }
    }

    /// The column named `name`.
    ///
    /// # Errors
    /// An unknown name, with the known ones.
    pub fn parse(name: &str) -> Result<Column, String> {
        Column::ALL
            .into_iter()
            .find(|c| c.as_str() == name)
            .ok_or_else(|| {
                let known: Vec<_> = Column::ALL.iter().map(|c| c.as_str()).collect();
                format!("unknown sort column {name:?}: {}", known.join(", "))
            })
    }

    fn compare(self, a: &Entry, b: &Entry) -> Ordering {
        let by_url = || (&a.url, &a.method).cmp(&(&b.url, &b.method));
        match self {
            Column::Url => by_url(),
            Column::Adapter => a.key.namespace.cmp(&b.key.namespace).then_with(by_url),
            Column::Status => a.status.cmp(&b.status).then_with(by_url),
            Column::Size => a.size.cmp(&b.size).then_with(by_url),
            Column::Sha256 => a.sha256.as_str().cmp(b.sha256.as_str()).then_with(by_url),
            Column::Recorded => a.recorded_at.cmp(&b.recorded_at).then_with(by_url),
        }
    }
}

/// The view a query string asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct View {
    /// The search: whitespace-separated terms, each of which must occur
    /// (ignoring case) in the entry's URL, method, adapter, status or
    /// sha256.
    pub q: String,
    /// The sort column.
    pub sort: Column,
    /// Descending instead of ascending.
    pub descending: bool,
}

impl View {
    /// The view of `q`, `sort` and `order` (`asc`, the default, or
    /// `desc`).
    ///
    /// # Errors
    /// An unknown column or order, saying what is known.
    pub fn parse(q: Option<&str>, sort: Option<&str>, order: Option<&str>) -> Result<View, String> {
        let sort = match sort.filter(|s| !s.is_empty()) {
            None => Column::Url,
            Some(s) => Column::parse(s)?,
        };
        let descending = match order.filter(|s| !s.is_empty()) {
            None | Some("asc") => false,
            Some("desc") => true,
            Some(o) => return Err(format!("unknown order {o:?}: asc or desc")),
        };
        Ok(View {
            q: q.unwrap_or_default().trim().to_owned(),
            sort,
            descending,
        })
    }

    /// Whether `entry` matches the search.
    pub fn keeps(&self, entry: &Entry) -> bool {
        let terms: Vec<String> = self.q.split_whitespace().map(str::to_lowercase).collect();
        if terms.is_empty() {
            return true;
        }
        let haystack = format!(
            "{} {} {} {} {}",
            entry.url, entry.method, entry.key.namespace, entry.status, entry.sha256
        )
        .to_lowercase();
        terms.iter().all(|t| haystack.contains(t.as_str()))
    }

    /// The entries the search keeps, in the view's order.
    pub fn apply<'a>(&self, entries: impl IntoIterator<Item = &'a Entry>) -> Vec<&'a Entry> {
        let mut kept: Vec<&Entry> = entries.into_iter().filter(|e| self.keeps(e)).collect();
        kept.sort_by(|a, b| {
            let o = self.sort.compare(a, b);
            if self.descending {
                o.reverse()
            } else {
                o
            }
        });
        kept
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use btrfly_core::{Mutability, RecordingKey, Sha256};
    use time::macros::datetime;

    fn entry(ns: &str, url: &str, status: u16, body: &[u8], minute: u8) -> Entry {
        Entry {
            key: RecordingKey::new(ns, url),
            method: "GET".into(),
            url: url.into(),
            status,
            headers: Vec::new(),
            sha256: Sha256::of(body),
            size: body.len() as u64,
            mutability: Mutability::Mutable,
            recorded_at: datetime!(2026-11-30 09:00 UTC) + time::Duration::minutes(minute.into()),
            purl: None,
        }
    }

    fn urls(v: &[&Entry]) -> Vec<String> {
        v.iter().map(|e| e.url.clone()).collect()
    }

    #[test]
    fn search_and_sort() {
        let all = vec![
            entry("files", "https://files.example.test/b.txt", 200, b"bb", 2),
            entry(
                "pip",
                "https://pypi.example.test/simple/six/",
                200,
                b"index!",
                1,
            ),
            entry("files", "https://files.example.test/a.txt", 404, b"", 3),
        ];
        let view =
            |q: &str, s: &str, o: &str| View::parse(Some(q), Some(s), Some(o)).expect("view");

        assert_eq!(
            urls(&view("", "", "").apply(&all)),
            [
                "https://files.example.test/a.txt",
                "https://files.example.test/b.txt",
                "https://pypi.example.test/simple/six/"
            ]
        );
        // Terms are ANDed, case-insensitive, over URL, adapter, status, digest.
        assert_eq!(
            urls(&view("FILES 404", "", "").apply(&all)),
            ["https://files.example.test/a.txt"]
        );
        assert_eq!(urls(&view("pip", "", "").apply(&all)).len(), 1);
        let digest = Sha256::of(b"bb").to_string();
        assert_eq!(
            urls(&view(&digest[..10], "", "").apply(&all)),
            ["https://files.example.test/b.txt"]
        );
        assert!(view("nothing-like-this", "", "").apply(&all).is_empty());

        assert_eq!(
            urls(&view("", "size", "desc").apply(&all))[0],
            "https://pypi.example.test/simple/six/"
        );
        assert_eq!(
            urls(&view("", "recorded", "asc").apply(&all))[0],
            "https://pypi.example.test/simple/six/"
        );
        assert_eq!(
            urls(&view("", "status", "desc").apply(&all))[0],
            "https://files.example.test/a.txt"
        );
        assert_eq!(
            urls(&view("", "adapter", "desc").apply(&all))[0],
            "https://pypi.example.test/simple/six/"
        );

        assert!(View::parse(None, Some("colour"), None)
            .unwrap_err()
            .contains("unknown sort column \"colour\""));
        assert!(View::parse(None, None, Some("up")).is_err());
    }
}
