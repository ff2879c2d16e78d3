//! What a guarded stream reports when it starts and ends: the agent's breaker (for streams
//! whose head was deferred) and the `steadfast_stream_*` metrics.

use std::sync::Arc;
use std::time::Duration;

use metrics::{Counter, Histogram};
use steadfast::Outcome;
use steadfast::circuit_breaker::BreakerHandle;

use super::error::{StreamError, StreamErrorKind};

/// How a stream ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Finish {
    Complete,
    Failed,
    Abandoned,
}

/// The metric handles of one agent's guarded streams, registered once per layer.
#[derive(Clone)]
pub(crate) struct StreamMetrics {
    first_byte: Histogram,
    complete: Counter,
    failed: Counter,
    abandoned: Counter,
    bytes: Counter,
}

impl StreamMetrics {
    pub(crate) fn new(agent: &Arc<str>) -> Self {
        let agent = agent.to_string();
        StreamMetrics {
            first_byte: metrics::histogram!("steadfast_stream_first_byte_seconds", "agent" => agent.clone()),
            complete: metrics::counter!("steadfast_streams_total", "agent" => agent.clone(), "result" => "complete"),
            failed: metrics::counter!("steadfast_streams_total", "agent" => agent.clone(), "result" => "failed"),
            abandoned: metrics::counter!("steadfast_streams_total", "agent" => agent.clone(), "result" => "abandoned"),
            bytes: metrics::counter!("steadfast_stream_bytes_total", "agent" => agent),
        }
    }
}

/// Where one stream reports: carried in its body.
pub(crate) struct Report {
    pub(crate) agent: Arc<str>,
    /// The agent (events) and the encoded request, when mid-stream failures are dead-lettered.
    pub(crate) kept: Option<(super::Kept, steadfast::Agent<()>)>,
    pub(crate) breaker: Option<BreakerHandle>,
    /// The head was deferred: the breaker waits for this stream's end.
    pub(crate) settle: bool,
    pub(crate) metrics: StreamMetrics,
}

impl Report {
    pub(crate) fn first_byte(&self, after: Duration) {
        self.metrics.first_byte.record(after.as_secs_f64());
    }

    /// A resume hook continues the stream after `error`: the failure counts now; the
    /// continuation is a call of its own, so this stream's end is not reported to the breaker.
    pub(crate) fn resumed(&mut self, error: &StreamError) {
        metrics::counter!(
            "steadfast_stream_failures_total",
            "agent" => self.agent.to_string(),
            "phase" => "mid_stream",
            "kind" => kind_label(error)
        )
        .increment(1);
        tracing::info!(
            target: "steadfast::stream",
            agent = %self.agent,
            outcome = %error.outcome(),
            bytes = error.delivered().bytes,
            events = error.delivered().events,
            "stream failed; resumed by the caller's hook"
        );
        if self.settle
            && let Some(breaker) = &self.breaker
        {
            breaker.record(error.outcome());
        }
        self.settle = false;
    }

    /// `handed`: whether the caller was given any byte of the stream.
    pub(crate) fn finish(
        self,
        how: Finish,
        outcome: Outcome,
        error: Option<&StreamError>,
        bytes: u64,
        handed: bool,
    ) {
        if handed {
            self.metrics.bytes.increment(bytes);
        }
        match how {
            Finish::Complete => self.metrics.complete.increment(1),
            Finish::Abandoned => {
                if !handed {
                    // Dropped while waiting for its first byte (an outer timeout, a caller
                    // that gave up): the call's own result says what happened.
                    return;
                }
                self.metrics.abandoned.increment(1);
            }
            Finish::Failed => {
                self.metrics.failed.increment(1);
                if let Some(error) = error {
                    let phase = if error.is_mid_stream() {
                        "mid_stream"
                    } else {
                        "before_first_byte"
                    };
                    let kind = kind_label(error);
                    metrics::counter!(
                        "steadfast_stream_failures_total",
                        "agent" => self.agent.to_string(),
                        "phase" => phase,
                        "kind" => kind
                    )
                    .increment(1);
                    if error.is_mid_stream()
                        && let Some((kept, agent)) = self.kept
                    {
                        kept.dead_letter(&agent, error);
                    }
                    tracing::warn!(
                        target: "steadfast::stream",
                        agent = %self.agent,
                        phase,
                        kind,
                        outcome = %outcome,
                        bytes = error.delivered().bytes,
                        events = error.delivered().events,
                        "stream failed"
                    );
                }
            }
        }
        if self.settle
            && let Some(breaker) = &self.breaker
        {
            breaker.record(outcome);
        }
    }
}

/// The `kind` label of a failure.
fn kind_label(error: &StreamError) -> &'static str {
    match error.kind() {
        StreamErrorKind::FirstByteTimeout => "first_byte_timeout",
        StreamErrorKind::Stalled => "stalled",
        StreamErrorKind::DeadlineExceeded => "deadline",
        StreamErrorKind::InBand => "in_band",
        _ => "body",
    }
}
