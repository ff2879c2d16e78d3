//! [`RateLimit`]: admits each call against the quotas, at once or after a bounded wait.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::time::Instant;
use tower_service::Service;

use crate::classify::Classify;
use crate::clock::Nanos;
use crate::error::BoxError;
use crate::sync::Spread;

use super::cost::{TokenCost, TokenUsage};
use super::future::{Finish, Home, ResponseFuture, Waiting};
use super::shared::Shared;
use super::state::{Limit, Refusal};

/// Keeps calls to an agent within its quotas. Built by
/// [`RateLimitLayer`](super::RateLimitLayer); clones share the quotas.
///
/// `poll_ready` is the inner service's: a call that must wait for quota waits in its future
/// (on a clone of the inner service, made only then), so the service stays ready for calls
/// that fit, and an axum router (which needs always-ready services) can use it. A call admitted
/// at once reads the clock once, takes one compare-and-swap per quota, and allocates nothing;
/// without a usage reader it holds no counted reference to the quotas either.
pub struct RateLimit<S, C, Cost, Usage> {
    pub(crate) inner: S,
    pub(crate) shared: Spread<Shared>,
    pub(crate) classifier: C,
    pub(crate) cost: Cost,
    pub(crate) usage: Usage,
    /// Whether the layer has a usage reader (then each call holds a counted reference).
    pub(crate) reads_usage: bool,
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
        let memo = self.classifier.note(&request);
        let shared: &Shared = &self.shared;
        let now = shared.origin.nanos_at(Instant::now());
        let give_up_at = now.saturating_add(shared.max_wait);
        if let Some(until) = shared.limits.paused_at(now) {
            if until > give_up_at {
                let error = shared.refused(Limit::Paused, Some(until - now));
                return ResponseFuture::refused(error, self.finish(memo, tokens));
            }
            let waiting = self.wait(request, tokens, until, false, give_up_at);
            return ResponseFuture::waiting(waiting, self.finish(memo, tokens));
        }
        match shared.limits.admit(now, tokens, shared.max_wait) {
            Ok(0) => {
                let finish = self.finish(memo, tokens);
                ResponseFuture::called(self.inner.call(request), finish)
            }
            Ok(wait) => {
                let waiting = self.wait(request, tokens, now + wait, true, give_up_at);
                ResponseFuture::waiting(waiting, self.finish(memo, tokens))
            }
            Err((limit, refusal)) => {
                let wait = match refusal {
                    Refusal::Wait(wait) => Some(wait),
                    Refusal::TooLarge => None,
                };
                let error = shared.refused(limit, wait);
                ResponseFuture::refused(error, self.finish(memo, tokens))
            }
        }
    }
}

impl<S, C: Clone, Cost, Usage: Clone> RateLimit<S, C, Cost, Usage> {
    /// What a call's answer needs. A counted reference to the quotas only when a usage reader
    /// may correct them after every answer; otherwise the limiter's address (free to copy).
    #[inline]
    fn finish<M>(&mut self, memo: M, tokens: u64) -> Finish<C, M, Usage> {
        let home = if self.reads_usage {
            Home::Held {
                shared: self.shared.local(),
                tokens,
            }
        } else {
            Home::Addressed(self.shared.listing.address())
        };
        Finish {
            home,
            classifier: self.classifier.clone(),
            memo,
            usage: self.usage.clone(),
        }
    }

    /// The wait of a call that must wait for quota (or for a pause to end): on a clone of the
    /// inner service, with its timer, boxed.
    ///
    /// Out of line, and returning only the box: the future is then built in `call` on every
    /// path, from registers. When this function built the whole future (returned through
    /// memory), the admitted call's future went through a temporary too, copied into the
    /// caller's state 16 bytes at a time from what had just been stored 8 at a time: a
    /// stalled load, about 5 ns of the call.
    #[cold]
    #[inline(never)]
    fn wait<Req>(
        &mut self,
        request: Req,
        tokens: u64,
        until: Nanos,
        reserved: bool,
        give_up_at: Nanos,
    ) -> Pin<Box<Waiting<S, Req>>>
    where
        S: Service<Req> + Clone,
    {
        let service = self.inner.clone();
        let shared = self.shared.local();
        Waiting::boxed(
            service, request, shared, tokens, until, reserved, give_up_at,
        )
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
            reads_usage: self.reads_usage,
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
