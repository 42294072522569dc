//! The package identity of a distribution file, from its name: a wheel
//! (`{name}-{version}(-{build})?-{python}-{abi}-{platform}.whl`, the
//! binary distribution format spec) or an sdist (`{name}-{version}.tar.gz`
//! or `.zip`, the source distribution format spec), as a purl
//! `pkg:pypi/{normalised name}@{version}`.

use percent_encoding::percent_decode_str;

use crate::key::normalize_name;

/// The purl of the file a URL path names (its last segment, percent-
/// decoded), or `None` when the name is neither a wheel's nor an sdist's.
/// A PEP 658 `.metadata` file has none: it describes a package but is not
/// one, and a bill of materials lists packages (the same rule as
/// `btrfly_archive::purl::derive_purl`, so a manifest and `tag show`
/// agree).
pub fn of_file(path: &str) -> Option<String> {
    let last = path.rsplit('/').next()?;
    let file = percent_decode_str(last).decode_utf8().ok()?;
    let (name, version) = if let Some(stem) = file.strip_suffix(".whl") {
        let parts: Vec<&str> = stem.split('-').collect();
        if !(5..=6).contains(&parts.len()) {
            return None;
        }
        (parts[0].to_owned(), parts[1].to_owned())
    } else {
        let stem = file
            .strip_suffix(".tar.gz")
            .or_else(|| file.strip_suffix(".zip"))?;
        // The version is after the last `-` (names are normalised with
        // `_` in current sdists; older ones may hold `-`).
        let (name, version) = stem.rsplit_once('-')?;
        (name.to_owned(), version.to_owned())
    };
    if name.is_empty() || version.is_empty() {
        return None;
    }
    btrfly_core::purl("pypi", None, &normalize_name(&name), Some(&version))
}

#[cfg(test)]
mod tests {
    use super::of_file;

    #[test]
    fn file_names_give_the_package_identity() {
        for (path, want) in [
            (
                "/p/Foo_Bar-1.0-py3-none-any.whl",
                Some("pkg:pypi/foo-bar@1.0"),
            ),
            (
                "/p/foo-2.0-1-cp311-cp311-linux_x86_64.whl",
                Some("pkg:pypi/foo@2.0"),
            ),
            ("/p/foo-2.0-py3-none-any.whl.metadata", None),
            (
                "/p/foo_bar-1.0%2Blocal.tar.gz",
                Some("pkg:pypi/foo-bar@1.0%2Blocal"),
            ),
            (
                "/p/old-style-name-3.1.zip",
                Some("pkg:pypi/old-style-name@3.1"),
            ),
            ("/p/foo.whl", None),
            ("/p/README.txt", None),
        ] {
            assert_eq!(of_file(path).as_deref(), want, "{path}");
        }
    }
}
