//! WARC 1.1 (ISO 28500:2017) export and import of tags.
//!
//! # Why not a WARC crate
//!
//! The `warc` crate (0.4) writes a record from a body held in memory
//! (`write_raw(headers, &body)`), keeps header fields in a `HashMap`
//! (order and repeated fields such as `WARC-Concurrent-To` are lost),
//! reads synchronously, and compresses with libflate as one stream per
//! file. btrfly needs bodies of any size streamed in both directions from
//! async sources (the store, an HTTP request body), one gzip member per
//! record, and header bytes kept exactly. The framing is small (a version
//! line, `Name: value` fields, a block of `Content-Length` bytes, two
//! CRLFs), so it is written here, with well-kept crates for the parts
//! that are not: httparse for HTTP heads and chunk sizes, flate2 (and
//! async-compression over it) for gzip, data-encoding for base32.
//!
//! # What a btrfly WARC holds
//!
//! 1. A `warcinfo` record (`application/warc-fields`): `software`,
//!    `format`, `conformsTo`, and `btrfly-tag`, `btrfly-created`,
//!    `btrfly-sealed`, `btrfly-entries`.
//! 2. Per entry of the tag, a `response` record then a `request` record
//!    (`WARC-Concurrent-To` the response, as warcio writes them):
//!    * response: `HTTP/1.1 <status> <standard reason>`, the recorded
//!      header lines byte for byte, the body as recorded (content coding
//!      kept, no transfer coding); `WARC-Target-URI` is the entry's URL
//!      without any user:password; `WARC-Date` the time it was recorded;
//!      `WARC-Payload-Digest` and `WARC-Block-Digest` as
//!      `sha256:<base32>` (see [`crate::digest`]). btrfly's own fields
//!      `Btrfly-Key` (the recording key as JSON) and `Btrfly-Mutability`
//!      let an import restore the exact key (a negotiated form, a digest
//!      key); other tools ignore them.
//!    * request: the method, the origin-form target, `Host`, and the
//!      request headers the key holds (`Range`, those a `Vary` selected).
//!      btrfly does not keep the rest of a request: no `Authorization`,
//!      `Cookie`, token or other credential is ever written, and a `vary:`
//!      key part naming such a header is left out of `Btrfly-Key` as well.
//! 3. Each record is its own gzip member (`.warc.gz`), so tools can seek
//!    to a record; record ids are UUIDs derived from the record's content,
//!    so the same tag exports to the same bytes.
//!
//! Response headers are written as recorded: adapters already dropped
//! what describes the fetch (pip drops `Set-Cookie`); a header the upstream
//! sent is part of the answer a replay gives.

pub mod exchange;
pub mod header;
pub mod http;
pub mod read;
pub mod write;

pub use exchange::{
    read_exchanges, BodySink, BodyWriter, BtrflyFields, Exchange, ExchangeRequest, Skipped,
    StoredBody, WarcContents,
};
pub use header::{BadFieldValue, WarcHeader};
pub use read::WarcReader;
pub use write::{is_secret_header, Bodies, BodyStream, EntryRecords, ExportOptions, WarcWriter};
