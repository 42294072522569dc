//! Sessions and their per-replica counters (`sessions/…`).

use btrfly_core::{SessionId, SessionInfo};
use opendal::ErrorKind;

use crate::error::{io, Result};
use crate::store::Store;

impl Store {
    fn session_path(id: &SessionId) -> String {
        format!("sessions/{id}.json")
    }

    /// Writes a session object.
    ///
    /// # Errors
    /// The backend failed.
    pub async fn put_session(&self, s: &SessionInfo) -> Result<()> {
        self.put_json(&Self::session_path(&s.id), s).await
    }

    /// A session object, if it is there.
    ///
    /// # Errors
    /// The backend failed, or the object is malformed.
    pub async fn get_session(&self, id: &SessionId) -> Result<Option<SessionInfo>> {
        self.get_json(&Self::session_path(id)).await
    }

    /// Removes a session object (its counters stay: see
    /// [`Store::delete_session_stats`]).
    ///
    /// # Errors
    /// The backend failed.
    pub async fn delete_session(&self, id: &SessionId) -> Result<()> {
        let path = Self::session_path(id);
        self.op.delete(&path).await.map_err(io("delete", &path))
    }

    /// Every stored session.
    ///
    /// # Errors
    /// The backend failed, or an object it read is malformed.
    pub async fn list_sessions(&self) -> Result<Vec<SessionInfo>> {
        let listed = match self.op.list("sessions/").await {
            Ok(l) => l,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io("list", "sessions/")(e)),
        };
        let ids: Vec<SessionId> = listed
            .iter()
            .filter_map(|e| e.name().strip_suffix(".json"))
            .filter_map(|name| SessionId::new(name).ok())
            .collect();
        let mut out = Vec::new();
        for id in ids {
            if let Some(s) = self.get_session(&id).await? {
                out.push(s);
            }
        }
        Ok(out)
    }

    fn session_stats_dir(id: &SessionId) -> String {
        format!("sessions/{id}/stats/")
    }

    /// One replica's counters for a session (any serialisable value).
    ///
    /// # Errors
    /// The backend failed.
    pub async fn put_session_stats<T: serde::Serialize>(
        &self,
        id: &SessionId,
        replica: &str,
        stats: &T,
    ) -> Result<()> {
        self.put_json(
            &format!("{}{replica}.json", Self::session_stats_dir(id)),
            stats,
        )
        .await
    }

    /// Every replica's counters for a session: (replica, counters).
    ///
    /// # Errors
    /// The backend failed, or an object is malformed.
    pub async fn list_session_stats<T: serde::de::DeserializeOwned>(
        &self,
        id: &SessionId,
    ) -> Result<Vec<(String, T)>> {
        let dir = Self::session_stats_dir(id);
        let listed = match self.op.list(&dir).await {
            Ok(l) => l,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io("list", &dir)(e)),
        };
        let mut out = Vec::new();
        for item in listed {
            let Some(replica) = item.name().strip_suffix(".json") else {
                continue;
            };
            if let Some(stats) = self.get_json::<T>(item.path()).await? {
                out.push((replica.to_owned(), stats));
            }
        }
        Ok(out)
    }

    /// Removes every replica's counters of a session.
    ///
    /// # Errors
    /// The backend failed.
    pub async fn delete_session_stats(&self, id: &SessionId) -> Result<()> {
        let dir = Self::session_stats_dir(id);
        let listed = match self.op.list(&dir).await {
            Ok(l) => l,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io("list", &dir)(e)),
        };
        for item in listed.iter().filter(|i| i.name().ends_with(".json")) {
            self.op
                .delete(item.path())
                .await
                .map_err(io("delete", item.path()))?;
        }
        // On a filesystem the folders stay behind once empty; object
        // stores have none (deleting a missing object is not an error).
        for folder in [dir.clone(), format!("sessions/{id}/")] {
            self.op
                .delete(&folder)
                .await
                .map_err(io("delete", &folder))?;
        }
        Ok(())
    }
}
