//! The one error type of this crate.

use btrfly_core::Tag;

/// Why an export, an import or a document failed.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// The output refused bytes (a closed connection, a full disk).
    #[error("writing the WARC: {0}")]
    Write(#[source] std::io::Error),
    /// The input could not be read (including a gzip stream that is not
    /// valid gzip).
    #[error("reading the WARC at byte {offset} (uncompressed): {source}")]
    Read {
        offset: u64,
        #[source]
        source: std::io::Error,
    },
    /// A body could not be read from where the tag keeps it.
    #[error("reading the body of {url} (sha256 {sha256}): {source}")]
    Body {
        url: String,
        sha256: String,
        #[source]
        source: std::io::Error,
    },
    /// A body read for export is not the one the entry recorded.
    #[error(
        "the body of {url} is not the recorded one: the entry says sha256 {expected} \
         ({expected_size} bytes), the store gave sha256 {actual} ({actual_size} bytes)"
    )]
    BodyMismatch {
        url: String,
        expected: String,
        expected_size: u64,
        actual: String,
        actual_size: u64,
    },
    /// A value a WARC field cannot carry.
    #[error(transparent)]
    Field(#[from] crate::warc::BadFieldValue),
    /// A record that does not follow WARC 1.1 or HTTP/1.1 framing.
    #[error("WARC record {record_id} (at byte {offset}, uncompressed): {message}")]
    Malformed {
        record_id: String,
        offset: u64,
        message: String,
    },
    /// A record whose content is not what its digest field says.
    #[error(
        "WARC record {record_id}: {kind} digest mismatch: the record declares {declared}, \
         its content has {computed}"
    )]
    DigestMismatch {
        record_id: String,
        /// `block` or `payload`.
        kind: &'static str,
        declared: String,
        computed: String,
    },
    /// A `revisit` whose original is not in the file.
    #[error(
        "WARC revisit record {record_id} refers to {refers_to}, which no earlier response \
         record in this file has: import the WARC file holding the original first"
    )]
    UnresolvedRevisit {
        record_id: String,
        refers_to: String,
    },
    /// The place bodies are imported into failed.
    #[error("storing the body of WARC record {record_id}: {source}")]
    Sink {
        record_id: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] btrfly_store::StoreError),
    #[error("tag {0} does not exist")]
    NoSuchTag(Tag),
    #[error("tag {0} already exists: import into a new tag")]
    TagExists(Tag),
    /// A bill of materials could not be built.
    #[error("building the {format} document: {message}")]
    Bom {
        format: &'static str,
        message: String,
    },
}
