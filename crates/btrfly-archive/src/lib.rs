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
//! # Wiring (for the control API and the CLI)
//!
//! The server side is a few calls, each streaming:
//!
//! * `GET /tags/{tag}/export` → `200`, `Content-Type:
//!   application/warc` (with `Content-Encoding` absent: the gzip members
//!   are the file's own bytes), body streamed from
//!   [`store::export_tag`] writing into one end of a
//!   `tokio::io::duplex(256 * 1024)` whose other end becomes the response
//!   body (`tokio_util::io::ReaderStream`). Put
//!   `X-Btrfly-Export-Entries` and `X-Btrfly-Export-Body-Bytes` (from
//!   [`store::tag_entries`]: count and sum of sizes) in the head so the
//!   CLI can draw a bar before the first byte. An error after the head was
//!   sent can only cut the stream short: the CLI must then report the
//!   export failed (a truncated gzip member does not decode), and the
//!   server logs the [`ArchiveError`]. `404` for [`ArchiveError::NoSuchTag`].
//! * `POST /tags/{tag}/import` with the WARC (`.warc` or `.warc.gz`) as the
//!   request body (`tokio_util::io::StreamReader` over the body stream) →
//!   [`store::import_tag`] with `&|head| adapters.classify(head)` (the
//!   `btrfly_layers::classify::Adapters` of `serve`) → `201` with the
//!   [`store::ImportSummary`] as JSON (entries, skipped records with their
//!   reasons, the source tag); `409` for [`ArchiveError::TagExists`];
//!   `422` with the error's message for [`ArchiveError::DigestMismatch`],
//!   [`ArchiveError::UnresolvedRevisit`] and [`ArchiveError::Malformed`]
//!   (nothing is written to the tag in those cases). Playback of the new
//!   tag needs nothing else: it is sealed, with its vary records.
//! * `GET /tags/{tag}/manifest?format=json|cyclonedx|spdx` →
//!   [`store::tag_entries`], [`bom::Manifest::derive`] (recorded purls
//!   first once entries carry them), then [`bom::Manifest::to_json`] /
//!   [`bom::Manifest::to_cyclonedx`] / [`bom::Manifest::to_spdx`]
//!   (`application/vnd.cyclonedx+json`, `application/spdx+json`).
//! * `GET /tags/{a}/diff/{b}` → two manifests, [`diff::TagDiff::between`],
//!   [`diff::TagDiff::to_json`].
//!
//! The CLI: `btrfly export --tag T -o T.warc.gz` streams the response to a
//! temporary file beside the target, renamed when the body ended cleanly
//! (a bar on a terminal, from the two headers above and the bytes
//! received); `-o -` writes to stdout. `btrfly import FILE --tag T` streams
//! the file as the request body (bar by bytes sent of the file's size) and
//! prints the summary, listing skipped records. `btrfly tag manifest T
//! [--format …]` prints the document. `btrfly tag diff A B [--json]`
//! prints [`diff::TagDiff::to_text`] (or the JSON) and exits 0 when
//! [`diff::TagDiff::is_equal`], 1 otherwise.

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
