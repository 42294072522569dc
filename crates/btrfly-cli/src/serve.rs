//! `btrfly serve`: wire the parts together and run until SIGINT/SIGTERM.

use std::io::IsTerminal;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use btrfly_ca::CertificateAuthority;
use btrfly_config::{Backend, Config};
use btrfly_control::{ControlLimits, ControlServer, ControlState};
use btrfly_core::{Adapter, Sha256};
use btrfly_gateway::Adapters;
use btrfly_proxy::{
    EgressPolicy, GatewayApp, Limits, ProxyListener, Transparent, TransparentListener,
    UpstreamResolver,
};
use btrfly_session::SessionRegistry;
use btrfly_store::{GcsOptions, Identity, IdentityCheck, S3Options, Store, StoreOptions};
use pingora_core::server::configuration::ServerConf;
use tokio::sync::watch;

/// How `btrfly serve` writes its log lines (`--log-format`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Text for a person (colour on a terminal).
    Human,
    /// One JSON object a line: `timestamp`, `level`, `fields` (the
    /// message and the event's fields) and `span` (a request's session,
    /// tag, mode, adapter, key, outcome).
    Json,
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("info,pingora_core=warn,pingora_proxy=warn")
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Human => {
            // Colour only for a person at a terminal: a log file or a pipe
            // gets plain text (NO_COLOR turns it off everywhere).
            let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
            builder.with_ansi(ansi).try_init()
        }
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
    };
}

/// The first admin token of the control API, created on first start
/// (0600).
fn load_or_create_token(data_dir: &Path) -> Result<String> {
    let path = data_dir.join("token");
    if let Ok(t) = std::fs::read_to_string(&path) {
        let t = t.trim().to_owned();
        if !t.is_empty() {
            return Ok(t);
        }
    }
    let bytes: [u8; 24] = rand::random();
    let token = hex::encode(bytes);
    btrfly_ca::write_private(&path, format!("{token}\n").as_bytes())
        .with_context(|| format!("writing the control token {}", path.display()))?;
    Ok(token)
}

fn create_private_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("creating the data dir {}", dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("restricting {}", dir.display()))?;
    }
    Ok(())
}

/// The control API speaks plain HTTP: on an address other hosts reach,
/// its token would cross the network in clear. Refused unless the
/// operator says so (`control.insecure_plain_http`).
fn check_control_listen(config: &Config) -> Result<()> {
    let addr = config.control.listen;
    if addr.ip().is_loopback() {
        return Ok(());
    }
    if config.control.insecure_plain_http {
        tracing::warn!(
            "control.listen {addr} is not loopback and the control API speaks plain HTTP: its token crosses the network in clear (control.insecure_plain_http = true)"
        );
        return Ok(());
    }
    anyhow::bail!(
        "control.listen {addr} is not a loopback address, and the control API speaks plain HTTP: its token would cross the network in clear. Keep control.listen on 127.0.0.1 (or [::1]) and reach it through a TLS-terminating proxy or an SSH tunnel, or set control.insecure_plain_http = true in [control] to accept the risk on a network you trust (README: \"Security notes\")"
    )
}

/// `[storage]` as the store's options.
pub(crate) fn store_options(config: &Config) -> Result<StoreOptions> {
    let storage = &config.storage;
    let missing = |b: Backend| {
        anyhow::anyhow!(
            "storage backend {}: no [storage.{}] table",
            b.as_str(),
            b.as_str()
        )
    };
    Ok(match storage.backend {
        Backend::Fs => StoreOptions::Fs {
            root: config.storage_root(),
        },
        Backend::Memory => StoreOptions::Memory,
        Backend::S3 => {
            let c = storage.s3.as_ref().ok_or_else(|| missing(Backend::S3))?;
            StoreOptions::S3(S3Options {
                bucket: c.bucket.clone(),
                endpoint: c.endpoint.clone(),
                region: c.region.clone(),
                prefix: c.prefix.clone(),
                access_key_id: c.access_key_id.clone(),
                secret_access_key: c.secret_access_key.clone(),
                session_token: c.session_token.clone(),
                virtual_host_style: c.virtual_host_style,
            })
        }
        Backend::Gcs => {
            let c = storage.gcs.as_ref().ok_or_else(|| missing(Backend::Gcs))?;
            StoreOptions::Gcs(GcsOptions {
                bucket: c.bucket.clone(),
                endpoint: c.endpoint.clone(),
                prefix: c.prefix.clone(),
                credential_path: c.credential_path.clone(),
                allow_anonymous: c.allow_anonymous,
            })
        }
    })
}

