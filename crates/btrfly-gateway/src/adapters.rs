//! The adapter registry: the enabled adapters, most specific first.

use std::sync::Arc;

use btrfly_core::{Adapter, Classification, RequestHead};

/// The enabled adapters, most specific first; `files` (when enabled) last.
#[derive(Clone, Default)]
pub struct Adapters {
    list: Vec<Arc<dyn Adapter>>,
}

impl Adapters {
    /// The registry, in the order adapters are asked.
    pub fn new(list: Vec<Arc<dyn Adapter>>) -> Self {
        Adapters { list }
    }

    /// The adapters' names, in order.
    pub fn names(&self) -> Vec<&'static str> {
        self.list.iter().map(|a| a.name()).collect()
    }

    /// The first adapter that claims the request, and its verdict.
    pub fn classify(&self, head: &RequestHead) -> Option<(Arc<dyn Adapter>, Classification)> {
        self.list
            .iter()
            .find_map(|a| a.classify(head).map(|c| (a.clone(), c)))
    }

    /// The adapter named `name`.
    pub fn by_name(&self, name: &str) -> Option<Arc<dyn Adapter>> {
        self.list.iter().find(|a| a.name() == name).cloned()
    }
}
