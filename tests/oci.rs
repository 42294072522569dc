//! End-to-end tests of the OCI registry adapter: real container clients
//! (skopeo, podman with vfs storage, no daemon) pull through the real
//! `btrfly` binary from Debian's `docker-registry` (TLS, HTTP/2), once with
//! blob downloads redirected to signed-looking URLs on a storage host, once
//! with bearer-token authentication. Record, stop every upstream, play back,
//! compare digests and bytes; a tag moved upstream keeps its old digest in
//! the old recording.
//!
//! Images are made in the test (an OCI image layout written with oci-spec,
//! a multi-architecture index) and pushed with skopeo straight to a second
//! registry process sharing the storage, never through btrfly.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use btrfly_test_support::*;

/// The architecture podman picks from an index on this machine.
fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "aarch64" => "arm64",
        _ => "amd64",
    }
}

/// Every file under `dir` (relative path → sha256).
fn tree(dir: &Path) -> BTreeMap<String, String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.expect("dir entry").path())
            .collect();
        entries.sort();
        for p in entries {
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                let rel = p.strip_prefix(root).expect("under root");
                out.insert(rel.to_string_lossy().into_owned(), sha256_file(&p));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// The pieces every scenario needs: a CA, registry storage, a registry to
/// push to directly, a btrfly server trusting the CA, a work dir.
struct World {
    ca: TestCa,
    storage: tempfile::TempDir,
    pusher: std::sync::Mutex<Option<DockerRegistry>>,
    pusher_port: u16,
    work: tempfile::TempDir,
    policy: PathBuf,
    empty_dir: PathBuf,
    registries_conf: PathBuf,
}

impl World {
    fn new() -> World {
        let ca = TestCa::new();
        let storage = tempfile::tempdir().expect("storage");
        let pusher = DockerRegistry::start(
            &ca,
            storage.path(),
            &["push.example.test"],
            &RegistryOptions::default(),
        );
        let work = tempfile::tempdir().expect("work");
        let policy = work.path().join("policy.json");
        std::fs::write(
            &policy,
            r#"{"default":[{"type":"insecureAcceptAnything"}]}"#,
        )
        .expect("policy");
        let empty_dir = work.path().join("empty.d");
        std::fs::create_dir_all(&empty_dir).expect("empty dir");
        let registries_conf = work.path().join("registries.conf");
        std::fs::write(&registries_conf, "").expect("registries.conf");
        World {
            ca,
            storage,
            pusher_port: pusher.port(),
            pusher: std::sync::Mutex::new(Some(pusher)),
            work,
            policy,
            empty_dir,
            registries_conf,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.work.path().join(name)
    }

    /// skopeo with a private policy, no system registries configuration,
    /// and `env` (a btrfly session's exports, or nothing).
    fn skopeo(&self, env: &[(String, String)]) -> Command {
        let mut c = Command::new("skopeo");
        client_env(&mut c);
        apply_env(&mut c, env);
        c.env("CONTAINERS_REGISTRIES_CONF", &self.registries_conf)
            .arg("--policy")
            .arg(&self.policy)
            .arg("--registries.d")
            .arg(&self.empty_dir);
        c
    }

    /// Pushes a layout's image (all architectures) straight to the push
    /// registry, which shares the storage of the registries under test.
    fn push(&self, layout: &OciLayoutFixture, repo_tag: &str, format: Option<&str>) {
        let certs = self.path("push-certs");
        std::fs::create_dir_all(&certs).expect("push certs");
        std::fs::write(certs.join("ca.crt"), self.ca.cert_pem()).expect("ca.crt");
        let mut c = self.skopeo(&[]);
        c.args(["copy", "--all", "--dest-cert-dir"]).arg(&certs);
        if let Some(f) = format {
            c.args(["--format", f]);
        }
        c.arg(layout.reference()).arg(format!(
            "docker://127.0.0.1:{}/{repo_tag}",
            self.pusher_port
        ));
        run_ok(&mut c);
    }

    fn stop_pusher(&self) {
        let pusher = self.pusher.lock().map(|mut p| p.take()).unwrap_or(None);
        if let Some(p) = pusher {
            p.stop();
        }
    }

    fn btrfly(&self, names: &[&str], more: &str) -> BtrflyServer {
        let ca_file = self.path("upstream-ca.pem");
        std::fs::write(&ca_file, self.ca.cert_pem()).expect("ca file");
        let mut extra = format!(
            "[upstream]\nca_file = {}\n[upstream.resolve]\n",
            BtrflyServer::toml_str(ca_file.to_string_lossy())
        );
        for n in names {
            extra.push_str(&format!("\"{n}\" = \"127.0.0.1\"\n"));
        }
        extra.push_str(more);
        BtrflyServer::start(bin(), &extra)
    }
}

/// A btrfly client: its home, and podman storage that can be wiped.
struct Client<'a> {
    server: &'a BtrflyServer,
    world: &'a World,
    home: PathBuf,
}

impl<'a> Client<'a> {
    fn new(server: &'a BtrflyServer, world: &'a World, name: &str) -> Client<'a> {
        let home = world.path(&format!("home-{name}"));
        std::fs::create_dir_all(&home).expect("home");
        Client {
            server,
            world,
            home,
        }
    }

    fn start(&self, mode: &str, tag: &str) -> Vec<(String, String)> {
        let out =
            run_ok(
                self.server
                    .cli(&self.home)
                    .args(["start", mode, &format!("--tag={tag}")]),
            );
        self.server.env_from_start(&text(&out.stdout))
    }

    fn stop(&self, mode: &str) -> Output {
        run(self.server.cli(&self.home).args(["stop", mode]))
    }

    fn entries(&self, tag: &str) -> Vec<serde_json::Value> {
        let out = run_ok(
            self.server
                .cli(&self.home)
                .args(["tag", "show", tag, "--json"]),
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("tag json");
        v["entries"].as_array().cloned().unwrap_or_default()
    }

    /// podman with its own vfs storage under `store`, trusting btrfly's CA
    /// through `--cert-dir` alone (no `SSL_CERT_FILE`).
    fn podman(&self, env: &[(String, String)], store: &Path, args: &[&str]) -> Command {
        let conf = store.join("storage.conf");
        std::fs::create_dir_all(store).expect("podman store");
        std::fs::write(
            &conf,
            format!(
                "[storage]\ndriver = \"vfs\"\ngraphroot = {:?}\nrunroot = {:?}\n",
                store.join("graph"),
                store.join("run")
            ),
        )
        .expect("storage.conf");
        let containers_conf = store.join("containers.conf");
        std::fs::write(&containers_conf, "").expect("containers.conf");
        let mut c = Command::new("podman");
        client_env(&mut c);
        apply_env(&mut c, env);
        c.env_remove("SSL_CERT_FILE")
            .env("CONTAINERS_STORAGE_CONF", &conf)
            .env("CONTAINERS_CONF", &containers_conf)
            .env("CONTAINERS_REGISTRIES_CONF", &self.world.registries_conf)
            .args([
                "--cgroup-manager=cgroupfs",
                "--events-backend=file",
                "--tmpdir",
            ])
            .arg(store.join("tmp"))
            .args(args);
        c
    }

    /// `podman pull --cert-dir <btrfly CA>` then `podman image inspect`:
    /// (Id, Digest, sorted RepoDigests, RootFS layers).
    fn podman_pull(&self, env: &[(String, String)], store: &Path, reference: &str) -> String {
        let certs = self.home.join("podman-certs");
        std::fs::create_dir_all(&certs).expect("certs dir");
        let ca = env
            .iter()
            .find(|(k, _)| k == "NODE_EXTRA_CA_CERTS")
            .map(|(_, v)| v.clone())
            .expect("btrfly CA path in the exports");
        std::fs::copy(ca, certs.join("ca.crt")).expect("copy btrfly CA");
        let certs = certs.to_string_lossy().into_owned();
        run_ok(&mut self.podman(env, store, &["pull", "--cert-dir", &certs, reference]));
        let out = run_ok(&mut self.podman(env, store, &["image", "inspect", reference]));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("inspect json");
        let img = &v[0];
        let mut repo_digests: Vec<String> = img["RepoDigests"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|d| d.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        repo_digests.sort();
        format!(
            "id={} digest={} repo_digests={repo_digests:?} layers={}",
            img["Id"], img["Digest"], img["RootFS"]["Layers"]
        )
    }
}

fn assert_clean_stop(stop: &Output, what: &str) -> String {
    let summary = text(&stop.stderr);
    assert!(
        stop.status.success(),
        "{what}: {summary}\n{}",
        text(&stop.stderr)
    );
    assert_eq!(field(&summary, "misses"), 0, "{what}: {summary}");
    assert!(
        !summary.contains("problems:") && !summary.contains("not recorded"),
        "{what}: {summary}"
    );
    summary
}

/// The recorded entries whose key primary starts with `prefix`.
fn keyed<'a>(entries: &'a [serde_json::Value], prefix: &str) -> Vec<&'a serde_json::Value> {
    entries
        .iter()
        .filter(|e| {
            e["key"]["primary"]
                .as_str()
                .is_some_and(|p| p.starts_with(prefix))
        })
        .collect()
}

