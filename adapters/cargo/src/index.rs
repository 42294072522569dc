//! What the sparse index says about downloads: `config.json`'s `dl`
//! template and each index line's `cksum` (cargo's registry index
//! format).
//!
//! An index line is one JSON object per line, of which the adapter reads
//! `name`, `vers` and `cksum` (the sha256 of the `.crate` file, 64 hex
//! digits); a line that is not such an object announces nothing.
//!
//! The download URL of a crate version is the `dl` template of the
//! index's `config.json` with its markers replaced: `{crate}`,
//! `{version}`, `{prefix}` (the index directory of the name, e.g. `se/rd`),
//! `{lowerprefix}` (the same in lower case) and `{sha256-checksum}`; a
//! template without any marker gets `/{crate}/{version}/download`
//! appended.
//!
//! Within a recording session the adapter announces, for every line of a
//! recorded index file, the `cksum` for the crate version's hint subject
//! (`cargo:{name}@{version}`) and, once the same index's `config.json` was
//! recorded too (in either order), for the download URL the template
//! gives. What it needs of the other document it keeps as session notes
//! ([`notes`]).

use btrfly_core::{DigestHint, ExpectedDigest};
use serde::Deserialize;

use crate::key;

/// The markers a `dl` template may hold.
pub const MARKERS: &[&str] = &[
    "{crate}",
    "{version}",
    "{prefix}",
    "{lowerprefix}",
    "{sha256-checksum}",
];

/// Largest decoded index document read (an index file of a crate with
/// thousands of versions is a few MiB).
pub(crate) const MAX_DOCUMENT: u64 = 16 * 1024 * 1024;

/// One version of a crate, as its index line announces it.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Line {
    /// The crate name, in its published case.
    pub name: String,
    /// The version.
    pub vers: String,
    /// The sha256 of the `.crate` file, 64 hex digits.
    pub cksum: String,
}

/// The lines of an index file that parse and carry a valid `cksum`.
pub fn lines(body: &[u8]) -> Vec<Line> {
    body.split(|b| *b == b'\n')
        .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
        .filter_map(|l| serde_json::from_slice::<Line>(l).ok())
        .filter(|l| {
            key::is_crate_name(&l.name)
                && key::is_version(&l.vers)
                && ExpectedDigest::sha256_hex(&l.cksum).is_ok()
        })
        .collect()
}

/// `config.json`'s `dl` template, if the body is such a document.
pub fn dl_template(body: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct Config {
        dl: String,
    }
    serde_json::from_slice::<Config>(body).ok().map(|c| c.dl)
}

/// The download URL of `line` by the `dl` template (see the module docs).
pub fn download_url(template: &str, line: &Line) -> String {
    if !MARKERS.iter().any(|m| template.contains(m)) {
        return format!(
            "{}/{}/{}/download",
            template.trim_end_matches('/'),
            line.name,
            line.vers
        );
    }
    let prefix = key::prefix(&line.name);
    template
        .replace("{crate}", &line.name)
        .replace("{version}", &line.vers)
        .replace("{lowerprefix}", &prefix.to_ascii_lowercase())
        .replace("{prefix}", &prefix)
        .replace("{sha256-checksum}", &line.cksum.to_ascii_lowercase())
}

/// The names of the session notes the adapter keeps (see
/// [`btrfly_core::Adapter::session_notes`]).
pub mod notes {
    /// The `dl` template of the index at `root`.
    pub fn template(root: &str) -> String {
        format!("cargo:dl {root}")
    }

    /// The prefix of the notes holding the lines recorded from the index
    /// at `root`.
    pub fn lines_of(root: &str) -> String {
        format!("cargo:line {root} ")
    }

    /// The note holding one line (its value is the `cksum`).
    pub fn line(root: &str, name: &str, version: &str) -> String {
        format!("{}{name} {version}", lines_of(root))
    }
}

/// The hints for index `lines`: by subject always, by download URL when
/// the index's `dl` `template` is known.
pub fn hints(lines: &[Line], template: Option<&str>) -> Vec<DigestHint> {
    let mut out = Vec::new();
    for line in lines {
        let Ok(digest) = ExpectedDigest::sha256_hex(&line.cksum) else {
            continue;
        };
        if let Some(t) = template {
            if let Ok(uri) = download_url(t, line).parse::<http::Uri>() {
                if uri.scheme().is_some() && uri.host().is_some() {
                    out.push(DigestHint {
                        url: btrfly_core::canonical_url(&uri),
                        digest: digest.clone(),
                    });
                }
            }
        }
        out.push(DigestHint {
            url: key::subject(&line.name, &line.vers),
            digest,
        });
    }
    out
}
