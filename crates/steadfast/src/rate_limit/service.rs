//! [`RateLimit`]: admits each call against the quotas, at once or after a bounded wait.

use std::fmt;
use std::task::{Context, Poll};

use tokio::time::Instant;
use tower_service::Service;

use crate::classify::Classify;
use crate::error::BoxError;
use crate::sync::Spread;

use super::cost::{TokenCost, TokenUsage};
use super::future::{Finish, ResponseFuture};
use super::shared::Shared;
use super::state::{Limit, Refusal};

/// Keeps calls to an agent within its quotas. Built by
/// [`RateLimitLayer`](super::RateLimitLayer); clones share the quotas.
///
/// `poll_ready` is the inner service's: a call that must wait for quota waits in its future
/// (on a clone of the inner service, made only then), so the service stays ready for calls
/// that fit, and an axum router (which needs always-ready services) can use it. A call admitted
/// at once reads the clock once, takes one compare-and-swap per quota, and allocates nothing.
pub struct RateLimit<S, C, Cost, Usage> {
    pub(crate) inner: S,
    pub(crate) shared: Spread<Shared>,
    pub(crate) classifier: C,
    pub(crate) cost: Cost,
    pub(crate) usage: Usage,
}

impl<S, C, Cost, Usage> RateLimit<S, C, Cost, Usage> {
    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, C, Cost, Usage, Req> Service<Req> for RateLimit<S, C, Cost, Usage>
where
    S: Service<Req> + Clone,
    S::Error: Into<BoxError>,
    C: Classify<Req, S::Response> + Clone,
    Cost: TokenCost<Req>,
    Usage: TokenUsage<S::Response> + Clone,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S, Req, C, C::Memo, Usage>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    #[inline]
    fn call(&mut self, request: Req) -> Self::Future {
        let tokens = self.cost.estimate(&request);
        let shared = self.shared.local();
        let now = shared.origin.nanos_at(Instant::now());
        let finish = Finish {
            memo: self.classifier.note(&request),
            classifier: self.classifier.clone(),
            usage: self.usage.clone(),
            tokens,
            shared,
        };
        let give_up_at = now.saturating_add(finish.shared.max_wait);
        if let Some(until) = finish.shared.limits.paused_at(now) {
            if until > give_up_at {
                let error = finish.shared.refused(Limit::Paused, Some(until - now));
                return ResponseFuture::refused(error, finish);
            }
            let service = self.inner.clone();
            return ResponseFuture::waiting(service, request, until, false, give_up_at, finish);
        }
        match finish
            .shared
            .limits
            .admit(now, tokens, finish.shared.max_wait)
        {
            Ok(0) => ResponseFuture::called(self.inner.call(request), finish),
            Ok(wait) => {
                let service = self.inner.clone();
                ResponseFuture::waiting(service, request, now + wait, true, give_up_at, finish)
            }
            Err((limit, refusal)) => {
                let wait = match refusal {
                    Refusal::Wait(wait) => Some(wait),
                    Refusal::TooLarge => None,
                };
                let error = finish.shared.refused(limit, wait);
                ResponseFuture::refused(error, finish)
            }
        }
    }
}

impl<S: Clone, C: Clone, Cost: Clone, Usage: Clone> Clone for RateLimit<S, C, Cost, Usage> {
    fn clone(&self) -> Self {
        RateLimit {
            inner: self.inner.clone(),
            shared: self.shared.clone(),
            classifier: self.classifier.clone(),
            cost: self.cost.clone(),
            usage: self.usage.clone(),
        }
    }
}

impl<S: fmt::Debug, C, Cost, Usage> fmt::Debug for RateLimit<S, C, Cost, Usage> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimit")
            .field("limit", &self.shared)
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}
