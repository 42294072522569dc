//! Container images made in the test, without a daemon: layers as tar.gz,
//! image configs, manifests and a multi-architecture index written with
//! oci-spec's types into an OCI image layout directory, ready for
//! `skopeo copy --all oci:DIR:TAG docker://…`.

use std::io::Write;
use std::path::{Path, PathBuf};

use oci_spec::image::{
    Arch, ConfigBuilder, DescriptorBuilder, Digest, ImageConfigurationBuilder, ImageIndexBuilder,
    ImageManifestBuilder, MediaType, OciLayoutBuilder, Os, PlatformBuilder, RootFsBuilder,
};

use super::files::sha256_bytes;

/// One platform's image in an [`OciLayoutFixture`].
#[derive(Clone, Debug)]
pub struct LayoutImage {
    pub arch: String,
    /// `sha256:…` of the image manifest.
    pub manifest: String,
    /// `sha256:…` of the image config (what `podman images` calls the ID).
    pub config: String,
    /// `sha256:…` of each compressed layer, base first.
    pub layers: Vec<String>,
    /// `sha256:…` of each uncompressed layer (the config's diff IDs).
    pub diff_ids: Vec<String>,
}

/// An OCI image layout on disk holding one multi-architecture image.
#[derive(Clone, Debug)]
pub struct OciLayoutFixture {
    pub dir: PathBuf,
    pub tag: String,
    /// `sha256:…` of the image index.
    pub index: String,
    pub images: Vec<LayoutImage>,
}

impl OciLayoutFixture {
    /// `oci:DIR:TAG`, for skopeo.
    pub fn reference(&self) -> String {
        format!("oci:{}:{}", self.dir.display(), self.tag)
    }

    pub fn image(&self, arch: &str) -> &LayoutImage {
        self.images
            .iter()
            .find(|i| i.arch == arch)
            .unwrap_or_else(|| panic!("no {arch} image in {}", self.dir.display()))
    }

    /// The bytes of a blob (`sha256:…`) of the layout.
    pub fn blob(&self, digest: &str) -> Vec<u8> {
        let hex = digest.strip_prefix("sha256:").expect("sha256 digest");
        let path = self.dir.join("blobs/sha256").join(hex);
        std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }
}

/// The layer every image made here starts with: the same bytes, so the same
/// digest, in every image, architecture and tag.
pub const BASE_LAYER_FILES: &[(&str, &[u8])] =
    &[("etc/base.txt", b"a base layer shared by every test image\n")];