/// `[storage] timeout_secs` and `io_timeout_secs`.
pub(crate) fn store_timeouts(config: &Config) -> btrfly_store::StoreTimeouts {
    let (operation, io) = config.storage.timeouts();
    btrfly_store::StoreTimeouts { operation, io }
}

fn adapters(config: &Config) -> Result<Adapters> {
    let mut list: Vec<Arc<dyn Adapter>> = Vec::new();
    // Ecosystem adapters go first; the plain-files adapter claims everything
    // and so comes last.
    let oci = &config.adapters.oci;
    if oci.enabled {
        let settings = btrfly_adapter_oci::OciConfig {
            registries: oci.registries.clone(),
            auth_hosts: oci.auth_hosts.clone(),
            detect: oci.detect,
        };
        let adapter = btrfly_adapter_oci::OciAdapter::new(&settings)
            .map_err(|e| anyhow::anyhow!("adapters.oci.{e}"))?;
        list.push(Arc::new(adapter));
    }
    let go = &config.adapters.go;
    if go.enabled {
        let settings = btrfly_adapter_go::GoConfig::new(&go.proxy_hosts, &go.sumdb_hosts)
            .map_err(|e| anyhow::anyhow!("adapters.go.{e}"))?;
        list.push(Arc::new(btrfly_adapter_go::GoAdapter::new(settings)));
    }
    let cargo = &config.adapters.cargo;
    if cargo.enabled {
        let settings =
            btrfly_adapter_cargo::CargoConfig::new(&cargo.index_hosts, &cargo.download_hosts)
                .map_err(|e| anyhow::anyhow!("adapters.cargo.{e}"))?;
        list.push(Arc::new(btrfly_adapter_cargo::CargoAdapter::new(settings)));
    }
    let npm = &config.adapters.npm;
    if npm.enabled {
        let settings = btrfly_adapter_npm::NpmConfig::new(&npm.hosts)
            .map_err(|e| anyhow::anyhow!("adapters.npm.{e}"))?;
        list.push(Arc::new(btrfly_adapter_npm::NpmAdapter::new(settings)));
    }
    let pip = &config.adapters.pip;
    if pip.enabled {
        let settings = btrfly_adapter_pip::PipConfig::new(&pip.index_hosts, &pip.file_hosts)
            .map_err(|e| anyhow::anyhow!("adapters.pip.{e}"))?;
        list.push(Arc::new(btrfly_adapter_pip::PipAdapter::new(settings)));
    }
    if config.adapters.files.enabled {
        list.push(Arc::new(btrfly_adapter_files::FilesAdapter));
    }
    Ok(Adapters::new(list))
}

/// A listener that could not bind, with what to do about it.
fn bind_error(what: &str, key: &str, addr: SocketAddr, e: std::io::Error) -> anyhow::Error {
    let hint = match e.kind() {
        std::io::ErrorKind::AddrInUse => format!(
            ": another program listens there (another `btrfly serve`?). Stop it, or choose another address with {key} in a config file (btrfly serve --config FILE; port 0 picks a free one)"
        ),
        std::io::ErrorKind::PermissionDenied => format!(
            ": ports below 1024 need privileges; choose another address with {key} in a config file (btrfly serve --config FILE)"
        ),
        std::io::ErrorKind::AddrNotAvailable => format!(
            ": no interface of this machine has that address; fix {key} in the config file"
        ),
        _ => String::new(),
    };
    anyhow::anyhow!("binding the {what} listener on {addr}: {e}{hint}")
}

fn short_fingerprint(pem: &str) -> String {
    use rustls_pki_types::pem::PemObject;
    let der = rustls_pki_types::CertificateDer::from_pem_slice(pem.as_bytes())
        .map(|d| d.as_ref().to_vec())
        .unwrap_or_else(|_| pem.as_bytes().to_vec());
    Sha256::of(&der)[..16].to_owned()
}

