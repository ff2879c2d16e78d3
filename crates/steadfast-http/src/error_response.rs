//! [`ErrorResponseLayer`]: the layers' errors as HTTP answers, so a stack fits axum's
//! `Router::route_layer` / `Router::layer` (feature `axum`).
//!
//! axum wants services that never fail (`Error = Infallible`): an error must already be an
//! answer. Put this layer outermost; every error below it becomes a response, chosen by what
//! the error means:
//!
//! | error (the outermost one that matches, in this order) | status | `type` |
//! |---|---|---|
//! | `CircuitOpen` | 503, `Retry-After` = time to the next probe (when known) | `circuit_open` |
//! | `DeadlineExceeded` (the retry layer's overall deadline) | 504 | `deadline_exceeded` |
//! | `RetriesExhausted` | 502 | `retries_exhausted` |
//! | `BudgetExhausted` | 502 | `retry_budget_exhausted` |
//! | `BodyTooLarge` ([`BufferRequestLayer`](crate::BufferRequestLayer)) | 413 | `request_too_large` |
//! | otherwise, by [`classify_error`]: rate-limited | 429, `Retry-After` when known | `rate_limited` |
//! | caller fault `context_length_exceeded`, `content_filtered`, `tokens_over_limit` | 422 | `invalid_request` |
//! | caller fault `request_too_large`, `request body too large` | 413 | `invalid_request` |
//! | any other caller fault | 400 | `invalid_request` |
//! | transient `timeout` (tower's or tokio's `Elapsed`, a client timeout) | 504 | `timeout` |
//! | any other transient failure or agent fault | 502 | `agent_error` |
//!
//! The agent is named in the `x-steadfast-agent` header ([`AGENT_HEADER`]): the agent the error
//! names (`CircuitOpen`, the retry layer's errors), else the layer's own
//! ([`ErrorResponseLayer::agent`]). The body is JSON,
//! `{"error":{"type":"circuit_open","reason":"circuit open","agent":"gpt-4o","message":"…"}}`,
//! and never quotes the error chain (it may name internal hosts or carry a key in a URL); the
//! chain is logged at `debug` (target `steadfast_http::error_response`).
//!
//! ```
//! use std::time::Duration;
//! use axum::{routing::post, Router};
//! use steadfast::prelude::*;
//! use steadfast_http::status::StatusRoutes;
//! use steadfast_http::{BufferRequestLayer, ErrorResponseLayer, HttpClassifier};
//! use tower::ServiceBuilder;
//!
//! let registry = Registry::new();
//! // Summarising is safe to repeat, so every method may be retried.
//! let summarizer = registry.agent("summarizer").classifier(HttpClassifier::llm());
//! let app: Router = Router::new()
//!     .route("/summarize", post(|prompt: String| async move { format!("{} words", prompt.split_whitespace().count()) }))
//!     .route_layer(
//!         ServiceBuilder::new()
//!             .layer(ErrorResponseLayer::new().agent(&summarizer))
//!             .layer(BufferRequestLayer::new(64 * 1024))
//!             .backoff_retry(BackoffRetryLayer::new(&summarizer, RetryConfig::default()))
//!             .circuit_breaker(CircuitBreakerLayer::new(&summarizer, BreakerConfig::default()))
//!             .timeout(Duration::from_secs(30)),
//!     )
//!     .merge(StatusRoutes::new(registry).router());
//! ```

use std::convert::Infallible;
use std::error::Error;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Json;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::StatusCode;
use http::header::{HeaderName, HeaderValue, RETRY_AFTER};
use pin_project_lite::pin_project;
use serde_json::json;
use steadfast::circuit_breaker::CircuitOpen;
use steadfast::retry::{BudgetExhausted, DeadlineExceeded, RetriesExhausted};
use steadfast::{Agent, BoxError, OutcomeKind};
use tower::ServiceExt;
use tower::util::Oneshot;
use tower_layer::Layer;
use tower_service::Service;

use crate::body::BodyTooLarge;
use crate::classify::classify_error;
use crate::reason;

/// `x-steadfast-agent`: the agent an error answer is about.
pub const AGENT_HEADER: HeaderName = HeaderName::from_static("x-steadfast-agent");

/// Turns the errors of the services below into HTTP answers (`Error = Infallible`). See the
/// [module docs](self) for the mapping.
#[derive(Clone, Debug, Default)]
pub struct ErrorResponseLayer {
    agent: Option<Arc<str>>,
}

