use super::*;

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(text, Path::new("/etc/btrfly/btrfly.toml"))
}

#[test]
fn empty_file_is_the_zero_config_default() {
    let c = parse("").expect("empty config");
    assert_eq!(c.storage.backend, Backend::Fs);
    assert_eq!(c.proxy.listen.to_string(), "127.0.0.1:3128");
    assert_eq!(c.control.listen.to_string(), "127.0.0.1:3129");
    assert!(c.dns.is_none());
    assert!(c.adapters.files.enabled);
    assert!(c.adapters.pip.enabled);
    assert!(c.adapters.pip.index_hosts.is_empty() && c.adapters.pip.file_hosts.is_empty());
}

#[test]
fn example_files_in_the_repo_parse() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).expect("config dir") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "toml") {
            let c = Config::load(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            // `btrfly serve --config config/…` from a checkout must not
            // write state into the source tree.
            let here = dir.canonicalize().expect("config dir");
            for p in [c.data_dir(), c.storage_root()] {
                assert!(
                    !p.starts_with(&dir) && !p.starts_with(&here),
                    "{} puts state into the source tree: {}",
                    path.display(),
                    p.display()
                );
            }
            seen += 1;
        }
    }
    assert!(seen > 0, "no example config found in {}", dir.display());
}

#[test]
fn unknown_keys_are_rejected_by_name() {
    for (text, key) in [
        ("colour = 1", "colour"),
        ("[storage]\nbakend = \"fs\"", "bakend"),
        ("[proxy]\nlisten = \"127.0.0.1:1\"\nport = 3", "port"),
        ("[upstream]\ncafile = \"x\"", "cafile"),
        ("[adapters.files]\nenable = true", "enable"),
        ("[adapters.nope]\nenabled = true", "nope"),
        ("[adapters.pip]\nindex_host = [\"x\"]", "index_host"),
        ("[mirror]\nserve_playback = false", "serve_playback"),
    ] {
        let err = parse(text).unwrap_err().to_string();
        assert!(err.contains(key), "{text:?} gave {err}");
        assert!(err.contains("/etc/btrfly/btrfly.toml"), "{err}");
    }
}

#[test]
fn the_mirror_serves_playback_unless_turned_off() {
    assert!(parse("").expect("empty").mirror.serve_in_playback());
    let c = parse(
        "[mirror]\nserve_in_playback = false\nattempts = 2\nretry_delay_secs = 0\npoll_secs = 1",
    )
    .expect("mirror table");
    assert!(!c.mirror.serve_in_playback());
    assert_eq!(c.mirror.attempts, Some(2));
    assert!(parse("[mirror]\nserve_in_playback = \"no\"").is_err());
}

#[test]
fn bad_values_are_clear() {
    let err = parse("[storage]\nbackend = \"floppy\"")
        .unwrap_err()
        .to_string();
    assert!(err.contains("floppy") && err.contains("fs"), "{err}");
    let err = parse("[proxy]\nlisten = \"nowhere\"")
        .unwrap_err()
        .to_string();
    assert!(err.contains("listen"), "{err}");
    let err = parse("[upstream.resolve]\n\"a.example.test:443\" = \"127.0.0.1\"")
        .unwrap_err()
        .to_string();
    assert!(err.contains("without port"), "{err}");
    let err = parse("[upstream.resolve]\n\"a.example.test\" = \"localhost\"")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("a.example.test") || err.contains("address"),
        "{err}"
    );
}

#[test]
fn policy_entries_are_checked() {
    let c = parse("[policy]\nallow = [\"10.0.0.0/8\", \"192.168.1.10\", \"cache.example.test\", \"git.example.test:22\"]\nconnect_ports = [443, 8443]")
        .expect("parse");
    assert_eq!(c.policy.allow.len(), 4);
    assert_eq!(c.policy.ports(), vec![443, 8443]);
    assert_eq!(Config::default().policy.ports(), vec![443, 80]);
    let err = parse("[policy]\nallow = [\"http://cache.example.test/\"]")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("policy.allow") && err.contains("CIDR"),
        "{err}"
    );
    let err = parse("[policy]\nconnect_ports = [0]")
        .unwrap_err()
        .to_string();
    assert!(err.contains("policy.connect_ports"), "{err}");
    let err = parse("[policy]\nallow_all = true").unwrap_err().to_string();
    assert!(err.contains("allow_all"), "{err}");
}

