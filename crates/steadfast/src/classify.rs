//! One classification, shared by every layer.
//!
//! An agent's failure is not always an `Err`: an HTTP 503 is `Ok(Response)`, and a timeout and a
//! rejected prompt are both `Err` but call for opposite reactions. Every steadfast layer therefore
//! asks the agent's classifier ([`Classify`], given once to the [`Agent`](crate::Agent)) what a
//! result means, and reacts to the [`OutcomeKind`] alone:
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
//! # The contract
//!
//! - **Results** go through the agent's [`Classify`]. It may look at the request first
//!   ([`Classify::note`], in the spirit of tower-http's `MakeClassifier`): that is how an HTTP
//!   classifier knows a `POST` must not be sent twice after a failure that may have reached the
//!   agent ([`Classify::is_idempotent`], [`Outcome::unprocessed`]).
//! - **Errors that say what they mean** implement [`ClassifyError`] and are
//!   [registered](register) once (steadfast's layers register theirs when they are built).
//!   They are found anywhere in an error's `source()` chain and win over the classifier, so a
//!   `CircuitOpen`, a retry layer's `DeadlineExceeded` or a drain's cancellation mean the same to
//!   every layer and every classifier. This module depends on no layer: a new layer's errors
//!   classify themselves without an edit here.
//! - A response that is `Ok` but classified as a failure (an HTTP 503) becomes a
//!   [`FailedResponse`] error wherever a layer has to turn it into one (fallback, dead-letter,
//!   degrade), and that error classifies itself as the outcome it stood for.
//!
//! ```
//! use std::time::Duration;
//! use steadfast::BoxError;
//! use steadfast::classify::{Classify, Outcome, OutcomeKind};
//!
//! // A closure is a classifier: here an in-process agent whose errors starting with
//! // "bad prompt" are the caller's fault.
//! let classifier = |result: Result<&u32, &BoxError>| match result {
//!     Ok(_) => Outcome::success(),
//!     Err(e) if e.to_string().starts_with("bad prompt") => Outcome::caller_fault("bad prompt"),
//!     Err(_) => Outcome::transient("agent error"),
//! };
//! let error: BoxError = "bad prompt: empty".into();
//! let outcome = Classify::<String, u32>::classify(&classifier, &(), Err(&error));
//! assert_eq!(outcome.kind(), OutcomeKind::CallerFault);
//! assert!(!outcome.counts_against_agent());
//!
//! let throttled = Outcome::rate_limited("429").with_retry_after(Duration::from_secs(2));
//! assert_eq!(throttled.retry_after(), Some(Duration::from_secs(2)));
//! ```

use std::any::TypeId;
use std::error::Error;
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

    /// The kind named `name` (as [`as_str`](Self::as_str) writes it).
    pub fn from_name(name: &str) -> Option<Self> {
        OutcomeKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == name)
    }
}

impl fmt::Display for OutcomeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The classification of one call: its [`OutcomeKind`], the wait the agent asked for (if any),
/// a short static reason for events and dead letters, and whether the agent certainly did not
/// act on the request.
///
/// `Outcome` is `Copy` and never allocates, so classifying the success path costs nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Outcome {
    kind: OutcomeKind,
    retry_after: Option<Duration>,
    reason: Option<&'static str>,
    unprocessed: bool,
    local: bool,
    deferred: bool,
}

