//! [`ShutdownLayer`]: counts an agent's calls for a [`Shutdown`] drain.

use std::sync::Arc;

use tower_layer::Layer;

use crate::agent::Agent;

use super::error::{CancelledByShutdown, ShuttingDown};
use super::handle::{Shutdown, Tracker};
use super::service::GracefulShutdown;

/// Refuses new calls once a [`Shutdown`] closes, and counts the calls in flight so
/// [`Shutdown::drain`] can wait for them (or cancel them at its deadline). Put it outermost in
/// the stack, so a refused call is not seen as the agent's failure by the layers inside.
#[derive(Clone, Debug)]
pub struct ShutdownLayer {
    tracker: Arc<Tracker>,
}

impl ShutdownLayer {
    /// A layer for `agent`'s calls, tracked by `shutdown`.
    pub fn new<C>(agent: &Agent<C>, shutdown: &Shutdown) -> Self {
        crate::classify::register::<ShuttingDown>();
        crate::classify::register::<CancelledByShutdown>();
        ShutdownLayer {
            tracker: Arc::new(Tracker {
                state: shutdown.state.clone(),
                agent: agent.name_arc().clone(),
            }),
        }
    }
}

impl<S> Layer<S> for ShutdownLayer {
    type Service = GracefulShutdown<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GracefulShutdown {
            inner,
            tracker: self.tracker.clone(),
        }
    }
}
