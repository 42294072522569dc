//! [`System`]: apply, restore and status of a machine configuration.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use time::format_description::well_known::Rfc3339;

use crate::error::{Result, SystemError};
use crate::fsops::{
    append_in_place, current_sha256, put_back, read_file_opt, replace_with_file, sha256_hex,
    snapshot, write_in_place, Prior, PutBack, Snapshot,
};
use crate::mounts::mount_at;
use crate::paths::{SystemPaths, CA_FILE_NAME};
use crate::plan::{
    Applied, AppliedSummary, Drift, Plan, ResolverAction, ResolverApplied, ResolverPlan,
    ResolverStatus, RestoreAction, RestoreStep, Restored, Status, TrustApplied, TrustPlan,
    TrustStatus,
};
use crate::resolver::{self, detect, environment_clues, Clues, ResolvConfKind, MARKER};
use crate::state::{
    Listing, ResolverState, State, StateDir, Touched, TrustState, Watched, STATE_VERSION,
};
use crate::tool;
use crate::trust::{
    bundle_contains, bundle_in_certs_dir, tool_args, untouched_stores, CaCertificate, TrustMethod,
};

/// Applies, restores and reports the machine configuration of a
/// transparent session. See the crate documentation for what each step
/// does and why.
#[derive(Debug, Clone)]
pub struct System {
    paths: SystemPaths,
    tool_deadline: Duration,
}

impl System {
    /// A system with these paths.
    pub fn new(paths: SystemPaths) -> Self {
        Self {
            paths,
            tool_deadline: tool::TOOL_DEADLINE,
        }
    }

    /// The running machine ([`SystemPaths::host`]).
    pub fn host() -> Self {
        Self::new(SystemPaths::host())
    }

    /// How long `update-ca-certificates` may run before it is killed and
    /// the step fails (default 180 s).
    pub fn with_tool_deadline(mut self, deadline: Duration) -> Self {
        self.tool_deadline = deadline;
        self
    }

    /// The paths in use.
    pub fn paths(&self) -> &SystemPaths {
        &self.paths
    }

    /// Applies `plan`: first records the state (prior bytes, links, modes
    /// of everything it will touch) in the state directory, then installs
    /// the CA, then points the resolver at btrfly (last, so that no client
    /// reaches btrfly before it is trusted). Returns what it did.
    ///
    /// # Errors
    /// * [`SystemError::InvalidPlan`], [`SystemError::AlreadyApplied`],
    ///   [`SystemError::NotAFile`] or an I/O error while looking: nothing
    ///   was changed.
    /// * [`SystemError::RolledBack`]: a step failed and everything changed
    ///   so far was put back (its `cause` says which step).
    /// * [`SystemError::RollbackFailed`]: a step failed and putting back
    ///   failed too; the state file is kept for [`System::restore`].
    pub fn apply(&self, plan: &Plan) -> Result<Applied> {
        plan.validate()?;
        let dir = StateDir::new(&self.paths.state_dir);
        let _lock = dir.lock()?;
        if let Some(existing) = dir.load()? {
            return Err(SystemError::AlreadyApplied {
                path: dir.state_file(),
                session: existing.session,
            });
        }
        dir.clear_blobs()?;
        let created = time::OffsetDateTime::now_utc()
            .format(&Rfc3339)
            .unwrap_or_default();

        // Look first, keep the prior bytes, write the state: nothing changed yet.
        let observed = (|| {
            let trust = match &plan.trust {
                Some(t) => Some(self.observe_trust(t, &dir)?),
                None => None,
            };
            let resolver = match &plan.resolver {
                Some(r) => Some(self.observe_resolver(r, &plan.session, &dir)?),
                None => None,
            };
            Ok((trust, resolver))
        })();
        let (trust, resolver) = match observed {
            Ok(o) => o,
            Err(e) => {
                let _ = dir.clear_blobs();
                return Err(e);
            }
        };
        let mut state = State {
            version: STATE_VERSION,
            session: plan.session.clone(),
            created,
            complete: false,
            resolver: resolver.as_ref().map(|r| r.state.clone()),
            trust: trust.as_ref().map(|t| t.state.clone()),
        };
        dir.save(&state)?;

        match self.change(&dir, &mut state, trust.as_ref(), resolver.as_ref()) {
            Ok(applied) => Ok(applied),
            Err(cause) => {
                tracing::warn!(error = %cause, "apply failed; restoring what was changed");
                let (_, failures) = self.put_back_all(&dir, &state);
                if failures.is_empty() {
                    match dir.clear() {
                        Ok(()) => Err(SystemError::RolledBack {
                            cause: Box::new(cause),
                        }),
                        Err(e) => Err(SystemError::RollbackFailed {
                            cause: Box::new(cause),
                            rollback: Box::new(e),
                            state_file: dir.state_file(),
                        }),
                    }
                } else {
                    Err(SystemError::RollbackFailed {
                        cause: Box::new(cause),
                        rollback: Box::new(SystemError::RestoreIncomplete {
                            failures,
                            state_file: dir.state_file(),
                        }),
                        state_file: dir.state_file(),
                    })
                }
            }
        }
    }

