//! Bills of materials of a tag: what a build downloaded.
//!
//! Three forms of one [`Manifest`]:
//!
//! * [`Manifest::to_json`]: btrfly's plain JSON, every entry of the tag
//!   (redirects, errors and `HEAD`s included) with its URL, method,
//!   status, body sha256 and size, the time it was recorded and, where
//!   known, its package identity (purl).
//! * [`Manifest::to_cyclonedx`]: a CycloneDX 1.5 JSON SBOM, through the
//!   CycloneDX project's `cyclonedx-bom` models.
//! * [`Manifest::to_spdx`]: an SPDX 2.3 JSON document, through
//!   `serde-spdx` (types generated from SPDX's own JSON schema).
//!
//! The two SBOMs list what was downloaded: the bodies of successful
//! (`2xx`, not `206`) `GET`s, each once per URL. A body with a purl is a
//! package (`library`; an OCI manifest or blob a `container`), any other a
//! `file` named by its URL; every one carries its sha256 and its URL. The
//! document's identity and time come from the tag (its name and seal time),
//! so the same tag always gives the same document.

use std::collections::BTreeSet;

use btrfly_core::{Entry, Mutability, TagMeta};
use serde::Serialize;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::purl::derive_purl;
use crate::ArchiveError;

/// An entry with its package identity, when known.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Item {
    /// The entry as recorded.
    pub entry: Entry,
    /// A package URL (`pkg:type/…`), already validated.
    pub purl: Option<String>,
}

impl Item {
    /// An item whose purl comes from the caller (a recorded identity).
    ///
    /// # Errors
    /// [`ArchiveError::Bom`] when `purl` is not a package URL.
    pub fn new(entry: Entry, purl: Option<&str>) -> Result<Item, ArchiveError> {
        let purl = match purl {
            Some(p) => Some(
                p.parse::<packageurl::PackageUrl>()
                    .map_err(|e| ArchiveError::Bom {
                        format: "manifest",
                        message: format!("{p:?} is not a package URL: {e}"),
                    })?
                    .to_string(),
            ),
            None => None,
        };
        Ok(Item { entry, purl })
    }
}

/// A tag's contents as a bill of materials.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Manifest {
    /// The tag the manifest describes.
    pub meta: TagMeta,
    /// Sorted by URL, method and key.
    pub items: Vec<Item>,
}

impl Manifest {
    /// A manifest of `items` (sorted here).
    pub fn new(meta: TagMeta, mut items: Vec<Item>) -> Manifest {
        items.sort_by_cached_key(|i| {
            (
                i.entry.url.clone(),
                i.entry.method.clone(),
                i.entry.key.id(),
            )
        });
        Manifest { meta, items }
    }