/// Writes a multi-architecture image to an OCI image layout at `dir` under
/// `tag`: for each of `archs` an image of two layers (the shared base, then
/// a layer with `hello.txt` naming the arch and `salt`, and 300 KB of
/// pseudo-random data from them), its config and manifest; an index of
/// them, named `tag` in `index.json`. A different `salt` gives different
/// content under the same names.
pub fn write_oci_layout(dir: &Path, tag: &str, archs: &[&str], salt: &str) -> OciLayoutFixture {
    std::fs::create_dir_all(dir.join("blobs/sha256")).expect("layout dir");
    let put = |bytes: &[u8]| -> (Digest, u64) {
        let hex = sha256_bytes(bytes);
        std::fs::write(dir.join("blobs/sha256").join(&hex), bytes).expect("write blob");
        (
            format!("sha256:{hex}").parse().expect("digest"),
            bytes.len() as u64,
        )
    };
    let base_tar = tar(BASE_LAYER_FILES);
    let base_gz = gzip(&base_tar);
    let mut images = Vec::new();
    let mut index_entries = Vec::new();
    for arch in archs {
        let data = pseudo_random(&format!("{arch}/{salt}"), 300_000);
        let hello = format!("hello from {arch} ({salt})\n");
        let top_tar = tar(&[("hello.txt", hello.as_bytes()), ("data.bin", &data)]);
        let top_gz = gzip(&top_tar);
        let mut layers = Vec::new();
        let mut diff_ids = Vec::new();
        let mut layer_descriptors = Vec::new();
        for (raw, gz) in [(&base_tar, &base_gz), (&top_tar, &top_gz)] {
            let (digest, size) = put(gz);
            layers.push(digest.to_string());
            diff_ids.push(format!("sha256:{}", sha256_bytes(raw)));
            layer_descriptors.push(
                DescriptorBuilder::default()
                    .media_type(MediaType::ImageLayerGzip)
                    .digest(digest)
                    .size(size)
                    .build()
                    .expect("layer descriptor"),
            );
        }
        let config = ImageConfigurationBuilder::default()
            .architecture(Arch::from(*arch))
            .os(Os::Linux)
            .config(
                ConfigBuilder::default()
                    .cmd(vec!["/bin/true".to_string()])
                    .build()
                    .expect("config"),
            )
            .rootfs(
                RootFsBuilder::default()
                    .typ("layers")
                    .diff_ids(diff_ids.clone())
                    .build()
                    .expect("rootfs"),
            )
            .build()
            .expect("image configuration");
        let config_json = config.to_string().expect("config json");
        let (config_digest, config_size) = put(config_json.as_bytes());
        let manifest = ImageManifestBuilder::default()
            .schema_version(2u32)
            .media_type(MediaType::ImageManifest)
            .config(
                DescriptorBuilder::default()
                    .media_type(MediaType::ImageConfig)
                    .digest(config_digest.clone())
                    .size(config_size)
                    .build()
                    .expect("config descriptor"),
            )
            .layers(layer_descriptors)
            .build()
            .expect("manifest");
        let manifest_json = manifest.to_string().expect("manifest json");
        let (manifest_digest, manifest_size) = put(manifest_json.as_bytes());
        index_entries.push(
            DescriptorBuilder::default()
                .media_type(MediaType::ImageManifest)
                .digest(manifest_digest.clone())
                .size(manifest_size)
                .platform(
                    PlatformBuilder::default()
                        .architecture(Arch::from(*arch))
                        .os(Os::Linux)
                        .build()
                        .expect("platform"),
                )
                .build()
                .expect("manifest descriptor"),
        );
        images.push(LayoutImage {
            arch: arch.to_string(),
            manifest: manifest_digest.to_string(),
            config: config_digest.to_string(),
            layers,
            diff_ids,
        });
    }
    let index = ImageIndexBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageIndex)
        .manifests(index_entries)
        .build()
        .expect("index");
    let index_json = index.to_string().expect("index json");
    let (index_digest, index_size) = put(index_json.as_bytes());
    let top = ImageIndexBuilder::default()
        .schema_version(2u32)
        .manifests(vec![DescriptorBuilder::default()
            .media_type(MediaType::ImageIndex)
            .digest(index_digest.clone())
            .size(index_size)
            .annotations(std::collections::HashMap::from([(
                "org.opencontainers.image.ref.name".to_string(),
                tag.to_string(),
            )]))
            .build()
            .expect("index descriptor")])
        .build()
        .expect("layout index");
    std::fs::write(dir.join("index.json"), top.to_string().expect("json")).expect("index.json");
    let layout = OciLayoutBuilder::default()
        .image_layout_version("1.0.0")
        .build()
        .expect("oci-layout");
    std::fs::write(dir.join("oci-layout"), layout.to_string().expect("json")).expect("oci-layout");
    OciLayoutFixture {
        dir: dir.to_path_buf(),
        tag: tag.to_string(),
        index: index_digest.to_string(),
        images,
    }
}

/// A ustar archive of regular files (mode 0644, owner 0, mtime 0).
pub fn tar(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, data) in files {
        assert!(name.len() < 100, "tar name too long: {name}");
        let mut h = [0u8; 512];
        h[..name.len()].copy_from_slice(name.as_bytes());
        let octal = |h: &mut [u8; 512], at: usize, width: usize, v: u64| {
            let s = format!("{v:0w$o}\0", w = width - 1);
            h[at..at + width].copy_from_slice(s.as_bytes());
        };
        octal(&mut h, 100, 8, 0o644);
        octal(&mut h, 108, 8, 0);
        octal(&mut h, 116, 8, 0);
        octal(&mut h, 124, 12, data.len() as u64);
        octal(&mut h, 136, 12, 0);
        h[148..156].copy_from_slice(b"        ");
        h[156] = b'0';
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        let sum: u64 = h.iter().map(|b| u64::from(*b)).sum();
        let s = format!("{sum:06o}\0 ");
        h[148..156].copy_from_slice(s.as_bytes());
        out.extend_from_slice(&h);
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.resize(out.len() + 1024, 0);
    out
}

/// gzip with a fixed header (mtime 0), so the same input gives the same
/// bytes.
pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(data).expect("gzip");
    enc.finish().expect("gzip")
}

/// `len` bytes that gzip cannot shrink, determined by `seed`.
fn pseudo_random(seed: &str, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 32);
    let mut block = sha256_bytes(seed.as_bytes());
    while out.len() < len {
        block = sha256_bytes(block.as_bytes());
        out.extend((0..32).map(|i| u8::from_str_radix(&block[2 * i..2 * i + 2], 16).unwrap_or(0)));
    }
    out.truncate(len);
    out
}