    /// Puts back everything the applied configuration changed, exactly as
    /// it was (bytes, symbolic link targets, modes, owners), resolver first,
    /// then removes the state file. Works the same after a crash (a state
    /// file from an apply that never finished) and is a successful no-op
    /// when nothing is applied, so a second call does nothing.
    ///
    /// A file someone else changed after apply is handled as documented on
    /// [`RestoreAction`]: resolv.conf gets its prior bytes back (the changed
    /// copy is saved under `<state_dir>/displaced/`); a trust bundle that a
    /// package update regenerated keeps its new content minus btrfly's CA.
    ///
    /// # Errors
    /// [`SystemError::RestoreIncomplete`] when a path could not be put back
    /// (everything else was; the state file is kept: run restore again),
    /// [`SystemError::State`] when the state file is unreadable (left for
    /// inspection), or an I/O error on the state directory.
    pub fn restore(&self) -> Result<Restored> {
        let dir = StateDir::new(&self.paths.state_dir);
        let nothing = Restored {
            state_file: dir.state_file(),
            session: None,
            steps: Vec::new(),
        };
        if !self.paths.state_dir.exists() {
            return Ok(nothing);
        }
        let _lock = dir.lock()?;
        let Some(state) = dir.load()? else {
            return Ok(nothing);
        };
        let (steps, failures) = self.put_back_all(&dir, &state);
        if !failures.is_empty() {
            return Err(SystemError::RestoreIncomplete {
                failures,
                state_file: dir.state_file(),
            });
        }
        dir.clear()?;
        Ok(Restored {
            state_file: dir.state_file(),
            session: Some(state.session),
            steps,
        })
    }

