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
        /// Where, in the uncompressed stream.
        offset: u64,
        #[source]
        /// The read error.
        source: std::io::Error,
    },
    /// A body could not be read from where the tag keeps it.
    #[error("reading the body of {url} (sha256 {sha256}): {source}")]
    Body {
        /// The entry's URL.
        url: String,
        /// The entry's body digest.
        sha256: String,
        #[source]
        /// The read error.
        source: std::io::Error,
    },
    /// A body read for export is not the one the entry recorded.
    #[error(
        "the body of {url} is not the recorded one: the entry says sha256 {expected} \
         ({expected_size} bytes), the store gave sha256 {actual} ({actual_size} bytes)"
    )]
    BodyMismatch {
        /// The entry's URL.
        url: String,
        /// The recorded sha256.
        expected: String,
        /// The recorded size in bytes.
        expected_size: u64,
        /// The sha256 the store gave.
        actual: String,
        /// The size the store gave, in bytes.
        actual_size: u64,
    },
    /// A value a WARC field cannot carry.
    #[error(transparent)]
    Field(#[from] crate::warc::BadFieldValue),
    /// A record that does not follow WARC 1.1 or HTTP/1.1 framing.
    #[error("WARC record {record_id} (at byte {offset}, uncompressed): {message}")]
    Malformed {
        /// The record's `WARC-Record-ID`.
        record_id: String,
        /// Where the record starts, in the uncompressed stream.
        offset: u64,
        /// What is wrong.
        message: String,
    },
    /// A record whose content is not what its digest field says.
    #[error(
        "WARC record {record_id}: {kind} digest mismatch: the record declares {declared}, \
         its content has {computed}"
    )]
    DigestMismatch {
        /// The record's `WARC-Record-ID`.
        record_id: String,
        /// `block` or `payload`.
        kind: &'static str,
        /// The digest the record declares.
        declared: String,
        /// The digest of its content.
        computed: String,
    },
    /// A `revisit` whose original is not in the file.
    #[error(
        "WARC revisit record {record_id} refers to {refers_to}, which no earlier response \
         record in this file has: import the WARC file holding the original first"
    )]
    UnresolvedRevisit {
        /// The revisit's `WARC-Record-ID`.
        record_id: String,
        /// The record id or payload digest it refers to.
        refers_to: String,
    },
    /// The place bodies are imported into failed.
    #[error("storing the body of WARC record {record_id}: {source}")]
    Sink {
        /// The record's `WARC-Record-ID`.
        record_id: String,
        #[source]
        /// The sink's error.
        source: std::io::Error,
    },
    #[error(transparent)]
    /// The store failed.
    Store(#[from] btrfly_store::StoreError),
    #[error("tag {0} does not exist")]
    /// The tag does not exist.
    NoSuchTag(Tag),
    #[error("tag {0} already exists: import into a new tag")]
    /// An import's tag exists already.
    TagExists(Tag),
    /// A bill of materials could not be built.
    #[error("building the {format} document: {message}")]
    Bom {
        /// `cyclonedx` or `spdx`.
        format: &'static str,
        /// What went wrong.
        message: String,
    },
}
