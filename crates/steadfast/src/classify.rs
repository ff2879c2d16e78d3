//! One classification, shared by every layer.
//!
//! An agent's failure is not always an `Err`: an HTTP 503 is `Ok(Response)`, and a timeout and a
//! rejected prompt are both `Err` but call for opposite reactions. Every steadfast layer therefore
//! takes a classifier ([`Classify`]) that turns a call's result into an [`Outcome`], and reacts to
//! the [`OutcomeKind`] alone:
//!
//! | kind | examples | retry | breaker | fallback | dead-letter |
//! |---|---|---|---|---|---|
//! | `Success` | 2xx, `Ok` in-process | - | success | - | - |
//! | `Transient` | timeout, reset, 500/502/503/504/529, 408 | yes | failure | yes | if final |
//! | `RateLimited` | 429 | after `retry_after` | failure | yes | if final |
//! | `AgentFault` | 501, auth/config errors, circuit open | no | failure | yes | if final |
//! | `CallerFault` | 400/413/422, context too long | no | ignored | targeted | yes (poison) |
//!
//! A caller fault never counts against an agent's health: a bad prompt must not open the circuit
//! of a healthy model.
//!
//! ```
//! use std::time::Duration;
//! use steadfast::classify::{Classify, Outcome, OutcomeKind};
//!
//! // A closure is a classifier: here an in-process agent whose `Err(String)` starting with
//! // "bad prompt" is the caller's fault.
//! let classifier = |result: Result<&u32, &String>| match result {
//!     Ok(_) => Outcome::success(),
//!     Err(e) if e.starts_with("bad prompt") => Outcome::caller_fault("bad prompt"),
//!     Err(_) => Outcome::transient("agent error"),
//! };
//! let outcome = classifier.classify(Err(&"bad prompt: empty".to_string()));
//! assert_eq!(outcome.kind(), OutcomeKind::CallerFault);
//! assert!(!outcome.counts_against_agent());
//!
//! let throttled = Outcome::rate_limited("429").with_retry_after(Duration::from_secs(2));
//! assert_eq!(throttled.retry_after(), Some(Duration::from_secs(2)));
//! ```

use std::any::Any;
use std::fmt;
use std::time::Duration;

use crate::error::BoxError;

/// What a call's result means for the agent that produced it.
///
/// See the [module docs](self) for how each layer reacts to each kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum OutcomeKind {
    /// The agent answered usefully.
    Success,
    /// A passing failure of the agent or the path to it: worth retrying.
    Transient,
    /// The agent is throttling this caller: retry only after the wait it asked for.
    RateLimited,
    /// The agent cannot serve this at all right now (auth, config, not implemented, circuit
    /// open): retrying the same agent is pointless, an alternative may work.
    AgentFault,
    /// The request itself is bad (invalid, too long, refused by policy): no agent health impact,
    /// no retry; only alternatives that declare they handle it should see it.
    CallerFault,
}

impl OutcomeKind {
    /// Every kind, in declaration order (handy for per-kind metrics and tables).
    pub const ALL: [OutcomeKind; 5] = [
        OutcomeKind::Success,
        OutcomeKind::Transient,
        OutcomeKind::RateLimited,
        OutcomeKind::AgentFault,
        OutcomeKind::CallerFault,
    ];

    /// The stable lower-case name used in metrics labels, events and JSON.
    pub const fn as_str(self) -> &'static str {
        match self {
            OutcomeKind::Success => "success",
            OutcomeKind::Transient => "transient",
            OutcomeKind::RateLimited => "rate_limited",
            OutcomeKind::AgentFault => "agent_fault",
            OutcomeKind::CallerFault => "caller_fault",
        }
    }
}

impl fmt::Display for OutcomeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The classification of one call: its [`OutcomeKind`], the wait the agent asked for (if any)
/// and a short static reason for events and dead letters.
///
/// `Outcome` is `Copy` and never allocates, so classifying the success path costs nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Outcome {
    kind: OutcomeKind,
    retry_after: Option<Duration>,
    reason: Option<&'static str>,
}

impl Outcome {
    /// An outcome of the given kind, with no reason and no retry-after.
    pub const fn new(kind: OutcomeKind) -> Self {
        Outcome {
            kind,
            retry_after: None,
            reason: None,
        }
    }

    /// A success.
    pub const fn success() -> Self {
        Outcome::new(OutcomeKind::Success)
    }

    /// A transient failure, worth retrying.
    pub const fn transient(reason: &'static str) -> Self {
        Outcome::new(OutcomeKind::Transient).with_reason(reason)
    }

    /// The agent is throttling: retry after [`retry_after`](Self::retry_after) if known.
    pub const fn rate_limited(reason: &'static str) -> Self {
        Outcome::new(OutcomeKind::RateLimited).with_reason(reason)
    }

    /// The agent cannot serve this; an alternative may.
    pub const fn agent_fault(reason: &'static str) -> Self {
        Outcome::new(OutcomeKind::AgentFault).with_reason(reason)
    }