    /// What is configured now: the state file's gist, resolv.conf (what it
    /// is, who manages it, its nameservers, whether it changed since apply)
    /// and whether the bundle holds the applied CA. Changes nothing.
    ///
    /// # Errors
    /// [`SystemError::State`] for an unreadable state file, or an I/O
    /// error reading resolv.conf, the bundle or the mount table.
    pub fn status(&self) -> Result<Status> {
        let dir = StateDir::new(&self.paths.state_dir);
        let state = if dir.state_file().exists() {
            dir.load()?
        } else {
            None
        };
        let seen = self.look_at_resolv_conf()?;
        let text = seen.content.as_deref().unwrap_or_default();
        let nameservers = resolver::nameservers(text);
        let incomplete = state.as_ref().is_some_and(|s| !s.complete);
        let drift = match state.as_ref().and_then(|s| s.resolver.as_ref()) {
            None => Drift::NotApplied,
            // An apply that stopped (crashed) before it got to resolv.conf.
            Some(r) if incomplete && snapshot_matches(&seen.snap.prior, &r.prior) => {
                Drift::NotApplied
            }
            Some(r) => {
                let now_is_file = matches!(
                    seen.kind,
                    ResolvConfKind::File | ResolvConfKind::BindMount { .. }
                );
                if now_is_file && sha256_hex(text) == r.written_sha256 {
                    Drift::AsWritten
                } else {
                    Drift::Changed {
                        still_points_at_btrfly: nameservers.first() == r.nameservers.first()
                            && !nameservers.is_empty(),
                    }
                }
            }
        };
        let resolver = ResolverStatus {
            path: self.paths.resolv_conf.clone(),
            kind: seen.kind.clone(),
            manager: seen.manager.clone(),
            written_by_btrfly: text.starts_with(MARKER.as_bytes()),
            nameservers,
            drift,
        };
        let fingerprint = state
            .as_ref()
            .and_then(|s| s.trust.as_ref())
            .map(|t| t.fingerprint.clone());
        let bundle_path = state
            .as_ref()
            .and_then(|s| s.trust.as_ref())
            .and_then(|t| t.watched.first())
            .map_or_else(|| self.paths.bundle.clone(), |w| w.path.clone());
        let ca_in_bundle = match &fingerprint {
            None => None,
            Some(fp) => {
                let bundle = read_file_opt(&bundle_path)?.unwrap_or_default();
                Some(bundle_has_fingerprint(&bundle, fp))
            }
        };
        Ok(Status {
            state_file: dir.state_file(),
            applied: state.map(|s| AppliedSummary {
                nameservers: s
                    .resolver
                    .as_ref()
                    .map(|r| r.nameservers.clone())
                    .unwrap_or_default(),
                ca_fingerprint: s.trust.as_ref().map(|t| t.fingerprint.clone()),
                session: s.session,
                created: s.created,
                complete: s.complete,
            }),
            resolver,
            trust: TrustStatus {
                bundle: bundle_path,
                ca_in_bundle,
                ca_file_present: self.paths.ca_file().exists(),
            },
        })
    }

    // === looking ===

    fn look_at_resolv_conf(&self) -> Result<Seen> {
        let path = &self.paths.resolv_conf;
        let snap = snapshot(path)?;
        let mount = mount_at(&self.paths.mountinfo, path)?;
        let kind = match (&snap.prior, &mount) {
            (Prior::Absent, _) => ResolvConfKind::Absent,
            (Prior::Symlink { target, .. }, _) => ResolvConfKind::Symlink {
                target: target.clone(),
            },
            (Prior::File { .. }, Some(m)) => ResolvConfKind::BindMount {
                source: m.root.clone(),
            },
            (Prior::File { .. }, None) => ResolvConfKind::File,
            (Prior::Dir { .. }, _) => return Err(SystemError::NotAFile { path: path.clone() }),
        };
        // Through a link: what the manager's file says now.
        let content = read_file_opt(path)?;
        let (nm, podman, docker) = environment_clues(&self.paths.root, &self.paths.run_dir);
        let link_target = match &snap.prior {
            Prior::Symlink { target, .. } => Some(target),
            _ => None,
        };
        let manager = detect(&Clues {
            link_target,
            mount: mount.as_ref(),
            content: content.as_deref(),
            network_manager_running: nm,
            podman_container: podman,
            docker_container: docker,
        });
        Ok(Seen {
            snap,
            kind,
            content,
            manager,
        })
    }

    fn observe_resolver(
        &self,
        plan: &ResolverPlan,
        session: &str,
        dir: &StateDir,
    ) -> Result<ResolverPrep> {
        let seen = self.look_at_resolv_conf()?;
        dir.keep(&seen.snap)?;
        let content = resolver::render(&plan.nameservers, session, seen.content.as_deref());
        Ok(ResolverPrep {
            state: ResolverState {
                path: self.paths.resolv_conf.clone(),
                prior: seen.snap.prior,
                kind: seen.kind,
                manager: seen.manager,
                nameservers: plan.nameservers.clone(),
                written_sha256: sha256_hex(&content),
            },
            content,
        })
    }