    /// A manifest whose package identities are the recorded ones
    /// (`recorded`; `|_| None` while entries carry none) or, for entries
    /// without one, those their own URLs and keys give ([`derive_purl`]).
    ///
    /// # Errors
    /// [`ArchiveError::Bom`] when a recorded purl is not a package URL.
    pub fn derive(
        meta: TagMeta,
        entries: Vec<Entry>,
        recorded: impl Fn(&Entry) -> Option<String>,
    ) -> Result<Manifest, ArchiveError> {
        let items = entries
            .into_iter()
            .map(|entry| match recorded(&entry) {
                Some(p) => Item::new(entry, Some(&p)),
                None => {
                    let purl = derive_purl(&entry);
                    Ok(Item { entry, purl })
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Manifest::new(meta, items))
    }

    /// The manifest of a tag's entries: recorded package identities first
    /// ([`crate::purl::recorded_purl`]), derived ones for the rest. What
    /// the control API serves and diffs.
    ///
    /// # Errors
    /// [`ArchiveError::Bom`] when a recorded purl is not a package URL.
    pub fn of_entries(meta: TagMeta, entries: Vec<Entry>) -> Result<Manifest, ArchiveError> {
        Manifest::derive(meta, entries, crate::purl::recorded_purl)
    }

    /// The plain JSON form (see the module docs). Shape:
    ///
    /// ```json
    /// {"format": "btrfly-manifest", "version": 1, "tag": "T",
    ///  "created": "RFC 3339", "sealed": "RFC 3339" | null,
    ///  "entries": [{"method": "GET", "url": "…", "status": 200,
    ///               "sha256": "<hex>", "size": 123, "recorded_at": "RFC 3339",
    ///               "mutability": "immutable", "purl": "pkg:…" | null}]}
    /// ```
    pub fn to_json(&self) -> serde_json::Value {
        #[derive(Serialize)]
        struct Plain<'a> {
            format: &'static str,
            version: u32,
            tag: &'a str,
            #[serde(with = "time::serde::rfc3339")]
            created: OffsetDateTime,
            #[serde(with = "time::serde::rfc3339::option")]
            sealed: Option<OffsetDateTime>,
            entries: Vec<PlainEntry<'a>>,
        }
        #[derive(Serialize)]
        struct PlainEntry<'a> {
            method: &'a str,
            url: &'a str,
            status: u16,
            sha256: &'a str,
            size: u64,
            #[serde(with = "time::serde::rfc3339")]
            recorded_at: OffsetDateTime,
            mutability: Mutability,
            purl: Option<&'a str>,
        }
        let plain = Plain {
            format: "btrfly-manifest",
            version: 1,
            tag: self.meta.tag.as_str(),
            created: self.meta.created_at,
            sealed: self.meta.sealed.then_some(self.meta.sealed_at).flatten(),
            entries: self
                .items
                .iter()
                .map(|i| PlainEntry {
                    method: &i.entry.method,
                    url: &i.entry.url,
                    status: i.entry.status,
                    sha256: &i.entry.sha256,
                    size: i.entry.size,
                    recorded_at: i.entry.recorded_at,
                    mutability: i.entry.mutability,
                    purl: i.purl.as_deref(),
                })
                .collect(),
        };
        serde_json::to_value(plain).unwrap_or_default()
    }

    /// The items an SBOM lists: bodies of successful `GET`s, one per URL.
    fn downloads(&self) -> Vec<&Item> {
        let mut seen = BTreeSet::new();
        self.items
            .iter()
            .filter(|i| {
                i.entry.method == "GET"
                    && (200..300).contains(&i.entry.status)
                    && i.entry.status != 206
            })
            .filter(|i| seen.insert((i.entry.url.as_str(), i.entry.sha256.as_str())))
            .collect()
    }

    /// The time the document describes: the seal, else the creation.
    fn time(&self) -> OffsetDateTime {
        self.meta.sealed_at.unwrap_or(self.meta.created_at)
    }

    /// A UUID (version 8) made of the tag's name and time.
    fn uuid(&self) -> String {
        let d = Sha256::new()
            .chain_update(b"btrfly-bom-v1\n")
            .chain_update(self.meta.tag.as_str())
            .chain_update(b"\n")
            .chain_update(rfc3339(self.time()))
            .finalize();
        let mut b = [0u8; 16];
        b.copy_from_slice(&d[..16]);
        b[6] = (b[6] & 0x0f) | 0x80;
        b[8] = (b[8] & 0x3f) | 0x80;
        let x = hex::encode(b);
        format!(
            "{}-{}-{}-{}-{}",
            &x[..8],
            &x[8..12],
            &x[12..16],
            &x[16..20],
            &x[20..]
        )
    }

