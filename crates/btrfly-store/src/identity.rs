//! The identity a store belongs to: the CA clients trust and the control
//! token, which every replica serving the store must share.
//!
//! `identity.json` holds the CA *certificate* (public) and the sha256 of
//! the control token — never the CA key or the token itself. The first
//! replica to start on a store writes it; every later start compares its
//! own CA and token with it (see `btrfly serve`), so a replica started with
//! a data dir of its own (and so a CA of its own, which clients of the
//! other replicas do not trust) is refused before it serves anything.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use btrfly_core::Sha256;

use crate::error::Result;
use crate::store::Store;

const IDENTITY_PATH: &str = "identity.json";

/// What replicas of one store share, as stored in `identity.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// The CA certificate, PEM.
    pub ca_pem: String,
    /// sha256 of the control token.
    pub token_sha256: Sha256,
    /// When the first replica claimed the store.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// How a replica's identity compares with its store's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IdentityCheck {
    /// The store had none; it now has this replica's.
    Claimed,
    /// The store's identity is this replica's.
    Matches,
    /// The store belongs to another CA.
    OtherCa {
        /// The store's identity.
        stored: Identity,
    },
    /// Same CA, another control token.
    OtherToken {
        /// The store's identity.
        stored: Identity,
    },
}

impl Store {
    /// The identity the store belongs to, if any replica claimed it.
    ///
    /// # Errors
    /// A backend error, or a malformed `identity.json`.
    pub async fn identity(&self) -> Result<Option<Identity>> {
        self.get_json(IDENTITY_PATH).await
    }

    /// Compares `mine` with the store's identity, claiming the store for
    /// it when it has none. Two replicas claiming an empty store at once:
    /// the identity read back after the write decides, so the one that
    /// lost sees [`IdentityCheck::OtherCa`].
    ///
    /// # Errors
    /// A backend error.
    pub async fn claim_identity(&self, mine: &Identity) -> Result<IdentityCheck> {
        let (stored, claimed) = match self.identity().await? {
            Some(s) => (s, false),
            None => {
                self.put_json(IDENTITY_PATH, mine).await?;
                let back = self.identity().await?.unwrap_or_else(|| mine.clone());
                (back, true)
            }
        };
        Ok(if stored.ca_pem.trim() != mine.ca_pem.trim() {
            IdentityCheck::OtherCa { stored }
        } else if stored.token_sha256 != mine.token_sha256 {
            IdentityCheck::OtherToken { stored }
        } else if claimed {
            IdentityCheck::Claimed
        } else {
            IdentityCheck::Matches
        })
    }
}
