//! `btrfly serve`: wire the parts together and run until SIGINT/SIGTERM.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use btrfly_ca::CertificateAuthority;
use btrfly_config::Config;
use btrfly_control::{ControlServer, ControlState};
use btrfly_core::Adapter;
use btrfly_layers::classify::Adapters;
use btrfly_layers::SessionRegistry;
use btrfly_proxy::{GatewayApp, ProxyListener, UpstreamResolver};
use btrfly_store::Store;
use pingora_core::server::configuration::ServerConf;
use tokio::sync::watch;

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("info,pingora_core=warn,pingora_proxy=warn")
    });
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// The admin token for the control API, created on first start (0600).
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

pub async fn serve(config_path: Option<PathBuf>) -> Result<ExitCode> {
    init_logging();
    // Both ring and aws-lc may be compiled in; pick one explicitly.
    let _ = rustls::crypto::ring::default_provider().install_default();

    let config = match &config_path {
        Some(p) => Config::load(p)?,
        None => Config::default(),
    };
    let data_dir = config.data_dir();
    create_private_dir(&data_dir)?;
    let token = load_or_create_token(&data_dir)?;
    let ca = Arc::new(CertificateAuthority::load_or_create(&data_dir)?);

    // The backend is proven usable (bucket there, credentials accepted)
    // before any listener opens.
    let store = Store::open(&config).context("storage is not usable")?;
    store.check().await.context("storage is not usable")?;

    let bundle = btrfly_proxy::roots::write_upstream_bundle(
        config.upstream.ca_file.as_deref(),
        &data_dir.join("upstream-roots.pem"),
    )?;
    let sessions = Arc::new(SessionRegistry::new(store.clone()));
    let stack = btrfly_layers::gateway(sessions.clone(), adapters(&config)?, store.clone());
    let resolver = UpstreamResolver::new(config.upstream.resolve.clone());
    let timeout = Duration::from_secs(config.upstream.connect_timeout_secs.unwrap_or(10));
    let app = GatewayApp::new(stack, store.clone(), resolver, timeout);
    let conf = ServerConf {
        ca_file: Some(bundle.to_string_lossy().into_owned()),
        ..ServerConf::default()
    };
    let proxy_app = pingora_proxy::http_proxy(&Arc::new(conf), app);

    let proxy = ProxyListener::bind(config.proxy.listen, ca.clone(), sessions.clone(), proxy_app)
        .await
        .with_context(|| format!("binding the proxy listener on {}", config.proxy.listen))?;
    let proxy_addr = proxy.local_addr()?;
    let control = ControlServer::bind(
        config.control.listen,
        ControlState {
            sessions: sessions.clone(),
            ca_pem: ca.cert_pem().to_owned(),
            proxy_advertise: advertised(&config, proxy_addr),
            token,
        },
    )
    .await
    .with_context(|| format!("binding the control listener on {}", config.control.listen))?;
    let control_addr = control.local_addr()?;
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
            Some(server)
        }
        None => None,
    };

    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    println!("listening on {proxy_addr} (proxy)");
    println!("listening on {control_addr} (control)");
    tasks.spawn(proxy.run(shutdown_rx.clone()));
    tasks.spawn(control.run(shutdown_rx.clone()));
    // Session counters to the store, sessions stopped through other
    // replicas; the last counters are written on shutdown.
    tasks.spawn(sessions.clone().run_replication(shutdown_rx.clone()));
    if let Some(dns) = dns {
        println!("listening on {} (dns)", dns.local_addr());
        let rx = shutdown_rx.clone();
        tasks.spawn(async move {
            if let Err(e) = dns.run(rx).await {
                tracing::error!("dns server: {e}");
            }
        });
    }
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
