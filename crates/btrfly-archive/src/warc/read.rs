//! Reading WARC record framing, streaming: a header, then the block in
//! chunks, its `WARC-Block-Digest` checked at its end.

use std::pin::Pin;

use bytes::Bytes;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, BufReader};

use super::header::{field, WarcHeader};
use crate::digest::{Digester, WarcDigest};
use crate::ArchiveError;

/// Largest record header read (the fields, not the block).
pub const MAX_WARC_HEADER: u64 = 1024 * 1024;

/// Largest chunk [`WarcReader::read_block`] returns.
const CHUNK: usize = 64 * 1024;

type Input = BufReader<Pin<Box<dyn AsyncRead + Send>>>;

/// Reads records from a `.warc` or a `.warc.gz`: one gzip member per record
/// or one member for the whole file, told apart by nothing but the gzip
/// magic number at the start (multi-member decoding reads both).
///
/// A cursor, not an iterator: [`WarcReader::next_record`] gives a header,
/// then [`WarcReader::read_block`] gives the record's block chunk by chunk
/// (at most 64 KiB each, so memory does not grow with the record's size).
/// Moving to the next record reads (and checks) what is left of the block.
pub struct WarcReader {
    input: Input,
    gzip: bool,
    /// Uncompressed bytes consumed.
    offset: u64,
    record_offset: u64,
    block: Option<Block>,
}

struct Block {
    record_id: String,
    remaining: u64,
    /// The declared block digest and the running digest of the block.
    check: Option<(WarcDigest, Digester)>,
}

