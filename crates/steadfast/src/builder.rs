//! [`ServiceBuilderExt`]: steadfast's layers as [`ServiceBuilder`] methods.
//!
//! Like tower-http's `ServiceBuilderExt`, it adds one method per layer, each taking either the
//! layer or its configuration, so a stack reads in the order the layers wrap the agent, outer
//! to inner:
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
//! let agent = ServiceBuilder::new()
//!     .backoff_retry(RetryConfig::default())
//!     .circuit_breaker(CircuitBreakerLayer::new(BreakerConfig::default()).named("echo").register(&registry))
//!     .timeout(Duration::from_secs(30))
//!     .service(service_fn(|prompt: String| async move { Ok::<_, BoxError>(prompt.to_uppercase()) }));
//!
//! assert_eq!(agent.oneshot("hello".to_string()).await?, "HELLO");
//! assert_eq!(registry.breaker("echo").unwrap().state(), BreakerState::Closed);
//! # Ok(()) }
//! # }
//! ```
//!

use tower::ServiceBuilder;

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
#[cfg(feature = "retry")]
use crate::retry::BackoffRetryLayer;

mod sealed {
    pub trait Sealed<L> {}
    impl<L> Sealed<L> for tower::ServiceBuilder<L> {}
}

/// Adds steadfast's layers to [`ServiceBuilder`]. Each method takes the layer itself or its
/// configuration (anything that converts into the layer), and is available with its layer's
/// cargo feature.
///
/// The trait is sealed: only `ServiceBuilder` implements it.
pub trait ServiceBuilderExt<L>: sealed::Sealed<L> + Sized {
    /// Adds a circuit breaker ([`CircuitBreakerLayer`]): pass a
    /// [`BreakerConfig`](crate::circuit_breaker::BreakerConfig) for an unnamed breaker with the
    /// default classifier, or a configured layer (named, registered, with a classifier).
    ///
    /// ```
    /// use steadfast::prelude::*;
    /// use tower::{service_fn, ServiceBuilder};
    ///
    /// let config = BreakerConfig::builder().consecutive_failures(3).build()?;
    /// let agent = ServiceBuilder::new()
    ///     .circuit_breaker(config)
    ///     .service(service_fn(|prompt: String| async move { Ok::<_, BoxError>(prompt) }));
    /// # let _ = agent;
    /// # Ok::<_, steadfast::circuit_breaker::ConfigError>(())
    /// ```
    #[cfg(feature = "circuit-breaker")]
    fn circuit_breaker<C>(
        self,
        layer: impl Into<CircuitBreakerLayer<C>>,
    ) -> ServiceBuilder<tower_layer::Stack<CircuitBreakerLayer<C>, L>>;

    /// Adds retries with backoff ([`BackoffRetryLayer`]): pass a
    /// [`RetryConfig`](crate::retry::RetryConfig) for the default classifier and budget, or a
    /// configured layer.
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::prelude::*;
    /// use tower::{service_fn, ServiceBuilder};
    ///
    /// let config = RetryConfig::builder().max_retries(2).deadline(Duration::from_secs(20)).build()?;
    /// let agent = ServiceBuilder::new()
    ///     .backoff_retry(config)
    ///     .service(service_fn(|prompt: String| async move { Ok::<_, BoxError>(prompt) }));
    /// # let _ = agent;
    /// # Ok::<_, steadfast::retry::ConfigError>(())
    /// ```
    #[cfg(feature = "retry")]
    fn backoff_retry<C>(
        self,
        layer: impl Into<BackoffRetryLayer<C>>,
    ) -> ServiceBuilder<tower_layer::Stack<BackoffRetryLayer<C>, L>>;