/// skopeo and podman, by tag and by digest, a multi-architecture OCI index
/// and a Docker manifest list, from a registry that redirects every blob
/// download to a signed-looking URL on a storage host: recorded, replayed
/// with the registry and the storage host gone, identical digests and
/// bytes; the tag moved upstream afterwards still gives its old digest.
#[test]
fn skopeo_and_podman_replay_images_by_tag_and_digest() {
    let world = World::new();
    let arch = host_arch();
    // The registry redirects every blob download to the storage host, which
    // serves the registry's storage directory; the storage host first sends
    // the client on to the same path with a fresh signature and expiry,
    // different for every request, like a cloud bucket's signed URLs.
    let cdn = Nginx::start_with(
        world.storage.path(),
        &world.ca,
        &["cdn.example.test"],
        &NginxExtra {
            server: r#"
        location /docker/ {
            if ($arg_btrfly_signature = "") {
                return 302 $uri?btrfly_signature=$request_id&btrfly_expires=$msec;
            }
        }
"#
            .into(),
            ..NginxExtra::default()
        },
    );
    let registry = DockerRegistry::start(
        &world.ca,
        world.storage.path(),
        &["registry.example.test"],
        &RegistryOptions {
            redirect_base: Some(format!("https://cdn.example.test:{}/", cdn.port())),
            ..RegistryOptions::default()
        },
    );
    let reg = format!("registry.example.test:{}", registry.port());

    let v1 = write_oci_layout(&world.path("v1"), "1.0", &["amd64", "arm64"], "v1");
    world.push(&v1, "app:1.0", None);
    world.push(&v1, "lib/app:docker", Some("v2s2"));
    let server = world.btrfly(&["registry.example.test", "cdn.example.test"], "");
    let client = Client::new(&server, &world, "a");

    // --- record ---
    let env = client.start("record", "t1");
    let recorded = pull_everything(&world, &client, &env, &reg, &v1, "rec");
    let summary = assert_clean_stop(&client.stop("record"), "record t1");
    assert!(field(&summary, "recorded") >= 10, "{summary}");

    // What the clients got is the pushed image, bit for bit.
    assert_eq!(recorded["tag digest"], v1.index, "{recorded:#?}");
    let podman = &recorded["podman by tag"];
    let config_hex = v1.image(arch).config.trim_start_matches("sha256:");
    assert!(podman.contains(&format!("id=\"{config_hex}\"")), "{podman}");
    for diff_id in &v1.image(arch).diff_ids {
        assert!(podman.contains(diff_id.as_str()), "{podman}");
    }
    let by_digest = tree(&world.path("rec-by-digest"));
    for layer in &v1.image(arch).layers {
        let hex = layer.trim_start_matches("sha256:");
        assert_eq!(
            by_digest.get(hex).map(String::as_str),
            Some(hex),
            "{by_digest:?}"
        );
    }
    // The registry did redirect, and the clients followed the signed URLs.
    let cdn_log = cdn.access_log();
    assert!(
        cdn_log.contains("/data?btrfly_signature="),
        "blob downloads went to the storage host's signed URLs:\n{cdn_log}"
    );

    // The tag holds blobs by digest, never a redirect or the signed URL in
    // a key; the base layer shared by every image is one entry.
    let entries = client.entries("t1");
    let blobs = keyed(&entries, "GET blob sha256:");
    assert!(!blobs.is_empty(), "{entries:#?}");
    for e in &blobs {
        assert_eq!(e["status"], 200, "{e}");
        let digest = e["key"]["primary"]
            .as_str()
            .and_then(|p| p.strip_prefix("GET blob sha256:"))
            .expect("digest key");
        assert_eq!(
            e["sha256"], digest,
            "bodies are verified against their digest"
        );
    }
    for e in &entries {
        let key = e["key"].to_string();
        assert!(!key.contains("cdn.example.test"), "{key}");
        assert!(!key.contains("signature"), "{key}");
        assert!(
            !(300..400).contains(&e["status"].as_u64().unwrap_or(0)) || !key.contains(" blob "),
            "{e}"
        );
    }
    let base = &v1.image(arch).layers[0];
    assert_eq!(
        keyed(&entries, &format!("GET blob {base}")).len(),
        1,
        "the shared base layer is one entry"
    );
    let tags = keyed(&entries, &format!("GET https://{reg}/v2/app/manifests/1.0"));
    assert!(!tags.is_empty(), "{entries:#?}");
    assert!(
        tags.iter()
            .all(|e| e["key"]["variance"]["accept"].is_string()),
        "tag manifests vary by Accept: {tags:#?}"
    );

    // --- the tag moves upstream; a second recording sees the new image ---
    let v2 = write_oci_layout(&world.path("v2"), "1.0", &["amd64", "arm64"], "v2");
    world.push(&v2, "app:1.0", None);
    let env = client.start("record", "t2");
    let raw = run_ok(
        world
            .skopeo(&env)
            .args(["inspect", "--raw"])
            .arg(format!("docker://{reg}/app:1.0")),
    );
    assert_eq!(format!("sha256:{}", sha256_bytes(&raw.stdout)), v2.index);
    assert_clean_stop(&client.stop("record"), "record t2");

    // --- every upstream disappears ---
    registry.stop();
    cdn.stop();
    world.stop_pusher();

    // --- playback of t1, another client: the same image, bit for bit ---
    let client = Client::new(&server, &world, "b");
    let env = client.start("playback", "t1");
    let replayed = pull_everything(&world, &client, &env, &reg, &v1, "play");
    assert_eq!(replayed, recorded);
    assert_eq!(
        replayed["tag digest"], v1.index,
        "the old tag keeps its digest"
    );

    // A blob is answered at the registry's URL directly (no redirect to a
    // URL that is gone), whole, as a Range cut from the verified whole, and
    // for HEAD from the recorded GET.
    let layer = &v1.image(arch).layers[1];
    let layer_bytes = v1.blob(layer);
    let blob_url = format!("https://{reg}/v2/app/blobs/{layer}");
    let curl = |args: &[&str]| {
        let mut c = Command::new("curl");
        client_env(&mut c);
        apply_env(&mut c, &env);
        c.args(["-sS", "--max-time", "60"])
            .args(args)
            .arg(&blob_url);
        c
    };
    let whole = world.path("blob-whole");
    let code = run_ok(&mut curl(&[
        "-w",
        "%{http_code}",
        "-o",
        &whole.to_string_lossy(),
    ]));
    assert_eq!(text(&code.stdout), "200");
    assert_eq!(std::fs::read(&whole).expect("blob"), layer_bytes);
    let part = world.path("blob-part");
    let code = run_ok(&mut curl(&[
        "-r",
        "100-1099",
        "-w",
        "%{http_code}",
        "-o",
        &part.to_string_lossy(),
    ]));
    assert_eq!(text(&code.stdout), "206");
    assert_eq!(std::fs::read(&part).expect("part"), &layer_bytes[100..1100]);
    let head = run_ok(&mut curl(&["-I"]));
    let head = text(&head.stdout).to_ascii_lowercase();
    assert!(head.contains(" 200"), "{head}");
    assert!(
        head.contains(&format!("content-length: {}", layer_bytes.len())),
        "{head}"
    );
    // HEAD of a manifest, answered from the recorded GET.
    let mut head = Command::new("curl");
    client_env(&mut head);
    apply_env(&mut head, &env);
    head.args(["-sS", "--fail", "--max-time", "60", "-I"])
        .arg(format!("https://{reg}/v2/app/manifests/{}", v1.index));
    let head = text(&run_ok(&mut head).stdout).to_ascii_lowercase();
    assert!(
        head.contains(&format!("docker-content-digest: {}", v1.index)),
        "{head}"
    );
    assert_clean_stop(&client.stop("playback"), "playback t1");

    // --- playback of t2: the new image ---
    let env = client.start("playback", "t2");
    let raw = run_ok(
        world
            .skopeo(&env)
            .args(["inspect", "--raw"])
            .arg(format!("docker://{reg}/app:1.0")),
    );
    assert_eq!(format!("sha256:{}", sha256_bytes(&raw.stdout)), v2.index);
    assert_clean_stop(&client.stop("playback"), "playback t2");
}

