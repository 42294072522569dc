//! The assembled request path. Each line is one stage; a stage's input
//! type is the previous one's output, so the order is checked by the
//! compiler.

use std::convert::Infallible;
use std::sync::Arc;

use btrfly_session::SessionRegistry;
use btrfly_store::Store;
use http::Request;
use tower::util::BoxCloneSyncService;
use tower::ServiceBuilder;

use crate::adapters::Adapters;
use crate::body::RequestBody;
use crate::decision::Decision;
use crate::stage::{answer, stage};
use crate::stages::auth::Auth;
use crate::stages::by_mode::ByMode;
use crate::stages::classify::Classify;
use crate::stages::record::Record;
use crate::stages::replay::Replay;
use crate::stages::route::Routing;
use crate::stages::single_flight::SingleFlight;

/// The whole path as one service. Pingora requires its app to be `Sync`,
/// hence the sync box.
pub type GatewayService = BoxCloneSyncService<Request<RequestBody>, Decision, Infallible>;

/// The request path over `sessions`, `adapters` and `store`.
pub fn gateway(sessions: Arc<SessionRegistry>, adapters: Adapters, store: Store) -> GatewayService {
    gateway_with_mirror(sessions, adapters, store, true)
}

/// [`gateway`], with playback's fallback to the explicit mirror on or off
/// (`[mirror] serve_in_playback`).
pub fn gateway_with_mirror(
    sessions: Arc<SessionRegistry>,
    adapters: Adapters,
    store: Store,
    serve_mirror: bool,
) -> GatewayService {
    // Playback answers from the tag (then the explicit mirror) only: a hit
    // or a counted miss.
    let playback =
        BoxCloneSyncService::new(answer(Replay::new(store.clone()).with_mirror(serve_mirror)));
    let record = ServiceBuilder::new()
        // Identical requests in flight at once go upstream once.
        .layer(stage(SingleFlight::new(store.clone())))
        // Forward upstream with a plan to tee the response.
        .service(answer(Record::new(store)));
    let path = ServiceBuilder::new()
        // Who is asking: the proxy credential names a session, or it is a 407.
        .layer(stage(Auth::new(sessions)))
        // Which tag and mode that session routes to; counts the request.
        .layer(stage(Routing))
        // What is asked for: the first adapter that claims it builds the key.
        .layer(stage(Classify::new(adapters)))
        // Playback or record, by the session's mode.
        .service(answer(ByMode::new(
            playback,
            BoxCloneSyncService::new(record),
        )));
    BoxCloneSyncService::new(path)
}
