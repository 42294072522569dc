//! Shared by the integration tests: a sealed tag in a real store, and the
//! Python venv of validators.

#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Arc;

use btrfly_core::{
    Adapter, Classification, Entry, FieldValue, Mutability, RecordingKey, RequestHead, Tag, TagMeta,
};
use btrfly_store::Store;
use bytes::Bytes;
use time::OffsetDateTime;

/// The variable `tests/run` exports: the venv holding warcio,
/// cyclonedx-python-lib and spdx-tools.
pub const VENV_VAR: &str = "BTRFLY_TEST_ARCHIVE_VENV";

/// The venv's `bin/NAME`, or a panic that says how to install it.
pub fn venv_bin(name: &str) -> PathBuf {
    let venv = std::env::var_os(VENV_VAR)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/archive-venv")
        });
    let bin = venv.join("bin").join(name);
    assert!(
        bin.exists(),
        "{} is missing: the archive tests validate with warcio, cyclonedx-python-lib and \
         spdx-tools. Run `bash tests/run` (it installs them), or: python3 -m venv \
         target/archive-venv && target/archive-venv/bin/pip install warcio \
         'cyclonedx-python-lib[json-validation]' spdx-tools (or point {VENV_VAR} at such a venv)",
        bin.display()
    );
    bin
}

pub fn tag(name: &str) -> Tag {
    Tag::new(name).expect("tag")
}

/// Stores `body` and an entry for it (with its vary record).
pub async fn put(store: &Store, t: &Tag, mut entry: Entry, body: &[u8]) -> Entry {
    let mut w = store.blob_writer(None).await.expect("writer");
    w.write(Bytes::copy_from_slice(body)).await.expect("write");
    let blob = w.finish().await.expect("finish");
    entry.sha256 = blob.sha256;
    entry.size = blob.size;
    let names: Vec<String> = entry
        .key
        .variance
        .keys()
        .filter_map(|k| k.strip_prefix("vary:"))
        .map(str::to_owned)
        .collect();
    if !names.is_empty() {
        let record = btrfly_core::VaryRecord {
            key: entry.key.without_vary(),
            vary: names,
        };
        store.put_vary(t, &record).await.expect("vary");
    }
    store.put_entry(t, &entry).await.expect("entry");
    entry
}

pub fn entry(ns: &str, method: &str, url: &str, status: u16, headers: &[(&str, &[u8])]) -> Entry {
    Entry {
        key: RecordingKey::new(ns, format!("{method} {url}")),
        method: method.into(),
        url: url.into(),
        status,
        headers: headers
            .iter()
            .map(|(k, v)| ((*k).to_owned(), FieldValue::new(v.to_vec())))
            .collect(),
        sha256: btrfly_core::Sha256::of(b""),
        size: 0,
        mutability: Mutability::Mutable,
        recorded_at: OffsetDateTime::from_unix_timestamp(1_700_000_000).expect("time"),
        purl: None,
    }
}

/// A sealed tag holding what a build records: a plain file, a pip wheel
/// and sdist, OCI content by digest and a manifest by tag, a page with a
/// `Vary` representation, a redirect, an error, non-UTF-8 header bytes.
pub async fn sample_tag(store: &Store, name: &str) -> Vec<Entry> {
    let t = tag(name);
    store
        .put_tag_meta(&TagMeta {
            tag: t.clone(),
            created_at: OffsetDateTime::from_unix_timestamp(1_699_990_000).expect("time"),
            sealed: false,
            sealed_at: None,
        })
        .await
        .expect("meta");
    let mut out = Vec::new();
    let big: Vec<u8> = (0..400_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    out.push(
        put(
            store,
            &t,
            entry(
                "files",
                "GET",
                "https://files.example.test:443/tool.tar.gz",
                200,
                &[
                    ("content-type", b"application/gzip"),
                    (
                        "content-disposition",
                        b"attachment; filename=\"caf\xe9.tar.gz\"",
                    ),
                ],
            ),
            &big,
        )
        .await,
    );
    for (url, body) in [
        (
            "https://files.example.test:443/packages/demo_pkg-1.0-py3-none-any.whl",
            &b"PK\x03\x04 a wheel"[..],
        ),
        (
            "https://files.example.test:443/packages/demo-pkg-1.0.tar.gz",
            &b"\x1f\x8b an sdist"[..],
        ),
    ] {
        let mut e = entry(
            "pip",
            "GET",
            url,
            200,
            &[("content-type", b"application/octet-stream")],
        );
        e.mutability = Mutability::Immutable;
        out.push(put(store, &t, e, body).await);
    }
    let manifest =
        br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}"#;
    let manifest_digest = btrfly_core::sha256_hex(manifest);
    let mut by_tag = entry(
        "oci",
        "GET",
        "https://registry.example.test:5000/v2/team/app/manifests/1.0",
        200,
        &[(
            "content-type",
            b"application/vnd.oci.image.manifest.v1+json",
        )],
    );
    by_tag.key = by_tag
        .key
        .clone()
        .vary("accept", "application/vnd.oci.image.manifest.v1+json");
    out.push(put(store, &t, by_tag, manifest).await);
    let blob = b"layer bytes";
    let mut layer = entry(
        "oci",
        "GET",
        &format!(
            "https://registry.example.test:5000/v2/team/app/blobs/sha256:{}",
            btrfly_core::sha256_hex(blob)
        ),
        200,
        &[("content-type", b"application/octet-stream")],
    );
    layer.key = RecordingKey::new(
        "oci",
        format!("GET blob sha256:{}", btrfly_core::sha256_hex(blob)),
    );
    layer.mutability = Mutability::Immutable;
    out.push(put(store, &t, layer, blob).await);
    let _ = manifest_digest;
    let mut page = entry(
        "files",
        "GET",
        "https://files.example.test:443/page",
        200,
        &[("content-type", b"text/html"), ("vary", b"Accept-Language")],
    );
    page.key = page.key.clone().vary("vary:accept-language", "de");
    out.push(put(store, &t, page, b"<p>Hallo</p>").await);
    out.push(
        put(
            store,
            &t,
            entry(
                "files",
                "GET",
                "https://files.example.test:443/old",
                302,
                &[("location", b"/tool.tar.gz")],
            ),
            b"",
        )
        .await,
    );
    out.push(
        put(
            store,
            &t,
            entry(
                "files",
                "GET",
                "https://files.example.test:443/missing",
                404,
                &[],
            ),
            b"gone\n",
        )
        .await,
    );
    // a HEAD: the length of a body it did not carry
    out.push(
        put(
            store,
            &t,
            entry(
                "files",
                "HEAD",
                "https://files.example.test:443/tool.tar.gz",
                200,
                &[("content-length", b"400000")],
            ),
            b"",
        )
        .await,
    );
    let meta = store.tag_meta(&t).await.expect("meta").expect("meta");
    store.seal_tag(meta).await.expect("seal");
    out
}

pub fn adapters() -> Vec<Arc<dyn Adapter>> {
    let pip = btrfly_adapter_pip::PipConfig::new::<&str>(&[], &[]).expect("pip");
    vec![
        Arc::new(btrfly_adapter_pip::PipAdapter::new(pip)),
        Arc::new(btrfly_adapter_files::FilesAdapter),
    ]
}

pub fn classify(
    list: &[Arc<dyn Adapter>],
    head: &RequestHead,
) -> Option<(Arc<dyn Adapter>, Classification)> {
    list.iter()
        .find_map(|a| a.classify(head).map(|c| (a.clone(), c)))
}
