//! [`CheckpointLayer`]: configuration; see the [module docs](super).

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use tower_layer::Layer;

use crate::agent::Agent;
use crate::provenance::{Marked, Unmarked};

use super::key::StepKey;
use super::service::Checkpointed;
use super::store::CheckpointStore;

/// How long a claim on a step lasts unless renewed (the layer renews it every third of it while
/// the agent runs).
pub const DEFAULT_LEASE: Duration = Duration::from_secs(30);
/// How long a caller waits for a step another caller is running before [`InProgress`](super::InProgress).
pub const DEFAULT_WAIT: Duration = Duration::from_secs(120);
/// How often a waiting caller looks at the store again.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_millis(100);
/// The shortest lease and poll interval accepted (shorter values are raised to it).
pub const MIN_INTERVAL: Duration = Duration::from_millis(10);

impl<K, C> Clone for Shared<K, C> {
    fn clone(&self) -> Self {
        Shared {
            store: self.store.clone(),
            key: self.key.clone(),
            codec: self.codec.clone(),
            agent: self.agent.clone(),
            lease: self.lease,
            wait: self.wait,
            poll_interval: self.poll_interval,
        }
    }
}

/// What every service of a layer shares.
pub(crate) struct Shared<K, C> {
    pub(crate) store: Arc<dyn CheckpointStore>,
    pub(crate) key: Arc<K>,
    pub(crate) codec: Arc<C>,
    pub(crate) agent: Arc<str>,
    pub(crate) lease: Duration,
    pub(crate) wait: Duration,
    pub(crate) poll_interval: Duration,
}

/// Answers a workflow step that already completed from the [`CheckpointStore`], without calling
/// the agent; otherwise runs it and stores its answer durably before returning it. See the
/// [module docs](super).
///
/// `K` takes the step key from a request (`Fn(&Req) -> Option<StepKey>`; `None` passes the
/// request through unchecked), `C` is the [`CheckpointCodec`](super::CheckpointCodec), `M`
/// says whether answers from the store are marked ([`mark_responses`](Self::mark_responses)).
pub struct CheckpointLayer<K, C, M = Unmarked> {
    pub(crate) shared: Shared<K, C>,
    pub(crate) mark: PhantomData<fn() -> M>,
}

impl<K, C, M> Clone for CheckpointLayer<K, C, M> {
    fn clone(&self) -> Self {
        CheckpointLayer {
            shared: self.shared.clone(),
            mark: PhantomData,
        }
    }
}

impl<K, C, M> fmt::Debug for CheckpointLayer<K, C, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CheckpointLayer")
            .field("agent", &self.shared.agent)
            .field("store", &self.shared.store)
            .field("lease", &self.shared.lease)
            .field("wait", &self.shared.wait)
            .finish_non_exhaustive()
    }
}

impl<K, C> CheckpointLayer<K, C, Unmarked> {
    /// Checkpoints `agent`'s calls whose request `key` maps to a step, in `store`, encoded by
    /// `codec`. Defaults: lease [`DEFAULT_LEASE`], wait [`DEFAULT_WAIT`], poll interval
    /// [`DEFAULT_POLL_INTERVAL`].
    pub fn new<A, Req>(agent: &Agent<A>, store: impl CheckpointStore, key: K, codec: C) -> Self
    where
        K: Fn(&Req) -> Option<StepKey>,
    {
        crate::classify::register::<super::InProgress>();
        crate::classify::register::<super::CheckpointError>();
        CheckpointLayer {
            shared: Shared {
                store: Arc::new(store),
                key: Arc::new(key),
                codec: Arc::new(codec),
                agent: agent.name_arc().clone(),
                lease: DEFAULT_LEASE,
                wait: DEFAULT_WAIT,
                poll_interval: DEFAULT_POLL_INTERVAL,
            },
            mark: PhantomData,
        }
    }
}

impl<K, C, M> CheckpointLayer<K, C, M> {
    fn edit(mut self, f: impl FnOnce(&mut Shared<K, C>)) -> Self {
        f(&mut self.shared);
        self
    }

    /// How long a claim on a step lasts unless renewed (at least [`MIN_INTERVAL`]). The layer
    /// renews it every third of it while the agent runs, so a live claimer keeps its step
    /// however long the call takes; a claimer that died (crash, SIGKILL) holds the step for at
    /// most this long, then the next caller runs it again.
    #[must_use]
    pub fn lease(self, lease: Duration) -> Self {
        self.edit(|s| s.lease = lease.max(MIN_INTERVAL))
    }

    /// How long a caller waits for the answer of a step another caller is running before it
    /// fails with [`InProgress`](super::InProgress). `Duration::ZERO` fails at once.
    #[must_use]
    pub fn wait(self, wait: Duration) -> Self {
        self.edit(|s| s.wait = wait)
    }

    /// How often a waiting caller asks the store again (at least [`MIN_INTERVAL`]).
    #[must_use]
    pub fn poll_interval(self, interval: Duration) -> Self {
        self.edit(|s| s.poll_interval = interval.max(MIN_INTERVAL))
    }

    /// Marks answers served from the store with [`Served::Checkpoint`](crate::provenance::Served)
    /// through the response's [`Provenance`](crate::provenance::Provenance) impl.
    pub fn mark_responses(self) -> CheckpointLayer<K, C, Marked> {
        CheckpointLayer {
            shared: self.shared,
            mark: PhantomData,
        }
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn CheckpointStore> {
        &self.shared.store
    }
}

impl<S, K, C, M> Layer<S> for CheckpointLayer<K, C, M> {
    type Service = Checkpointed<S, K, C, M>;

    fn layer(&self, inner: S) -> Self::Service {
        Checkpointed {
            inner,
            shared: Arc::new(self.shared.clone()),
            mark: PhantomData,
        }
    }
}