/// What a build does with images; run in record, then in playback. Returns
/// what a user would compare: digests, file trees, podman's view.
fn pull_everything(
    world: &World,
    client: &Client,
    env: &[(String, String)],
    reg: &str,
    v1: &OciLayoutFixture,
    run_name: &str,
) -> BTreeMap<String, String> {
    let arch = host_arch();
    let out = |n: &str| world.path(&format!("{run_name}-{n}"));
    let mut seen = BTreeMap::new();
    // skopeo by tag, every architecture, into an OCI layout
    run_ok(
        world
            .skopeo(env)
            .args(["copy", "--all"])
            .arg(format!("docker://{reg}/app:1.0"))
            .arg(format!("oci:{}:1.0", out("all").display())),
    );
    seen.insert(
        "skopeo all by tag".into(),
        format!("{:?}", tree(&out("all"))),
    );
    // skopeo by digest, one architecture
    run_ok(
        world
            .skopeo(env)
            .arg("copy")
            .arg(format!("docker://{reg}/app@{}", v1.image(arch).manifest))
            .arg(format!("dir:{}", out("by-digest").display())),
    );
    seen.insert(
        "skopeo by digest".into(),
        format!("{:?}", tree(&out("by-digest"))),
    );
    // the Docker manifest list, every architecture
    run_ok(
        world
            .skopeo(env)
            .args(["copy", "--all"])
            .arg(format!("docker://{reg}/lib/app:docker"))
            .arg(format!("dir:{}", out("docker").display())),
    );
    seen.insert(
        "skopeo docker list".into(),
        format!("{:?}", tree(&out("docker"))),
    );
    // the tag's manifest as the registry sent it
    let raw = run_ok(
        world
            .skopeo(env)
            .args(["inspect", "--raw"])
            .arg(format!("docker://{reg}/app:1.0")),
    );
    seen.insert(
        "tag digest".into(),
        format!("sha256:{}", sha256_bytes(&raw.stdout)),
    );
    // podman, by tag then by digest, into fresh storage
    let store = out("podman");
    seen.insert(
        "podman by tag".into(),
        client.podman_pull(env, &store, &format!("{reg}/app:1.0")),
    );
    seen.insert(
        "podman by digest".into(),
        client.podman_pull(env, &store, &format!("{reg}/app@{}", v1.index)),
    );
    seen
}