    fn tool(&self) -> Option<PathBuf> {
        self.paths
            .update_ca_certificates
            .clone()
            .filter(|p| p.is_file())
    }

    fn observe_trust(&self, plan: &TrustPlan, dir: &StateDir) -> Result<TrustPrep> {
        let keep = |path: &Path| -> Result<Snapshot> {
            let s = snapshot(path)?;
            dir.keep(&s)?;
            Ok(s)
        };
        let pem = plan.ca.to_pem();
        let mut touched = Vec::new();
        let mut watched = Vec::new();
        let mut certs_dir = None;
        let (method, appended) = match self.tool() {
            Some(tool) => {
                if !bundle_in_certs_dir(&self.paths) {
                    return Err(SystemError::InvalidPlan(format!(
                        "the bundle {} must lie in {} for update-ca-certificates",
                        self.paths.bundle.display(),
                        self.paths.certs_dir.display()
                    )));
                }
                for d in missing_dirs(&self.paths.local_ca_dir) {
                    touched.push(Touched {
                        path: d,
                        prior: Prior::Absent,
                    });
                }
                let ca_file = self.paths.ca_file();
                touched.push(Touched {
                    prior: keep(&ca_file)?.prior,
                    path: ca_file.clone(),
                });
                for p in [&self.paths.bundle, &self.paths.java_cacerts] {
                    watched.push(Watched {
                        path: p.clone(),
                        prior: keep(p)?.prior,
                        after_sha256: None,
                    });
                }
                certs_dir = Some(list_dir(&self.paths.certs_dir, dir)?);
                (TrustMethod::UpdateCaCertificates { tool, ca_file }, None)
            }
            None => {
                if let Some(parent) = self.paths.bundle.parent() {
                    for d in missing_dirs(parent) {
                        touched.push(Touched {
                            path: d,
                            prior: Prior::Absent,
                        });
                    }
                }
                let snap = keep(&self.paths.bundle)?;
                let appended = match &snap.bytes {
                    Some(b) if !b.is_empty() && !b.ends_with(b"\n") => format!("\n{pem}"),
                    _ => pem.clone(),
                };
                watched.push(Watched {
                    path: self.paths.bundle.clone(),
                    prior: snap.prior,
                    after_sha256: None,
                });
                (TrustMethod::Bundle, Some(appended))
            }
        };
        Ok(TrustPrep {
            state: TrustState {
                fingerprint: plan.ca.fingerprint(),
                method,
                touched,
                watched,
                appended,
                certs_dir,
            },
            ca: plan.ca.clone(),
            pem,
        })
    }

    // === changing ===

    fn change(
        &self,
        dir: &StateDir,
        state: &mut State,
        trust: Option<&TrustPrep>,
        resolver: Option<&ResolverPrep>,
    ) -> Result<Applied> {
        let trust_applied = match trust {
            Some(t) => Some(self.install_ca(dir, state, t)?),
            None => None,
        };
        let resolver_applied = match resolver {
            Some(r) => Some(self.point_resolver(r)?),
            None => None,
        };
        state.complete = true;
        dir.save(state)?;
        Ok(Applied {
            state_file: dir.state_file(),
            resolver: resolver_applied,
            trust: trust_applied,
        })
    }