impl ErrorResponseLayer {
    /// The layer, naming in `x-steadfast-agent` only the agents errors name themselves.
    pub fn new() -> Self {
        ErrorResponseLayer { agent: None }
    }

    /// Names `agent` in `x-steadfast-agent` when the error does not name one (a client error, a
    /// timeout below the retry layer).
    #[must_use]
    pub fn agent<C>(mut self, agent: &Agent<C>) -> Self {
        self.agent = Some(agent.name_arc().clone());
        self
    }
}

impl<S> Layer<S> for ErrorResponseLayer {
    type Service = ErrorResponse<S>;

    fn layer(&self, inner: S) -> ErrorResponse<S> {
        ErrorResponse {
            inner,
            agent: self.agent.clone(),
        }
    }
}

/// The service of [`ErrorResponseLayer`].
#[derive(Clone, Debug)]
pub struct ErrorResponse<S> {
    inner: S,
    agent: Option<Arc<str>>,
}

impl<S, Req, B> Service<Req> for ErrorResponse<S>
where
    S: Service<Req, Response = http::Response<B>> + Clone,
    S::Error: Into<BoxError>,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = ResponseFuture<S, Req>;

    /// Always ready: a service that is not ready, or fails to become so, answers in `call`
    /// (axum requires this of the services it holds, as its `HandleError` does).
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Req) -> Self::Future {
        let fresh = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, fresh);
        ResponseFuture {
            future: inner.oneshot(request),
            agent: self.agent.clone(),
        }
    }
}

pin_project! {
    /// The future of [`ErrorResponse`].
    pub struct ResponseFuture<S, Req>
    where
        S: Service<Req>,
    {
        #[pin]
        future: Oneshot<S, Req>,
        agent: Option<Arc<str>>,
    }
}

impl<S, Req, B> Future for ResponseFuture<S, Req>
where
    S: Service<Req, Response = http::Response<B>>,
    S::Error: Into<BoxError>,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        Poll::Ready(Ok(match std::task::ready!(this.future.poll(cx)) {
            Ok(response) => response.map(axum::body::Body::new),
            Err(error) => {
                let error: BoxError = error.into();
                respond(error.as_ref(), this.agent.as_deref())
            }
        }))
    }
}

impl<S: Service<Req>, Req> fmt::Debug for ResponseFuture<S, Req> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("agent", &self.agent)
            .finish_non_exhaustive()
    }
}