    /// A CycloneDX 1.5 JSON document (see the module docs).
    ///
    /// # Errors
    /// [`ArchiveError::Bom`] when the models refuse a value.
    pub fn to_cyclonedx(&self) -> Result<String, ArchiveError> {
        use cyclonedx_bom::external_models::date_time::DateTime;
        use cyclonedx_bom::external_models::normalized_string::NormalizedString;
        use cyclonedx_bom::external_models::uri::{Purl, Uri};
        use cyclonedx_bom::models::bom::{Bom, SpecVersion, UrnUuid};
        use cyclonedx_bom::models::component::{Classification, Component, Components};
        use cyclonedx_bom::models::external_reference::{
            ExternalReference, ExternalReferenceType, ExternalReferences,
        };
        use cyclonedx_bom::models::hash::{Hash, HashAlgorithm, HashValue, Hashes};
        use cyclonedx_bom::models::metadata::Metadata;
        use cyclonedx_bom::models::property::{Properties, Property};
        use cyclonedx_bom::models::tool::{Tool, Tools};

        let err = |message: String| ArchiveError::Bom {
            format: "CycloneDX",
            message,
        };
        let mut components = Vec::new();
        for (n, item) in self.downloads().into_iter().enumerate() {
            let e = &item.entry;
            let parsed = item
                .purl
                .as_deref()
                .and_then(|p| p.parse::<packageurl::PackageUrl>().ok());
            let (kind, name, version) = match &parsed {
                Some(p) => (
                    if p.ty() == "oci" {
                        Classification::Container
                    } else {
                        Classification::Library
                    },
                    p.name().to_owned(),
                    p.version().unwrap_or_default().to_owned(),
                ),
                None => (Classification::File, e.url.clone(), String::new()),
            };
            let mut c = Component::new(kind, &name, &version, Some(format!("entry-{n}")));
            if version.is_empty() {
                c.version = None;
            }
            if let Some(p) = &parsed {
                if let Some(ns) = p.namespace() {
                    c.group = Some(NormalizedString::new(ns));
                }
            }
            if let Some(p) = &item.purl {
                c.purl = Some(
                    p.parse::<Purl>()
                        .map_err(|_| err(format!("purl {p:?} refused")))?,
                );
            }
            c.hashes = Some(Hashes(vec![Hash {
                alg: HashAlgorithm::SHA_256,
                content: HashValue(e.sha256.to_string()),
            }]));
            c.external_references = Some(ExternalReferences(vec![ExternalReference::new(
                ExternalReferenceType::Distribution,
                Uri::new(&e.url),
            )]));
            c.properties = Some(Properties(vec![
                Property::new("btrfly:url", &e.url),
                Property::new("btrfly:size", &e.size.to_string()),
                Property::new("btrfly:recorded_at", &rfc3339(e.recorded_at)),
            ]));
            components.push(c);
        }
        let mut tag = Component::new(
            Classification::Data,
            &format!("btrfly tag {}", self.meta.tag),
            "",
            Some("tag".into()),
        );
        tag.version = None;
        let bom = Bom {
            version: 1,
            serial_number: Some(
                UrnUuid::new(format!("urn:uuid:{}", self.uuid()))
                    .map_err(|e| err(format!("{e:?}")))?,
            ),
            metadata: Some(Metadata {
                timestamp: Some(
                    DateTime::try_from(rfc3339(self.time())).map_err(|e| err(e.to_string()))?,
                ),
                tools: Some(Tools::List(vec![Tool::new(
                    "btrfly",
                    "btrfly",
                    env!("CARGO_PKG_VERSION"),
                )])),
                component: Some(tag),
                ..Metadata::default()
            }),
            components: Some(Components(components)),
            spec_version: SpecVersion::V1_5,
            ..Bom::default()
        };
        let mut out = Vec::new();
        bom.output_as_json_v1_5(&mut out)
            .map_err(|e| err(e.to_string()))?;
        String::from_utf8(out).map_err(|e| err(e.to_string()))
    }