impl Outcome {
    /// An outcome of the given kind, with no reason and no retry-after.
    pub const fn new(kind: OutcomeKind) -> Self {
        Outcome {
            kind,
            retry_after: None,
            reason: None,
            unprocessed: false,
            local: false,
            deferred: false,
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

    /// Marks that the agent certainly did not act on the request: the connection was refused,
    /// the agent refused it before doing any work (429, 503 with `Retry-After`), or steadfast
    /// refused it before sending (circuit open, shed, shutting down). Such a failure may be
    /// retried even when the request is not idempotent ([`Classify::is_idempotent`]).
    #[must_use]
    pub const fn unprocessed(mut self) -> Self {
        self.unprocessed = true;
        self
    }

    /// Marks a refusal steadfast made on this side, from its own accounting, before the call
    /// left (a full bulkhead, a client-side rate limit): it says nothing about the agent's
    /// health, so [`counts_against_agent`](Self::counts_against_agent) is `false` and circuit
    /// breakers ignore it, whatever its kind. It is also [`unprocessed`](Self::unprocessed).
    /// Fallback and dead-letter layers treat it as its kind says (an agent fault is eligible
    /// for fallback).
    #[must_use]
    pub const fn local(mut self) -> Self {
        self.local = true;
        self.unprocessed = true;
        self
    }

    /// Marks a verdict that is not final yet: the answer has begun (a streamed response whose
    /// first bytes arrived) but may still fail. Every layer reads it as its kind says; a
    /// circuit breaker records nothing for it, because whoever holds the rest of the answer
    /// reports the final outcome later with
    /// [`BreakerHandle::record`](crate::circuit_breaker::BreakerHandle::record) (steadfast-http's
    /// stream guard does). Counting the head as a success would reset the breaker's
    /// consecutive-failure count on every stream that then dies half-way.
    ///
    /// ```
    /// use steadfast::Outcome;
    ///
    /// let head = Outcome::success().deferred();
    /// assert!(head.is_success() && head.is_deferred());
    /// assert!(!Outcome::success().is_deferred());
    /// ```
    #[must_use]
    pub const fn deferred(mut self) -> Self {
        self.deferred = true;
        self
    }

    /// Whether the verdict is not final yet (see [`deferred`](Self::deferred)).
    pub const fn is_deferred(&self) -> bool {
        self.deferred
    }

    /// Whether steadfast refused the call on this side (see [`local`](Self::local)).
    pub const fn is_local(&self) -> bool {
        self.local
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

    /// The reason, or the kind's name when there is none.
    pub const fn reason_or_kind(&self) -> &'static str {
        match self.reason {
            Some(reason) => reason,
            None => self.kind.as_str(),
        }
    }

    /// Whether the agent certainly did not act on the request (see
    /// [`unprocessed`](Self::unprocessed)).
    pub const fn is_unprocessed(&self) -> bool {
        self.unprocessed
    }

    /// `true` for [`OutcomeKind::Success`].
    pub const fn is_success(&self) -> bool {
        matches!(self.kind, OutcomeKind::Success)
    }

    /// `true` when the outcome says the agent is unwell: transient, rate-limited or agent fault.
    /// Successes, caller faults and [local](Self::local) refusals do not count against an agent
    /// (breakers ignore caller faults and local refusals).
    pub const fn counts_against_agent(&self) -> bool {
        !self.local
            && matches!(
                self.kind,
                OutcomeKind::Transient | OutcomeKind::RateLimited | OutcomeKind::AgentFault
            )
    }

    /// `true` when retrying the same agent may help: transient failures, and rate limits whose
    /// wait is known. Whether the request may be sent again at all is the request's business
    /// ([`Classify::is_idempotent`]).
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
            write!(f, ", retry after {:.3}s", wait.as_secs_f64())?;
        }
        Ok(())
    }
}

/// Turns a call's result into an [`Outcome`], optionally looking at the request first.
///
/// Give an agent its classifier once (`registry.agent("gpt").classifier(..)`); every layer
/// built from that [`Agent`](crate::Agent) uses it. Errors reach the classifier boxed, as every
/// layer returns them. Errors that implement [`ClassifyError`] are classified before the
/// classifier is asked, so a classifier only needs to know its agent's own vocabulary.
///
/// Closures `Fn(Result<&Res, &BoxError>) -> Outcome` implement it (noting nothing of the
/// request); [`DefaultClassifier`] is the classifier of plain `Result` agents; `steadfast-http`
/// ships the HTTP, gRPC and LLM providers' ones. Implementations should not allocate on the
/// success path: every call through every layer is classified.
pub trait Classify<Req, Res> {
    /// What the classifier keeps of a request, noted before the call consumes it (`()` for
    /// most; whether the request is idempotent for HTTP).
    type Memo;

