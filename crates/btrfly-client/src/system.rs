//! `btrfly start --system`, the machine half of `btrfly stop`, and
//! `btrfly status`: transparent mode on a build machine.
//!
//! `start --system` starts the session as usual, binds it to this machine's
//! address on the gateway (`POST /v1/sessions/{id}/bind`: the address the
//! control API sees, or `--client-ip`), learns btrfly's DNS address and CA
//! from the answer, and applies [`btrfly_system`]'s plan: the CA into the
//! system trust store, then resolv.conf pointed at btrfly's DNS. `stop`
//! restores first (so the machine never points at a resolver whose session
//! is gone), also when no session is active any more (after a crash, or a
//! second stop).

use std::net::IpAddr;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use btrfly_core::api::{BindRequest, StopRequest};
use btrfly_system::{CaCertificate, Plan, ResolverPlan, System, TrustPlan};

use crate::args::{CacheArgs, ModeArg, ServerArgs};
use crate::home;
use crate::target::connect;

/// The machine this CLI configures: the running machine's own paths.
fn system() -> System {
    System::host()
}

/// `btrfly start record|playback --tag=T --system [--client-ip IP]`.
///
/// # Errors
/// As `start`; the gateway serves no DNS on port 53; the address is bound to
/// another session; the machine cannot be configured (everything changed is
/// rolled back and the session ended again).
pub async fn start_system(
    args: &ServerArgs,
    mode: ModeArg,
    tag: &str,
    force: bool,
    client_ip: Option<IpAddr>,
) -> Result<ExitCode> {
    let system = system();
    if system.paths().state_file().exists() {
        bail!(
            "this machine is still configured for a transparent session (state file {}): run `btrfly stop` first",
            system.paths().state_file().display()
        );
    }
    let home = home::home();
    let caches = CacheArgs { keep_caches: true };
    let target = connect(args, None)?;
    let session = crate::commands::start_session(args, mode, tag, force, caches).await?;
    let undo = |why: anyhow::Error| async {
        let _ = target
            .client
            .stop(
                &session.id,
                &StopRequest {
                    seal: false,
                    secret: Some(session.secret.clone()),
                },
            )
            .await;
        let _ = home::clear_active(&home, &session);
        why
    };
    let bound = match target
        .client
        .bind(
            &session.id,
            &BindRequest {
                secret: session.secret.clone(),
                client_ip,
            },
        )
        .await
    {
        Ok(b) => b,
        Err(e) => return Err(undo(target.explain(e)).await),
    };
    let Some(dns) = bound.dns else {
        return Err(undo(anyhow::anyhow!(
            "the gateway at {} serves no DNS that this machine's resolv.conf can name: give it `[dns] listen = \"ADDR:53\"` at a concrete address",
            target.client.base()
        ))
        .await);
    };
    let ca = match CaCertificate::from_pem(&bound.ca_pem) {
        Ok(c) => c,
        Err(e) => return Err(undo(e.into()).await),
    };
    let plan = Plan {
        session: format!(
            "{} tag={} session={} on {}",
            session.mode,
            session.tag,
            session.id,
            target.client.base()
        ),
        resolver: Some(ResolverPlan {
            nameservers: vec![dns],
        }),
        trust: Some(TrustPlan { ca }),
    };
    let applied = match system.apply(&plan) {
        Ok(a) => a,
        Err(e) => {
            return Err(undo(anyhow::Error::new(e).context("configuring this machine")).await)
        }
    };
    println!(
        "btrfly: {} session {} for tag {} started, bound to client address {}",
        session.mode, session.id, session.tag, bound.client_ip
    );
    println!("{applied}");
    Ok(ExitCode::SUCCESS)
}

/// Puts the machine back if a transparent configuration is applied; prints
/// what it did. `Ok(false)`: nothing was applied.
///
/// # Errors
/// The restore failed (its state file is kept: the next `btrfly stop`
/// retries).
pub fn restore_if_applied() -> Result<bool> {
    let system = system();
    if !system.paths().state_file().exists() {
        return Ok(false);
    }
    let restored = system.restore().context(
        "restoring this machine's resolver and trust store (run `btrfly stop` again to retry)",
    )?;
    eprintln!("{restored}");
    Ok(true)
}

/// `btrfly status`: what is configured on this machine now, and the active
/// session of this `BTRFLY_HOME`.
///
/// # Errors
/// The machine's files cannot be read.
pub fn status() -> Result<ExitCode> {
    let home = home::home();
    match home::load_active(&home)? {
        Some(a) => println!(
            "session: {} session {} for tag {} on {}",
            a.mode, a.id, a.tag, a.server
        ),
        None => println!("session: none active in BTRFLY_HOME {}", home.display()),
    }
    let status = system()
        .status()
        .context("reading this machine's configuration")?;
    println!("{status}");
    Ok(ExitCode::SUCCESS)
}
