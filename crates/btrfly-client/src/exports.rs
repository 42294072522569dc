//! The environment a session's clients need: what `btrfly start` exports,
//! what `btrfly run` gives its command, and what `btrfly stop` undoes.
//!
//! Each variable is here because a real client reads it (see the README's
//! client table): the proxy URL (with the session's credential), btrfly's
//! CA where each client looks for trust, and (unless the session keeps
//! the user's caches) a fresh download cache per client, so that every
//! download of the build goes through btrfly.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::home::{self, ActiveSession};

/// Every variable a session exports, in order, with its value.
pub fn session_env(s: &ActiveSession, home: &Path) -> Vec<(&'static str, String)> {
    let proxy = s.proxy_url();
    let bundle = home::bundle_path(home).display().to_string();
    let ca = home::ca_path(home).display().to_string();
    let mut env = vec![
        // curl, pip, git, cargo, Go, npm, Ruby, .NET, podman: the upper or
        // lower case form (wget and curl for http:// read only lower case).
        ("HTTPS_PROXY", proxy.clone()),
        ("https_proxy", proxy.clone()),
        ("HTTP_PROXY", proxy.clone()),
        ("http_proxy", proxy),
        // OpenSSL-based clients (curl, Python, Ruby, .NET, Go, podman).
        ("SSL_CERT_FILE", bundle.clone()),
        ("REQUESTS_CA_BUNDLE", bundle.clone()),
        ("PIP_CERT", bundle.clone()),
        ("CURL_CA_BUNDLE", bundle.clone()),
        ("GIT_SSL_CAINFO", bundle.clone()),
        ("CARGO_HTTP_CAINFO", bundle.clone()),
        ("AWS_CA_BUNDLE", bundle.clone()),
        // npm (and yarn 1, pnpm): beats a `cafile` in any npmrc, which
        // otherwise makes npm ignore NODE_EXTRA_CA_CERTS.
        ("NPM_CONFIG_CAFILE", bundle),
        // npm's own update check would otherwise go into the tag.
        ("NPM_CONFIG_UPDATE_NOTIFIER", "false".to_owned()),
        // node adds these to its own roots.
        ("NODE_EXTRA_CA_CERTS", ca),
        // Debian's wget (GnuTLS) and apt ignore SSL_CERT_FILE.
        ("WGETRC", home::wgetrc_path(home).display().to_string()),
        (
            "APT_CONFIG",
            home::apt_conf_path(home).display().to_string(),
        ),
    ];
    if let Some(dir) = &s.cache_dir {
        let sub = |name: &str| dir.join(name).display().to_string();
        env.extend([
            // Reaches the nested pip of isolated builds too.
            ("PIP_CACHE_DIR", sub("pip")),
            ("NPM_CONFIG_CACHE", sub("npm")),
            ("YARN_CACHE_FOLDER", sub("yarn")),
            // The registry cache lives in CARGO_HOME; the user's
            // configuration is linked into it (see `prepare_caches`).
            ("CARGO_HOME", sub("cargo")),
            ("GOMODCACHE", sub("go-mod")),
        ]);
    }
    env.extend([
        ("BTRFLY_SESSION", s.id.clone()),
        ("BTRFLY_TAG", s.tag.clone()),
    ]);
    env
}