    fn install_ca(
        &self,
        dir: &StateDir,
        state: &mut State,
        prep: &TrustPrep,
    ) -> Result<TrustApplied> {
        for t in &prep.state.touched {
            if t.prior == Prior::Absent && t.path != self.paths.ca_file() {
                fs::create_dir(&t.path)
                    .map_err(|e| SystemError::io("create directory", &t.path, e))?;
            }
        }
        let step = match &prep.state.method {
            TrustMethod::UpdateCaCertificates { tool, ca_file } => {
                replace_with_file(ca_file, prep.pem.as_bytes(), 0o644, None)?;
                let args = tool_args(&self.paths, false);
                tool::run(tool, &args, self.tool_deadline)?;
                format!("{} {}", tool.display(), args.join(" "))
            }
            TrustMethod::Bundle => {
                let bundle = &self.paths.bundle;
                let appended = prep.state.appended.as_deref().unwrap_or(&prep.pem);
                if bundle.is_file() {
                    append_in_place(bundle, appended.as_bytes())?;
                } else {
                    replace_with_file(bundle, prep.pem.as_bytes(), 0o644, None)?;
                }
                format!("appending to {}", bundle.display())
            }
        };
        let bundle_now = read_file_opt(&self.paths.bundle)?.unwrap_or_default();
        if !bundle_contains(&bundle_now, prep.ca.der()) {
            return Err(SystemError::NotInBundle {
                bundle: self.paths.bundle.clone(),
                fingerprint: prep.ca.fingerprint(),
                step,
            });
        }
        let mut changed = Vec::new();
        if let Some(trust) = state.trust.as_mut() {
            for w in &mut trust.watched {
                w.after_sha256 = current_sha256(&w.path)?;
                if w.after_sha256 != prior_sha(&w.prior) {
                    changed.push(w.path.clone());
                }
            }
        }
        dir.save(state)?;
        let java_changed = changed.contains(&self.paths.java_cacerts);
        Ok(TrustApplied {
            fingerprint: prep.ca.fingerprint(),
            method: prep.state.method.clone(),
            bundle: self.paths.bundle.clone(),
            changed,
            untouched: untouched_stores(&self.paths, java_changed),
        })
    }

    fn point_resolver(&self, prep: &ResolverPrep) -> Result<ResolverApplied> {
        let s = &prep.state;
        let action = match &s.kind {
            ResolvConfKind::File | ResolvConfKind::BindMount { .. } => {
                write_in_place(&s.path, &prep.content)?;
                ResolverAction::WroteInPlace
            }
            ResolvConfKind::Symlink { target } => {
                replace_with_file(&s.path, &prep.content, 0o644, None)?;
                ResolverAction::ReplacedLink {
                    target: target.clone(),
                }
            }
            ResolvConfKind::Absent => {
                replace_with_file(&s.path, &prep.content, 0o644, None)?;
                ResolverAction::Created
            }
        };
        Ok(ResolverApplied {
            path: s.path.clone(),
            before: s.kind.clone(),
            manager: s.manager.clone(),
            action,
            nameservers: s.nameservers.clone(),
        })
    }

    // === putting back ===

    /// Puts back everything `state` records; returns the steps and one
    /// message per failure (continuing past failures).
    fn put_back_all(&self, dir: &StateDir, state: &State) -> (Vec<RestoreStep>, Vec<String>) {
        let mut steps = Vec::new();
        let mut failures = Vec::new();
        if let Some(r) = &state.resolver {
            match self.put_back_resolver(dir, r) {
                Ok(step) => steps.push(step),
                Err(e) => failures.push(e.to_string()),
            }
        }
        if let Some(t) = &state.trust {
            self.put_back_trust(dir, t, &mut steps, &mut failures);
        }
        (steps, failures)
    }

    fn put_back_resolver(&self, dir: &StateDir, r: &ResolverState) -> Result<RestoreStep> {
        let mut note = None;
        // A regular file that is neither btrfly's nor the prior one: someone
        // rewrote it after apply. Keep a copy before putting the prior back.
        if let Ok(meta) = fs::symlink_metadata(&r.path) {
            if meta.is_file() {
                if let Some(now) = read_file_opt(&r.path)? {
                    let sha = sha256_hex(&now);
                    if sha != r.written_sha256 && Some(sha) != prior_sha(&r.prior) {
                        let kept = dir.displace(&r.path, &now)?;
                        note = Some(format!(
                            "it had been changed after apply; that version is saved at {}",
                            kept.display()
                        ));
                    }
                }
            }
        }
        let bytes = dir.bytes_of(&r.prior)?;
        let done = put_back(&r.path, &r.prior, bytes.as_deref())?;
        Ok(RestoreStep {
            path: r.path.clone(),
            action: restore_action(done),
            note,
        })
    }