/// The HTTP answer for `error`, as [`ErrorResponseLayer`] gives it (without a default agent):
/// for handlers that call a stack themselves.
///
/// ```
/// use steadfast::BoxError;
/// use steadfast_http::error_response::error_response;
///
/// let error: BoxError = Box::new(tower::timeout::error::Elapsed::new());
/// assert_eq!(error_response(error.as_ref()).status(), 504);
/// ```
pub fn error_response(error: &(dyn Error + 'static)) -> Response {
    respond(error, None)
}

/// What an error answer says.
struct Answer {
    status: StatusCode,
    kind: &'static str,
    reason: Option<&'static str>,
    agent: Option<String>,
    retry_after: Option<Duration>,
    message: String,
}

fn respond(error: &(dyn Error + 'static), default_agent: Option<&str>) -> Response {
    let answer = decide(error);
    let agent = answer.agent.as_deref().or(default_agent);
    tracing::debug!(
        target: "steadfast_http::error_response",
        status = answer.status.as_u16(),
        kind = answer.kind,
        agent,
        error = %steadfast::error::chain(error).join(": "),
        "error answered"
    );
    let mut response = (
        answer.status,
        Json(json!({
            "error": {
                "type": answer.kind,
                "reason": answer.reason,
                "agent": agent,
                "message": answer.message,
            }
        })),
    )
        .into_response();
    let headers = response.headers_mut();
    if let Some(wait) = answer.retry_after {
        // Whole seconds, rounded up: coming back early would only meet the same refusal.
        let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        headers.insert(RETRY_AFTER, HeaderValue::from(seconds));
    }
    // An agent name that is not a valid header value (a control character) is left out of the
    // header; the body still names it.
    if let Some(value) = agent.and_then(|agent| HeaderValue::from_str(agent).ok()) {
        headers.insert(AGENT_HEADER, value);
    }
    response
}

fn decide(error: &(dyn Error + 'static)) -> Answer {
    typed(error).unwrap_or_else(|| classified(error))
}

/// The answer for the first of steadfast's own errors in the chain, outermost first.
fn typed(error: &(dyn Error + 'static)) -> Option<Answer> {
    let mut current = Some(error);
    while let Some(error) = current {
        if let Some(open) = error.downcast_ref::<CircuitOpen>() {
            return Some(Answer {
                status: StatusCode::SERVICE_UNAVAILABLE,
                kind: "circuit_open",
                reason: Some("circuit open"),
                agent: Some(open.agent().to_owned()),
                retry_after: open.retry_in(),
                message: format!(
                    "agent `{}` is unavailable (its circuit is open)",
                    open.agent()
                ),
            });
        }
        if let Some(late) = error.downcast_ref::<DeadlineExceeded>() {
            return Some(Answer {
                status: StatusCode::GATEWAY_TIMEOUT,
                kind: "deadline_exceeded",
                reason: Some("deadline exceeded"),
                agent: Some(late.agent().to_owned()),
                retry_after: None,
                message: format!(
                    "agent `{}` did not answer within {:?} ({} attempts)",
                    late.agent(),
                    late.deadline(),
                    late.attempts()
                ),
            });
        }
        if let Some(exhausted) = error.downcast_ref::<RetriesExhausted>() {
            return Some(Answer {
                status: StatusCode::BAD_GATEWAY,
                kind: "retries_exhausted",
                reason: Some("retries exhausted"),
                agent: Some(exhausted.agent().to_owned()),
                retry_after: None,
                message: format!(
                    "agent `{}` failed after {} attempts",
                    exhausted.agent(),
                    exhausted.attempts()
                ),
            });
        }
        if let Some(spent) = error.downcast_ref::<BudgetExhausted>() {
            return Some(Answer {
                status: StatusCode::BAD_GATEWAY,
                kind: "retry_budget_exhausted",
                reason: Some("retry budget exhausted"),
                agent: Some(spent.agent().to_owned()),
                retry_after: None,
                message: format!(
                    "agent `{}` failed and its retry budget is spent",
                    spent.agent()
                ),
            });
        }
        if let Some(too_large) = error.downcast_ref::<BodyTooLarge>() {
            return Some(Answer {
                status: StatusCode::PAYLOAD_TOO_LARGE,
                kind: "request_too_large",
                reason: Some(reason::BODY_TOO_LARGE),
                agent: None,
                retry_after: None,
                message: format!("the request body is over {} bytes", too_large.limit),
            });
        }
        current = error.source();
    }
    None
}

/// The answer for any other error: by what it means ([`classify_error`]).
fn classified(error: &(dyn Error + 'static)) -> Answer {
    let outcome = classify_error(error);
    let reason = outcome.reason();
    let (status, kind, message) = match outcome.kind() {
        OutcomeKind::RateLimited => (
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "the agent is rate limited",
        ),
        OutcomeKind::CallerFault => (
            match reason {
                Some(
                    reason::CONTEXT_LENGTH_EXCEEDED
                    | reason::CONTENT_FILTERED
                    | reason::TOKENS_OVER_LIMIT,
                ) => StatusCode::UNPROCESSABLE_ENTITY,
                Some(reason::REQUEST_TOO_LARGE | reason::BODY_TOO_LARGE) => {
                    StatusCode::PAYLOAD_TOO_LARGE
                }
                _ => StatusCode::BAD_REQUEST,
            },
            "invalid_request",
            "the request was refused",
        ),
        OutcomeKind::Transient if reason == Some(reason::TIMEOUT) => (
            StatusCode::GATEWAY_TIMEOUT,
            "timeout",
            "the agent did not answer in time",
        ),
        OutcomeKind::Transient | OutcomeKind::AgentFault => {
            (StatusCode::BAD_GATEWAY, "agent_error", "the agent failed")
        }
        // An error that calls itself a success: nothing above knows what it means.
        OutcomeKind::Success => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "the request failed",
        ),
    };
    Answer {
        status,
        kind,
        reason,
        agent: None,
        retry_after: outcome.retry_after(),
        message: match reason {
            Some(reason) => format!("{message} ({reason})"),
            None => message.to_owned(),
        },
    }
}
