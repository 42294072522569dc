//! Package URLs (purl, the package-url specification): the identity of a
//! recorded package, e.g. `pkg:cargo/serde@1.0.0`.

/// The purl of `name` (in `namespace`) at `version` in ecosystem `ty`
/// (`pypi`, `oci`, `golang`, `cargo`, `npm`), built and validated by the
/// `packageurl` crate (which percent-encodes what needs it). `None` when a
/// part is not valid for a purl (an empty name).
pub fn purl(
    ty: &str,
    namespace: Option<&str>,
    name: &str,
    version: Option<&str>,
) -> Option<String> {
    purl_with(ty, namespace, name, version, &[])
}

/// [`purl`] with qualifiers (`repository_url`, …) in the given order.
pub fn purl_with(
    ty: &str,
    namespace: Option<&str>,
    name: &str,
    version: Option<&str>,
    qualifiers: &[(&str, &str)],
) -> Option<String> {
    let mut p = packageurl::PackageUrl::new(ty, name).ok()?;
    for (k, v) in qualifiers {
        p.add_qualifier(*k, *v).ok()?;
    }
    if let Some(ns) = namespace.filter(|n| !n.is_empty()) {
        p.with_namespace(ns).ok()?;
    }
    if let Some(v) = version.filter(|v| !v.is_empty()) {
        p.with_version(v).ok()?;
    }
    p.validate().ok()?;
    Some(p.to_string())
}

#[cfg(test)]
mod tests {
    use super::purl;

    #[test]
    fn purls_are_built_and_encoded_by_the_spec() {
        // the crate lower-cases golang namespaces and names, as the purl
        // spec says for that type
        assert_eq!(
            purl("golang", Some("example.test/Upper"), "mod", Some("v1.0.0")).as_deref(),
            Some("pkg:golang/example.test/upper/mod@v1.0.0")
        );
        assert_eq!(
            purl("npm", Some("@scope"), "pkg", Some("1.0.0")).as_deref(),
            Some("pkg:npm/%40scope/pkg@1.0.0")
        );
        assert_eq!(
            purl("cargo", None, "serde", Some("1.0.0")).as_deref(),
            Some("pkg:cargo/serde@1.0.0")
        );
        assert_eq!(purl("cargo", None, "", Some("1")), None);
    }
}
