//! Tags outside btrfly: archives other tools read, bills of materials,
//! diffs.
//!
//! A tag must outlive the server that recorded it, and people reviewing a
//! build want to know what it downloaded and what changed since last time.
//! This crate holds everything for that which does not depend on the
//! server or the CLI:
//!
//! | module | what |
//! |---|---|
//! | [`warc`] | WARC 1.1 writing ([`warc::WarcWriter`]) and reading ([`warc::WarcReader`], [`warc::read_exchanges`]): streamed, one gzip member per record, digests written and checked |
//! | [`store`] | a tag of a [`btrfly_store::Store`] to a WARC file ([`store::export_tag`]) and a WARC file into a new sealed tag ([`store::import_tag`]) |
//! | [`bom`] | a tag's bill of materials ([`bom::Manifest`]): plain JSON, CycloneDX 1.5, SPDX 2.3 |
//! | [`purl`] | package identities derived from entry URLs and keys ([`purl::derive_purl`]) |
//! | [`diff`] | two tags compared ([`diff::TagDiff`]) |
//! | [`digest`] | WARC digest values (sha1/sha256; base32, hex, base64) |
//!
//! # Streaming
//!
//! No body is ever held whole in memory. Export reads each body twice from
//! the store (the `WARC-Block-Digest` comes before the block, so it is
//! computed on a first pass) and passes it through in the store's chunks
//! (256 KiB), each compressed and handed to the output before the next is
//! read. Import reads the WARC in chunks of at most 64 KiB and hands them
//! to the store's blob writer; only record headers and HTTP heads (at
//! most 1 MiB each) are buffered. `tests/large_body.rs` exports and
//! imports a 200 MiB body through a 64 KiB pipe and asserts the process
//! stays under 50 MiB of peak RSS (it measures about 7 MiB).
//!
//! # Where it is used
//!
//! The control API's `archive` routes (`btrfly-control/src/archive.rs`)
//! serve [`store::export_tag`] (streamed through a duplex pipe; an error
//! after the head was sent ends the response without its last chunk),
//! [`store::import_tag`] (the request body streamed in, classified by the
//! gateway's adapter registry: `201`, `409` for
//! [`ArchiveError::TagExists`], `422` for digest, revisit and framing
//! errors), manifests ([`bom::Manifest::of_entries`]: recorded package
//! identities first, see [`purl::recorded_purl`]) and diffs
//! ([`diff::TagDiff`]). The CLI's commands (`btrfly export`, `import`,
//! `tag manifest`, `tag diff`) are `btrfly-client/src/archive.rs`.

pub mod bom;
pub mod diff;
pub mod digest;
mod error;
pub mod purl;
pub mod store;
pub mod warc;

#[cfg(test)]
mod tests;

pub use error::ArchiveError;
