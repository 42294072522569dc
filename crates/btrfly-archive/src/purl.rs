//! Package identities (purl, the package-url specification) of tag
//! entries.
//!
//! The adapter that recorded an entry says which package its body is
//! (`Entry::purl`, from `Classification::package`): that identity is the
//! one a manifest lists, the same `btrfly tag show --json` prints
//! ([`recorded_purl`]). Entries without one (recorded before adapters said
//! so, or by the files adapter) get what their URL and key say where the
//! shape leaves no doubt ([`derive_purl`]):
//!
//! | entry | purl |
//! |---|---|
//! | `pip` key, wheel `name-ver(-build)-py-abi-plat.whl` | `pkg:pypi/<PEP 503 name>@<ver>` |
//! | `pip` key, sdist `name-ver.tar.gz` / `.zip` / `.tar.bz2` | `pkg:pypi/<PEP 503 name>@<ver>` |
//! | `oci` key, `/v2/<repo>/manifests/sha256:…` or `/v2/<repo>/blobs/sha256:…` | `pkg:oci/<last repo segment>@sha256:…?repository_url=<host>/<repo>` |
//! | `oci` key, `GET /v2/<repo>/manifests/<tag>` answered `200` | the same, the version the body's sha256 (a manifest's digest is the sha256 of its bytes), `&tag=<tag>` |
//! | `…/<module>/@v/<version>.zip` (Go module proxy) | `pkg:golang/<module>@<version>` (module from the first path segment holding a dot; lower case, as the purl library canonicalises) |
//! | `…/<name>/-/<name>-<version>.tgz` (npm registry tarball, `@scope/` too) | `pkg:npm/<scope>/<name>@<version>` |
//! | `…/crates/<name>/<version>/download`, `…/<name>/<name>-<version>.crate` | `pkg:cargo/<name>@<version>` |
//!
//! `.metadata` files, index pages, tokens and everything else have none.

use btrfly_core::Entry;
use packageurl::PackageUrl;

/// The package identity an adapter recorded with the entry
/// (`Entry::purl`), which wins over [`derive_purl`] wherever both exist.
/// The manifest validates it ([`crate::bom::Item::new`]) before listing it.
pub fn recorded_purl(entry: &Entry) -> Option<String> {
    entry.purl.clone()
}

/// The purl of an entry, when its URL and key name a package without
/// doubt (see the module docs); `None` otherwise.
pub fn derive_purl(entry: &Entry) -> Option<String> {
    let (host, path) = host_and_path(&entry.url)?;
    let segments: Vec<String> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(decode)
        .collect();
    let purl = match entry.key.namespace.as_str() {
        "pip" => pypi(segments.last()?),
        "oci" => oci(entry, &host, &segments),
        _ => None,
    };
    purl.or_else(|| golang(&segments))
        .or_else(|| npm(&segments))
        .or_else(|| cargo(&segments))
        .map(|p| p.to_string())
}

/// `(host[:port without the default], path)` of an absolute URL.
fn host_and_path(url: &str) -> Option<(String, String)> {
    let (scheme, rest) = url.split_once("://")?;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..end];
    let authority = authority.rsplit('@').next().unwrap_or(authority);
    let default = if scheme == "https" { ":443" } else { ":80" };
    let host = authority
        .strip_suffix(default)
        .unwrap_or(authority)
        .to_ascii_lowercase();
    let path = rest[end..].split(['?', '#']).next().unwrap_or_default();
    Some((host, path.to_owned()))
}

fn decode(segment: &str) -> String {
    percent_encoding::percent_decode_str(segment)
        .decode_utf8_lossy()
        .into_owned()
}

/// PEP 503: runs of `-`, `_`, `.` become one `-`, lower case.
fn pep503(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut run = false;
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            if !run {
                out.push('-');
            }
            run = true;
        } else {
            out.extend(c.to_lowercase());
            run = false;
        }
    }
    out
}

/// A PEP 440-looking version: starts with a digit (or `v`), no `-`.
fn looks_like_version(v: &str) -> bool {
    v.chars().next().is_some_and(|c| c.is_ascii_digit())
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '+' | '!' | '_'))
}

fn pypi(file: &str) -> Option<PackageUrl<'static>> {
    let (name, version) = if let Some(stem) = file.strip_suffix(".whl") {
        let parts: Vec<&str> = stem.split('-').collect();
        if !(5..=6).contains(&parts.len()) {
            return None;
        }
        (parts[0], parts[1])
    } else {
        let stem = [".tar.gz", ".zip", ".tar.bz2", ".tgz"]
            .iter()
            .find_map(|s| file.strip_suffix(s))?;
        stem.rsplit_once('-')?
    };
    if name.is_empty() || !looks_like_version(version) {
        return None;
    }
    let mut p = PackageUrl::new("pypi", pep503(name)).ok()?;
    p.with_version(version.to_owned()).ok()?;
    Some(p)
}

