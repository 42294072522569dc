//! Control tokens: created, listed and revoked through the API (admin
//! scope), kept in the store as `tokens/<id>.json` (name, scope, sha256 of
//! the secret; never the secret) so that every replica of a store accepts
//! the same tokens.
//!
//! A presented token is hashed and its digest compared with every stored
//! digest in constant time (`subtle`), all of them, whether one matched or
//! not. The list is cached for [`REFRESH`]; a token unknown to the cache
//! reloads it (at most once a second), so a token created on another
//! replica works at once and a revocation there takes effect here within
//! [`REFRESH`].

use std::time::{Duration, Instant};

use btrfly_core::api::{TokenCreated, TokenInfo};
use btrfly_core::{Scope, Sha256, TokenId, TokenName};
use btrfly_store::{Store, StoreError, TokenRecord};
use subtle::{Choice, ConditionallySelectable, ConstantTimeEq};
use time::OffsetDateTime;
use tokio::sync::Mutex;

/// How long a replica trusts its cached token list.
pub const REFRESH: Duration = Duration::from_secs(5);

/// How often a token unknown to the cache may reload it.
const MISS_RELOAD: Duration = Duration::from_secs(1);

/// The `created_by` of the token `btrfly serve` writes to
/// `<data_dir>/token`.
pub const SERVE: &str = "btrfly serve";

/// The name of the token `btrfly serve` writes to `<data_dir>/token`.
pub const FIRST_ADMIN: &str = "admin";

/// Why a token could not be created or revoked.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// Another live token has this name.
    #[error("a token named {0} already exists (revoke it first, or choose another name)")]
    NameTaken(TokenName),
    /// No token has this id.
    #[error("no token {0}")]
    NotFound(TokenId),
    /// The token was revoked before.
    #[error("token {0} is already revoked")]
    AlreadyRevoked(TokenId),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

struct Cache {
    loaded: Option<Instant>,
    records: Vec<TokenRecord>,
}

/// The tokens of one store, as this replica sees them.
pub struct Tokens {
    store: Store,
    cache: Mutex<Cache>,
}

/// A fresh random token id: 16 lower-case hex digits.
fn new_id() -> TokenId {
    let bytes: [u8; 8] = rand::random();
    // 16 hex digits always make a valid id.
    TokenId::new(&hex::encode(bytes)).unwrap_or_else(|_| unreachable!("hex is alphanumeric"))
}

/// A fresh secret: 24 random bytes as 48 hex digits (192 bits).
fn new_secret() -> String {
    let bytes: [u8; 24] = rand::random();
    hex::encode(bytes)
}

/// The id of the token `btrfly serve` wrote to `<data_dir>/token`: derived
/// from the secret (with a label, so it is not a prefix of the stored
/// digest) so that every replica names it alike.
fn first_admin_id(secret: &str) -> TokenId {
    let d = Sha256::of(format!("btrfly first admin token\n{secret}").as_bytes());
    TokenId::new(&d[..16]).unwrap_or_else(|_| unreachable!("hex is alphanumeric"))
}

impl Tokens {
    /// The tokens of `store`, making sure the token `btrfly serve` read
    /// from `<data_dir>/token` (`first_admin`) is one of them: an `admin`
    /// token named [`FIRST_ADMIN`]. An existing record of it is left as it
    /// is (a revocation stands).
    ///
    /// # Errors
    /// The store failed.
    pub async fn open(store: Store, first_admin: &str) -> Result<Tokens, StoreError> {
        let id = first_admin_id(first_admin);
        if store.get_token(&id).await?.is_none() {
            let record = TokenRecord {
                info: TokenInfo {
                    id,
                    name: TokenName::new(FIRST_ADMIN)
                        .unwrap_or_else(|_| unreachable!("a valid constant")),
                    scope: Scope::Admin,
                    created_at: OffsetDateTime::now_utc(),
                    created_by: SERVE.to_owned(),
                    revoked_at: None,
                },
                sha256: Sha256::of(first_admin.as_bytes()),
            };
            store.put_token(&record).await?;
        }
        Ok(Tokens {
            store,
            cache: Mutex::new(Cache {
                loaded: None,
                records: Vec::new(),
            }),
        })
    }

