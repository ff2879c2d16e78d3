//! [`ShutdownLayer`]: counts an agent's calls for a [`Shutdown`] drain.

use std::sync::Arc;

use tower_layer::Layer;

use super::handle::{Shutdown, Tracker};
use super::service::ShutdownService;

/// Refuses new calls once a [`Shutdown`] closes, and counts the calls in flight so
/// [`Shutdown::drain`] can wait for them (or cancel them at its deadline). Put it outermost in
/// the stack, so a refused call is not seen as the agent's failure by the layers inside.
#[derive(Clone, Debug)]
pub struct ShutdownLayer {
    tracker: Arc<Tracker>,
}

impl ShutdownLayer {
    /// A layer for an agent named `"agent"`, tracked by `shutdown`.
    pub fn new(shutdown: &Shutdown) -> Self {
        ShutdownLayer {
            tracker: Arc::new(Tracker {
                state: shutdown.state.clone(),
                agent: Arc::from("agent"),
            }),
        }
    }

    /// Names the agent (in errors and in what the hook receives).
    #[must_use]
    pub fn named(self, agent: impl Into<Arc<str>>) -> Self {
        ShutdownLayer {
            tracker: Arc::new(Tracker {
                state: self.tracker.state.clone(),
                agent: agent.into(),
            }),
        }
    }
}

impl<S> Layer<S> for ShutdownLayer {
    type Service = ShutdownService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ShutdownService {
            inner,
            tracker: self.tracker.clone(),
        }
    }
}