fn oci(entry: &Entry, host: &str, segments: &[String]) -> Option<PackageUrl<'static>> {
    if segments.first().map(String::as_str) != Some("v2") || segments.len() < 4 {
        return None;
    }
    let n = segments.len();
    let (kind, reference) = (&segments[n - 2], &segments[n - 1]);
    if kind != "manifests" && kind != "blobs" {
        return None;
    }
    let repo = segments[1..n - 2].join("/");
    let name = segments[n - 3].to_ascii_lowercase();
    let (version, tag) = match reference.strip_prefix("sha256:") {
        Some(hex) if btrfly_core::is_sha256_hex(hex) => (reference.clone(), None),
        Some(_) => return None,
        None if kind == "manifests" && entry.method == "GET" && entry.status == 200 => {
            (format!("sha256:{}", entry.sha256), Some(reference.clone()))
        }
        None => return None,
    };
    let mut p = PackageUrl::new("oci", name).ok()?;
    p.with_version(version).ok()?;
    p.add_qualifier("repository_url", format!("{host}/{repo}"))
        .ok()?;
    if let Some(tag) = tag {
        p.add_qualifier("tag", tag).ok()?;
    }
    Some(p)
}

/// Go module proxy: uppercase letters are escaped as `!` + lower case.
fn go_unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut bang = false;
    for c in s.chars() {
        if c == '!' {
            bang = true;
            continue;
        }
        if bang {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        bang = false;
    }
    out
}

fn golang(segments: &[String]) -> Option<PackageUrl<'static>> {
    let at = segments.iter().position(|s| s == "@v")?;
    let file = segments.get(at + 1)?;
    let version = file.strip_suffix(".zip")?;
    if at + 2 != segments.len() {
        return None;
    }
    let start = segments[..at].iter().position(|s| s.contains('.'))?;
    let module: Vec<String> = segments[start..at].iter().map(|s| go_unescape(s)).collect();
    let (name, namespace) = module.split_last()?;
    let mut p = PackageUrl::new("golang", name.clone()).ok()?;
    if !namespace.is_empty() {
        p.with_namespace(namespace.join("/")).ok()?;
    }
    p.with_version(go_unescape(version)).ok()?;
    Some(p)
}

fn npm(segments: &[String]) -> Option<PackageUrl<'static>> {
    let dash = segments.iter().rposition(|s| s == "-")?;
    if dash + 2 != segments.len() || dash == 0 {
        return None;
    }
    let file = &segments[dash + 1];
    let name = &segments[dash - 1];
    let version = file
        .strip_suffix(".tgz")?
        .strip_prefix(name.as_str())?
        .strip_prefix('-')?;
    if !version.chars().next().is_some_and(|c| c.is_ascii_digit()) {
        return None;
    }
    let scope = (dash >= 2)
        .then(|| &segments[dash - 2])
        .filter(|s| s.starts_with('@'));
    let mut p = PackageUrl::new("npm", name.clone()).ok()?;
    if let Some(scope) = scope {
        p.with_namespace(scope.clone()).ok()?;
    }
    p.with_version(version.to_owned()).ok()?;
    Some(p)
}

