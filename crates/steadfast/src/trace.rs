//! The spans of a call, in OpenTelemetry's terms: one `steadfast.call` span per logical call,
//! with `steadfast.attempt` (retry layer) and `steadfast.fallback` (fallback layer) spans as
//! its children. Field values are plain strings and numbers (no `Debug` formatting), so an
//! exporter such as `tracing-opentelemetry` turns them into attributes as they are.
//!
//! | span | fields |
//! |---|---|
//! | `steadfast.call` | `agent`, `otel.name` (`steadfast.call <agent>`), `otel.kind` (`internal`), then `outcome` (`success` or the failure's kind), `reason`, `provenance` (`primary`, `fallback`, `cache`, `degraded`), `fallback` (the alternative that answered), `attempts`, `dead_letter` (the record's id), `otel.status_code` (`OK`, `ERROR`) |
//! | `steadfast.attempt` | `agent`, `attempt` (1, 2, ...), `otel.kind` (`client`: the request that goes out), then `outcome`, `reason`, `otel.status_code` |
//! | `steadfast.fallback` | `agent`, `alternative`, `source` (`fallback`, `cache`), then `outcome`, `reason`, `otel.status_code` |
//!
//! The outermost steadfast layer of the agent (degrade, dead-letter, fallback or retry) owns
//! the call span; a layer under it adds its fields to that span instead of opening another.
//! `provenance` is written by the layer that knows: retry (`primary` on success), fallback
//! (`primary`, or the alternative's source), degrade (`degraded`). An alternative of a
//! fallback chain is a call of its own agent, so its stack's call span sits under the hop.
//!
//! Spans are made only while a subscriber listens (`Span::is_disabled` otherwise), and kept
//! boxed in the call's future, so without tracing a call pays one callsite check and its
//! future grows by one word.

use tracing::Span;
use tracing::field::Empty;

use crate::classify::Outcome;
#[cfg(any(feature = "fallback", feature = "dead-letter", feature = "degrade"))]
use crate::rare::Rare;

/// The name of the span of a logical call.
pub(crate) const CALL: &str = "steadfast.call";

/// `OK` or `ERROR`, OpenTelemetry's status codes.
fn status_code(success: bool) -> &'static str {
    if success { "OK" } else { "ERROR" }
}

/// Whether the current span is a call span (opened by a layer outside this one).
///
/// Asks the dispatcher only while some subscriber takes INFO spans at all (one atomic load
/// otherwise): without one no call span can exist, and `Span::current` costs a thread-local
/// lookup per layer per call.
#[inline]
fn in_call() -> bool {
    tracing::level_enabled!(tracing::Level::INFO) && current_is_call()
}

/// Whether the current span is a call span; see [`in_call`].
fn current_is_call() -> bool {
    Span::current()
        .metadata()
        .is_some_and(|metadata| metadata.name() == CALL)
}

/// Enters `span`, if there is one, until the returned guard drops (a clone of the span is
/// entered, so the caller may move `span` meanwhile). For building a future whose inner call
/// must run inside the span: with [`within`], the inner future came back through the closure's
/// return into a temporary and was copied into the outer future (the 5-layer stack made four
/// `memcpy` calls a call, and none since); under a guard, the inner call writes it in place.
///
/// The guard is a [`Rare`]: without a span its drop is one inline branch (an
/// `Option<EnteredSpan>` was dropped through a call to its drop glue, out of line, on every call
/// of every layer that builds its future this way).
#[cfg(any(feature = "fallback", feature = "dead-letter", feature = "degrade"))]
#[inline]
pub(crate) fn enter(span: Option<&Span>) -> Rare<tracing::span::EnteredSpan> {
    Rare::from_option(span.map(enter_span))
}

#[cfg(any(feature = "fallback", feature = "dead-letter", feature = "degrade"))]
#[cold]
#[inline(never)]
fn enter_span(span: &Span) -> tracing::span::EnteredSpan {
    span.clone().entered()
}

/// Runs `f` inside `span`, if there is one. Entering and leaving sit out of line: without a
/// subscriber a call through a stack of layers pays one branch per layer, and the code the
/// compiler inlines across the layers stays small enough to build each future in place.
#[cfg(any(feature = "fallback", feature = "dead-letter", feature = "degrade"))]
#[inline]
pub(crate) fn within<R>(span: Option<&Span>, f: impl FnOnce() -> R) -> R {
    match span {
        None => f(),
        Some(span) => within_span(span, f),
    }
}