#[test]
fn limits_are_checked() {
    let c = parse("[limits]\nmax_connections = 10\nupstream_read_timeout_secs = 5").expect("parse");
    assert_eq!(c.limits.max_connections, Some(10));
    assert_eq!(c.limits.max_url_bytes, None);
    let err = parse("[limits]\nmax_url_bytes = 0")
        .unwrap_err()
        .to_string();
    assert!(err.contains("limits.max_url_bytes"), "{err}");
    let err = parse("[limits]\nmax_urls = 1").unwrap_err().to_string();
    assert!(err.contains("max_urls"), "{err}");
}

#[test]
fn relative_paths_are_relative_to_the_file() {
    let c = parse("data_dir = \"state\"\n[storage]\nroot = \"./btrfly-data\"\n[upstream]\nca_file = \"extra.pem\"")
        .expect("parse");
    assert_eq!(c.data_dir(), Path::new("/etc/btrfly/state"));
    assert_eq!(c.storage_root(), Path::new("/etc/btrfly/./btrfly-data"));
    assert_eq!(
        c.upstream.ca_file.as_deref(),
        Some(Path::new("/etc/btrfly/extra.pem"))
    );
}

#[test]
fn storage_root_defaults_under_the_data_dir() {
    let c = parse("data_dir = \"/srv/btrfly\"").expect("parse");
    assert_eq!(c.storage_root(), Path::new("/srv/btrfly/store"));
}

#[test]
fn object_store_backends_parse() {
    let c = parse(
        "[storage]\nbackend = \"s3\"\n[storage.s3]\nbucket = \"btrfly-cache\"\nendpoint = \"http://127.0.0.1:9000\"\nregion = \"eu-west-1\"\nprefix = \"team/a\"\naccess_key_id = \"AK\"\nsecret_access_key = \"SK\"\n",
    )
    .expect("s3");
    assert_eq!(c.storage.backend, Backend::S3);
    let s3 = c.storage.s3.expect("s3 table");
    assert_eq!(s3.bucket, "btrfly-cache");
    assert_eq!(s3.prefix.as_deref(), Some("team/a"));
    assert!(!s3.virtual_host_style);

    let c = parse(
        "[storage]\nbackend = \"gcs\"\n[storage.gcs]\nbucket = \"btrfly-cache\"\ncredential_path = \"sa.json\"\n",
    )
    .expect("gcs");
    assert_eq!(c.storage.backend, Backend::Gcs);
    let gcs = c.storage.gcs.expect("gcs table");
    assert_eq!(
        gcs.credential_path.as_deref(),
        Some(Path::new("/etc/btrfly/sa.json")),
        "credential_path is relative to the config file"
    );
}

