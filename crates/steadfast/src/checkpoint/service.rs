//! [`Checkpointed`]: the service a [`CheckpointLayer`](super::CheckpointLayer) makes, and the
//! claim / run / store sequence of one call.

use std::fmt;
use std::future::{Future, poll_fn};
use std::marker::PhantomData;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::time::Instant;
use tower_service::Service;

use crate::error::BoxError;
use crate::provenance::{MarkServed, Served};

use super::codec::CheckpointCodec;
use super::error::{CheckpointError, InProgress};
use super::key::StepKey;
use super::layer::Shared;
use super::store::{CheckpointStore, Claim, StoreError, StoredAnswer};

/// The future a [`Checkpointed`] service returns. Boxed: a checkpointed call waits on the store
/// at least once, so the allocation is lost in the I/O.
pub type ResponseFuture<Res> = Pin<Box<dyn Future<Output = Result<Res, BoxError>> + Send>>;

/// The service a [`CheckpointLayer`](super::CheckpointLayer) makes.
pub struct Checkpointed<S, K, C, M> {
    pub(crate) inner: S,
    pub(crate) shared: Arc<Shared<K, C>>,
    pub(crate) mark: PhantomData<fn() -> M>,
}

impl<S: Clone, K, C, M> Clone for Checkpointed<S, K, C, M> {
    fn clone(&self) -> Self {
        Checkpointed {
            inner: self.inner.clone(),
            shared: self.shared.clone(),
            mark: PhantomData,
        }
    }
}

impl<S: fmt::Debug, K, C, M> fmt::Debug for Checkpointed<S, K, C, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Checkpointed")
            .field("inner", &self.inner)
            .field("agent", &self.shared.agent)
            .finish_non_exhaustive()
    }
}

/// A claim owner id unique to this call: process id, process start time, a counter.
pub(crate) fn owner_token() -> String {
    static STARTED: OnceLock<u128> = OnceLock::new();
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let started = *STARTED.get_or_init(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    });
    format!(
        "{}-{:x}-{}",
        std::process::id(),
        started,
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

impl<S, K, C, M, Req> Service<Req> for Checkpointed<S, K, C, M>
where
    S: Service<Req> + Clone + Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
    S::Response: Send + 'static,
    Req: Send + 'static,
    K: Fn(&Req) -> Option<StepKey> + Send + Sync + 'static,
    C: CheckpointCodec<S::Response>,
    M: MarkServed<S::Response> + Default + 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Response>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Req) -> Self::Future {
        let Some(key) = (*self.shared.key)(&request) else {
            let future = self.inner.call(request);
            return Box::pin(async move { future.await.map_err(Into::into) });
        };
        // The ready service goes into the future (it runs only on a miss); a clone stays.
        let ready = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, ready);
        let shared = self.shared.clone();
        Box::pin(run::<S, K, C, M, Req>(shared, inner, key, request))
    }
}

/// Gives a claim up if the call is dropped before it completed (cancelled by a timeout or a
/// shutdown), so the next caller can run the step at once instead of waiting for the lease.
struct ClaimGuard {
    store: Arc<dyn CheckpointStore>,
    key: StepKey,
    owner: String,
    armed: bool,
}

impl Drop for ClaimGuard {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let store = self.store.clone();
        let key = self.key.clone();
        let owner = std::mem::take(&mut self.owner);
        runtime.spawn(async move {
            if let Err(error) = store.release(&key, &owner).await {
                tracing::warn!(%key, %error, "could not release a cancelled step's claim; it expires with its lease");
            }
        });
    }
}