    /// Adds alternatives tried when the agent fails ([`FallbackLayer`]): other agents, a
    /// [`ResponseCache`](crate::cache::ResponseCache). Put it outside `backoff_retry`, so
    /// alternatives are tried once the primary's retries are spent.
    ///
    /// ```
    /// use steadfast::fallback::FallbackLayer;
    /// use steadfast::prelude::*;
    /// use tower::{service_fn, ServiceBuilder, ServiceExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), BoxError> {
    /// let backup = service_fn(|prompt: String| async move { Ok::<_, BoxError>(format!("(backup) {prompt}")) });
    /// let agent = ServiceBuilder::new()
    ///     .fallback(FallbackLayer::new().named("primary").then_named("backup", backup))
    ///     .service(service_fn(|_: String| async move { Err::<String, BoxError>("overloaded".into()) }));
    /// assert_eq!(agent.oneshot("hi".to_string()).await?, "(backup) hi");
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "fallback")]
    fn fallback<Req, Res, C, P>(
        self,
        layer: impl Into<FallbackLayer<Req, Res, C, P>>,
    ) -> ServiceBuilder<tower_layer::Stack<FallbackLayer<Req, Res, C, P>, L>>;

    /// Turns the final error into a degraded answer ([`DegradeLayer`]). Put it outermost.
    ///
    /// ```
    /// use steadfast::degrade::DegradeLayer;
    /// use steadfast::prelude::*;
    /// use tower::{service_fn, ServiceBuilder, ServiceExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), BoxError> {
    /// let agent = ServiceBuilder::new()
    ///     .degrade(DegradeLayer::new(|_: &(), _: &BoxError| Some("try again in a minute".to_string())))
    ///     .service(service_fn(|_: String| async move { Err::<String, BoxError>("all down".into()) }));
    /// assert_eq!(agent.oneshot("hi".to_string()).await?, "try again in a minute");
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "degrade")]
    fn degrade<D, V, P>(
        self,
        layer: impl Into<DegradeLayer<D, V, P>>,
    ) -> ServiceBuilder<tower_layer::Stack<DegradeLayer<D, V, P>, L>>;

    /// Keeps what finally failed in a durable sink ([`DeadLetterLayer`]). Put it outside the
    /// fallback layer, inside degrade.
    ///
    /// ```
    /// use steadfast::dead_letter::{DeadLetterLayer, DeadLettered, MemorySink};
    /// use steadfast::prelude::*;
    /// use tower::{service_fn, ServiceBuilder, ServiceExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let sink = MemorySink::new(100);
    /// let agent = ServiceBuilder::new()
    ///     .dead_letter(DeadLetterLayer::new(sink.clone()).named("gpt"))
    ///     .service(service_fn(|_: &'static str| async { Err::<(), BoxError>("down".into()) }));
    /// let err = agent.oneshot("hello").await.unwrap_err();
    /// assert!(err.is::<DeadLettered>());
    /// assert_eq!(sink.records().len(), 1);
    /// # }
    /// ```
    #[cfg(feature = "dead-letter")]
    fn dead_letter<En, C>(
        self,
        layer: impl Into<DeadLetterLayer<En, C>>,
    ) -> ServiceBuilder<tower_layer::Stack<DeadLetterLayer<En, C>, L>>;

    /// Adds fault injection ([`ChaosLayer`]): pass a
    /// [`ChaosConfig`](crate::chaos::ChaosConfig) (or a reference to one) or a configured layer.
    /// Put it innermost, next to the agent, so the other layers see its faults as the agent's.
    ///
    /// ```
    /// use steadfast::chaos::{ChaosConfig, ChaosError};
    /// use steadfast::prelude::*;
    /// use tower::{service_fn, ServiceBuilder, ServiceExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let always_fail = ChaosConfig::builder().seed(1).error_rate(1.0).build().unwrap();
    /// let agent = ServiceBuilder::new()
    ///     .chaos(always_fail)
    ///     .service(service_fn(|prompt: String| async move { Ok::<_, BoxError>(prompt) }));
    /// let error = agent.oneshot("hi".to_string()).await.unwrap_err();
    /// assert!(error.downcast_ref::<ChaosError>().is_some());
    /// # }
    /// ```
    #[cfg(feature = "chaos")]
    fn chaos<F>(
        self,
        layer: impl Into<ChaosLayer<F>>,
    ) -> ServiceBuilder<tower_layer::Stack<ChaosLayer<F>, L>>;
}

impl<L> ServiceBuilderExt<L> for ServiceBuilder<L> {
    #[cfg(feature = "circuit-breaker")]
    fn circuit_breaker<C>(
        self,
        layer: impl Into<CircuitBreakerLayer<C>>,
    ) -> ServiceBuilder<tower_layer::Stack<CircuitBreakerLayer<C>, L>> {
        self.layer(layer.into())
    }

    #[cfg(feature = "retry")]
    fn backoff_retry<C>(
        self,
        layer: impl Into<BackoffRetryLayer<C>>,
    ) -> ServiceBuilder<tower_layer::Stack<BackoffRetryLayer<C>, L>> {
        self.layer(layer.into())
    }

    #[cfg(feature = "fallback")]
    fn fallback<Req, Res, C, P>(
        self,
        layer: impl Into<FallbackLayer<Req, Res, C, P>>,
    ) -> ServiceBuilder<tower_layer::Stack<FallbackLayer<Req, Res, C, P>, L>> {
        self.layer(layer.into())
    }

    #[cfg(feature = "degrade")]
    fn degrade<D, V, P>(
        self,
        layer: impl Into<DegradeLayer<D, V, P>>,
    ) -> ServiceBuilder<tower_layer::Stack<DegradeLayer<D, V, P>, L>> {
        self.layer(layer.into())
    }

    #[cfg(feature = "dead-letter")]
    fn dead_letter<En, C>(
        self,
        layer: impl Into<DeadLetterLayer<En, C>>,
    ) -> ServiceBuilder<tower_layer::Stack<DeadLetterLayer<En, C>, L>> {
        self.layer(layer.into())
    }

    #[cfg(feature = "chaos")]
    fn chaos<F>(
        self,
        layer: impl Into<ChaosLayer<F>>,
    ) -> ServiceBuilder<tower_layer::Stack<ChaosLayer<F>, L>> {
        self.layer(layer.into())
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
    async fn configs_build_the_layers_in_the_order_written() {
        let calls = Arc::new(AtomicU32::new(0));
        let counter = calls.clone();
        let breaker = CircuitBreakerLayer::new(
            BreakerConfig::builder()
                .consecutive_failures(3)
                .build()
                .unwrap(),
        );
        let handle = breaker.handle();
        let stack = ServiceBuilder::new()
            .backoff_retry(
                RetryConfig::builder()
                    .max_retries(5)
                    .base(Duration::from_millis(1))
                    .build()
                    .unwrap(),
            )
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