#[test]
fn object_store_mistakes_name_the_key() {
    for (text, needle) in [
        ("[storage]\nbackend = \"s3\"", "[storage.s3]"),
        ("[storage]\nbackend = \"gcs\"", "[storage.gcs]"),
        ("[storage]\nbackend = \"s3\"\n[storage.s3]\nregion = \"x\"", "bucket"),
        (
            "[storage]\nbackend = \"s3\"\n[storage.s3]\nbucket = \"Bad_Bucket!\"",
            "storage.s3.bucket",
        ),
        (
            "[storage]\nbackend = \"s3\"\n[storage.s3]\nbucket = \"b12\"\nendpoint = \"127.0.0.1:9000\"",
            "storage.s3.endpoint",
        ),
        (
            "[storage]\nbackend = \"s3\"\n[storage.s3]\nbucket = \"b12\"\naccess_key_id = \"AK\"",
            "storage.s3.secret_access_key",
        ),
        (
            "[storage]\nbackend = \"s3\"\n[storage.s3]\nbucket = \"b12\"\nprefix = \"a/../b\"",
            "storage.s3.prefix",
        ),
        (
            "[storage]\nbackend = \"s3\"\n[storage.s3]\nbucket = \"b12\"\ncredential_path = \"x\"",
            "credential_path",
        ),
        (
            "[storage]\nbackend = \"s3\"\nroot = \"/srv\"\n[storage.s3]\nbucket = \"b12\"",
            "storage.s3.prefix",
        ),
        ("[storage]\n[storage.s3]\nbucket = \"b12\"", "backend = \"s3\""),
        (
            "[storage]\nbackend = \"gcs\"\n[storage.gcs]\nbucket = \"b12\"\nallow_anonymous = true\ncredential_path = \"k.json\"",
            "allow_anonymous",
        ),
        (
            "[storage]\nbackend = \"gcs\"\n[storage.gcs]\nbucket = \"b12\"\nregion = \"x\"",
            "region",
        ),
    ] {
        let err = parse(text).unwrap_err().to_string();
        assert!(err.contains(needle), "{text:?} gave {err}");
    }
}

