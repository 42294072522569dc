//! What to configure, and the reports of what was done.

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;

use crate::error::{Result, SystemError};
use crate::fsops::LinkTarget;
use crate::resolver::{Manager, ResolvConfKind, MAX_NAMESERVERS};
use crate::trust::{describe_untouched, CaCertificate, OtherStore, TrustMethod};

/// A machine configuration for a transparent session.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Who applies it, e.g. `"record tag=nightly on https://btrfly.example.test:8081"`;
    /// written into resolv.conf's comment and shown by `status`.
    pub session: String,
    /// Point the stub resolver at btrfly's DNS server; `None` leaves it.
    pub resolver: Option<ResolverPlan>,
    /// Trust btrfly's CA; `None` leaves the trust store.
    pub trust: Option<TrustPlan>,
}

/// The resolver part of a [`Plan`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolverPlan {
    /// btrfly's DNS server addresses, in order: 1 to 3 (glibc's `MAXNS`),
    /// distinct. resolv.conf has no port: the server must listen on 53.
    pub nameservers: Vec<IpAddr>,
}

/// The trust part of a [`Plan`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustPlan {
    /// btrfly's CA certificate.
    pub ca: CaCertificate,
}

impl Plan {
    /// Checks the plan before anything is looked at.
    ///
    /// # Errors
    /// [`SystemError::InvalidPlan`] when it has no part, no or more than
    /// three nameservers, a repeated one, or an unspecified or multicast
    /// address.
    pub fn validate(&self) -> Result<()> {
        if self.resolver.is_none() && self.trust.is_none() {
            return Err(SystemError::InvalidPlan(
                "neither a resolver nor a CA to configure".into(),
            ));
        }
        if let Some(r) = &self.resolver {
            let n = r.nameservers.len();
            if n == 0 || n > MAX_NAMESERVERS {
                return Err(SystemError::InvalidPlan(format!(
                    "{n} nameservers; resolv.conf takes 1 to {MAX_NAMESERVERS}"
                )));
            }
            for (i, ns) in r.nameservers.iter().enumerate() {
                if ns.is_unspecified() || ns.is_multicast() {
                    return Err(SystemError::InvalidPlan(format!(
                        "nameserver {ns} is not a unicast address"
                    )));
                }
                if r.nameservers[..i].contains(ns) {
                    return Err(SystemError::InvalidPlan(format!(
                        "nameserver {ns} is listed twice"
                    )));
                }
            }
        }
        Ok(())
    }
}

/// What was done to resolv.conf.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResolverAction {
    /// The file (a regular file or a bind mount) was rewritten in place:
    /// same inode, mode and owner.
    WroteInPlace,
    /// The symbolic link was replaced by a regular file (mode 0644);
    /// restore puts the link back with its exact target.
    ReplacedLink {
        /// The link's target.
        target: LinkTarget,
    },
    /// There was no resolv.conf; one was created (mode 0644), and restore
    /// removes it.
    Created,
}

/// The resolver part of [`Applied`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolverApplied {
    /// The file.
    pub path: PathBuf,
    /// What it was before.
    pub before: ResolvConfKind,
    /// Who manages it.
    pub manager: Manager,
    /// What was done.
    pub action: ResolverAction,
    /// The nameservers it now lists.
    pub nameservers: Vec<IpAddr>,
}

/// The trust part of [`Applied`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustApplied {
    /// SHA-256 of the CA's DER, hex.
    pub fingerprint: String,
    /// How the CA was installed.
    pub method: TrustMethod,
    /// The PEM bundle that now holds it.
    pub bundle: PathBuf,
    /// Every store file whose bytes changed (the bundle; Java's keystore
    /// when the ca-certificates-java hook updated it).
    pub changed: Vec<PathBuf>,
    /// Stores that exist on this machine and were not changed.
    pub untouched: Vec<OtherStore>,
}

/// What [`crate::System::apply`] did; its `Display` is the text to show the
/// user, one change per line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// The state file `restore` reads.
    pub state_file: PathBuf,
    /// The resolver change, if planned.
    pub resolver: Option<ResolverApplied>,
    /// The trust change, if planned.
    pub trust: Option<TrustApplied>,
}