/// Compares this server's CA and token with the store's identity (claiming
/// an empty store); refuses to serve a store that belongs to another CA or
/// token, naming the fix.
async fn check_identity(
    store: &Store,
    data_dir: &Path,
    ca: &CertificateAuthority,
    token: &str,
) -> Result<()> {
    let mine = Identity {
        ca_pem: ca.cert_pem().to_owned(),
        token_sha256: Sha256::of(token.as_bytes()),
        created_at: time::OffsetDateTime::now_utc(),
    };
    let check = store
        .claim_identity(&mine)
        .await
        .context("reading the store's identity")?;
    let fix = format!(
        "Every replica of one store shares the CA and the control token: copy ca.pem, ca-key.pem and token from the data_dir of a replica serving this store into {}, then start again (README: \"Several replicas on one bucket\")",
        data_dir.display()
    );
    let place = format!("{} at {}", store.backend(), store.location());
    match check {
        IdentityCheck::Claimed => {
            tracing::info!(store = %place, "the store now belongs to this server's CA and token");
            Ok(())
        }
        IdentityCheck::Matches => Ok(()),
        IdentityCheck::OtherCa { stored } => anyhow::bail!(
            "the store ({place}) belongs to another btrfly CA (sha256 {}) than this server's {} (sha256 {}): clients of the other replicas would not trust this one. {fix}",
            short_fingerprint(&stored.ca_pem),
            data_dir.join("ca.pem").display(),
            short_fingerprint(&mine.ca_pem)
        ),
        IdentityCheck::OtherToken { .. } => anyhow::bail!(
            "the store ({place}) belongs to this CA but another control token than {}: the CLI could not stop a session through this replica. {fix}",
            data_dir.join("token").display()
        ),
    }
}

fn advertised(config: &Config, bound: SocketAddr) -> String {
    if let Some(a) = &config.proxy.advertise {
        return a.clone();
    }
    let ip = match bound.ip() {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, bound.port()).to_string()
}