/// A registry with bearer-token authentication, whose token server issues
/// tokens that clients see as already expired (so they fetch one for every
/// request): podman and skopeo pull through btrfly in record; in playback,
/// with the registry and the token server gone, clients that start without
/// a token get the recorded challenge and a token from the tag, and the
/// replay accepts any token, or none.
#[test]
fn token_authenticated_registry_replays_without_its_token_server() {
    let world = World::new();
    let service = "secure.example.test";
    let issuer = "btrfly-test-issuer";
    let tokens = TokenServer::start(&world.ca, &["auth.example.test"], issuer, service);
    let realm = format!("https://auth.example.test:{}/token", tokens.port());
    let registry = DockerRegistry::start(
        &world.ca,
        world.storage.path(),
        &["secure.example.test"],
        &RegistryOptions {
            token_auth: Some(RegistryTokenAuth {
                realm: realm.clone(),
                service: service.into(),
                issuer: issuer.into(),
                root_cert_bundle: tokens.signing_cert(),
            }),
            ..RegistryOptions::default()
        },
    );
    let reg = format!("secure.example.test:{}", registry.port());
    let image = write_oci_layout(&world.path("img"), "1.0", &["amd64", "arm64"], "auth");
    world.push(&image, "team/app:1.0", None);
    let manifest = image.image(host_arch()).manifest.clone();

    let server = world.btrfly(&["secure.example.test", "auth.example.test"], "");
    let pull = |client: &Client, env: &[(String, String)], run_name: &str| {
        let out = world.path(&format!("{run_name}-all"));
        run_ok(
            world
                .skopeo(env)
                .args(["copy", "--all"])
                .arg(format!("docker://{reg}/team/app:1.0"))
                .arg(format!("oci:{}:1.0", out.display())),
        );
        let podman = client.podman_pull(
            env,
            &world.path(&format!("{run_name}-podman")),
            &format!("{reg}/team/app:1.0"),
        );
        (tree(&out), podman)
    };

    // --- record ---
    let client = Client::new(&server, &world, "a");
    let env = client.start("record", "auth");
    let recorded = pull(&client, &env, "rec");
    assert_clean_stop(&client.stop("record"), "record");
    let issued = tokens.requests();
    assert!(
        issued.len() > 2,
        "expired tokens are fetched again: {issued:#?}"
    );
    assert!(
        issued
            .iter()
            .all(|r| r.contains("scope=repository%3Ateam%2Fapp%3Apull")
                || r.contains("scope=repository:team/app:pull")),
        "{issued:#?}"
    );
    assert!(recorded.1.contains(&format!(
        "id=\"{}\"",
        image
            .image(host_arch())
            .config
            .trim_start_matches("sha256:")
    )));

    // The tag holds the challenge and one token answer per realm and
    // service, keyed without scope or credentials.
    let entries = client.entries("auth");
    let ping_key = format!("GET https://{reg}/v2/");
    let pings: Vec<_> = keyed(&entries, &ping_key)
        .into_iter()
        .filter(|e| e["key"]["primary"] == ping_key.as_str())
        .collect();
    assert_eq!(pings.len(), 1, "{entries:#?}");
    assert_eq!(pings[0]["status"], 401);
    let challenge = pings[0]["headers"].to_string().to_ascii_lowercase();
    assert!(
        challenge.contains("www-authenticate") && challenge.contains(&realm),
        "{challenge}"
    );
    let token_entries = keyed(&entries, &format!("GET token {realm}"));
    assert_eq!(token_entries.len(), 1, "{entries:#?}");
    assert_eq!(token_entries[0]["key"]["variance"]["service"], service);
    assert_eq!(token_entries[0]["status"], 200);
    for e in &entries {
        assert!(
            !e["key"].to_string().contains("eyJ"),
            "no token in a key: {e}"
        );
    }
    // No token the token server issued is stored anywhere (every one
    // starts with its JWT header `{"typ":"JWT","alg":"ES256",…`): the
    // token answer holds a placeholder.
    let found = crate::integrity::objects_containing(&server.store_dir(), b"eyJ0eXAiOiJKV1Qi");
    assert!(found.is_empty(), "issued tokens are stored in {found:?}");

    // btrfly spoke HTTP/2 to the registry (it negotiates h2 over TLS).
    let log = registry.log();
    assert!(
        log.contains("GET /v2/team/app/manifests/1.0 HTTP/2.0\""),
        "{log}"
    );

    // --- the registry and its token server disappear ---
    registry.stop();
    tokens.stop();
    world.stop_pusher();

    // --- playback, a fresh client with no token ---
    let client = Client::new(&server, &world, "b");
    let env = client.start("playback", "auth");
    let replayed = pull(&client, &env, "play");
    assert_eq!(replayed, recorded);

    // Any token, or none, is accepted; the challenge is replayed as it was.
    let curl = |args: &[&str], url: &str| {
        let mut c = Command::new("curl");
        client_env(&mut c);
        apply_env(&mut c, &env);
        c.args(["-sS", "--max-time", "60"]).args(args).arg(url);
        run_ok(&mut c)
    };
    let by_digest = format!("https://{reg}/v2/team/app/manifests/{manifest}");
    for auth in ["Authorization: Bearer not-a-token", "X-No-Auth: 1"] {
        let body = curl(
            &[
                "--fail",
                "-H",
                auth,
                "-H",
                "Accept: application/vnd.oci.image.manifest.v1+json",
            ],
            &by_digest,
        );
        assert_eq!(
            format!("sha256:{}", sha256_bytes(&body.stdout)),
            manifest,
            "{auth}"
        );
    }
    let ping = curl(
        &["-D", "-", "-o", "/dev/null"],
        &format!("https://{reg}/v2/"),
    );
    let ping = text(&ping.stdout).to_ascii_lowercase();
    assert!(
        ping.contains(" 401") && ping.contains(&format!("bearer realm=\"{realm}\"")),
        "{ping}"
    );
    assert_clean_stop(&client.stop("playback"), "playback");
}