impl fmt::Display for Applied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(t) = &self.trust {
            match &t.method {
                TrustMethod::UpdateCaCertificates { tool, ca_file } => writeln!(
                    f,
                    "trust: btrfly's CA (sha256 {}) written to {} and {} run",
                    t.fingerprint,
                    ca_file.display(),
                    tool.display()
                )?,
                TrustMethod::Bundle => writeln!(
                    f,
                    "trust: btrfly's CA (sha256 {}) appended to {} (no update-ca-certificates on this machine)",
                    t.fingerprint,
                    t.bundle.display()
                )?,
            }
            for p in &t.changed {
                writeln!(f, "trust: changed {}", p.display())?;
            }
            if !t.untouched.is_empty() {
                for line in describe_untouched(&t.untouched).lines() {
                    writeln!(f, "trust: {line}")?;
                }
            }
        }
        if let Some(r) = &self.resolver {
            let ns: Vec<String> = r.nameservers.iter().map(ToString::to_string).collect();
            let what = match &r.action {
                ResolverAction::WroteInPlace => "rewritten in place".to_string(),
                ResolverAction::ReplacedLink { target } => {
                    format!("link to {target} replaced by a file (the link comes back on restore)")
                }
                ResolverAction::Created => "created".to_string(),
            };
            writeln!(
                f,
                "resolver: {} ({}, managed by {}) {what}: nameserver {}",
                r.path.display(),
                r.before,
                r.manager,
                ns.join(", ")
            )?;
            writeln!(f, "resolver: later: {}", r.manager.later())?;
        }
        write!(
            f,
            "state: {} (restore puts everything back)",
            self.state_file.display()
        )
    }
}

/// What restoring one path did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestoreAction {
    /// It already was as before.
    Unchanged,
    /// Its bytes (or mode, owner) were put back in place.
    RewrittenInPlace,
    /// The file or link was recreated exactly.
    Recreated,
    /// It did not exist before and was removed.
    Removed,
    /// A directory btrfly created holds someone else's files now: left.
    LeftNonEmptyDir,
    /// `update-ca-certificates --fresh` regenerated it byte for byte as before.
    Regenerated,
    /// The regenerated file differed from before: the prior bytes were put back.
    PriorBytesPutBack,
    /// Someone changed it after apply (e.g. a package update regenerated
    /// the bundle): left as the tool regenerated it now, without btrfly's CA.
    KeptNewer,
    /// Someone changed the bundle after apply: only btrfly's CA was cut out.
    CaRemovedFromNewer,
    /// The tool ran.
    ToolRun,
    /// The tool failed; every file it would have regenerated was put back
    /// from the state instead (its hooks may not have run).
    ToolFailed,
    /// A directory's entries (the hashed links in `/etc/ssl/certs`) were
    /// made what they were before.
    DirectoryPutBack {
        /// Entries recreated or rewritten.
        put_back: usize,
        /// Entries removed (they did not exist before).
        removed: usize,
    },
}

impl fmt::Display for RestoreAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Unchanged => "unchanged (already as before)",
            Self::RewrittenInPlace => "put back in place",
            Self::Recreated => "recreated as before",
            Self::Removed => "removed (it did not exist before)",
            Self::LeftNonEmptyDir => "left: it now holds files btrfly did not put there",
            Self::Regenerated => "regenerated, identical to before",
            Self::PriorBytesPutBack => "regenerated differently; the prior bytes were put back",
            Self::KeptNewer => {
                "changed by someone else since apply; kept as now regenerated (without btrfly's CA)"
            }
            Self::CaRemovedFromNewer => {
                "changed by someone else since apply; only btrfly's CA was cut out"
            }
            Self::ToolRun => "run",
            Self::ToolFailed => "failed; the files were put back from the state instead",
            Self::DirectoryPutBack { put_back, removed } => {
                return write!(
                    f,
                    "entries as before ({put_back} put back, {removed} removed)"
                )
            }
        })
    }
}

/// One line of [`Restored`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreStep {
    /// The path (or the tool) concerned.
    pub path: PathBuf,
    /// What was done.
    pub action: RestoreAction,
    /// More, e.g. where a file someone changed after apply was saved.
    pub note: Option<String>,
}

/// What [`crate::System::restore`] did; `Display` is the text for the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restored {
    /// The state file read (and removed).
    pub state_file: PathBuf,
    /// The session that had applied it; `None` when nothing was applied
    /// (then restore did nothing, successfully).
    pub session: Option<String>,
    /// One entry per path, in the order restored.
    pub steps: Vec<RestoreStep>,
}