/// `btrfly serve`: checks the store (usable, and this server's identity is
/// its identity), opens the listeners, prints `listening on ADDR (WHAT)`
/// lines and runs until SIGINT or SIGTERM.
///
/// # Errors
/// An unreadable or invalid config, an unusable store, a store that
/// belongs to another CA or token, a listener that cannot bind.
pub async fn serve(config_path: Option<PathBuf>, log_format: LogFormat) -> Result<ExitCode> {
    init_logging(log_format);
    // Both ring and aws-lc may be compiled in; pick one explicitly.
    let _ = rustls::crypto::ring::default_provider().install_default();

    let config = match &config_path {
        Some(p) => Config::load(p)?,
        None => Config::default(),
    };
    let data_dir = config.data_dir();
    create_private_dir(&data_dir)?;

    // The backend is proven usable (bucket there, credentials accepted)
    // before any listener opens.
    let store = Store::open_with(&store_options(&config)?, store_timeouts(&config))
        .context("storage is not usable")?;
    store.check().await.context("storage is not usable")?;
    // Every replica of a store shares one CA and token: a data dir
    // without a CA does not mint a new one for a store that has one.
    let known = store
        .identity()
        .await
        .context("reading the store's identity")?;
    if known.is_some() && !data_dir.join("ca.pem").exists() {
        anyhow::bail!(
            "the store ({} at {}) already belongs to a btrfly CA, and this server's data_dir {} has none: every replica of one store shares the CA and the control token. Copy ca.pem, ca-key.pem and token from the data_dir of a replica serving this store into {}, then start again (README: \"Several replicas on one bucket\")",
            store.backend(),
            store.location(),
            data_dir.display(),
            data_dir.display()
        );
    }
    let token = load_or_create_token(&data_dir)?;
    let ca = Arc::new(CertificateAuthority::load_or_create(&data_dir)?);
    check_identity(&store, &data_dir, &ca, &token).await?;
    // Temp objects of writes that crashed (a killed server) are removed
    // once they are old enough that no replica can still be writing them;
    // only by a server that passed the identity checks (one refused there
    // exits without a sweep cut short in its log).
    let sweeper = store.clone();
    tokio::spawn(async move {
        match sweeper.sweep_tmp(btrfly_store::DEFAULT_SWEEP_AGE).await {
            Ok(s) if !s.removed.is_empty() => tracing::info!(
                "swept {} temp object(s) left by crashed writes (older than {}s)",
                s.removed.len(),
                btrfly_store::DEFAULT_SWEEP_AGE.as_secs()
            ),
            Ok(_) => {}
            Err(e) => tracing::warn!("sweeping temp objects of crashed writes: {e}"),
        }
    });

    let bundle = btrfly_ca::roots::write_upstream_bundle(
        config.upstream.ca_file.as_deref(),
        &data_dir.join("upstream-roots.pem"),
    )?;
    // /metrics: the store's operations (OpenDAL's layer, on every clone
    // made from here on) and the sessions' counters.
    let mut registry = prometheus_client::registry::Registry::with_prefix("btrfly");
    let store = store.with_metrics(&mut registry);
    // The token of <data_dir>/token is the store's first admin token.
    let tokens = Arc::new(
        btrfly_control::Tokens::open(store.clone(), &token)
            .await
            .context("reading the control tokens")?,
    );
    drop(token);
    let lease = config
        .sessions
        .lease()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let sessions = Arc::new(SessionRegistry::new(store.clone()).with_lease(lease));
    sessions.metrics().register(&mut registry);
    let adapters = adapters(&config)?;
    let stack = btrfly_gateway::gateway_with_mirror(
        sessions.clone(),
        adapters.clone(),
        store.clone(),
        config.mirror.serve_in_playback(),
    );
    let timeout = Duration::from_secs(config.upstream.connect_timeout_secs.unwrap_or(10));
    let policy = Arc::new(
        EgressPolicy::new(
            &config.policy.allow,
            config.upstream.resolve.keys().cloned(),
            &config.policy.ports(),
        )
        .context("policy.allow")?,
    );
    let limits = limits(&config);
    let conf = Arc::new(ServerConf {
        ca_file: Some(bundle.to_string_lossy().into_owned()),
        ..ServerConf::default()
    });
    // One Pingora app per listener, all over the same gateway stack.
    let make_app = || {
        let resolver = UpstreamResolver::new(config.upstream.resolve.clone());
        let app = GatewayApp::new(
            stack.clone(),
            store.clone(),
            resolver,
            policy.clone(),
            timeout,
        )
        .with_limits(limits.clone());
        pingora_proxy::http_proxy(&conf, app)
    };
    let proxy_app = make_app();
    let mut transparent = Vec::new();
    if let Some(t) = &config.transparent {
        for (kind, addr, key) in [
            (Transparent::Tls, t.listen_tls, "transparent.listen_tls"),
            (Transparent::Http, t.listen_http, "transparent.listen_http"),
        ] {
            let Some(addr) = addr else { continue };
            let listener =
                TransparentListener::bind(kind, addr, ca.clone(), sessions.clone(), make_app())
                    .await
                    .map_err(|e| bind_error(kind.label(), key, addr, e))?
                    .with_limits(limits.clone());
            policy.add_own_listener(listener.local_addr()?);
            transparent.push(listener);
        }
    }

    let proxy = ProxyListener::bind(
        config.proxy.listen,
        ca.clone(),
        sessions.clone(),
        policy.clone(),
        proxy_app,
    )
    .await
    .map_err(|e| bind_error("proxy", "proxy.listen", config.proxy.listen, e))?
    .with_limits(limits.clone());
    let proxy_addr = proxy.local_addr()?;
    policy.add_own_listener(proxy_addr);
    check_control_listen(&config)?;
    let mirror_added = Arc::new(tokio::sync::Notify::new());
    let control = ControlServer::bind(
        config.control.listen,
        ControlState {
            sessions: sessions.clone(),
            ca_pem: ca.cert_pem().to_owned(),
            proxy_advertise: advertised(&config, proxy_addr),
            tokens,
            metrics: Arc::new(registry),
            dns_advertise: dns_advertise(&config),
            // Imports key exchanges as this gateway records them.
            classify: Arc::new(move |head| adapters.classify(head)),
            mirror_added: mirror_added.clone(),
        },
    )
    .await
    .map_err(|e| bind_error("control", "control.listen", config.control.listen, e))?
    .with_limits(ControlLimits {
        max_connections: limits.max_connections,
        opening_timeout: limits.tls_handshake_timeout,
    });
    let control_addr = control.local_addr()?;
    policy.add_own_listener(control_addr);
    let dns = match &config.dns {
        Some(d) => {
            let v4 = d.answer_v4.or(match proxy_addr.ip() {
                IpAddr::V4(v4) if !v4.is_unspecified() => Some(v4),
                _ => Some(Ipv4Addr::LOCALHOST),
            });
            let server = btrfly_dns::DnsServer::bind(
                d.listen,
                btrfly_dns::DnsConfig {
                    v4,
                    v6: d.answer_v6,
                    ttl: d.ttl,
                },
            )
            .await
            .with_context(|| format!("binding the DNS listener on {}", d.listen))?;
            let server = if d.forward.is_empty() {
                server
            } else {
                server.with_forward(
                    btrfly_dns::Forward::new(&d.forward, &d.forward_to)
                        .context("setting up [dns] forward")?,
                )
            };
            Some(server)
        }
        None => None,
    };

    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    // The optional listeners first: whoever waits for the proxy and control
    // lines has seen these by then.
    if let Some(dns) = dns {
        println!("listening on {} (dns)", dns.local_addr());
        let rx = shutdown_rx.clone();
        tasks.spawn(async move {
            if let Err(e) = dns.run(rx).await {
                tracing::error!("dns server: {e}");
            }
        });
    }
    for listener in transparent {
        println!(
            "listening on {} ({})",
            listener.local_addr()?,
            listener.kind().label()
        );
        tasks.spawn(listener.run(shutdown_rx.clone()));
    }
    println!("listening on {proxy_addr} (proxy)");
    println!("listening on {control_addr} (control)");
    tasks.spawn(proxy.run(shutdown_rx.clone()));
    tasks.spawn(control.run(shutdown_rx.clone()));
    // Session counters to the store, sessions stopped through other
    // replicas; the last counters are written on shutdown.
    tasks.spawn(sessions.clone().run_replication(shutdown_rx.clone()));
    // The explicit mirror's fetcher, a client of the proxy listener.
    let mut fetcher =
        btrfly_mirror::FetcherConfig::new(dialable(proxy_addr), ca.cert_pem().to_owned());
    if let Some(n) = config.mirror.attempts {
        fetcher.attempts = n.max(1);
    }
    if let Some(s) = config.mirror.retry_delay_secs {
        fetcher.first_delay = Duration::from_secs(s);
    }
    if let Some(s) = config.mirror.poll_secs {
        fetcher.poll = Duration::from_secs(s.max(1));
    }
    tasks.spawn(
        btrfly_mirror::Fetcher::new(sessions.clone(), fetcher, mirror_added)
            .run(shutdown_rx.clone()),
    );
    tracing::info!(
        data_dir = %data_dir.display(),
        storage = store.backend(),
        "btrfly gateway ready"
    );

    wait_for_signal().await;
    tracing::info!("shutting down");
    let _ = shutdown_tx.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    Ok(ExitCode::SUCCESS)
}

