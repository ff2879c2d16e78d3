//! [`Resilience`]: the stack as one `reqwest_middleware::Middleware` (feature
//! `reqwest-middleware`).

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use http::Extensions;
use reqwest_middleware::{Middleware, Next};
use steadfast::BoxError;
use steadfast::Classify;
use steadfast::circuit_breaker::CircuitBreakerLayer;
use steadfast::fallback::FallbackLayer;
use steadfast::retry::BackoffRetryLayer;
use tower::timeout::TimeoutLayer;
use tower::{Service, ServiceBuilder, ServiceExt, service_fn};

use crate::classify::HttpClassifier;
use crate::llm::MAX_ERROR_BODY;

use super::peek::peek_error_body;
use super::request::{ReplayError, ReplayableRequest, replayable, to_reqwest};

/// The whole stack (fallback > retry > circuit breaker > timeout, each optional) as one
/// `reqwest_middleware::Middleware`, so a `ClientWithMiddleware` gets it with one `.with(..)`.
///
/// ```no_run
/// use std::time::Duration;
/// use steadfast::prelude::*;
/// use steadfast_http::HttpClassifier;
/// use steadfast_http::reqwest::Resilience;
///
/// # async fn demo() -> Result<(), BoxError> {
/// let registry = Registry::new();
/// let gpt = registry.agent("gpt-4o").classifier(HttpClassifier::llm());
/// let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
///     .with(
///         Resilience::new()
///             .backoff_retry(BackoffRetryLayer::new(&gpt, RetryConfig::default()))
///             .circuit_breaker(CircuitBreakerLayer::new(&gpt, BreakerConfig::default()))
///             .timeout(Duration::from_secs(60)),
///     )
///     .build();
/// let answer = client
///     .post("https://api.openai.com/v1/chat/completions")
///     .body(r#"{"model":"gpt-4o","messages":[]}"#)
///     .send()
///     .await?;
/// # let _ = answer; Ok(()) }
/// ```
///
/// How it fits reqwest-middleware:
///
/// - **The rest of the chain is the agent.** Middlewares added after this one, and the client,
///   run once per attempt; middlewares added before it see one call.
/// - **Requests are made replayable** ([`replayable`]): the body is copied once into memory and
///   each attempt or alternative sends a copy. A request whose body is a stream cannot be sent
///   twice: it goes through the circuit breaker and the timeout only (never retried, never
///   handed to an alternative).
/// - **Error bodies are read for the classifier** (up to 64 KiB, as
///   [`ReqwestAgent`](super::ReqwestAgent) does), so the LLM providers' vocabulary applies.
/// - **Each attempt gets a copy of the request's extensions**: what a later middleware writes
///   into them stays with that attempt.
/// - **Errors**: the chain's own error comes back as it was (`reqwest_middleware::Error`); the
///   layers' errors (`RetriesExhausted`, `CircuitOpen`, a timeout, ...) come back as
///   `reqwest_middleware::Error::Middleware` wrapping a [`MiddlewareError`], and
///   `steadfast::error::find::<CircuitOpen>(&error)` finds them through it.
/// - **The stack is assembled per request** around that request's `Next` (it borrows the
///   chain), from layers that share their state: the breaker is the agent's, the retry budget
///   is shared by every clone. A retry layer's `.seed(..)` therefore repeats its jitter
///   sequence for every request: leave it unseeded outside tests.
///
/// The fallback layer's alternatives are services of their own
/// (`Service<ReplayableRequest, Response = reqwest::Response>`, e.g. a
/// [`Rebase`](crate::Rebase) over a [`ReqwestAgent`](super::ReqwestAgent)): they do not run the
/// rest of this chain.
pub struct Resilience<C = HttpClassifier> {
    fallback: Option<FallbackLayer<ReplayableRequest, ::reqwest::Response, C>>,
    retry: Option<BackoffRetryLayer<C>>,
    breaker: Option<CircuitBreakerLayer<C>>,
    timeout: Option<Duration>,
    error_body_limit: usize,
}

impl<C> Resilience<C> {
    /// A middleware with no layer yet: add them with the methods below (in any order; they
    /// always run fallback > retry > breaker > timeout).
    pub fn new() -> Self {
        Resilience {
            fallback: None,
            retry: None,
            breaker: None,
            timeout: None,
            error_body_limit: MAX_ERROR_BODY,
        }
    }

    /// Alternatives for when the rest of the chain fails (outermost).
    #[must_use]
    pub fn fallback(
        mut self,
        layer: FallbackLayer<ReplayableRequest, ::reqwest::Response, C>,
    ) -> Self {
        self.fallback = Some(layer);
        self
    }

    /// Retries, below the fallback.
    #[must_use]
    pub fn backoff_retry(mut self, layer: BackoffRetryLayer<C>) -> Self {
        self.retry = Some(layer);
        self
    }

    /// The agent's circuit breaker, below the retries.
    #[must_use]
    pub fn circuit_breaker(mut self, layer: CircuitBreakerLayer<C>) -> Self {
        self.breaker = Some(layer);
        self
    }

    /// A timeout for each attempt (reading an error body included), innermost.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Reads at most about `limit` bytes of an error answer's body for the classifier; `0`
    /// reads none (status and headers only). Default: 64 KiB.
    #[must_use]
    pub fn error_body_limit(mut self, limit: usize) -> Self {
        self.error_body_limit = limit;
        self
    }
}

impl<C> Default for Resilience<C> {
    fn default() -> Self {
        Resilience::new()
    }
}

