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
}

#[test]
fn example_files_in_the_repo_parse() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).expect("config dir") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "toml") {
            Config::load(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
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
    ] {
        let err = parse(text).unwrap_err().to_string();
        assert!(err.contains(key), "{text:?} gave {err}");
        assert!(err.contains("/etc/btrfly/btrfly.toml"), "{err}");
    }
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
