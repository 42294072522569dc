//! Control API tokens (`tokens/<id>.json`): their names, scopes and the
//! sha256 of each secret, shared by every replica of the store. The
//! secrets themselves are never stored.

use btrfly_core::api::TokenInfo;
use btrfly_core::{Sha256, TokenId};
use futures::{StreamExt, TryStreamExt};
use opendal::ErrorKind;
use serde::{Deserialize, Serialize};

use crate::error::{io, Result};
use crate::store::{Store, LOAD_CONCURRENCY};

/// A token as stored: what the API shows, and the digest of its secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    /// Id, name, scope, times.
    #[serde(flatten)]
    pub info: TokenInfo,
    /// sha256 of the secret (the bytes of the token as presented).
    pub sha256: Sha256,
}

impl Store {
    fn token_path(id: &TokenId) -> String {
        format!("tokens/{id}.json")
    }

    /// Writes (creates or replaces) a token's object.
    ///
    /// # Errors
    /// The backend failed.
    pub async fn put_token(&self, token: &TokenRecord) -> Result<()> {
        self.put_json(&Self::token_path(&token.info.id), token)
            .await
    }

    /// A token's object, if it is there.
    ///
    /// # Errors
    /// The backend failed, or the object is malformed.
    pub async fn get_token(&self, id: &TokenId) -> Result<Option<TokenRecord>> {
        self.get_json(&Self::token_path(id)).await
    }

    /// Every token, revoked ones included, oldest first.
    ///
    /// # Errors
    /// The backend failed, or an object it read is malformed.
    pub async fn list_tokens(&self) -> Result<Vec<TokenRecord>> {
        let listed = match self.op.list("tokens/").await {
            Ok(l) => l,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io("list", "tokens/")(e)),
        };
        let paths: Vec<String> = listed
            .into_iter()
            .filter(|item| item.name().ends_with(".json"))
            .map(|item| item.path().to_owned())
            .collect();
        let mut tokens: Vec<TokenRecord> = futures::stream::iter(paths)
            .map(|path| async move { self.get_json::<TokenRecord>(&path).await })
            .buffer_unordered(LOAD_CONCURRENCY)
            .try_filter_map(|t| async move { Ok(t) })
            .try_collect()
            .await?;
        tokens
            .sort_by(|a, b| (a.info.created_at, &a.info.id).cmp(&(b.info.created_at, &b.info.id)));
        Ok(tokens)
    }
}
