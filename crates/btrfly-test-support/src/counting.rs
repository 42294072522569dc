//! An OpenDAL layer that counts the operations reaching the backend.
//!
//! Tests and benchmarks put it on a store (`Store::layer`) to assert what a
//! code path costs in object-store round trips (a cached playback lookup
//! must cost none).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use opendal::raw::*;
use opendal::*;

/// Operations seen by a [`CountingLayer`], by kind.
#[derive(Debug, Default)]
pub struct OpCounts {
    pub stat: AtomicU64,
    pub read: AtomicU64,
    pub write: AtomicU64,
    pub list: AtomicU64,
    pub delete: AtomicU64,
    pub copy: AtomicU64,
    pub rename: AtomicU64,
    pub other: AtomicU64,
}

/// A snapshot of [`OpCounts`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OpSnapshot {
    pub stat: u64,
    pub read: u64,
    pub write: u64,
    pub list: u64,
    pub delete: u64,
    pub copy: u64,
    pub rename: u64,
    pub other: u64,
}

impl OpSnapshot {
    pub fn total(&self) -> u64 {
        self.stat
            + self.read
            + self.write
            + self.list
            + self.delete
            + self.copy
            + self.rename
            + self.other
    }

    /// Operations that happened between `earlier` and this snapshot.
    pub fn since(&self, earlier: &OpSnapshot) -> OpSnapshot {
        OpSnapshot {
            stat: self.stat - earlier.stat,
            read: self.read - earlier.read,
            write: self.write - earlier.write,
            list: self.list - earlier.list,
            delete: self.delete - earlier.delete,
            copy: self.copy - earlier.copy,
            rename: self.rename - earlier.rename,
            other: self.other - earlier.other,
        }
    }
}

impl OpCounts {
    pub fn snapshot(&self) -> OpSnapshot {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        OpSnapshot {
            stat: g(&self.stat),
            read: g(&self.read),
            write: g(&self.write),
            list: g(&self.list),
            delete: g(&self.delete),
            copy: g(&self.copy),
            rename: g(&self.rename),
            other: g(&self.other),
        }
    }
}

fn bump(a: &AtomicU64) {
    a.fetch_add(1, Ordering::Relaxed);
}

/// Counts every operation into its [`OpCounts`].
#[derive(Debug, Clone)]
pub struct CountingLayer {
    counts: Arc<OpCounts>,
}

impl CountingLayer {
    pub fn new(counts: Arc<OpCounts>) -> Self {
        CountingLayer { counts }
    }
}

impl Layer for CountingLayer {
    fn apply_service(&self, inner: Servicer) -> Servicer {
        Arc::new(CountingService {
            inner,
            counts: self.counts.clone(),
        })
    }
}

/// The service a [`CountingLayer`] wraps around a backend.
#[derive(Debug)]
pub struct CountingService {
    inner: Servicer,
    counts: Arc<OpCounts>,
}

impl Service for CountingService {
    type Reader = oio::Reader;
    type Writer = oio::Writer;
    type Lister = oio::Lister;
    type Deleter = oio::Deleter;
    type Copier = oio::Copier;
    type Composer = oio::Composer;

    fn info(&self) -> ServiceInfo {
        self.inner.info()
    }

    fn capability(&self) -> Capability {
        self.inner.capability()
    }

    async fn create_dir(
        &self,
        ctx: &OperationContext,
        path: &str,
        args: OpCreateDir,
    ) -> Result<RpCreateDir> {
        bump(&self.counts.other);
        self.inner.create_dir(ctx, path, args).await
    }

    async fn stat(&self, ctx: &OperationContext, path: &str, args: OpStat) -> Result<RpStat> {
        bump(&self.counts.stat);
        self.inner.stat(ctx, path, args).await
    }

    fn read(&self, ctx: &OperationContext, path: &str, args: OpRead) -> Result<Self::Reader> {
        bump(&self.counts.read);
        self.inner.read(ctx, path, args)
    }

    fn write(&self, ctx: &OperationContext, path: &str, args: OpWrite) -> Result<Self::Writer> {
        bump(&self.counts.write);
        self.inner.write(ctx, path, args)
    }

    fn delete(&self, ctx: &OperationContext) -> Result<Self::Deleter> {
        bump(&self.counts.delete);
        self.inner.delete(ctx)
    }

    fn list(&self, ctx: &OperationContext, path: &str, args: OpList) -> Result<Self::Lister> {
        bump(&self.counts.list);
        self.inner.list(ctx, path, args)
    }

    fn copy(
        &self,
        ctx: &OperationContext,
        from: &str,
        to: &str,
        args: OpCopy,
    ) -> Result<Self::Copier> {
        bump(&self.counts.copy);
        self.inner.copy(ctx, from, to, args)
    }

    fn compose(&self, ctx: &OperationContext, to: &str, args: OpCompose) -> Result<Self::Composer> {
        bump(&self.counts.other);
        self.inner.compose(ctx, to, args)
    }

    async fn rename(
        &self,
        ctx: &OperationContext,
        from: &str,
        to: &str,
        args: OpRename,
    ) -> Result<RpRename> {
        bump(&self.counts.rename);
        self.inner.rename(ctx, from, to, args).await
    }

    async fn restore(
        &self,
        ctx: &OperationContext,
        path: &str,
        args: OpRestore,
    ) -> Result<RpRestore> {
        bump(&self.counts.other);
        self.inner.restore(ctx, path, args).await
    }

    async fn presign(
        &self,
        ctx: &OperationContext,
        path: &str,
        args: OpPresign,
    ) -> Result<RpPresign> {
        bump(&self.counts.other);
        self.inner.presign(ctx, path, args).await
    }
}