    /// The request is at fault; the agent is healthy.
    pub const fn caller_fault(reason: &'static str) -> Self {
        Outcome::new(OutcomeKind::CallerFault).with_reason(reason)
    }

    /// Sets the wait the agent asked for (`Retry-After`, `retry-after-ms`, ...).
    #[must_use]
    pub const fn with_retry_after(mut self, retry_after: Duration) -> Self {
        self.retry_after = Some(retry_after);
        self
    }

    /// Sets the short reason reported in events, metrics and dead letters.
    #[must_use]
    pub const fn with_reason(mut self, reason: &'static str) -> Self {
        self.reason = Some(reason);
        self
    }

    /// The kind of outcome.
    pub const fn kind(&self) -> OutcomeKind {
        self.kind
    }

    /// The wait the agent asked for, if it said.
    pub const fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }

    /// The short reason, if the classifier gave one.
    pub const fn reason(&self) -> Option<&'static str> {
        self.reason
    }

    /// `true` for [`OutcomeKind::Success`].
    pub const fn is_success(&self) -> bool {
        matches!(self.kind, OutcomeKind::Success)
    }

    /// `true` when the outcome says the agent is unwell: transient, rate-limited or agent fault.
    /// Successes and caller faults do not count against an agent (breakers ignore caller faults).
    pub const fn counts_against_agent(&self) -> bool {
        matches!(
            self.kind,
            OutcomeKind::Transient | OutcomeKind::RateLimited | OutcomeKind::AgentFault
        )
    }

    /// `true` when retrying the same agent may help: transient failures, and rate limits whose
    /// wait is known.
    pub const fn is_retryable(&self) -> bool {
        match self.kind {
            OutcomeKind::Transient => true,
            OutcomeKind::RateLimited => self.retry_after.is_some(),
            _ => false,
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.kind.as_str())?;
        if let Some(reason) = self.reason {
            write!(f, " ({reason})")?;
        }
        if let Some(wait) = self.retry_after {
            write!(f, ", retry after {wait:?}")?;
        }
        Ok(())
    }
}

/// Turns a call's result into an [`Outcome`].
///
/// Implemented for closures `Fn(Result<&Res, &E>) -> Outcome` and by [`DefaultClassifier`];
/// `steadfast-http` ships HTTP and gRPC classifiers. Implementations should not allocate on the
/// success path: every call through every layer is classified.
pub trait Classify<Res, E> {
    /// Classifies one result.
    fn classify(&self, result: Result<&Res, &E>) -> Outcome;
}

impl<F, Res, E> Classify<Res, E> for F
where
    F: Fn(Result<&Res, &E>) -> Outcome,
{
    fn classify(&self, result: Result<&Res, &E>) -> Outcome {
        self(result)
    }
}

/// The classifier for plain `Result<T, E>` agents: every `Ok` is a success and every `Err` is
/// transient, except errors steadfast itself recognises (see [`classify_known_error`]): a
/// [`tower::timeout::error::Elapsed`] is a transient `"timeout"` and a circuit-open rejection is
/// an agent fault (so it is not retried against the same agent, but falls back).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DefaultClassifier;

impl<Res, E: 'static> Classify<Res, E> for DefaultClassifier {
    #[inline]
    fn classify(&self, result: Result<&Res, &E>) -> Outcome {
        match result {
            Ok(_) => Outcome::success(),
            Err(error) => classify_known_error(error).unwrap_or(Outcome::transient("error")),
        }
    }
}

/// Recognises the errors that steadfast layers and tower produce, whatever classifier is in use,
/// so that every classifier treats them alike:
///
/// - a circuit-open rejection: [`OutcomeKind::AgentFault`] with reason `"circuit open"` and the
///   time until the next probe as `retry_after`;
/// - tower's and tokio's timeout `Elapsed`: [`OutcomeKind::Transient`] with reason `"timeout"`;
/// - a call refused or cancelled by a graceful [`shutdown`](crate::shutdown):
///   [`OutcomeKind::AgentFault`] with reason `"shutting down"` or `"shutdown"` (never retried,
///   never held against the agent's breaker as a transient blip; dead-letter layers keep the
///   request).
///
/// `error` may be the concrete error or a [`BoxError`]; a boxed error's `source()` chain is
/// searched too. Returns `None` for anything else.
pub fn classify_known_error<E: 'static>(error: &E) -> Option<Outcome> {
    let any: &dyn Any = error;
    if let Some(boxed) = any.downcast_ref::<BoxError>() {
        let mut current: Option<&(dyn std::error::Error + 'static)> = Some(boxed.as_ref());
        while let Some(err) = current {
            if let Some(outcome) = classify_dyn_error(err) {
                return Some(outcome);
            }
            current = err.source();
        }
        return None;
    }
    if let Some(error) = any.downcast_ref::<tower::timeout::error::Elapsed>() {
        return classify_dyn_error(error);
    }
    if let Some(error) = any.downcast_ref::<tokio::time::error::Elapsed>() {
        return classify_dyn_error(error);
    }
    if let Some(error) = any.downcast_ref::<crate::shutdown::ShuttingDown>() {
        return classify_dyn_error(error);
    }
    if let Some(error) = any.downcast_ref::<crate::shutdown::CancelledByShutdown>() {
        return classify_dyn_error(error);
    }
    #[cfg(feature = "circuit-breaker")]
    if let Some(open) = any.downcast_ref::<crate::circuit_breaker::CircuitOpen>() {
        return Some(circuit_open_outcome(open));
    }
    None
}