    /// Notes what this classifier needs of `request`.
    fn note(&self, request: &Req) -> Self::Memo;

    /// Classifies one result of a call whose request was noted as `memo`.
    fn classify(&self, memo: &Self::Memo, result: Result<&Res, &BoxError>) -> Outcome;

    /// Whether a request noted as `memo` may be sent again after a failure that may have
    /// reached the agent (a timeout after sending, a 500). `true` by default; an HTTP
    /// classifier says `false` for non-idempotent methods. A failure marked
    /// [`unprocessed`](Outcome::unprocessed) may be retried either way.
    fn is_idempotent(&self, memo: &Self::Memo) -> bool {
        let _ = memo;
        true
    }
}

impl<F, Req, Res> Classify<Req, Res> for F
where
    F: Fn(Result<&Res, &BoxError>) -> Outcome,
{
    type Memo = ();

    #[inline]
    fn note(&self, _request: &Req) {}

    #[inline]
    fn classify(&self, _memo: &(), result: Result<&Res, &BoxError>) -> Outcome {
        self(result)
    }
}

/// Classifies `result` for the layers: an error that classifies itself (anywhere in its chain)
/// is taken at its word; anything else goes to `classifier`.
#[inline]
pub fn classify<C, Req, Res>(
    classifier: &C,
    memo: &C::Memo,
    result: Result<&Res, &BoxError>,
) -> Outcome
where
    C: Classify<Req, Res> + ?Sized,
{
    if let Err(error) = result
        && let Some(outcome) = error_outcome(error.as_ref())
    {
        return outcome;
    }
    classifier.classify(memo, result)
}

/// The classifier for plain `Result<T, E>` agents: every `Ok` is a success and every `Err` is
/// transient, except errors that classify themselves ([`ClassifyError`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DefaultClassifier;

impl<Req, Res> Classify<Req, Res> for DefaultClassifier {
    type Memo = ();

    #[inline]
    fn note(&self, _request: &Req) {}

    #[inline]
    fn classify(&self, _memo: &(), result: Result<&Res, &BoxError>) -> Outcome {
        match result {
            Ok(_) => Outcome::success(),
            Err(error) => error_outcome(error.as_ref()).unwrap_or(Outcome::transient("error")),
        }
    }
}

/// An error that says what it means for the agent.
///
/// Implement it for the errors your layers or agents produce, and [`register`] the type once
/// (where the service that returns it is built): from then on every layer and every
/// classifier reads the error's own [`Outcome`], wherever it sits in an error's `source()`
/// chain (the outermost registered error wins).
///
/// ```
/// use steadfast::BoxError;
/// use steadfast::classify::{self, ClassifyError, Outcome, OutcomeKind};
///
/// #[derive(Debug, thiserror::Error)]
/// #[error("the tool sandbox is full")]
/// struct SandboxFull;
///
/// impl ClassifyError for SandboxFull {
///     fn outcome(&self) -> Outcome {
///         Outcome::rate_limited("sandbox full").unprocessed()
///     }
/// }
///
/// classify::register::<SandboxFull>();
/// let error: BoxError = Box::new(SandboxFull);
/// let outcome = classify::error_outcome(error.as_ref()).unwrap();
/// assert_eq!(outcome.kind(), OutcomeKind::RateLimited);
/// ```
pub trait ClassifyError: Error + 'static {
    /// What this error means.
    fn outcome(&self) -> Outcome;
}

