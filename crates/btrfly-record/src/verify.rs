//! Checking a body against an [`ExpectedDigest`] while it streams: one
//! [`Checker`] per body, fed chunk by chunk, memory independent of the
//! body's size.
//!
//! sha256, sha512 and sha1 hash the bytes. Go's `h1` of a `go.mod` hashes
//! the one file's sha256 line. Go's `h1` of a module zip is computed over
//! the files *in* the zip, so the zip is read as it streams: each local
//! file header (APPNOTE.TXT §4.3.7) gives a file's name and method, its
//! data is inflated (raw deflate, method 8) or taken as it is (method 0)
//! and hashed, a data descriptor after it (§4.3.9) is skipped, and the
//! central directory ends the files. A zip that cannot be read this way
//! (an entry stored without its size, encryption, another method) does not
//! match: the digest cannot be confirmed, so the body is not recorded.

use btrfly_core::{ExpectedDigest, H1Of};
use flate2::{Decompress, FlushDecompress, Status};
use sha2::Digest as _;

/// A running check of one body against its expected digest.
pub struct Checker {
    expected: ExpectedDigest,
    state: State,
}

enum State {
    Sha256(sha2::Sha256),
    Sha512(sha2::Sha512),
    Sha1(sha1::Sha1),
    GoMod(sha2::Sha256),
    Zip(Box<ZipHash>),
}

/// The outcome of a body that does not match: the algorithm, and the
/// digest it has in the form the expected one is written (or why it has
/// none).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Computed {
    /// `sha256`, `sha512`, `sha1`, `h1`.
    pub algorithm: &'static str,
    /// What the body hashes to, or why it could not be hashed.
    pub actual: String,
}

impl Checker {
    /// A check of a body that must have `expected`.
    pub fn new(expected: ExpectedDigest) -> Checker {
        let state = match &expected {
            ExpectedDigest::Sha256(_) => State::Sha256(sha2::Sha256::default()),
            ExpectedDigest::Sha512(_) => State::Sha512(sha2::Sha512::default()),
            ExpectedDigest::Sha1(_) => State::Sha1(sha1::Sha1::default()),
            ExpectedDigest::GoH1 {
                of: H1Of::GoMod, ..
            } => State::GoMod(sha2::Sha256::default()),
            ExpectedDigest::GoH1 {
                of: H1Of::ModuleZip,
                ..
            } => State::Zip(Box::default()),
        };
        Checker { expected, state }
    }

    /// The digest this body must have.
    pub fn expected(&self) -> &ExpectedDigest {
        &self.expected
    }

    /// Feeds the next bytes of the body.
    pub fn update(&mut self, chunk: &[u8]) {
        match &mut self.state {
            State::Sha256(h) | State::GoMod(h) => h.update(chunk),
            State::Sha512(h) => h.update(chunk),
            State::Sha1(h) => h.update(chunk),
            State::Zip(z) => z.update(chunk),
        }
    }

    /// Ends the body: `Ok` when it has the expected digest.
    ///
    /// # Errors
    /// [`Computed`]: what the body hashes to instead.
    pub fn finish(self) -> Result<(), Computed> {
        let algorithm = self.expected.algorithm();
        let actual = match self.state {
            State::Sha256(h) => ExpectedDigest::render(algorithm, &h.finalize()),
            State::Sha512(h) => ExpectedDigest::render(algorithm, &h.finalize()),
            State::Sha1(h) => ExpectedDigest::render(algorithm, &h.finalize()),
            State::GoMod(h) => {
                let mut summary = sha2::Sha256::default();
                summary.update(format!("{}  go.mod\n", hex::encode(h.finalize())));
                ExpectedDigest::render(algorithm, &summary.finalize())
            }
            State::Zip(z) => match z.finish() {
                Ok(hash) => ExpectedDigest::render(algorithm, &hash),
                Err(why) => {
                    return Err(Computed {
                        algorithm,
                        actual: format!("(none: {why})"),
                    })
                }
            },
        };
        if actual == self.expected.to_string() {
            Ok(())
        } else {
            Err(Computed { algorithm, actual })
        }
    }
}

const LOCAL_HEADER: u32 = 0x0403_4b50;
const CENTRAL_HEADER: u32 = 0x0201_4b50;
const END_OF_CENTRAL: u32 = 0x0605_4b50;
const DESCRIPTOR: u32 = 0x0807_4b50;

/// Go's dirhash `Hash1` of a zip read as it streams.
#[derive(Default)]
struct ZipHash {
    /// Bytes not yet consumed (a header, a descriptor): small.
    buf: Vec<u8>,
    step: Step,
    /// `(name, hex sha256 of the content)` of every file so far.
    files: Vec<(String, String)>,
    failed: Option<String>,
}

#[derive(Default)]
enum Step {
    #[default]
    Header,
    Stored {
        name: String,
        left: u64,
        hash: sha2::Sha256,
        descriptor: bool,
    },
    Deflated {
        name: String,
        inflate: Box<Decompress>,
        hash: sha2::Sha256,
        descriptor: bool,
    },
    Descriptor,
    Done,
}