/// An address this process can connect to for a listener bound to
/// `addr` (a wildcard becomes the loopback address of its family).
fn dialable(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(v4) if v4.is_unspecified() => {
            SocketAddr::new(Ipv4Addr::LOCALHOST.into(), addr.port())
        }
        IpAddr::V6(v6) if v6.is_unspecified() => {
            SocketAddr::new(std::net::Ipv6Addr::LOCALHOST.into(), addr.port())
        }
        _ => addr,
    }
}

/// The DNS address a build machine's resolv.conf can name: `[dns] listen`
/// on port 53 at a concrete address (resolv.conf has no port).
fn dns_advertise(config: &Config) -> Option<IpAddr> {
    let listen = config.dns.as_ref()?.listen;
    (listen.port() == 53 && !listen.ip().is_unspecified()).then_some(listen.ip())
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// `[limits]` over the proxy's defaults.
fn limits(config: &Config) -> Limits {
    let c = &config.limits;
    let d = Limits::default();
    Limits {
        max_connections: c.max_connections.unwrap_or(d.max_connections),
        max_url_bytes: c.max_url_bytes.unwrap_or(d.max_url_bytes),
        max_header_bytes: c.max_header_bytes.unwrap_or(d.max_header_bytes),
        upstream_read_timeout: c
            .upstream_read_timeout_secs
            .map_or(d.upstream_read_timeout, Duration::from_secs),
        tls_handshake_timeout: c
            .tls_handshake_timeout_secs
            .map_or(d.tls_handshake_timeout, Duration::from_secs),
    }
}