/// One registered error type: its id (to register once) and how to read it from a `dyn Error`.
#[derive(Clone, Copy)]
struct Registered {
    type_id: TypeId,
    classify: fn(&(dyn Error + 'static)) -> Option<Outcome>,
}

fn classify_as<E: ClassifyError>(error: &(dyn Error + 'static)) -> Option<Outcome> {
    error.downcast_ref::<E>().map(ClassifyError::outcome)
}

/// The most error types that can be registered. Layers register a handful each; a program
/// registering more than this is registering in a loop (each type counts once), and the extra
/// types are then refused with an error log rather than slowing every classification.
pub const MAX_REGISTERED: usize = 256;

/// The registered error types, searched in order: an append-only table read without a lock
/// (failure paths on every thread read it; only registration, once per type, writes).
static REGISTERED: Table = Table::new();

struct Table {
    entries: [std::sync::OnceLock<Registered>; MAX_REGISTERED],
    /// Entries published so far: every entry below this index is set.
    len: std::sync::atomic::AtomicUsize,
    /// Serialises registrations (reads never take it).
    writer: std::sync::Mutex<()>,
}

impl Table {
    const fn new() -> Self {
        Table {
            entries: [const { std::sync::OnceLock::new() }; MAX_REGISTERED],
            len: std::sync::atomic::AtomicUsize::new(0),
            writer: std::sync::Mutex::new(()),
        }
    }

    fn iter(&self) -> impl Iterator<Item = &Registered> {
        let len = self.len.load(std::sync::atomic::Ordering::Acquire);
        self.entries[..len]
            .iter()
            .filter_map(std::sync::OnceLock::get)
    }

    fn contains(&self, type_id: TypeId) -> bool {
        self.iter().any(|entry| entry.type_id == type_id)
    }

    fn push(&self, entry: Registered) {
        let _writer = self
            .writer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if self.contains(entry.type_id) {
            return;
        }
        let len = self.len.load(std::sync::atomic::Ordering::Acquire);
        let Some(slot) = self.entries.get(len) else {
            tracing::error!(
                max = MAX_REGISTERED,
                "too many self-classifying error types registered; this one classifies as its classifier says"
            );
            return;
        };
        let _ = slot.set(entry);
        self.len
            .store(len + 1, std::sync::atomic::Ordering::Release);
    }
}

/// tower's and tokio's timeouts and [`FailedResponse`]: below every layer, always known.
fn builtins() -> [Registered; 3] {
    [
        Registered {
            type_id: TypeId::of::<tower::timeout::error::Elapsed>(),
            classify: classify_as::<tower::timeout::error::Elapsed>,
        },
        Registered {
            type_id: TypeId::of::<tokio::time::error::Elapsed>(),
            classify: classify_as::<tokio::time::error::Elapsed>,
        },
        Registered {
            type_id: TypeId::of::<FailedResponse>(),
            classify: classify_as::<FailedResponse>,
        },
    ]
}

/// Registers `E` as an error that classifies itself (see [`ClassifyError`]). Idempotent and
/// cheap after the first call; steadfast's layers register their own errors when built.
pub fn register<E: ClassifyError>() {
    let type_id = TypeId::of::<E>();
    if REGISTERED.contains(type_id) {
        return;
    }
    REGISTERED.push(Registered {
        type_id,
        classify: classify_as::<E>,
    });
}

/// The outcome of the first error in `error`'s `source()` chain (outermost first) that
/// classifies itself: tower's and tokio's timeout `Elapsed` (transient `"timeout"`), a
/// [`FailedResponse`], and every [registered](register) [`ClassifyError`]. `None` if none does.
/// Takes no lock.
pub fn error_outcome(error: &(dyn Error + 'static)) -> Option<Outcome> {
    let builtins = builtins();
    let mut current = Some(error);
    while let Some(error) = current {
        let found = builtins
            .iter()
            .chain(REGISTERED.iter())
            .find_map(|entry| (entry.classify)(error));
        if found.is_some() {
            return found;
        }
        current = error.source();
    }
    None
}

impl ClassifyError for tower::timeout::error::Elapsed {
    fn outcome(&self) -> Outcome {
        Outcome::transient("timeout")
    }
}

impl ClassifyError for tokio::time::error::Elapsed {
    fn outcome(&self) -> Outcome {
        Outcome::transient("timeout")
    }
}

/// An `Ok` answer that the classifier called a failure (an HTTP 503), as an error: what the
/// fallback, dead-letter and degrade layers report when they must turn such an answer into one.
/// It classifies itself as the outcome it stands for.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the agent answered, but with a failure: {outcome}")]
pub struct FailedResponse {
    outcome: Outcome,
}

impl FailedResponse {
    /// The error for an answer classified as `outcome`.
    pub const fn new(outcome: Outcome) -> Self {
        FailedResponse { outcome }
    }

    /// How the answer was classified.
    pub const fn outcome(&self) -> Outcome {
        self.outcome
    }
}

impl ClassifyError for FailedResponse {
    fn outcome(&self) -> Outcome {
        self.outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn default_outcome(result: Result<&u32, &BoxError>) -> Outcome {
        classify::<_, (), u32>(&DefaultClassifier, &(), result)
    }

    #[test]
    fn default_classifier_treats_ok_as_success_and_err_as_transient() {
        assert_eq!(default_outcome(Ok(&1)), Outcome::success());
        let err: BoxError = "boom".into();
        let outcome = default_outcome(Err(&err));
        assert_eq!(outcome, Outcome::transient("error"));
        assert!(outcome.is_retryable());
        assert!(!outcome.is_unprocessed());
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
        assert_eq!(default_outcome(Err(&err)), Outcome::transient("timeout"));
    }

    #[derive(Debug)]
    struct Wrapper(BoxError);
    impl fmt::Display for Wrapper {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("agent call failed")
        }
    }
    impl Error for Wrapper {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            Some(self.0.as_ref())
        }
    }

    #[test]
    fn a_timeout_found_in_the_source_chain_is_a_timeout() {
        let err: BoxError = Box::new(Wrapper(Box::new(tower::timeout::error::Elapsed::new())));
        assert_eq!(default_outcome(Err(&err)), Outcome::transient("timeout"));
        let plain: BoxError = "request timed out".into();
        assert_eq!(default_outcome(Err(&plain)), Outcome::transient("error"));
    }

    #[derive(Debug, thiserror::Error)]
    #[error("outer layer gave up")]
    struct GaveUp(#[source] BoxError);
    impl ClassifyError for GaveUp {
        fn outcome(&self) -> Outcome {
            Outcome::agent_fault("gave up")
        }
    }

    #[test]
    fn the_outermost_self_classifying_error_wins_and_a_custom_classifier_is_not_asked() {
        register::<GaveUp>();
        let err: BoxError = Box::new(Wrapper(Box::new(GaveUp(Box::new(
            tower::timeout::error::Elapsed::new(),
        )))));
        let never_asked = |_: Result<&u32, &BoxError>| -> Outcome { panic!("not asked") };
        assert_eq!(
            classify::<_, (), u32>(&never_asked, &(), Err(&err)),
            Outcome::agent_fault("gave up")
        );
    }

    #[test]
    fn registering_twice_keeps_one_entry() {
        register::<GaveUp>();
        register::<GaveUp>();
        let count = REGISTERED
            .iter()
            .filter(|r| r.type_id == TypeId::of::<GaveUp>())
            .count();
        assert_eq!(count, 1);
    }

    #[test]
    fn a_failed_response_classifies_as_the_outcome_it_stands_for() {
        let outcome = Outcome::transient("503").with_retry_after(Duration::from_secs(2));
        let err: BoxError = Box::new(FailedResponse::new(outcome));
        assert_eq!(error_outcome(err.as_ref()), Some(outcome));
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
    fn a_local_refusal_never_counts_against_the_agent_and_is_unprocessed() {
        for kind in OutcomeKind::ALL {
            let outcome = Outcome::new(kind).local();
            assert!(outcome.is_local() && outcome.is_unprocessed());
            assert!(!outcome.counts_against_agent(), "{kind}");
            assert_eq!(outcome.kind(), kind, "the kind is kept");
        }
        assert!(!Outcome::agent_fault("x").is_local());
    }

    #[test]
    fn display_says_kind_reason_and_wait() {
        let outcome = Outcome::rate_limited("429").with_retry_after(Duration::from_secs(3));
        assert_eq!(
            outcome.to_string(),
            "rate_limited (429), retry after 3.000s"
        );
        assert_eq!(
            OutcomeKind::from_name("rate_limited"),
            Some(OutcomeKind::RateLimited)
        );
        assert_eq!(OutcomeKind::from_name("nope"), None);
    }
}