    fn put_back_trust(
        &self,
        dir: &StateDir,
        t: &TrustState,
        steps: &mut Vec<RestoreStep>,
        failures: &mut Vec<String>,
    ) {
        // What the watched files are now, before anything runs: a file that
        // differs from what apply left was changed by someone else.
        let before: Vec<Option<String>> = t
            .watched
            .iter()
            .map(|w| current_sha256(&w.path).ok().flatten())
            .collect();
        let touched_back = |steps: &mut Vec<RestoreStep>, failures: &mut Vec<String>| {
            for touched in t.touched.iter().rev() {
                let r = dir
                    .bytes_of(&touched.prior)
                    .and_then(|b| put_back(&touched.path, &touched.prior, b.as_deref()));
                match r {
                    Ok(done) => steps.push(RestoreStep {
                        path: touched.path.clone(),
                        action: restore_action(done),
                        note: None,
                    }),
                    Err(e) => failures.push(e.to_string()),
                }
            }
        };
        match &t.method {
            TrustMethod::UpdateCaCertificates { tool, ca_file } => {
                touched_back(steps, failures);
                let tool = self
                    .tool()
                    .or_else(|| Some(tool.clone()).filter(|p| p.is_file()));
                let mut regenerated = false;
                if let Some(tool) = tool {
                    // --fresh: without it the script keeps the dangling
                    // links to the removed CA and tells the hooks nothing.
                    let args = tool_args(&self.paths, true);
                    match tool::run(&tool, &args, self.tool_deadline) {
                        Ok(_) => {
                            regenerated = true;
                            steps.push(RestoreStep {
                                path: tool.clone(),
                                action: RestoreAction::ToolRun,
                                note: Some(args.join(" ")),
                            });
                        }
                        // The files are put back from the state below
                        // all the same; the failure is reported, not fatal.
                        Err(e) => steps.push(RestoreStep {
                            path: tool.clone(),
                            action: RestoreAction::ToolFailed,
                            note: Some(e.to_string()),
                        }),
                    }
                }
                if !regenerated {
                    if let Err(e) = remove_links_to(&self.paths.certs_dir, ca_file) {
                        failures.push(e.to_string());
                    }
                }
                let changed_by_others = t
                    .watched
                    .iter()
                    .zip(&before)
                    .any(|(w, b)| w.after_sha256.is_some() && *b != w.after_sha256);
                for (w, before) in t.watched.iter().zip(before) {
                    match self.put_back_watched(dir, t, w, before, regenerated) {
                        Ok(step) => steps.push(step),
                        Err(e) => failures.push(e.to_string()),
                    }
                }
                // The hashed links as they were, unless someone else
                // regenerated the store since apply: then the tool's view
                // of today's inputs stands.
                if let (Some(listing), false) = (&t.certs_dir, changed_by_others) {
                    let skip: Vec<PathBuf> = t.watched.iter().map(|w| w.path.clone()).collect();
                    match put_back_listing(dir, listing, &skip) {
                        Ok(step) => steps.push(step),
                        Err(e) => failures.push(e.to_string()),
                    }
                }
            }
            TrustMethod::Bundle => {
                for (w, before) in t.watched.iter().zip(before) {
                    match self.put_back_watched(dir, t, w, before, false) {
                        Ok(step) => steps.push(step),
                        Err(e) => failures.push(e.to_string()),
                    }
                }
                touched_back(steps, failures);
            }
        }
        // Whatever happened above: the bundle must not trust btrfly's CA
        // any more, unless it did before apply.
        if let Some(w) = t.watched.first() {
            let prior_had = dir
                .bytes_of(&w.prior)
                .ok()
                .flatten()
                .is_some_and(|b| bundle_has_fingerprint(&b, &t.fingerprint));
            let now = read_file_opt(&w.path).ok().flatten().unwrap_or_default();
            if !prior_had && bundle_has_fingerprint(&now, &t.fingerprint) {
                failures.push(format!(
                    "{} still holds btrfly's CA (sha256 {})",
                    w.path.display(),
                    t.fingerprint
                ));
            }
        }
    }