impl Restored {
    /// Whether there was anything to restore.
    pub fn was_applied(&self) -> bool {
        self.session.is_some()
    }
}

impl fmt::Display for Restored {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some(session) = &self.session else {
            return write!(
                f,
                "nothing to restore: no state file at {}",
                self.state_file.display()
            );
        };
        writeln!(f, "restored what session {session} had changed:")?;
        for s in &self.steps {
            write!(f, "  {}: {}", s.path.display(), s.action)?;
            if let Some(n) = &s.note {
                write!(f, " ({n})")?;
            }
            writeln!(f)?;
        }
        write!(f, "state: {} removed", self.state_file.display())
    }
}

/// Whether resolv.conf is still what btrfly wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Drift {
    /// Nothing is applied to resolv.conf (or an apply that did not finish
    /// never got to it).
    NotApplied,
    /// Byte for byte what btrfly wrote.
    AsWritten,
    /// Changed since apply (e.g. NetworkManager rewrote it).
    Changed {
        /// Whether it still lists btrfly's nameservers first.
        still_points_at_btrfly: bool,
    },
}

/// What is configured on this machine now (see [`crate::System::status`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// Where the state file is (or would be).
    pub state_file: PathBuf,
    /// The applied configuration, when a state file is present.
    pub applied: Option<AppliedSummary>,
    /// resolv.conf now.
    pub resolver: ResolverStatus,
    /// The trust store now.
    pub trust: TrustStatus,
}

/// The state file's gist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedSummary {
    /// Who applied it.
    pub session: String,
    /// When (RFC 3339).
    pub created: String,
    /// `false`: apply did not finish (it crashed or is still running);
    /// restore puts back what it may have changed.
    pub complete: bool,
    /// The nameservers written, if the resolver was part of it.
    pub nameservers: Vec<IpAddr>,
    /// The CA's SHA-256, if trust was part of it.
    pub ca_fingerprint: Option<String>,
}

/// resolv.conf now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolverStatus {
    /// The file.
    pub path: PathBuf,
    /// What it is.
    pub kind: ResolvConfKind,
    /// Who manages it.
    pub manager: Manager,
    /// The nameservers it lists (through a link, if it is one).
    pub nameservers: Vec<IpAddr>,
    /// It starts with btrfly's marker line.
    pub written_by_btrfly: bool,
    /// Against the state file.
    pub drift: Drift,
}

/// The trust store now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustStatus {
    /// The PEM bundle looked at.
    pub bundle: PathBuf,
    /// Whether the bundle holds the applied CA (`None`: no CA applied).
    pub ca_in_bundle: Option<bool>,
    /// Whether `…/btrfly-ca.crt` is in the local CA directory.
    pub ca_file_present: bool,
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.applied {
            Some(a) => writeln!(
                f,
                "system: configured by session {} since {}{} (state {})",
                a.session,
                a.created,
                if a.complete {
                    ""
                } else {
                    ", apply did not finish: run restore"
                },
                self.state_file.display()
            )?,
            None => writeln!(
                f,
                "system: not configured by btrfly (no {})",
                self.state_file.display()
            )?,
        }
        let r = &self.resolver;
        let ns: Vec<String> = r.nameservers.iter().map(ToString::to_string).collect();
        writeln!(
            f,
            "resolver: {} is {}, managed by {}; nameserver {}{}",
            r.path.display(),
            r.kind,
            r.manager,
            if ns.is_empty() {
                "none".into()
            } else {
                ns.join(", ")
            },
            if r.written_by_btrfly {
                " (btrfly's)"
            } else {
                ""
            }
        )?;
        match r.drift {
            Drift::NotApplied | Drift::AsWritten => {}
            Drift::Changed {
                still_points_at_btrfly,
            } => writeln!(
                f,
                "resolver: changed since apply by someone else{}",
                if still_points_at_btrfly {
                    ""
                } else {
                    "; it no longer points at btrfly"
                }
            )?,
        }
        let t = &self.trust;
        match t.ca_in_bundle {
            Some(true) => write!(f, "trust: btrfly's CA is in {}", t.bundle.display()),
            Some(false) => write!(f, "trust: btrfly's CA is NOT in {}", t.bundle.display()),
            None if t.ca_file_present => write!(
                f,
                "trust: a btrfly CA file is in the local CA directory, but no state file says so"
            ),
            None => write!(f, "trust: no btrfly CA configured"),
        }
    }
}