fn u16_at(b: &[u8], at: usize) -> usize {
    usize::from(u16::from_le_bytes([b[at], b[at + 1]]))
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Most header bytes held while waiting for the rest of a header: a local
/// header is 30 bytes plus a name and an extra field of at most 64 KiB
/// each.
const MAX_HEADER: usize = 30 + 2 * 65_536;

impl ZipHash {
    fn update(&mut self, chunk: &[u8]) {
        if self.failed.is_some() || matches!(self.step, Step::Done) {
            return;
        }
        self.buf.extend_from_slice(chunk);
        if let Err(why) = self.advance() {
            self.failed = Some(why);
            self.buf = Vec::new();
        }
    }

    /// Consumes as much of `buf` as the current step can.
    fn advance(&mut self) -> Result<(), String> {
        loop {
            match &mut self.step {
                Step::Done => {
                    self.buf.clear();
                    return Ok(());
                }
                Step::Header => {
                    if self.buf.len() < 4 {
                        return Ok(());
                    }
                    let sig = u32_at(&self.buf, 0);
                    if sig == CENTRAL_HEADER || sig == END_OF_CENTRAL {
                        self.step = Step::Done;
                        continue;
                    }
                    if sig != LOCAL_HEADER {
                        return Err(format!("no zip entry header (signature {sig:#010x})"));
                    }
                    if self.buf.len() < 30 {
                        return Ok(());
                    }
                    let (n, m) = (u16_at(&self.buf, 26), u16_at(&self.buf, 28));
                    if self.buf.len() < 30 + n + m {
                        if self.buf.len() > MAX_HEADER {
                            return Err("zip entry header too long".into());
                        }
                        return Ok(());
                    }
                    let flags = u16_at(&self.buf, 6);
                    let method = u16_at(&self.buf, 8);
                    let size = u32_at(&self.buf, 18);
                    let name = String::from_utf8(self.buf[30..30 + n].to_vec())
                        .map_err(|_| "a zip entry name is not UTF-8".to_owned())?;
                    if flags & 1 != 0 {
                        return Err(format!("zip entry {name:?} is encrypted"));
                    }
                    let descriptor = flags & 8 != 0;
                    self.buf.drain(..30 + n + m);
                    self.step = match method {
                        0 if descriptor || size == u32::MAX => {
                            return Err(format!("zip entry {name:?} is stored without its size"))
                        }
                        0 => Step::Stored {
                            name,
                            left: u64::from(size),
                            hash: sha2::Sha256::default(),
                            descriptor,
                        },
                        8 => Step::Deflated {
                            name,
                            inflate: Box::new(Decompress::new(false)),
                            hash: sha2::Sha256::default(),
                            descriptor,
                        },
                        other => return Err(format!("zip entry {name:?} uses method {other}")),
                    };
                }
                Step::Stored { left, hash, .. } => {
                    let take = usize::try_from(*left)
                        .unwrap_or(usize::MAX)
                        .min(self.buf.len());
                    hash.update(&self.buf[..take]);
                    self.buf.drain(..take);
                    *left -= take as u64;
                    if *left > 0 {
                        return Ok(());
                    }
                    self.end_file();
                }
                Step::Deflated { inflate, hash, .. } => {
                    let mut out = vec![0u8; 64 * 1024];
                    let mut at = 0;
                    let ended = loop {
                        let (before_in, before_out) = (inflate.total_in(), inflate.total_out());
                        let status = inflate
                            .decompress(&self.buf[at..], &mut out, FlushDecompress::None)
                            .map_err(|e| format!("zip entry data: {e}"))?;
                        let used = usize::try_from(inflate.total_in() - before_in)
                            .map_err(|_| "zip entry data: size".to_owned())?;
                        let made = usize::try_from(inflate.total_out() - before_out)
                            .map_err(|_| "zip entry data: size".to_owned())?;
                        hash.update(&out[..made]);
                        at += used;
                        if status == Status::StreamEnd {
                            break true;
                        }
                        if used == 0 && made == 0 {
                            break false;
                        }
                    };
                    self.buf.drain(..at);
                    if !ended {
                        return Ok(());
                    }
                    self.end_file();
                }
                Step::Descriptor => {
                    // Optional signature, crc-32, then sizes of 4 bytes
                    // (8 in zip64): the signature after it tells which.
                    if self.buf.len() < 4 {
                        return Ok(());
                    }
                    let base = if u32_at(&self.buf, 0) == DESCRIPTOR {
                        4
                    } else {
                        0
                    };
                    let (short, long) = (base + 12, base + 20);
                    let skip = if self.buf.len() >= short + 4 && is_next(&self.buf[short..]) {
                        short
                    } else if self.buf.len() >= long + 4 {
                        if !is_next(&self.buf[long..]) {
                            return Err("zip data descriptor not followed by an entry".into());
                        }
                        long
                    } else {
                        return Ok(());
                    };
                    self.buf.drain(..skip);
                    self.step = Step::Header;
                }
            }
        }
    }

    fn end_file(&mut self) {
        let step = std::mem::take(&mut self.step);
        let (name, hash, descriptor) = match step {
            Step::Stored {
                name,
                hash,
                descriptor,
                ..
            }
            | Step::Deflated {
                name,
                hash,
                descriptor,
                ..
            } => (name, hash, descriptor),
            other => {
                self.step = other;
                return;
            }
        };
        self.files.push((name, hex::encode(hash.finalize())));
        self.step = if descriptor {
            Step::Descriptor
        } else {
            Step::Header
        };
    }

    /// `sha256` of the sorted `"{hex}  {name}\n"` lines (dirhash `Hash1`).
    fn finish(mut self) -> Result<[u8; 32], String> {
        if let Some(why) = self.failed {
            return Err(why);
        }
        if !matches!(self.step, Step::Done) {
            return Err("the zip ended before its central directory".into());
        }
        self.files.sort();
        let mut summary = sha2::Sha256::default();
        for (name, hex) in &self.files {
            if name.contains('\n') {
                return Err(format!("zip entry name {name:?} holds a newline"));
            }
            summary.update(format!("{hex}  {name}\n"));
        }
        Ok(summary.finalize().into())
    }
}

fn is_next(b: &[u8]) -> bool {
    b.len() >= 4 && matches!(u32_at(b, 0), LOCAL_HEADER | CENTRAL_HEADER | END_OF_CENTRAL)
}

#[cfg(test)]
mod tests;