    /// An SPDX 2.3 JSON document (see the module docs): the tag is a
    /// package the document `DESCRIBES`, which `CONTAINS` one package per
    /// download (`filesAnalyzed: false`, a `SHA256` checksum, the URL as
    /// `downloadLocation`, the purl as a `PACKAGE-MANAGER` reference).
    ///
    /// # Errors
    /// [`ArchiveError::Bom`] when a builder refuses a value.
    pub fn to_spdx(&self) -> Result<String, ArchiveError> {
        use serde_spdx::spdx::v_2_3 as spdx;

        let err = |message: String| ArchiveError::Bom {
            format: "SPDX",
            message,
        };
        let mut packages = Vec::new();
        let mut relationships = vec![spdx::SpdxItemRelationshipsBuilder::default()
            .spdx_element_id("SPDXRef-DOCUMENT")
            .relationship_type("DESCRIBES")
            .related_spdx_element("SPDXRef-Tag")
            .build()
            .map_err(|e| err(e.to_string()))?];
        packages.push(
            spdx::SpdxItemPackagesBuilder::default()
                .spdxid("SPDXRef-Tag")
                .name(format!("btrfly tag {}", self.meta.tag))
                .download_location("NOASSERTION")
                .files_analyzed(false)
                .build()
                .map_err(|e| err(e.to_string()))?,
        );
        for (n, item) in self.downloads().into_iter().enumerate() {
            let e = &item.entry;
            let id = format!("SPDXRef-Entry-{n}");
            let parsed = item
                .purl
                .as_deref()
                .and_then(|p| p.parse::<packageurl::PackageUrl>().ok());
            let mut b = spdx::SpdxItemPackagesBuilder::default();
            b.spdxid(id.clone())
                .download_location(e.url.clone())
                .files_analyzed(false)
                .checksums(vec![spdx::SpdxItemPackagesItemChecksumsBuilder::default()
                    .algorithm("SHA256")
                    .checksum_value(e.sha256.clone())
                    .build()
                    .map_err(|e| err(e.to_string()))?])
                .comment(format!(
                    "{} bytes, recorded {}",
                    e.size,
                    rfc3339(e.recorded_at)
                ));
            match &parsed {
                Some(p) => {
                    let name = match p.namespace() {
                        Some(ns) => format!("{ns}/{}", p.name()),
                        None => p.name().to_owned(),
                    };
                    b.name(name).primary_package_purpose(if p.ty() == "oci" {
                        "CONTAINER"
                    } else {
                        "LIBRARY"
                    });
                    if let Some(v) = p.version() {
                        b.version_info(v.to_owned());
                    }
                }
                None => {
                    b.name(e.url.clone()).primary_package_purpose("FILE");
                }
            }
            if let Some(p) = &item.purl {
                b.external_refs(vec![
                    spdx::SpdxItemPackagesItemExternalRefsBuilder::default()
                        .reference_category("PACKAGE-MANAGER")
                        .reference_type("purl")
                        .reference_locator(p.clone())
                        .build()
                        .map_err(|e| err(e.to_string()))?,
                ]);
            }
            packages.push(b.build().map_err(|e| err(e.to_string()))?);
            relationships.push(
                spdx::SpdxItemRelationshipsBuilder::default()
                    .spdx_element_id("SPDXRef-Tag")
                    .relationship_type("CONTAINS")
                    .related_spdx_element(id)
                    .build()
                    .map_err(|e| err(e.to_string()))?,
            );
        }
        let doc = spdx::SpdxBuilder::default()
            .spdxid("SPDXRef-DOCUMENT")
            .spdx_version("SPDX-2.3")
            .data_license("CC0-1.0")
            .name(format!("btrfly tag {}", self.meta.tag))
            .document_namespace(format!("urn:uuid:{}", self.uuid()))
            .creation_info(
                spdx::SpdxCreationInfoBuilder::default()
                    .created(rfc3339(self.time()))
                    .creators(vec![format!("Tool: btrfly-{}", env!("CARGO_PKG_VERSION"))])
                    .build()
                    .map_err(|e| err(e.to_string()))?,
            )
            .packages(packages)
            .relationships(relationships)
            .build()
            .map_err(|e| err(e.to_string()))?;
        serde_json::to_string_pretty(&doc).map_err(|e| err(e.to_string()))
    }
}

fn rfc3339(t: OffsetDateTime) -> String {
    // Whole seconds: SBOM date-time fields are commonly read that way.
    let t = t
        .to_offset(time::UtcOffset::UTC)
        .replace_nanosecond(0)
        .unwrap_or(t);
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}