impl<C: Clone> Clone for Resilience<C> {
    fn clone(&self) -> Self {
        Resilience {
            fallback: self.fallback.clone(),
            retry: self.retry.clone(),
            breaker: self.breaker.clone(),
            timeout: self.timeout,
            error_body_limit: self.error_body_limit,
        }
    }
}

impl<C> fmt::Debug for Resilience<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Resilience")
            .field("fallback", &self.fallback)
            .field("retry", &self.retry)
            .field("breaker", &self.breaker)
            .field("timeout", &self.timeout)
            .field("error_body_limit", &self.error_body_limit)
            .finish()
    }
}

/// An error of the resilience stack (retries exhausted, circuit open, a timeout, every
/// alternative failed, ...), carried in `reqwest_middleware::Error::Middleware`. Its `source()`
/// is the stack's error, so `steadfast::error::find` sees through it.
#[derive(Debug)]
pub struct MiddlewareError {
    error: BoxError,
}

impl MiddlewareError {
    /// The stack's error.
    pub fn get_ref(&self) -> &(dyn StdError + Send + Sync + 'static) {
        self.error.as_ref()
    }

    /// Unwraps the stack's error.
    pub fn into_inner(self) -> BoxError {
        self.error
    }
}

impl fmt::Display for MiddlewareError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.error, f)
    }
}

impl StdError for MiddlewareError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(self.error.as_ref())
    }
}

/// An attempt's error as the layers see it. reqwest-middleware's error is `transparent`, which
/// hides the `reqwest::Error` itself from `source()` chains; this wrapper's `source()` is that
/// error, so the classifier finds connect errors and timeouts, and
/// [`into_middleware_error`] gives the chain's error back unchanged.
#[derive(Debug)]
struct ChainError(reqwest_middleware::Error);

impl fmt::Display for ChainError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl StdError for ChainError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match &self.0 {
            reqwest_middleware::Error::Reqwest(error) => Some(error),
            reqwest_middleware::Error::Middleware(error) => {
                let error: &(dyn StdError + Send + Sync + 'static) = &**error;
                Some(error)
            }
        }
    }
}

fn into_middleware_error(error: BoxError) -> reqwest_middleware::Error {
    match error.downcast::<ChainError>() {
        Ok(chain) => chain.0,
        Err(error) => reqwest_middleware::Error::middleware(MiddlewareError { error }),
    }
}

/// One attempt through the rest of the chain, with its own copy of the extensions.
async fn attempt(
    next: Next<'_>,
    request: ::reqwest::Request,
    mut extensions: Extensions,
    error_body_limit: usize,
) -> Result<::reqwest::Response, BoxError> {
    let response = next
        .run(request, &mut extensions)
        .await
        .map_err(|error| Box::new(ChainError(error)) as BoxError)?;
    Ok(peek_error_body(response, error_body_limit).await)
}

/// Calls `stack` once, as a boxed `Send` future. Awaiting the stack's own future inside the
/// `async_trait` method makes the compiler prove it `Send` for every lifetime of the boxed
/// errors inside, which it cannot ("implementation of `From` is not general enough"); proving
/// it here, with the lifetimes known, works.
fn send<'a, S, R>(
    stack: S,
    request: R,
) -> Pin<Box<dyn Future<Output = Result<::reqwest::Response, BoxError>> + Send + 'a>>
where
    S: Service<R, Response = ::reqwest::Response, Error = BoxError> + Send + 'a,
    S::Future: Send + 'a,
    R: Send + 'a,
{
    Box::pin(stack.oneshot(request))
}

#[async_trait::async_trait]
impl<C> Middleware for Resilience<C>
where
    C: Classify<ReplayableRequest, ::reqwest::Response>
        + Classify<::reqwest::Request, ::reqwest::Response>
        + Clone
        + Send
        + Sync
        + 'static,
    <C as Classify<ReplayableRequest, ::reqwest::Response>>::Memo: Send + 'static,
    <C as Classify<::reqwest::Request, ::reqwest::Response>>::Memo: Send + 'static,
{
    async fn handle(
        &self,
        request: ::reqwest::Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<::reqwest::Response> {
        let limit = self.error_body_limit;
        let snapshot = extensions.clone();
        match replayable(request) {
            Ok(request) => {
                let attempts = service_fn(move |request: ReplayableRequest| {
                    let next = next.clone();
                    let extensions = snapshot.clone();
                    async move {
                        let request = to_reqwest(request).map_err(BoxError::from)?;
                        attempt(next, request, extensions, limit).await
                    }
                });
                let stack = ServiceBuilder::new()
                    .option_layer(self.fallback.clone())
                    .option_layer(self.retry.clone())
                    .option_layer(self.breaker.clone())
                    .option_layer(self.timeout.map(TimeoutLayer::new))
                    .service(attempts);
                send(stack, request).await.map_err(into_middleware_error)
            }
            Err(ReplayError::StreamingBody(streaming)) => {
                // Its bytes can be sent once: the breaker may refuse it and the timeout bound
                // it, but nothing may send it again.
                let once = service_fn(move |request: ::reqwest::Request| {
                    attempt(next.clone(), request, snapshot.clone(), limit)
                });
                let stack = ServiceBuilder::new()
                    .option_layer(self.breaker.clone())
                    .option_layer(self.timeout.map(TimeoutLayer::new))
                    .service(once);
                send(stack, streaming.into_request())
                    .await
                    .map_err(into_middleware_error)
            }
            Err(ReplayError::Url(error)) => Err(reqwest_middleware::Error::Reqwest(error)),
        }
    }
}