#[cfg(any(feature = "fallback", feature = "dead-letter", feature = "degrade"))]
#[cold]
#[inline(never)]
fn within_span<R>(span: &Span, f: impl FnOnce() -> R) -> R {
    let _entered = span.enter();
    f()
}

/// Opens the span of a logical call to `agent`, unless a layer outside already did (the
/// current span is a call span) or nobody listens.
#[inline]
pub(crate) fn open_call(agent: &str) -> Option<Span> {
    if !tracing::level_enabled!(tracing::Level::INFO) {
        return None;
    }
    open_call_listened(agent)
}

/// [`open_call`] once some subscriber takes INFO spans.
fn open_call_listened(agent: &str) -> Option<Span> {
    if !tracing::span_enabled!(target: "steadfast", tracing::Level::INFO) || current_is_call() {
        return None;
    }
    // Made only while someone listens: the span itself allocates then anyway.
    let otel_name = format!("steadfast.call {agent}");
    let span = tracing::info_span!(
        target: "steadfast",
        "steadfast.call",
        agent,
        otel.name = otel_name.as_str(),
        otel.kind = "internal",
        outcome = Empty,
        reason = Empty,
        provenance = Empty,
        fallback = Empty,
        attempts = Empty,
        dead_letter = Empty,
        otel.status_code = Empty,
    );
    (!span.is_disabled()).then_some(span)
}

/// [`open_call`], boxed for a future to keep (a future is moved on every call: an untraced
/// one carries one empty word).
#[cfg(any(feature = "fallback", feature = "dead-letter", feature = "degrade"))]
#[inline]
pub(crate) fn open_call_boxed(agent: &str) -> Rare<Box<Span>> {
    Rare::from_option(open_call(agent).map(Box::new))
}

/// The call span this layer records on: its own, else the one it runs in (if that is a call
/// span).
#[inline]
pub(crate) fn call_span(own: Option<&Span>) -> Option<Span> {
    match own {
        Some(span) => Some(span.clone()),
        None => in_call().then(Span::current),
    }
}

/// Records the final outcome of a call on `span`.
pub(crate) fn record_outcome(span: &Span, outcome: &Outcome) {
    span.record("outcome", outcome.kind().as_str());
    if let Some(reason) = outcome.reason() {
        span.record("reason", reason);
    }
    span.record("otel.status_code", status_code(outcome.is_success()));
}

#[cfg_attr(
    not(any(feature = "retry", feature = "fallback", feature = "degrade")),
    allow(dead_code)
)]
/// Records who answered a call on `span`: `primary`, or the alternative `name` as `source`.
pub(crate) fn record_provenance(span: &Span, source: &'static str, name: Option<&str>) {
    span.record("provenance", source);
    if let Some(name) = name {
        span.record("fallback", name);
    }
}

/// Whether a subscriber listens to steadfast's spans at all.
#[cfg_attr(not(feature = "retry"), allow(dead_code))]
#[inline]
pub(crate) fn enabled() -> bool {
    tracing::level_enabled!(tracing::Level::INFO)
        && tracing::span_enabled!(target: "steadfast", tracing::Level::INFO)
}

#[cfg_attr(not(feature = "retry"), allow(dead_code))]
/// Opens the span of attempt number `attempt` to `agent` (a child of the current span).
pub(crate) fn attempt(agent: &str, attempt: u32) -> Span {
    // Signed: exporters turn unsigned numbers into strings (they may not fit an `i64`).
    let attempt = i64::from(attempt);
    tracing::info_span!(
        target: "steadfast",
        "steadfast.attempt",
        agent,
        attempt,
        otel.kind = "client",
        outcome = Empty,
        reason = Empty,
        otel.status_code = Empty,
    )
}

#[cfg_attr(not(feature = "fallback"), allow(dead_code))]
/// Opens the span of a fallback hop from `agent` to the alternative `alternative`.
pub(crate) fn fallback(agent: &str, alternative: &str, source: &'static str) -> Span {
    tracing::info_span!(
        target: "steadfast",
        "steadfast.fallback",
        agent,
        alternative,
        source,
        outcome = Empty,
        reason = Empty,
        otel.status_code = Empty,
    )
}
