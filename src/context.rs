//! The running application as every transport sees it: the shared state, the schema and the
//! lifecycle (shutdown signal, long-lived tasks). Built by `startup`; the transports below it
//! (`transport`, `legacy`) take it as axum state and never reach back into `startup`.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::graphql::AgoraSchema;
use crate::state::AppState;

/// Shutdown signal and the long-lived tasks (WebSockets) to wait for.
#[derive(Clone, Default)]
pub struct Lifecycle {
    pub shutdown: CancellationToken,
    pub tasks: TaskTracker,
}

/// What every handler gets: the shared state, the schema and the lifecycle.
#[derive(Clone)]
pub struct AppContext {
    pub state: Arc<AppState>,
    pub schema: AgoraSchema,
    pub lifecycle: Lifecycle,
    /// Open sockets per signed-in user, closed when the user is no longer active.
    pub socket_owners: Arc<crate::service::sessions::SocketOwners>,
}
