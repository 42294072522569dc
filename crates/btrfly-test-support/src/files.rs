//! Deterministic test payloads and streaming sha256.

use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;
use std::sync::mpsc;

use rand::{Rng, RngCore, SeedableRng};
use sha2::{Digest, Sha256};

const BLOCK: usize = 1 << 20;
/// Every `STAMP_EVERY` bytes of the pool gets a fresh PRNG word per block.
const STAMP_EVERY: usize = 4096;

/// Writes `size_bytes` deterministic pseudo-random bytes to `path` (creating
/// or truncating it) and returns their sha256 as lowercase hex.
///
/// The same `(size_bytes, seed)` always gives the same bytes. It runs at
/// roughly 0.5-1 GB/s even in an unoptimised test build and uses ~1 MiB of
/// memory whatever the size.
///
/// How: a 1 MiB pool is filled once from a seeded `SmallRng`; each 1 MiB
/// output block first overwrites one 8-byte word in every 4 KiB of the pool
/// with fresh PRNG output, then writes the pool rotated by a PRNG-chosen
/// offset (hashing runs on a second thread, in parallel with the writes).
/// Every block, and every 4 KiB window of the file, is therefore distinct,
/// so truncation, duplication or reordering anywhere changes the sha256.
/// But the data is NOT
/// incompressible to a compressor with a window above 1 MiB (e.g. zstd at
/// its default levels): don't use it to measure compression ratios.
/// (Filling every byte from a PRNG runs at 100-300 MB/s in a debug build,
/// because the PRNG code is compiled at the test crate's opt-level 0.)
pub fn write_random_file(path: &Path, size_bytes: u64, seed: u64) -> String {
    let mut out = File::create(path).unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
    let mut rng = rand::rngs::SmallRng::seed_from_u64(seed ^ 0x6274_7266_6c79_0001);
    let mut pool = vec![0u8; BLOCK];
    rng.fill_bytes(&mut pool);

    // Hashing (~1 GB/s) runs on its own thread, overlapping the writes;
    // block buffers are handed back for reuse.
    let (to_hasher, blocks) = mpsc::sync_channel::<Vec<u8>>(2);
    let (give_back, returned) = mpsc::channel::<Vec<u8>>();
    let hasher = std::thread::spawn(move || {
        let mut hasher = Sha256::new();
        for block in blocks {
            hasher.update(&block);
            let _ = give_back.send(block);
        }
        hex::encode(hasher.finalize())
    });
    let mut spare: Vec<Vec<u8>> = (0..3).map(|_| Vec::with_capacity(BLOCK)).collect();

    let mut left = size_bytes;
    while left > 0 {
        let mut at = 0;
        while at < BLOCK {
            let word = rng.next_u64().to_le_bytes();
            pool[at..at + 8].copy_from_slice(&word);
            at += STAMP_EVERY;
        }
        let off = rng.random_range(0..BLOCK);
        let n = left.min(BLOCK as u64) as usize;
        let mut block = match spare.pop() {
            Some(b) => b,
            None => returned.recv().expect("hasher thread died"),
        };
        block.clear();
        let first = &pool[off..];
        if n <= first.len() {
            block.extend_from_slice(&first[..n]);
        } else {
            block.extend_from_slice(first);
            block.extend_from_slice(&pool[..n - first.len()]);
        }
        out.write_all(&block)
            .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        to_hasher.send(block).expect("hasher thread died");
        left -= n as u64;
    }
    drop(to_hasher);
    out.flush()
        .unwrap_or_else(|e| panic!("flush {}: {e}", path.display()));
    hasher.join().expect("hasher thread panicked")
}

/// The sha256 (lowercase hex) of the file at `path`, read in 1 MiB chunks.
pub fn sha256_file(path: &Path) -> String {
    let mut file = File::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; BLOCK];
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => panic!("read {}: {e}", path.display()),
        };
        hasher.update(&buf[..n]);
    }
    hex::encode(hasher.finalize())
}

/// The sha256 (lowercase hex) of `data`.
pub fn sha256_bytes(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}