    fn put_back_watched(
        &self,
        dir: &StateDir,
        t: &TrustState,
        w: &Watched,
        before: Option<String>,
        regenerated: bool,
    ) -> Result<RestoreStep> {
        let step = |action, note: Option<String>| RestoreStep {
            path: w.path.clone(),
            action,
            note,
        };
        let now = current_sha256(&w.path)?;
        if now == prior_sha(&w.prior) && !matches!(w.prior, Prior::Symlink { .. }) {
            let action = if regenerated && now.is_some() {
                RestoreAction::Regenerated
            } else {
                RestoreAction::Unchanged
            };
            return Ok(step(action, None));
        }
        let changed_by_others = w.after_sha256.is_some() && before != w.after_sha256;
        if !changed_by_others {
            let bytes = dir.bytes_of(&w.prior)?;
            let done = put_back(&w.path, &w.prior, bytes.as_deref())?;
            let action = match done {
                PutBack::Unchanged => RestoreAction::Unchanged,
                _ if regenerated => RestoreAction::PriorBytesPutBack,
                other => restore_action(other),
            };
            return Ok(step(action, None));
        }
        if regenerated {
            return Ok(step(RestoreAction::KeptNewer, None));
        }
        // Someone else's newer bundle: cut out exactly what btrfly added.
        let current = read_file_opt(&w.path)?.unwrap_or_default();
        let pem_owned = t.appended.clone().unwrap_or_default();
        let candidates = [pem_owned.as_str(), pem_owned.trim_start_matches('\n')];
        for c in candidates.iter().filter(|c| !c.is_empty()) {
            if let Some(at) = find(&current, c.as_bytes()) {
                let mut cut = current[..at].to_vec();
                cut.extend_from_slice(&current[at + c.len()..]);
                write_in_place(&w.path, &cut)?;
                return Ok(step(RestoreAction::CaRemovedFromNewer, None));
            }
        }
        Ok(step(
            RestoreAction::KeptNewer,
            Some("btrfly's CA was not found in it".into()),
        ))
    }
}

/// What the resolver looks like now.
struct Seen {
    snap: Snapshot,
    kind: ResolvConfKind,
    /// The bytes read through the path (following a link).
    content: Option<Vec<u8>>,
    manager: resolver::Manager,
}

struct ResolverPrep {
    state: ResolverState,
    content: Vec<u8>,
}

struct TrustPrep {
    state: TrustState,
    ca: CaCertificate,
    pem: String,
}

/// Whether what is at a path now is what was there before apply.
fn snapshot_matches(now: &Prior, before: &Prior) -> bool {
    match (now, before) {
        (Prior::File { sha256: a, .. }, Prior::File { sha256: b, .. }) => a == b,
        (Prior::Symlink { target: a, .. }, Prior::Symlink { target: b, .. }) => a == b,
        (Prior::Absent, Prior::Absent) => true,
        _ => false,
    }
}

fn prior_sha(prior: &Prior) -> Option<String> {
    match prior {
        Prior::File { sha256, .. } => Some(sha256.clone()),
        _ => None,
    }
}

fn restore_action(p: PutBack) -> RestoreAction {
    match p {
        PutBack::Unchanged => RestoreAction::Unchanged,
        PutBack::Rewritten => RestoreAction::RewrittenInPlace,
        PutBack::Recreated => RestoreAction::Recreated,
        PutBack::Removed => RestoreAction::Removed,
        PutBack::LeftNonEmptyDir => RestoreAction::LeftNonEmptyDir,
    }
}

