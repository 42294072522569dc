//! Sessions bound to a client address (transparent mode).
//!
//! A transparent client sends no credential: btrfly's DNS sent it to the
//! gateway, which knows it only by its source address. `btrfly start
//! --system` binds the session it started to the address the control API
//! sees (or `--client-ip`); the transparent listeners then look the session
//! up by the connection's peer address and present its credential to the
//! gateway as if the client had sent `Proxy-Authorization` itself. One
//! address has at most one active session; the binding ends with the
//! session. Bindings live in this replica's memory: a transparent client
//! must reach the replica it registered with.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::RwLock;

use base64::Engine;

use crate::error::SessionError;
use crate::registry::SessionRegistry;

/// Address → (session id, secret) of the session bound to it.
#[derive(Default)]
pub(crate) struct AddressBindings {
    map: RwLock<HashMap<IpAddr, (String, String)>>,
}

/// The canonical form of a client address: an IPv4-mapped IPv6 address
/// (`::ffff:192.0.2.1`, as a dual-stack socket reports IPv4 peers) is the
/// IPv4 address.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

impl SessionRegistry {
    /// Binds the session `id` (authenticated by `secret`) to client address
    /// `ip`, replacing a binding of the same session or of a session that has
    /// ended.
    ///
    /// # Errors
    /// [`SessionError::NotFound`] when `id`/`secret` do not name an active
    /// session; [`SessionError::AddressTaken`] when another active session
    /// is bound to `ip`.
    pub async fn bind_address(
        &self,
        ip: IpAddr,
        id: &str,
        secret: &str,
    ) -> Result<(), SessionError> {
        let ip = canonical(ip);
        if self.authenticate(id, secret).await.is_none() {
            return Err(SessionError::NotFound(id.to_owned()));
        }
        let current = self.bound_session(ip);
        if let Some((other, _)) = current {
            if other != id && self.get(&other).is_some_and(|s| s.is_active()) {
                return Err(SessionError::AddressTaken {
                    address: ip,
                    session: other,
                });
            }
        }
        self.addresses()
            .map
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(ip, (id.to_owned(), secret.to_owned()));
        tracing::info!(%ip, session = id, "session bound to client address");
        Ok(())
    }

    /// The `Proxy-Authorization` value (`Basic base64(id:secret)`) of the
    /// active session bound to `ip`, or `None` (no binding, or its session
    /// has ended: the binding is then dropped).
    pub fn credential_for_address(&self, ip: IpAddr) -> Option<Vec<u8>> {
        let ip = canonical(ip);
        let (id, secret) = self.bound_session(ip)?;
        if !self.get(&id).is_some_and(|s| s.is_active()) {
            self.addresses()
                .map
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&ip);
            return None;
        }
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"));
        Some(format!("Basic {basic}").into_bytes())
    }

    /// The addresses bound to session `id`.
    pub fn addresses_of(&self, id: &str) -> Vec<IpAddr> {
        self.addresses()
            .map
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|(_, (bound, _))| bound == id)
            .map(|(ip, _)| *ip)
            .collect()
    }

    /// Drops every binding of session `id` (called when it stops).
    pub(crate) fn unbind_session(&self, id: &str) {
        self.addresses()
            .map
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|_, (bound, _)| bound != id);
    }

    fn bound_session(&self, ip: IpAddr) -> Option<(String, String)> {
        self.addresses()
            .map
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&ip)
            .cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use btrfly_core::{Mode, Tag};
    use btrfly_store::Store;

    #[tokio::test]
    async fn an_address_has_one_active_session_and_loses_it_at_stop() {
        let reg = SessionRegistry::new(Store::memory().expect("store"));
        let a = reg
            .create(Tag::new("a").expect("tag"), Mode::Record, false)
            .await
            .expect("a");
        let b = reg
            .create(Tag::new("b").expect("tag"), Mode::Record, false)
            .await
            .expect("b");
        let (a_id, b_id) = (a.session.info.id.to_string(), b.session.info.id.to_string());
        let ip: IpAddr = "192.0.2.10".parse().expect("ip");
        let mapped: IpAddr = "::ffff:192.0.2.10".parse().expect("ip");

        let err = reg
            .bind_address(ip, &a_id, "wrong")
            .await
            .expect_err("bad secret");
        assert!(matches!(err, SessionError::NotFound(_)), "{err}");
        assert_eq!(reg.credential_for_address(ip), None);

        reg.bind_address(ip, &a_id, &a.secret)
            .await
            .expect("bind a");
        let cred = reg
            .credential_for_address(mapped)
            .expect("mapped form is the same client");
        let session = reg
            .authenticate_header(Some(&cred))
            .await
            .expect("credential works");
        assert_eq!(session.info.id.as_str(), a_id);
        assert_eq!(reg.addresses_of(&a_id), vec![ip]);
        // Binding again to the same session is fine; another session is refused.
        reg.bind_address(mapped, &a_id, &a.secret)
            .await
            .expect("rebind a");
        let err = reg
            .bind_address(ip, &b_id, &b.secret)
            .await
            .expect_err("taken");
        assert!(err.to_string().contains("192.0.2.10"), "{err}");
        assert_eq!(
            reg.credential_for_address("192.0.2.11".parse().expect("ip")),
            None
        );

        reg.stop(&a_id).await.expect("stop a");
        assert_eq!(
            reg.credential_for_address(ip),
            None,
            "ends with its session"
        );
        reg.bind_address(ip, &b_id, &b.secret)
            .await
            .expect("free again");
        assert!(reg.credential_for_address(ip).is_some());
    }
}
