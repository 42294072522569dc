//! The assembled request path.

use std::convert::Infallible;
use std::sync::Arc;

use btrfly_store::Store;
use http::Request;
use tower::util::BoxCloneSyncService;
use tower::ServiceBuilder;

use crate::auth::Auth;
use crate::classify::{Adapters, Classify};
use crate::decision::Decision;
use crate::record::{Record, Unhandled};
use crate::replay::Replay;
use crate::route::Routing;
use crate::sessions::SessionRegistry;
use crate::single_flight::SingleFlight;
use crate::step::step;
use crate::RequestBody;

/// Pingora requires its app to be `Sync`, hence the sync box.
pub type GatewayService = BoxCloneSyncService<Request<RequestBody>, Decision, Infallible>;

pub fn gateway(sessions: Arc<SessionRegistry>, adapters: Adapters, store: Store) -> GatewayService {
    let stack = ServiceBuilder::new()
        // Who is asking: the proxy credential names a session, or it is a 407.
        .layer(step(Auth::new(sessions)))
        // Which tag and mode that session routes to; counts the request.
        .layer(step(Routing))
        // What is asked for: the first adapter that claims it builds the key.
        .layer(step(Classify::new(adapters)))
        // Playback answers here, from the tag only: a hit or a counted miss.
        .layer(step(Replay::new(store.clone())))
        // Record mode: identical requests in flight at once go upstream once.
        .layer(step(SingleFlight::new(store.clone())))
        // Record mode forwards upstream with a plan to tee the response.
        .layer(step(Record::new(store)))
        .service(Unhandled);
    BoxCloneSyncService::new(stack)
}