fn cargo(segments: &[String]) -> Option<PackageUrl<'static>> {
    let n = segments.len();
    let (name, version) = if n >= 4 && segments[n - 1] == "download" && segments[n - 4] == "crates"
    {
        (segments[n - 3].clone(), segments[n - 2].clone())
    } else {
        let file = segments.last()?.strip_suffix(".crate")?;
        let dir = segments.get(n.checked_sub(2)?)?;
        let version = file.strip_prefix(dir.as_str())?.strip_prefix('-')?;
        (dir.clone(), version.to_owned())
    };
    if !version.chars().next().is_some_and(|c| c.is_ascii_digit()) {
        return None;
    }
    let mut p = PackageUrl::new("cargo", name).ok()?;
    p.with_version(version).ok()?;
    Some(p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use btrfly_core::{Mutability, RecordingKey};

    fn entry(namespace: &str, method: &str, url: &str, status: u16) -> Entry {
        Entry {
            key: RecordingKey::new(namespace, format!("{method} {url}")),
            method: method.into(),
            url: url.into(),
            status,
            headers: Vec::new(),
            sha256: btrfly_core::Sha256::new(&"ab".repeat(32)).expect("hex"),
            size: 1,
            mutability: Mutability::Immutable,
            recorded_at: time::OffsetDateTime::UNIX_EPOCH,
            purl: None,
        }
    }

    #[test]
    fn purls_by_url_shape() {
        let digest = format!("sha256:{}", "cd".repeat(32));
        let cases: Vec<(&str, &str, String, u16, Option<String>)> = vec![
            // pip: wheels and sdists, names PEP 503-normalised
            ("pip", "GET", "https://files.example.test:443/packages/ab/cd/Foo_Bar-1.2.3-py3-none-any.whl".into(), 200,
             Some("pkg:pypi/foo-bar@1.2.3".into())),
            ("pip", "GET", "https://files.example.test/p/numpy-2.0.0-1-cp312-cp312-manylinux_2_17_x86_64.whl?sig=x".into(), 200,
             Some("pkg:pypi/numpy@2.0.0".into())),
            ("pip", "GET", "https://files.example.test/packages/zope.interface-6.0.tar.gz".into(), 200,
             Some("pkg:pypi/zope-interface@6.0".into())),
            ("pip", "GET", "https://files.example.test/packages/foo-bar-1.0rc1.zip".into(), 200,
             Some("pkg:pypi/foo-bar@1.0rc1".into())),
            ("pip", "GET", "https://files.example.test/packages/demo-1.0%2Blocal-py3-none-any.whl".into(), 200,
             Some("pkg:pypi/demo@1.0%2Blocal".into())),
            // not packages
            ("pip", "GET", "https://files.example.test/p/foo-1.0-py3-none-any.whl.metadata".into(), 200, None),
            ("pip", "GET", "https://pypi.example.test/simple/foo/".into(), 200, None),
            ("pip", "GET", "https://files.example.test/packages/tool.tar.gz".into(), 200, None),
            ("files", "GET", "https://files.example.test/foo-1.0-py3-none-any.whl".into(), 200, None),
            // OCI: content by digest, and a manifest by tag whose body is its digest
            ("oci", "GET", format!("https://registry.example.test:5000/v2/team/app/blobs/{digest}"), 200,
             Some(format!("pkg:oci/app@sha256:{}?repository_url=registry.example.test:5000%2Fteam%2Fapp", "cd".repeat(32)))),
            ("oci", "HEAD", format!("https://registry.example.test/v2/app/manifests/{digest}"), 200,
             Some(format!("pkg:oci/app@sha256:{}?repository_url=registry.example.test%2Fapp", "cd".repeat(32)))),
            ("oci", "GET", "https://registry.example.test/v2/library/Alpine/manifests/3.19".into(), 200,
             Some(format!("pkg:oci/alpine@sha256:{}?repository_url=registry.example.test%2Flibrary%2FAlpine&tag=3.19", "ab".repeat(32)))),
            ("oci", "GET", "https://registry.example.test/v2/app/manifests/latest".into(), 404, None),
            ("oci", "GET", "https://registry.example.test/v2/".into(), 200, None),
            ("oci", "GET", "https://registry.example.test/v2/app/tags/list".into(), 200, None),
            // Go module proxy, npm, cargo: by their URL shapes
            ("files", "GET", "https://proxy.example.test/github.com/!burnt!sushi/toml/@v/v1.3.2.zip".into(), 200,
             Some("pkg:golang/github.com/burntsushi/toml@v1.3.2".into())),
            ("files", "GET", "https://proxy.example.test/goproxy/golang.org/x/text/@v/v0.14.0.zip".into(), 200,
             Some("pkg:golang/golang.org/x/text@v0.14.0".into())),
            ("files", "GET", "https://proxy.example.test/golang.org/x/text/@v/v0.14.0.mod".into(), 200, None),
            ("files", "GET", "https://npm.example.test/left-pad/-/left-pad-1.3.0.tgz".into(), 200,
             Some("pkg:npm/left-pad@1.3.0".into())),
            ("files", "GET", "https://npm.example.test/@types/node/-/node-20.1.0.tgz".into(), 200,
             Some("pkg:npm/%40types/node@20.1.0".into())),
            ("files", "GET", "https://crates.example.test/api/v1/crates/serde/1.0.200/download".into(), 200,
             Some("pkg:cargo/serde@1.0.200".into())),
            ("files", "GET", "https://static.example.test/crates/serde/serde-1.0.200.crate".into(), 200,
             Some("pkg:cargo/serde@1.0.200".into())),
            ("files", "GET", "https://files.example.test/tool.tar.gz".into(), 200, None),
        ];
        for (ns, method, url, status, want) in cases {
            let got = derive_purl(&entry(ns, method, &url, status));
            assert_eq!(got, want, "{ns} {method} {url}");
            if let Some(p) = got {
                // every purl parses back
                p.parse::<PackageUrl>()
                    .unwrap_or_else(|e| panic!("{p}: {e}"));
            }
        }
    }
}
