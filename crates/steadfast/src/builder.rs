//! [`ServiceBuilderExt`]: steadfast's layers as [`ServiceBuilder`] methods.
//!
//! Like tower-http's `ServiceBuilderExt`, it adds one method per layer, so a stack reads in the
//! order the layers wrap the agent, outer to inner. The prelude imports it anonymously
//! (`use ... as _`), so it coexists with tower-http's trait of the same name.
//!
//! ```
//! # #[cfg(all(feature = "retry", feature = "circuit-breaker"))] {
//! use std::time::Duration;
//! use steadfast::prelude::*;
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), BoxError> {
//! let registry = Registry::new();
//! let echo = registry.agent("echo");
//! let agent = ServiceBuilder::new()
//!     .backoff_retry(BackoffRetryLayer::new(&echo, RetryConfig::default()))
//!     .circuit_breaker(CircuitBreakerLayer::new(&echo, BreakerConfig::default()))
//!     .timeout(Duration::from_secs(30))
//!     .service(service_fn(|prompt: String| async move { Ok::<_, BoxError>(prompt.to_uppercase()) }));
//!
//! assert_eq!(agent.oneshot("hello".to_string()).await?, "HELLO");
//! assert_eq!(registry.breaker("echo").unwrap().state(), BreakerState::Closed);
//! # Ok(()) }
//! # }
//! ```

use tower::ServiceBuilder;

#[cfg(feature = "bulkhead")]
use crate::bulkhead::BulkheadLayer;
#[cfg(feature = "chaos")]
use crate::chaos::ChaosLayer;
#[cfg(feature = "circuit-breaker")]
use crate::circuit_breaker::CircuitBreakerLayer;
#[cfg(feature = "dead-letter")]
use crate::dead_letter::DeadLetterLayer;
#[cfg(feature = "degrade")]
use crate::degrade::DegradeLayer;
#[cfg(feature = "fallback")]
use crate::fallback::FallbackLayer;
#[cfg(feature = "hedge")]
use crate::hedge::HedgeLayer;
#[cfg(feature = "rate-limit")]
use crate::rate_limit::RateLimitLayer;
#[cfg(feature = "retry")]
use crate::retry::BackoffRetryLayer;

mod sealed {
    pub trait Sealed<L> {}
    impl<L> Sealed<L> for tower::ServiceBuilder<L> {}
}

/// Adds steadfast's layers to [`ServiceBuilder`], one method per layer, each available with its
/// layer's cargo feature. The trait is sealed: only `ServiceBuilder` implements it.
pub trait ServiceBuilderExt<L>: sealed::Sealed<L> + Sized {
    /// Adds an agent's circuit breaker ([`CircuitBreakerLayer`]).
    #[cfg(feature = "circuit-breaker")]
    fn circuit_breaker<C>(
        self,
        layer: CircuitBreakerLayer<C>,
    ) -> ServiceBuilder<tower_layer::Stack<CircuitBreakerLayer<C>, L>>;

    /// Adds retries with backoff ([`BackoffRetryLayer`]). Put it outside the breaker.
    #[cfg(feature = "retry")]
    fn backoff_retry<C>(
        self,
        layer: BackoffRetryLayer<C>,
    ) -> ServiceBuilder<tower_layer::Stack<BackoffRetryLayer<C>, L>>;

    /// Adds alternatives tried when the agent fails ([`FallbackLayer`]). Put it outside
    /// `backoff_retry`, so alternatives are tried once the primary's retries are spent.
    #[cfg(feature = "fallback")]
    fn fallback<Req, Res, C, P>(
        self,
        layer: FallbackLayer<Req, Res, C, P>,
    ) -> ServiceBuilder<tower_layer::Stack<FallbackLayer<Req, Res, C, P>, L>>;

    /// Turns the final failure into a degraded answer ([`DegradeLayer`]). Put it outermost.
    #[cfg(feature = "degrade")]
    fn degrade<D, C, V, P>(
        self,
        layer: DegradeLayer<D, C, V, P>,
    ) -> ServiceBuilder<tower_layer::Stack<DegradeLayer<D, C, V, P>, L>>;

    /// Keeps what finally failed in a durable sink ([`DeadLetterLayer`]). Put it outside the
    /// fallback layer, inside degrade.
    #[cfg(feature = "dead-letter")]
    fn dead_letter<C, En>(
        self,
        layer: DeadLetterLayer<C, En>,
    ) -> ServiceBuilder<tower_layer::Stack<DeadLetterLayer<C, En>, L>>;

    /// Adds a concurrency limit ([`BulkheadLayer`]). Put it inside the fallback layer, so a
    /// refusal falls back.
    #[cfg(feature = "bulkhead")]
    fn bulkhead<C>(
        self,
        layer: BulkheadLayer<C>,
    ) -> ServiceBuilder<tower_layer::Stack<BulkheadLayer<C>, L>>;

    /// Keeps calls within the agent's requests- and tokens-per-minute quotas and pauses it on a
    /// rate-limited answer ([`RateLimitLayer`]). Put it inside retry and hedge (so retries and
    /// hedges count against the quota), outside the breaker.
    #[cfg(feature = "rate-limit")]
    fn rate_limit<C, Cost, Usage>(
        self,
        layer: RateLimitLayer<C, Cost, Usage>,
    ) -> ServiceBuilder<tower_layer::Stack<RateLimitLayer<C, Cost, Usage>, L>>;

    /// Sends a slow call once more after a delay; the first good answer wins ([`HedgeLayer`]).
    /// Put it inside retry, outside the rate limit (so hedges count against the quota) and the
    /// breaker.
    #[cfg(feature = "hedge")]
    fn hedge<C, T>(
        self,
        layer: HedgeLayer<C, T>,
    ) -> ServiceBuilder<tower_layer::Stack<HedgeLayer<C, T>, L>>;

    /// Adds fault injection ([`ChaosLayer`]). Put it innermost, next to the agent, so the other
    /// layers see its faults as the agent's.
    #[cfg(feature = "chaos")]
    fn chaos<F>(self, layer: ChaosLayer<F>)
    -> ServiceBuilder<tower_layer::Stack<ChaosLayer<F>, L>>;
}

impl<L> ServiceBuilderExt<L> for ServiceBuilder<L> {
    #[cfg(feature = "circuit-breaker")]
    fn circuit_breaker<C>(
        self,
        layer: CircuitBreakerLayer<C>,
    ) -> ServiceBuilder<tower_layer::Stack<CircuitBreakerLayer<C>, L>> {
        self.layer(layer)
    }

    #[cfg(feature = "retry")]
    fn backoff_retry<C>(
        self,
        layer: BackoffRetryLayer<C>,
    ) -> ServiceBuilder<tower_layer::Stack<BackoffRetryLayer<C>, L>> {
        self.layer(layer)
    }

    #[cfg(feature = "fallback")]
    fn fallback<Req, Res, C, P>(
        self,
        layer: FallbackLayer<Req, Res, C, P>,
    ) -> ServiceBuilder<tower_layer::Stack<FallbackLayer<Req, Res, C, P>, L>> {
        self.layer(layer)
    }

    #[cfg(feature = "degrade")]
    fn degrade<D, C, V, P>(
        self,
        layer: DegradeLayer<D, C, V, P>,
    ) -> ServiceBuilder<tower_layer::Stack<DegradeLayer<D, C, V, P>, L>> {
        self.layer(layer)
    }

    #[cfg(feature = "dead-letter")]
    fn dead_letter<C, En>(
        self,
        layer: DeadLetterLayer<C, En>,
    ) -> ServiceBuilder<tower_layer::Stack<DeadLetterLayer<C, En>, L>> {
        self.layer(layer)
    }

    #[cfg(feature = "bulkhead")]
    fn bulkhead<C>(
        self,
        layer: BulkheadLayer<C>,
    ) -> ServiceBuilder<tower_layer::Stack<BulkheadLayer<C>, L>> {
        self.layer(layer)
    }

    #[cfg(feature = "rate-limit")]
    fn rate_limit<C, Cost, Usage>(
        self,
        layer: RateLimitLayer<C, Cost, Usage>,
    ) -> ServiceBuilder<tower_layer::Stack<RateLimitLayer<C, Cost, Usage>, L>> {
        self.layer(layer)
    }

    #[cfg(feature = "hedge")]
    fn hedge<C, T>(
        self,
        layer: HedgeLayer<C, T>,
    ) -> ServiceBuilder<tower_layer::Stack<HedgeLayer<C, T>, L>> {
        self.layer(layer)
    }

    #[cfg(feature = "chaos")]
    fn chaos<F>(
        self,
        layer: ChaosLayer<F>,
    ) -> ServiceBuilder<tower_layer::Stack<ChaosLayer<F>, L>> {
        self.layer(layer)
    }
}

#[cfg(all(test, feature = "retry", feature = "circuit-breaker"))]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::Duration;

    use tower::{ServiceExt, service_fn};

    use super::*;
    use crate::BoxError;
    use crate::circuit_breaker::{BreakerConfig, BreakerState, CircuitOpen};
    use crate::retry::RetryConfig;

    #[tokio::test(start_paused = true)]
    async fn layers_wrap_in_the_order_written() {
        let calls = Arc::new(AtomicU32::new(0));
        let counter = calls.clone();
        let agent = crate::Agent::new("down");
        let breaker = CircuitBreakerLayer::new(
            &agent,
            BreakerConfig::builder()
                .consecutive_failures(3)
                .build()
                .unwrap(),
        );
        let handle = breaker.handle();
        let stack = ServiceBuilder::new()
            .backoff_retry(BackoffRetryLayer::new(
                &agent,
                RetryConfig::builder()
                    .max_retries(5)
                    .base(Duration::from_millis(1))
                    .build()
                    .unwrap(),
            ))
            .circuit_breaker(breaker)
            .service(service_fn(move |(): ()| {
                counter.fetch_add(1, Ordering::SeqCst);
                async { Err::<(), BoxError>("down".into()) }
            }));

        let error = stack.clone().oneshot(()).await.unwrap_err();
        // Retry is outside the breaker: the third failure opens it, and the retry layer does
        // not hammer the open circuit with the three retries it had left.
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        assert!(crate::error::find::<CircuitOpen>(error.as_ref()).is_some());
        assert_eq!(handle.state(), BreakerState::Open);

        let error = stack.oneshot(()).await.unwrap_err();
        assert!(crate::error::find::<CircuitOpen>(error.as_ref()).is_some());
        assert_eq!(
            calls.load(Ordering::SeqCst),
            3,
            "an open circuit calls nobody"
        );
    }
}