impl WarcReader {
    /// Starts reading `raw` (gzip is detected).
    ///
    /// # Errors
    /// [`ArchiveError::Read`] when the first bytes cannot be read.
    pub async fn new<R: AsyncRead + Send + 'static>(raw: R) -> Result<WarcReader, ArchiveError> {
        let raw: Pin<Box<dyn AsyncRead + Send>> = Box::pin(raw);
        let mut raw = BufReader::with_capacity(CHUNK, raw);
        let start = raw
            .fill_buf()
            .await
            .map_err(|source| ArchiveError::Read { offset: 0, source })?;
        let gzip = start.starts_with(&[0x1f, 0x8b]);
        let decoded: Pin<Box<dyn AsyncRead + Send>> = if gzip {
            let mut d = async_compression::tokio::bufread::GzipDecoder::new(raw);
            d.multiple_members(true);
            Box::pin(d)
        } else {
            Box::pin(raw)
        };
        Ok(WarcReader {
            input: BufReader::with_capacity(CHUNK, decoded),
            gzip,
            offset: 0,
            record_offset: 0,
            block: None,
        })
    }

    /// Whether the input is gzip-compressed.
    pub fn is_gzip(&self) -> bool {
        self.gzip
    }

    /// Where the current record starts, in uncompressed bytes.
    pub fn record_offset(&self) -> u64 {
        self.record_offset
    }

    fn read_err(&self, source: std::io::Error) -> ArchiveError {
        ArchiveError::Read {
            offset: self.offset,
            source,
        }
    }

    fn malformed(&self, record_id: &str, message: impl Into<String>) -> ArchiveError {
        ArchiveError::Malformed {
            record_id: if record_id.is_empty() {
                "(no WARC-Record-ID)".into()
            } else {
                record_id.to_owned()
            },
            offset: self.record_offset,
            message: message.into(),
        }
    }

    /// The header of the next record, `None` at the end of the input.
    ///
    /// # Errors
    /// [`ArchiveError::Malformed`] for bytes that are not a WARC record
    /// header; [`ArchiveError::DigestMismatch`] when the rest of the
    /// previous record's block does not match its digest;
    /// [`ArchiveError::Read`] when the input fails.
    pub async fn next_record(&mut self) -> Result<Option<WarcHeader>, ArchiveError> {
        while self.block.is_some() {
            self.read_block().await?;
        }
        // Records end with two CRLFs; be lenient about their number.
        loop {
            let offset = self.offset;
            let buf = self
                .input
                .fill_buf()
                .await
                .map_err(|source| ArchiveError::Read { offset, source })?;
            if buf.is_empty() {
                return Ok(None);
            }
            let blank = buf
                .iter()
                .take_while(|b| matches!(b, b'\r' | b'\n'))
                .count();
            if blank == 0 {
                // Say what the input is when it is not a WARC at all,
                // rather than reading a "header" line of any length.
                let n = buf.len().min(5);
                if buf[..n] != b"WARC/"[..n] {
                    let shown = String::from_utf8_lossy(&buf[..buf.len().min(40)]).into_owned();
                    self.record_offset = self.offset;
                    return Err(
                        self.malformed("", format!("expected a WARC record, found {shown:?}"))
                    );
                }
                break;
            }
            self.input.consume(blank);
            self.offset += blank as u64;
        }
        self.record_offset = self.offset;
        let mut lines = Vec::new();
        let mut total = 0u64;
        let version = loop {
            let line = self.line(&mut total).await?;
            if line.is_empty() {
                continue;
            }
            if !line.starts_with(b"WARC/") {
                let shown = String::from_utf8_lossy(&line[..line.len().min(40)]).into_owned();
                return Err(self.malformed("", format!("expected a WARC record, found {shown:?}")));
            }
            break String::from_utf8_lossy(&line).into_owned();
        };
        loop {
            let line = self.line(&mut total).await?;
            if line.is_empty() {
                break;
            }
            lines.push(line);
        }
        let header =
            WarcHeader::parse_fields(version, &lines).map_err(|m| self.malformed("", m))?;
        let id = header.record_id().to_owned();
        let Some(len) = header.content_length() else {
            return Err(self.malformed(&id, "no Content-Length"));
        };
        // warcio does not check revisit digests either: writers disagree on
        // what a revisit's block digest covers.
        let check = match header.get(field::BLOCK_DIGEST) {
            Some(v) if header.record_type() != "revisit" => WarcDigest::parse(v)
                .map_err(|e| self.malformed(&id, e.to_string()))?
                .map(|d| (d, Digester::new())),
            _ => None,
        };
        self.block = Some(Block {
            record_id: id,
            remaining: len,
            check,
        });
        Ok(Some(header))
    }

    /// One header line without its line end; fails at the end of input or
    /// past [`MAX_WARC_HEADER`].
    async fn line(&mut self, total: &mut u64) -> Result<Vec<u8>, ArchiveError> {
        let mut line = Vec::new();
        let limit = MAX_WARC_HEADER.saturating_sub(*total);
        let n = (&mut self.input)
            .take(limit)
            .read_until(b'\n', &mut line)
            .await
            .map_err(|e| self.read_err(e))?;
        self.offset += n as u64;
        *total += n as u64;
        if !line.ends_with(b"\n") {
            let why = if *total >= MAX_WARC_HEADER {
                "record header longer than 1 MiB"
            } else {
                "the input ends inside a record header"
            };
            return Err(self.malformed("", why));
        }
        while matches!(line.last(), Some(b'\n' | b'\r')) {
            line.pop();
        }
        Ok(line)
    }

    /// The next chunk of the current record's block; `None` once it has
    /// all been read (its digest then checked) or when no record is open.
    ///
    /// # Errors
    /// [`ArchiveError::DigestMismatch`] when the block does not match its
    /// `WARC-Block-Digest`; [`ArchiveError::Malformed`] when the input ends
    /// inside the block; [`ArchiveError::Read`] when the input fails.
    pub async fn read_block(&mut self) -> Result<Option<Bytes>, ArchiveError> {
        let Some(block) = &self.block else {
            return Ok(None);
        };
        if block.remaining == 0 {
            let Some(block) = self.block.take() else {
                return Ok(None);
            };
            if let Some((declared, digester)) = block.check {
                let computed = digester.finish();
                if !computed.matches(&declared) {
                    return Err(ArchiveError::DigestMismatch {
                        record_id: block.record_id,
                        kind: "block",
                        declared: declared.to_warc(),
                        computed: computed.of(declared.algorithm).to_warc(),
                    });
                }
            }
            return Ok(None);
        }
        let remaining = block.remaining;
        let offset = self.offset;
        let buf = self
            .input
            .fill_buf()
            .await
            .map_err(|source| ArchiveError::Read { offset, source })?;
        if buf.is_empty() {
            let id = self
                .block
                .as_ref()
                .map(|b| b.record_id.clone())
                .unwrap_or_default();
            return Err(self.malformed(
                &id,
                format!("the input ends {remaining} bytes before the end of the record's block"),
            ));
        }
        let n = buf
            .len()
            .min(CHUNK)
            .min(remaining.min(usize::MAX as u64) as usize);
        let chunk = Bytes::copy_from_slice(&buf[..n]);
        self.input.consume(n);
        self.offset += n as u64;
        if let Some(block) = &mut self.block {
            block.remaining -= n as u64;
            if let Some((_, d)) = &mut block.check {
                d.update(&chunk);
            }
        }
        Ok(Some(chunk))
    }

    /// Reads the rest of the block into memory when it is at most `limit`
    /// bytes (blocks that are small by nature: warcinfo, request heads,
    /// revisits); `None` for a larger block, which is then left to be
    /// skipped (and checked) by [`WarcReader::next_record`].
    pub(crate) async fn read_small_block(
        &mut self,
        limit: usize,
    ) -> Result<Option<Vec<u8>>, ArchiveError> {
        let mut out = Vec::new();
        while let Some(chunk) = self.read_block().await? {
            if out.len() + chunk.len() > limit {
                return Ok(None);
            }
            out.extend_from_slice(&chunk);
        }
        Ok(Some(out))
    }
}
