//! Leaf minting, measured: what a client pays the first time it reaches a
//! host through the proxy (a fresh P-256 key, a certificate signed by the
//! CA, the rustls signing key), and what every later connection to the
//! same host pays (a cache lookup).
//!
//! `cargo bench -p btrfly-ca --bench mint`. Figures are per leaf; compare
//! them with the cold-host latency of `bash bench/run` (docs/BENCHMARKS.md).

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};

use btrfly_ca::CertificateAuthority;
use criterion::{criterion_group, criterion_main, Criterion};

fn ca() -> (tempfile::TempDir, CertificateAuthority) {
    let dir = tempfile::tempdir().expect("a temp dir");
    let ca = CertificateAuthority::load_or_create(dir.path()).expect("a CA");
    (dir, ca)
}

fn leaves(c: &mut Criterion) {
    let (_dir, ca) = ca();
    let mut group = c.benchmark_group("leaf");
    // Every iteration a name the cache has never seen: the cold path.
    let next = AtomicU64::new(0);
    group.bench_function("mint_new_host", |b| {
        b.iter(|| {
            let n = next.fetch_add(1, Ordering::Relaxed);
            black_box(ca.leaf(&format!("h{n}.example.test")).expect("a leaf"))
        })
    });
    group.bench_function("mint_new_ip", |b| {
        b.iter(|| {
            let n = next.fetch_add(1, Ordering::Relaxed);
            let ip = format!("10.{}.{}.{}", (n >> 16) & 255, (n >> 8) & 255, n & 255);
            black_box(ca.leaf(&ip).expect("a leaf"))
        })
    });
    // The same host again: the warm path every later connection takes.
    ca.leaf("files.example.test").expect("a leaf");
    group.bench_function("cached", |b| {
        b.iter(|| black_box(ca.leaf(black_box("files.example.test")).expect("a leaf")))
    });
    group.finish();
}

criterion_group!(benches, leaves);
criterion_main!(benches);
