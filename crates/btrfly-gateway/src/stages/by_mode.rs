//! The fork of the path: playback answers from the tag, record mode goes
//! upstream.

use btrfly_core::Mode;
use futures::future::BoxFuture;
use tower::ServiceExt;

use crate::decision::Decision;
use crate::stage::{Answer, Classified, Next};

/// Sends a classified request to `playback` or `record` by its session's
/// mode.
#[derive(Clone)]
pub struct ByMode {
    playback: Next<Classified>,
    record: Next<Classified>,
}

impl ByMode {
    /// The fork between the two paths.
    pub fn new(playback: Next<Classified>, record: Next<Classified>) -> ByMode {
        ByMode { playback, record }
    }
}

impl Answer for ByMode {
    type In = Classified;

    fn answer(&self, input: Classified) -> BoxFuture<'static, Decision> {
        let path = match input.mode {
            Mode::Playback => self.playback.clone(),
            Mode::Record => self.record.clone(),
        };
        Box::pin(async move {
            match path.oneshot(input).await {
                Ok(d) => d,
                Err(never) => match never {},
            }
        })
    }
}