fn classify_dyn_error(error: &(dyn std::error::Error + 'static)) -> Option<Outcome> {
    #[cfg(feature = "circuit-breaker")]
    if let Some(open) = error.downcast_ref::<crate::circuit_breaker::CircuitOpen>() {
        return Some(circuit_open_outcome(open));
    }
    if error.is::<tower::timeout::error::Elapsed>() || error.is::<tokio::time::error::Elapsed>() {
        return Some(Outcome::transient("timeout"));
    }
    if error.is::<crate::shutdown::ShuttingDown>() {
        return Some(Outcome::agent_fault("shutting down"));
    }
    if error.is::<crate::shutdown::CancelledByShutdown>() {
        return Some(Outcome::agent_fault("shutdown"));
    }
    None
}

#[cfg(feature = "circuit-breaker")]
fn circuit_open_outcome(open: &crate::circuit_breaker::CircuitOpen) -> Outcome {
    let outcome = Outcome::agent_fault("circuit open");
    match open.retry_in() {
        Some(wait) => outcome.with_retry_after(wait),
        None => outcome,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_classifier_treats_ok_as_success_and_err_as_transient() {
        let ok: Result<&u32, &String> = Ok(&1);
        assert_eq!(DefaultClassifier.classify(ok), Outcome::success());
        let err: Result<&u32, &String> = Err(&"boom".to_string());
        let outcome = DefaultClassifier.classify(err);
        assert_eq!(outcome.kind(), OutcomeKind::Transient);
        assert!(outcome.is_retryable());
    }

    #[tokio::test(start_paused = true)]
    async fn tower_timeout_elapsed_is_a_transient_timeout() {
        use tower::{ServiceExt, service_fn, timeout::Timeout};
        let slow = service_fn(|()| async {
            tokio::time::sleep(Duration::from_secs(10)).await;
            Ok::<_, BoxError>(())
        });
        let err = Timeout::new(slow, Duration::from_secs(1))
            .oneshot(())
            .await
            .unwrap_err();
        let outcome = DefaultClassifier.classify(Err::<&(), _>(&err));
        assert_eq!(outcome, Outcome::transient("timeout"));
    }

    #[test]
    fn a_timeout_found_in_the_source_chain_is_a_timeout() {
        #[derive(Debug)]
        struct Wrapper(tower::timeout::error::Elapsed);
        impl fmt::Display for Wrapper {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("agent call failed")
            }
        }
        impl std::error::Error for Wrapper {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let err: BoxError = Box::new(Wrapper(tower::timeout::error::Elapsed::new()));
        assert_eq!(
            DefaultClassifier.classify(Err::<&(), _>(&err)),
            Outcome::transient("timeout")
        );
        let plain: BoxError = "request timed out".into();
        assert_eq!(
            DefaultClassifier.classify(Err::<&(), _>(&plain)),
            Outcome::transient("error")
        );
    }

    #[test]
    fn shutdown_refusals_and_cancellations_are_agent_faults_not_retried() {
        let refused = crate::shutdown::ShuttingDown {
            agent: std::sync::Arc::from("gpt"),
        };
        let outcome = DefaultClassifier.classify(Err::<&(), _>(&refused));
        assert_eq!(outcome, Outcome::agent_fault("shutting down"));
        assert!(!outcome.is_retryable());
        let cancelled: BoxError = Box::new(crate::shutdown::CancelledByShutdown {
            agent: std::sync::Arc::from("gpt"),
            in_flight_for: Duration::from_secs(3),
        });
        assert_eq!(
            DefaultClassifier.classify(Err::<&(), _>(&cancelled)),
            Outcome::agent_fault("shutdown")
        );
    }

    #[test]
    fn retryable_rules() {
        assert!(Outcome::transient("x").is_retryable());
        assert!(!Outcome::rate_limited("429").is_retryable());
        assert!(
            Outcome::rate_limited("429")
                .with_retry_after(Duration::from_secs(1))
                .is_retryable()
        );
        assert!(!Outcome::agent_fault("401").is_retryable());
        assert!(!Outcome::caller_fault("400").is_retryable());
        assert!(!Outcome::caller_fault("400").counts_against_agent());
        assert!(Outcome::agent_fault("401").counts_against_agent());
    }

    #[test]
    fn display_says_kind_reason_and_wait() {
        let outcome = Outcome::rate_limited("429").with_retry_after(Duration::from_secs(3));
        assert_eq!(outcome.to_string(), "rate_limited (429), retry after 3s");
    }
}