async fn run<S, K, C, M, Req>(
    shared: Arc<Shared<K, C>>,
    mut inner: S,
    key: StepKey,
    request: Req,
) -> Result<S::Response, BoxError>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
    C: CheckpointCodec<S::Response>,
    M: MarkServed<S::Response> + Default,
{
    let store = &shared.store;
    let owner = owner_token();
    let started = Instant::now();
    let store_error = |action, source| CheckpointError::Store {
        key: key.clone(),
        action,
        source,
    };
    loop {
        match store
            .claim(&key, &owner, shared.lease)
            .await
            .map_err(|e| store_error("claiming the step", e))?
        {
            Claim::Done(answer) => return answered::<K, C, S::Response, M>(&shared, &key, &answer),
            Claim::Claimed => break,
            Claim::Busy { lease_remaining } => {
                let waited = started.elapsed();
                if waited >= shared.wait {
                    return Err(InProgress {
                        key,
                        waited,
                        lease_remaining,
                    }
                    .into());
                }
                let pause = shared
                    .poll_interval
                    .min(shared.wait.saturating_sub(waited))
                    .min(lease_remaining.max(super::layer::MIN_INTERVAL));
                tokio::time::sleep(pause).await;
            }
        }
    }

    let mut guard = ClaimGuard {
        store: store.clone(),
        key: key.clone(),
        owner: owner.clone(),
        armed: true,
    };
    let call = inner.call(request);
    let result: Result<S::Response, BoxError> = call_renewing(&shared, &key, &owner, async move {
        call.await.map_err(Into::into)
    })
    .await;
    let response = match result {
        Ok(response) => response,
        Err(error) => {
            guard.armed = false;
            if let Err(release) = store.release(&key, &owner).await {
                tracing::warn!(%key, error = %release, "could not release a failed step's claim; it expires with its lease");
            }
            return Err(error);
        }
    };
    let encoded = match shared.codec.encode(&response) {
        Ok(encoded) => encoded,
        Err(source) => {
            guard.armed = false;
            let _ = store.release(&key, &owner).await;
            return Err(CheckpointError::Encode { key, source }.into());
        }
    };
    let stored = store.complete(&key, &owner, encoded).await;
    guard.armed = false;
    match stored {
        Ok(()) => {
            tracing::debug!(agent = %shared.agent, %key, "step answer stored");
            Ok(response)
        }
        // Taken over while we ran (our lease was not renewed in time): if the other caller
        // stored its answer, every caller returns that one, so they all agree.
        Err(StoreError::LeaseLost { .. }) => match store.answer(&key).await {
            Ok(Some(answer)) => answered::<K, C, S::Response, M>(&shared, &key, &answer),
            _ => Err(store_error(
                "storing the answer",
                StoreError::LeaseLost { key: key.clone() },
            )
            .into()),
        },
        Err(source) => Err(store_error("storing the answer", source).into()),
    }
}

/// Runs the agent's call, renewing the lease every third of it until the call ends.
async fn call_renewing<F, T, E>(
    shared: &Shared<impl Sized, impl Sized>,
    key: &StepKey,
    owner: &str,
    call: F,
) -> Result<T, E>
where
    F: Future<Output = Result<T, E>>,
{
    let mut call = pin!(call);
    let every = (shared.lease / 3).max(super::layer::MIN_INTERVAL);
    loop {
        let mut tick = pin!(tokio::time::sleep(every));
        let finished = poll_fn(|cx| {
            if let Poll::Ready(result) = call.as_mut().poll(cx) {
                return Poll::Ready(Some(result));
            }
            tick.as_mut().poll(cx).map(|()| None)
        })
        .await;
        match finished {
            Some(result) => return result,
            None => {
                if let Err(error) = shared.store.renew(key, owner, shared.lease).await {
                    tracing::warn!(%key, %error, "could not renew the lease of a running step");
                }
            }
        }
    }
}

fn answered<K, C, Res, M>(
    shared: &Shared<K, C>,
    key: &StepKey,
    answer: &StoredAnswer,
) -> Result<Res, BoxError>
where
    C: CheckpointCodec<Res>,
    M: MarkServed<Res> + Default,
{
    let mut response =
        shared
            .codec
            .decode(&answer.response)
            .map_err(|source| CheckpointError::Decode {
                key: key.clone(),
                source,
            })?;
    let age = answer.age();
    metrics::counter!("steadfast_served_total", "agent" => shared.agent.clone(), "source" => "checkpoint").increment(1);
    tracing::debug!(agent = %shared.agent, %key, age_secs = age.as_secs_f64(), "step answered from its checkpoint");
    M::default().mark(&mut response, &Served::Checkpoint { age });
    Ok(response)
}