    /// The live (not revoked) token whose secret is `presented`, if any.
    ///
    /// # Errors
    /// The store failed while the cache was reloaded.
    pub async fn authenticate(&self, presented: &[u8]) -> Result<Option<TokenInfo>, StoreError> {
        let digest = Sha256::of(presented);
        let mut cache = self.cache.lock().await;
        let age = cache.loaded.map(|at| at.elapsed());
        if age.is_none_or(|a| a >= REFRESH) {
            self.reload(&mut cache).await?;
        }
        if let Some(found) = find(&cache.records, &digest) {
            return Ok(Some(found));
        }
        if cache.loaded.is_some_and(|at| at.elapsed() >= MISS_RELOAD) {
            self.reload(&mut cache).await?;
            return Ok(find(&cache.records, &digest));
        }
        Ok(None)
    }

    /// The live (not revoked) token with id `id`, if any: how a web UI
    /// session, which keeps the token's id and never its secret, learns
    /// that its token was revoked (here at once, on other replicas within
    /// [`REFRESH`]).
    ///
    /// # Errors
    /// The store failed while the cache was reloaded.
    pub async fn live(&self, id: &TokenId) -> Result<Option<TokenInfo>, StoreError> {
        let mut cache = self.cache.lock().await;
        if cache.loaded.is_none_or(|at| at.elapsed() >= REFRESH) {
            self.reload(&mut cache).await?;
        }
        Ok(cache
            .records
            .iter()
            .find(|r| &r.info.id == id && r.info.revoked_at.is_none())
            .map(|r| r.info.clone()))
    }

    async fn reload(&self, cache: &mut Cache) -> Result<(), StoreError> {
        cache.records = self.store.list_tokens().await?;
        cache.loaded = Some(Instant::now());
        Ok(())
    }

    /// Every token, revoked ones included, oldest first.
    ///
    /// # Errors
    /// The store failed.
    pub async fn list(&self) -> Result<Vec<TokenInfo>, StoreError> {
        let mut cache = self.cache.lock().await;
        self.reload(&mut cache).await?;
        Ok(cache.records.iter().map(|r| r.info.clone()).collect())
    }

    /// A new token named `name` with `scope`, created by the token named
    /// `by`. The answer holds the secret: it is not kept anywhere.
    ///
    /// # Errors
    /// [`TokenError::NameTaken`] when a live token has that name; the
    /// store failed.
    pub async fn create(
        &self,
        name: TokenName,
        scope: Scope,
        by: &TokenName,
    ) -> Result<TokenCreated, TokenError> {
        let mut cache = self.cache.lock().await;
        self.reload(&mut cache).await?;
        if cache
            .records
            .iter()
            .any(|r| r.info.name == name && r.info.revoked_at.is_none())
        {
            return Err(TokenError::NameTaken(name));
        }
        let secret = new_secret();
        let record = TokenRecord {
            info: TokenInfo {
                id: new_id(),
                name,
                scope,
                created_at: OffsetDateTime::now_utc(),
                created_by: by.to_string(),
                revoked_at: None,
            },
            sha256: Sha256::of(secret.as_bytes()),
        };
        self.store.put_token(&record).await?;
        cache.records.push(record.clone());
        Ok(TokenCreated {
            info: record.info,
            token: secret,
        })
    }

    /// Revokes token `id`: from now on it is refused (on other replicas
    /// within [`REFRESH`]). Its record stays, for `btrfly token ls` and the
    /// mirror entries it added.
    ///
    /// # Errors
    /// [`TokenError::NotFound`], [`TokenError::AlreadyRevoked`]; the store
    /// failed.
    pub async fn revoke(&self, id: &TokenId) -> Result<TokenInfo, TokenError> {
        let mut cache = self.cache.lock().await;
        let mut record = self
            .store
            .get_token(id)
            .await?
            .ok_or_else(|| TokenError::NotFound(id.clone()))?;
        if record.info.revoked_at.is_some() {
            return Err(TokenError::AlreadyRevoked(id.clone()));
        }
        record.info.revoked_at = Some(OffsetDateTime::now_utc());
        self.store.put_token(&record).await?;
        self.reload(&mut cache).await?;
        Ok(record.info)
    }
}