/// The user's cargo home: `CARGO_HOME`, else `~/.cargo`.
fn user_cargo_home(previous: &BTreeMap<String, Option<String>>) -> Option<PathBuf> {
    if let Some(Some(h)) = previous.get("CARGO_HOME") {
        return Some(PathBuf::from(h));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo"))
}

/// Prepares a session's cache directory: a cargo home that links the
/// user's cargo configuration and credentials (so registries and source
/// replacements still apply) but has its own, empty registry cache.
///
/// # Errors
/// A directory or link cannot be created.
pub fn prepare_caches(s: &ActiveSession) -> Result<()> {
    let Some(dir) = &s.cache_dir else {
        return Ok(());
    };
    let cargo = dir.join("cargo");
    std::fs::create_dir_all(&cargo).with_context(|| format!("creating {}", cargo.display()))?;
    if let Some(user) = user_cargo_home(&s.previous) {
        for name in ["config.toml", "config", "credentials.toml", "credentials"] {
            let from = user.join(name);
            if from.exists() {
                #[cfg(unix)]
                std::os::unix::fs::symlink(&from, cargo.join(name)).with_context(|| {
                    format!("linking {} into {}", from.display(), cargo.display())
                })?;
            }
        }
    }
    Ok(())
}

/// What the exported variables were before the session, read from this
/// process's environment (the shell's, under `eval "$(btrfly start …)"`).
/// A value left over from an earlier session (it points into `home`, or it
/// is a proxy while `BTRFLY_SESSION` is set) counts as not set.
pub fn previous_values(names: &[&str], home: &Path) -> BTreeMap<String, Option<String>> {
    let stale_session = std::env::var_os("BTRFLY_SESSION").is_some();
    let home = home.display().to_string();
    names
        .iter()
        .map(|name| {
            let value = std::env::var(name).ok().filter(|v| {
                let ours = v.starts_with(&home)
                    || name.starts_with("BTRFLY_")
                    || (stale_session && name.to_ascii_lowercase().ends_with("_proxy"));
                !ours
            });
            ((*name).to_owned(), value)
        })
        .collect()
}

/// `export NAME='value'`, quoted for POSIX shells.
pub fn export_line(name: &str, value: &str) -> String {
    format!("export {name}='{}'", value.replace('\'', "'\\''"))
}

/// Shell commands that undo a session's exports: variables that were not
/// set before are unset, the others get their old value back.
pub fn undo_lines(s: &ActiveSession, home: &Path) -> Vec<String> {
    let mut unset = Vec::new();
    let mut restore = Vec::new();
    for (name, _) in session_env(s, home) {
        match s.previous.get(name).cloned().flatten() {
            Some(old) => restore.push(export_line(name, &old)),
            None => unset.push(name),
        }
    }
    let mut lines = Vec::new();
    if !unset.is_empty() {
        lines.push(format!("unset {}", unset.join(" ")));
    }
    lines.extend(restore);
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(cache: bool) -> ActiveSession {
        ActiveSession {
            server: "http://127.0.0.1:3129".into(),
            id: "abc".into(),
            secret: "s3cr3t".into(),
            tag: "t1".into(),
            mode: btrfly_core::Mode::Record,
            proxy: "127.0.0.1:3128".into(),
            cache_dir: cache.then(|| PathBuf::from("/h/caches/abc")),
            previous: BTreeMap::new(),
        }
    }

    #[test]
    fn exports_are_shell_safe() {
        assert_eq!(export_line("A", "b c"), "export A='b c'");
        assert_eq!(export_line("A", "it's"), "export A='it'\\''s'");
    }

    #[test]
    fn caches_are_exported_only_when_isolated() {
        let home = Path::new("/h");
        let names = |s: &ActiveSession| -> Vec<&str> {
            session_env(s, home).into_iter().map(|(n, _)| n).collect()
        };
        let isolated = names(&session(true));
        for n in [
            "PIP_CACHE_DIR",
            "NPM_CONFIG_CACHE",
            "CARGO_HOME",
            "GOMODCACHE",
        ] {
            assert!(isolated.contains(&n), "{n}");
            assert!(!names(&session(false)).contains(&n), "{n}");
        }
    }

    #[test]
    fn undo_unsets_new_variables_and_restores_old_ones() {
        let home = Path::new("/h");
        let mut s = session(false);
        s.previous.insert(
            "SSL_CERT_FILE".into(),
            Some("/etc/ssl/certs/ca-certificates.crt".into()),
        );
        let lines = undo_lines(&s, home);
        assert!(lines[0]
            .starts_with("unset HTTPS_PROXY https_proxy HTTP_PROXY http_proxy REQUESTS_CA_BUNDLE"));
        assert!(!lines[0].contains("SSL_CERT_FILE"));
        assert!(lines[0].ends_with("BTRFLY_SESSION BTRFLY_TAG"));
        assert_eq!(
            lines[1],
            "export SSL_CERT_FILE='/etc/ssl/certs/ca-certificates.crt'"
        );
    }
}