/// The directories from the top-most missing one down to `dir` itself.
fn missing_dirs(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = dir
        .ancestors()
        .take_while(|d| !d.as_os_str().is_empty() && fs::symlink_metadata(d).is_err())
        .map(Path::to_path_buf)
        .collect();
    out.reverse();
    out
}

fn bundle_has_fingerprint(bundle: &[u8], fingerprint: &str) -> bool {
    use rustls_pki_types::pem::PemObject;
    rustls_pki_types::CertificateDer::pem_slice_iter(bundle)
        .map_while(|c| c.ok())
        .any(|c| sha256_hex(c.as_ref()) == fingerprint)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The entries of `path` (not recursing), their prior bytes kept.
fn list_dir(path: &Path, state: &StateDir) -> Result<Listing> {
    let mut entries = BTreeMap::new();
    let read = match fs::read_dir(path) {
        Ok(r) => r,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Listing {
                dir: path.into(),
                entries,
            })
        }
        Err(e) => return Err(SystemError::io("list", path, e)),
    };
    for entry in read {
        let entry = entry.map_err(|e| SystemError::io("list", path, e))?;
        let Some(name) = entry.file_name().to_str().map(String::from) else {
            continue;
        };
        let snap = snapshot(&entry.path())?;
        if matches!(snap.prior, Prior::Dir { .. }) {
            continue;
        }
        state.keep(&snap)?;
        entries.insert(name, snap.prior);
    }
    Ok(Listing {
        dir: path.into(),
        entries,
    })
}

/// Makes the entries of a directory what `listing` recorded: removes the
/// new ones, puts back the others (`skip`: paths handled elsewhere).
fn put_back_listing(state: &StateDir, listing: &Listing, skip: &[PathBuf]) -> Result<RestoreStep> {
    let (mut put, mut removed) = (0, 0);
    let read = fs::read_dir(&listing.dir).map_err(|e| SystemError::io("list", &listing.dir, e))?;
    for entry in read {
        let entry = entry.map_err(|e| SystemError::io("list", &listing.dir, e))?;
        let path = entry.path();
        let known = entry
            .file_name()
            .to_str()
            .is_some_and(|n| listing.entries.contains_key(n));
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        if !known && !is_dir && !skip.contains(&path) {
            fs::remove_file(&path).map_err(|e| SystemError::io("remove", &path, e))?;
            removed += 1;
        }
    }
    for (name, prior) in &listing.entries {
        let path = listing.dir.join(name);
        if skip.contains(&path) {
            continue;
        }
        let bytes = state.bytes_of(prior)?;
        if put_back(&path, prior, bytes.as_deref())? != PutBack::Unchanged {
            put += 1;
        }
    }
    Ok(RestoreStep {
        path: listing.dir.clone(),
        action: RestoreAction::DirectoryPutBack {
            put_back: put,
            removed,
        },
        note: None,
    })
}

/// Without `update-ca-certificates` to clean up: removes the links in
/// `certs_dir` that lead to btrfly's CA file (`btrfly-ca.pem` and the
/// `HASH.N` links to it).
fn remove_links_to(certs_dir: &Path, ca_file: &Path) -> Result<()> {
    let pem_name = format!("{}.pem", CA_FILE_NAME.trim_end_matches(".crt"));
    let entries = match fs::read_dir(certs_dir) {
        Ok(e) => e,
        Err(_) => return Ok(()),
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(target) = fs::read_link(&path) else {
            continue;
        };
        if target == ca_file
            || target == Path::new(&pem_name)
            || path.file_name() == Some(pem_name.as_ref())
        {
            fs::remove_file(&path).map_err(|e| SystemError::io("remove", &path, e))?;
        }
    }
    Ok(())
}