#[test]
fn pip_hosts_parse_and_bad_ones_are_named() {
    let c = parse(
        "[adapters.pip]\nindex_hosts = [\"pypi.example.test\"]\nfile_hosts = [\"files.example.test:8443\"]",
    )
    .expect("parse");
    assert_eq!(c.adapters.pip.index_hosts, ["pypi.example.test"]);
    assert_eq!(c.adapters.pip.file_hosts, ["files.example.test:8443"]);
    for bad in ["https://pypi.example.test", "pypi.example.test/simple", ""] {
        let err = parse(&format!("[adapters.pip]\nindex_hosts = [{bad:?}]"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("adapters.pip.index_hosts"), "{err}");
    }
    let c = parse("[adapters.pip]\nenabled = false").expect("parse");
    assert!(!c.adapters.pip.enabled);
}

#[test]
fn oci_adapter_config() {
    let c = parse("").expect("empty");
    assert!(c.adapters.oci.enabled && c.adapters.oci.detect);
    assert!(c.adapters.oci.registries.is_empty() && c.adapters.oci.auth_hosts.is_empty());
    let c = parse(
        "[adapters.oci]\nregistries = [\"registry.example.test:5000\", \"mirror.example.test\"]\nauth_hosts = [\"auth.example.test\"]\ndetect = false",
    )
    .expect("parse");
    assert_eq!(
        c.adapters.oci.registries,
        ["registry.example.test:5000", "mirror.example.test"]
    );
    assert_eq!(c.adapters.oci.auth_hosts, ["auth.example.test"]);
    assert!(!c.adapters.oci.detect);
    let c = parse("[adapters.oci]\nenabled = false").expect("parse");
    assert!(!c.adapters.oci.enabled);
    let err = parse("[adapters.oci]\nregistry = [\"r.example.test\"]")
        .unwrap_err()
        .to_string();
    assert!(err.contains("registry"), "{err}");
    for (key, bad) in [
        ("registries", "https://registry.example.test"),
        ("registries", "registry.example.test/v2"),
        ("registries", "registry.example.test:http"),
        ("auth_hosts", ""),
        ("auth_hosts", "auth.example.test:0"),
    ] {
        let err = parse(&format!("[adapters.oci]\n{key} = [{bad:?}]"))
            .unwrap_err()
            .to_string();
        assert!(err.contains(&format!("adapters.oci.{key}")), "{err}");
    }
}

#[test]
fn session_leases_are_durations() {
    let c = parse("").expect("parse");
    assert_eq!(c.sessions.lease(), Ok(crate::DEFAULT_LEASE));
    for (text, secs) in [
        ("24h", 86_400),
        ("90m", 5_400),
        ("2h 30m", 9_000),
        ("3s", 3),
    ] {
        let c = parse(&format!("[sessions]\nlease = \"{text}\"")).expect("parse");
        assert_eq!(
            c.sessions.lease(),
            Ok(std::time::Duration::from_secs(secs)),
            "{text}"
        );
    }
    for bad in ["soon", "0s", "-5m"] {
        let err = parse(&format!("[sessions]\nlease = \"{bad}\""))
            .unwrap_err()
            .to_string();
        assert!(err.contains("sessions.lease"), "{bad}: {err}");
    }
}

#[test]
fn go_hosts_parse_and_bad_ones_are_named() {
    let c = parse("").expect("empty");
    assert!(c.adapters.go.enabled && c.adapters.go.proxy_hosts.is_empty());
    let c = parse(
        "[adapters.go]\nproxy_hosts = [\"goproxy.example.test\"]\nsumdb_hosts = [\"sum.example.test:8443\"]",
    )
    .expect("parse");
    assert_eq!(c.adapters.go.proxy_hosts, ["goproxy.example.test"]);
    assert_eq!(c.adapters.go.sumdb_hosts, ["sum.example.test:8443"]);
    let err = parse("[adapters.go]\nsumdb_hosts = [\"https://sum.example.test\"]")
        .expect_err("a URL is not a host")
        .to_string();
    assert!(err.contains("adapters.go.sumdb_hosts"), "{err}");
    assert!(parse("[adapters.go]\nproxy_host = [\"x\"]").is_err());
    assert!(
        !parse("[adapters.go]\nenabled = false")
            .expect("parse")
            .adapters
            .go
            .enabled
    );
}

#[test]
fn cargo_adapter_config() {
    let c = parse("").expect("empty");
    assert!(c.adapters.cargo.enabled);
    assert!(c.adapters.cargo.index_hosts.is_empty() && c.adapters.cargo.download_hosts.is_empty());
    let c = parse(
        "[adapters.cargo]\nindex_hosts = [\"index.example.test\"]\ndownload_hosts = [\"static.example.test:8443\"]",
    )
    .expect("parse");
    assert_eq!(c.adapters.cargo.index_hosts, ["index.example.test"]);
    assert_eq!(
        c.adapters.cargo.download_hosts,
        ["static.example.test:8443"]
    );
    let err = parse("[adapters.cargo]\ndownload_hosts = [\"https://static.example.test/\"]")
        .unwrap_err()
        .to_string();
    assert!(err.contains("adapters.cargo.download_hosts"), "{err}");
    let err = parse("[adapters.cargo]\nindex = \"x\"")
        .unwrap_err()
        .to_string();
    assert!(err.contains("index"), "{err}");
    let c = parse("[adapters.cargo]\nenabled = false").expect("parse");
    assert!(!c.adapters.cargo.enabled);
    // the example file's table is read as written
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/btrfly.example.toml");
    let c = Config::load(&example).expect("example");
    assert_eq!(c.adapters.cargo.index_hosts, ["crates.example.test"]);
    assert_eq!(
        c.adapters.cargo.download_hosts,
        ["static.crates.example.test"]
    );
}

#[test]
fn npm_adapter_config() {
    let c = parse("").expect("empty");
    assert!(c.adapters.npm.enabled);
    assert!(c.adapters.npm.hosts.is_empty());
    let c = parse("[adapters.npm]\nhosts = [\"npm.example.test\", \"mirror.example.test:8443\"]")
        .expect("parse");
    assert_eq!(
        c.adapters.npm.hosts,
        ["npm.example.test", "mirror.example.test:8443"]
    );
    let err = parse("[adapters.npm]\nhosts = [\"https://npm.example.test/\"]")
        .unwrap_err()
        .to_string();
    assert!(err.contains("adapters.npm.hosts"), "{err}");
    let err = parse("[adapters.npm]\nregistry = \"x\"")
        .unwrap_err()
        .to_string();
    assert!(err.contains("registry"), "{err}");
    let c = parse("[adapters.npm]\nenabled = false").expect("parse");
    assert!(!c.adapters.npm.enabled);
    // the example file's table is read as written
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/btrfly.example.toml");
    let c = Config::load(&example).expect("example");
    assert_eq!(c.adapters.npm.hosts, ["npm.example.test"]);
}
