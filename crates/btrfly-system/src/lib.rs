//! The machine configuration of a transparent btrfly session: point the
//! stub resolver at btrfly's DNS server and trust btrfly's CA, then put
//! back exactly what was there before.
//!
//! `btrfly start record|playback --system` calls [`System::apply`],
//! `btrfly stop` calls [`System::restore`], `btrfly status` shows
//! [`System::status`]. All of it runs as root on the build machine; every
//! path is configurable ([`SystemPaths::under`]) so tests work on a
//! directory tree or in a private mount namespace, never on the host's own
//! resolver or trust store.
//!
//! ```no_run
//! # fn demo(ca_pem: &str) -> Result<(), btrfly_system::SystemError> {
//! use btrfly_system::{CaCertificate, Plan, ResolverPlan, System, TrustPlan};
//!
//! let system = System::host();
//! let applied = system.apply(&Plan {
//!     session: "record tag=nightly".into(),
//!     resolver: Some(ResolverPlan { nameservers: vec!["192.0.2.53".parse().expect("literal")] }),
//!     trust: Some(TrustPlan { ca: CaCertificate::from_pem(ca_pem)? }),
//! })?;
//! println!("{applied}");
//! // ... the build runs ...
//! println!("{}", system.restore()?);
//! # Ok(())
//! # }
//! ```
//!
//! # What apply does, in order
//! 1. Takes the lock `<state_dir>/lock` and refuses with
//!    [`SystemError::AlreadyApplied`] when a state file exists (a session
//!    is configured, or a crashed one left its state: restore first).
//! 2. Looks at everything it will touch and writes the **state file**
//!    (`<state_dir>/state.json`, directory mode 0700, file 0600) with the
//!    prior state of each path: a file's exact bytes (kept in
//!    `<state_dir>/prior/<sha256>`), mode and owner; a symbolic link's exact
//!    target and owner; or its absence. Nothing has changed yet.
//! 3. **Trust.** With Debian's `update-ca-certificates`: writes the CA to
//!    `/usr/local/share/ca-certificates/btrfly-ca.crt` and runs the tool,
//!    which rebuilds `/etc/ssl/certs/ca-certificates.crt` (read by curl,
//!    git, wget, Python's `ssl`, pip's truststore, Go), the hashed links in
//!    `/etc/ssl/certs`, and runs its hooks (ca-certificates-java updates
//!    Java's `cacerts`). Without the tool: appends the CA to the bundle in
//!    place (or creates the bundle). Either way the bundle is then read
//!    back and must hold the CA. Stores left alone (NSS databases; Java's
//!    keystore when no hook updated it) are listed in [`TrustApplied`].
//! 4. **Resolver**, last, so that no client reaches btrfly before it is
//!    trusted. resolv.conf(5) gets btrfly's nameservers (port 53: the file
//!    has no port), a marker comment and the `search`/`domain` lines of the
//!    previous file:
//!    * a regular file, or a file **bind-mounted** over it (Docker, Podman,
//!      `ip netns exec`): written **in place** (same inode, mode, owner);
//!      rename(2) over a mount point fails and would detach the runtime's
//!      file;
//!    * a **symbolic link** (systemd-resolved's stub, resolvconf,
//!      NetworkManager): the link itself is replaced by a regular file, and
//!      restore recreates the link with its exact target. Writing through
//!      the link instead would edit a file under `/run` that its daemon
//!      regenerates at any moment (losing btrfly's change) and that other
//!      consumers may read directly;
//!    * absent: created, and removed again by restore.
//!
//!    The [`Manager`] found (from the link target, the mount table, the
//!    file's header and `/run`) is reported with what it may do later
//!    ([`Manager::later`]): NetworkManager, in particular, rewrites a
//!    regular resolv.conf on its next DNS change; `status` shows that as
//!    [`Drift::Changed`].
//! 5. Marks the state complete.
//!
//! A failing step rolls back everything done so far (resolver first) and
//! returns [`SystemError::RolledBack`]: the machine never stays pointed at
//! a resolver whose session failed to start.
//!
//! # What restore does
//! Reads the state file — also one left by a crash, at any point after
//! step 2 — and puts every path back byte for byte: resolv.conf first, then
//! the CA file, then `update-ca-certificates --fresh` (without `--fresh`
//! Debian's script keeps dangling links to a removed CA and does not tell
//! its hooks), then every regenerated store file is compared with its prior
//! bytes and, if it differs while nobody else changed it since apply, the
//! prior bytes are written back. Files someone else changed after apply are
//! handled as [`RestoreAction`] says. Only when everything is back is the
//! state file removed; so a restore that failed half-way is retried by the
//! next one, and a restore with no state file is a successful no-op.

mod error;
mod fsops;
mod machine;
pub mod mounts;
mod paths;
mod plan;
mod resolver;
mod state;
mod tool;
mod trust;

#[cfg(feature = "test-support")]
pub mod test_support;

pub use error::{Result, SystemError};
pub use fsops::LinkTarget;
pub use machine::System;
pub use paths::{SystemPaths, CA_FILE_NAME, STATE_DIR};
pub use plan::{
    Applied, AppliedSummary, Drift, Plan, ResolverAction, ResolverApplied, ResolverPlan,
    ResolverStatus, RestoreAction, RestoreStep, Restored, Status, TrustApplied, TrustPlan,
    TrustStatus,
};
pub use resolver::{nameservers, Manager, ResolvConfKind, MARKER, MAX_NAMESERVERS};
pub use trust::{CaCertificate, OtherStore, TrustMethod};