/// The live record whose digest is `digest`. Every record's digest is
/// compared, in constant time, and the answer is chosen without a branch
/// on the comparison, so the time taken does not tell which record (or
/// whether any) matched.
fn find(records: &[TokenRecord], digest: &Sha256) -> Option<TokenInfo> {
    let wanted = digest.as_bytes();
    let mut index = 0u64;
    let mut any = Choice::from(0);
    for (i, r) in records.iter().enumerate() {
        let live = Choice::from(u8::from(r.info.revoked_at.is_none()));
        let hit = r.sha256.as_bytes().ct_eq(wanted) & live;
        index.conditional_assign(&(i as u64), hit);
        any |= hit;
    }
    if bool::from(any) {
        records
            .get(usize::try_from(index).ok()?)
            .map(|r| r.info.clone())
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(secret: &str, name: &str, revoked: bool) -> TokenRecord {
        TokenRecord {
            info: TokenInfo {
                id: new_id(),
                name: TokenName::new(name).expect("name"),
                scope: Scope::Read,
                created_at: OffsetDateTime::now_utc(),
                created_by: SERVE.to_owned(),
                revoked_at: revoked.then(OffsetDateTime::now_utc),
            },
            sha256: Sha256::of(secret.as_bytes()),
        }
    }

    #[test]
    fn find_matches_live_tokens_only() {
        let records = vec![
            record("s1", "one", false),
            record("s2", "two", true),
            record("s3", "three", false),
        ];
        let name = |s: &str| find(&records, &Sha256::of(s.as_bytes())).map(|i| i.name.to_string());
        assert_eq!(name("s1").as_deref(), Some("one"));
        assert_eq!(name("s3").as_deref(), Some("three"));
        assert_eq!(name("s2"), None, "a revoked token is refused");
        assert_eq!(name("nope"), None);
        assert_eq!(find(&[], &Sha256::of(b"s1")), None);
    }

    #[tokio::test]
    async fn first_admin_create_revoke() {
        let store = Store::open(&btrfly_store::StoreOptions::Memory).expect("store");
        let tokens = Tokens::open(store.clone(), "first-secret")
            .await
            .expect("open");
        // A second replica on the same store does not add another record.
        let again = Tokens::open(store.clone(), "first-secret")
            .await
            .expect("open");
        let admin = tokens
            .authenticate(b"first-secret")
            .await
            .expect("auth")
            .expect("the first token is known");
        assert_eq!((admin.name.as_str(), admin.scope), ("admin", Scope::Admin));
        assert_eq!(again.list().await.expect("list").len(), 1);

        let ci = TokenName::new("ci").expect("name");
        let made = tokens
            .create(ci.clone(), Scope::Record, &admin.name)
            .await
            .expect("create");
        assert_eq!(made.info.created_by, "admin");
        assert!(matches!(
            tokens.create(ci.clone(), Scope::Read, &admin.name).await,
            Err(TokenError::NameTaken(_))
        ));
        // The other replica knows the new token at once (a miss reloads).
        tokio::time::sleep(MISS_RELOAD).await;
        let seen = again
            .authenticate(made.token.as_bytes())
            .await
            .expect("auth")
            .expect("known to the other replica");
        assert_eq!(seen.scope, Scope::Record);
        // The secret is nowhere in the store.
        let stored =
            serde_json::to_string(&store.list_tokens().await.expect("list")).expect("json");
        assert!(!stored.contains(&made.token));
        assert!(!stored.contains("first-secret"));

        tokens.revoke(&made.info.id).await.expect("revoke");
        assert!(tokens
            .authenticate(made.token.as_bytes())
            .await
            .expect("auth")
            .is_none());
        assert!(matches!(
            tokens.revoke(&made.info.id).await,
            Err(TokenError::AlreadyRevoked(_))
        ));
        // Its name is free again.
        tokens
            .create(ci, Scope::Read, &admin.name)
            .await
            .expect("the name of a revoked token can be reused");
    }
}