/// A registry that serves a blob whose bytes do not match its digest: the
/// download is cut off, nothing is recorded, and playback misses rather
/// than serve it.
#[test]
fn a_blob_that_does_not_match_its_digest_is_not_recorded() {
    let world = World::new();
    let registry = DockerRegistry::start(
        &world.ca,
        world.storage.path(),
        &["registry.example.test"],
        &RegistryOptions::default(),
    );
    let reg = format!("registry.example.test:{}", registry.port());
    let image = write_oci_layout(&world.path("img"), "1.0", &["amd64"], "bad");
    world.push(&image, "app:1.0", None);
    let bad = image.image("amd64").layers[1].clone();
    let config = image.image("amd64").config.clone();
    // Tamper with the stored layer: same size, other bytes.
    let hex = bad.trim_start_matches("sha256:");
    let data = world
        .storage
        .path()
        .join("docker/registry/v2/blobs/sha256")
        .join(&hex[..2])
        .join(hex)
        .join("data");
    let mut bytes = std::fs::read(&data).expect("stored layer");
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&data, &bytes).expect("tamper");

    let server = world.btrfly(&["registry.example.test"], "");
    let client = Client::new(&server, &world, "a");
    let curl = |env: &[(String, String)], digest: &str, out: &str| {
        let mut c = Command::new("curl");
        client_env(&mut c);
        apply_env(&mut c, env);
        c.args(["-sS", "--max-time", "60", "-w", "%{http_code}", "-o"])
            .arg(world.path(out))
            .arg(format!("https://{reg}/v2/app/blobs/{digest}"));
        run(&mut c)
    };
    let env = client.start("record", "tampered");
    let got = curl(&env, &bad, "bad");
    assert!(!got.status.success(), "the client must not get it whole");
    let got = curl(&env, &config, "config");
    assert!(got.status.success(), "{}", text(&got.stderr));
    let stop = client.stop("record");
    let summary = text(&stop.stderr);
    assert!(
        summary.contains(&format!("does not match the expected {hex}")),
        "{summary}"
    );
    let entries = client.entries("tampered");
    assert!(
        keyed(&entries, &format!("GET blob {bad}")).is_empty(),
        "{entries:#?}"
    );
    assert_eq!(keyed(&entries, &format!("GET blob {config}")).len(), 1);

    registry.stop();
    world.stop_pusher();
    let env = client.start("playback", "tampered");
    let got = curl(&env, &bad, "bad-replayed");
    assert_eq!(text(&got.stdout), "404", "a miss, never the tampered body");
    let got = curl(&env, &config, "config-replayed");
    assert_eq!(text(&got.stdout), "200");
    assert_eq!(
        std::fs::read(world.path("config-replayed")).expect("config"),
        image.blob(&config)
    );
    let stop = client.stop("playback");
    assert_eq!(stop.status.code(), Some(1), "{}", text(&stop.stderr));
}
