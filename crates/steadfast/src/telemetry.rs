//! What steadfast reports to the [`metrics`] facade: every metric's name, type, unit, labels and
//! help text in one table ([`METRICS`]), described to the installed recorder so a Prometheus
//! scrape carries `# HELP` and `# TYPE` lines, and the histogram buckets that suit them.
//!
//! Descriptions are sent when a [`Registry`](crate::Registry) or an agent is made, so install the
//! recorder first (as for the metrics themselves). [`describe`] sends them again, for a recorder
//! installed later.
//!
//! ```
//! use steadfast::telemetry::{self, MetricKind};
//!
//! let call = telemetry::metric("steadfast_call_duration_seconds").unwrap();
//! assert_eq!(call.kind, MetricKind::Histogram);
//! assert_eq!(call.labels, ["agent", "outcome"]);
//! // Prometheus exporters take these as the histogram's bucket bounds.
//! assert_eq!(telemetry::buckets_for(call.name), Some(telemetry::LATENCY_BUCKETS));
//! ```

use metrics::Unit;

/// The kind of a metric, as Prometheus types it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricKind {
    /// Only goes up (`_total`).
    Counter,
    /// A value that goes up and down.
    Gauge,
    /// A distribution of observations (`_bucket`, `_sum`, `_count`).
    Histogram,
}

/// One metric steadfast emits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MetricDescription {
    /// The metric's name, following Prometheus conventions (`_total` on counters, the base
    /// unit `_seconds` on times).
    pub name: &'static str,
    /// Counter, gauge or histogram.
    pub kind: MetricKind,
    /// Its unit, when it has one.
    pub unit: Option<Unit>,
    /// Its labels, in the order the documentation lists them.
    pub labels: &'static [&'static str],
    /// The help text (Prometheus' `# HELP` line).
    pub help: &'static str,
}

/// Bucket bounds, in seconds, for the latency histograms (`steadfast_call_duration_seconds`,
/// `steadfast_attempt_duration_seconds`, `steadfast_stream_first_byte_seconds`): 5 ms to 2 min, since an LLM answer can take a minute.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
];

/// Bucket bounds for `steadfast_call_attempts` (attempts per call).
pub const ATTEMPT_BUCKETS: &[f64] = &[1.0, 2.0, 3.0, 4.0, 5.0, 7.0, 10.0];

const AGENT: &[&str] = &["agent"];

/// Every metric the steadfast crates emit (the core, `steadfast-notify`'s dispatcher and the
/// dead-letter monitor). `docs/operations.md` shows the same table, and a test keeps the two
/// in step.
pub const METRICS: &[MetricDescription] = &[
    MetricDescription {
        name: "steadfast_calls_total",
        kind: MetricKind::Counter,
        unit: None,
        labels: &["agent", "outcome"],
        help: "Calls through an agent's circuit breaker, by outcome (success, transient, rate_limited, agent_fault, caller_fault, or rejected by the open breaker).",
    },
    MetricDescription {
        name: "steadfast_attempt_duration_seconds",
        kind: MetricKind::Histogram,
        unit: Some(Unit::Seconds),
        labels: &["agent", "outcome"],
        help: "Time one attempt took, measured at the agent's retry layer (a refusal by the circuit breaker is an agent_fault attempt of almost no time), by outcome.",
    },
    MetricDescription {
        name: "steadfast_call_duration_seconds",
        kind: MetricKind::Histogram,
        unit: Some(Unit::Seconds),
        labels: &["agent", "outcome"],
        help: "Time one call took through the agent's retry layer, every attempt and wait included, by outcome (success, or error when its final answer classified as a failure).",
    },
    MetricDescription {
        name: "steadfast_call_attempts",
        kind: MetricKind::Histogram,
        unit: Some(Unit::Count),
        labels: AGENT,
        help: "Attempts the retry layer made per call (1 when the first attempt answered).",
    },
    MetricDescription {
        name: "steadfast_breaker_state",
        kind: MetricKind::Gauge,
        unit: None,
        labels: &["agent", "state"],
        help: "1 for the state the agent's circuit breaker is in (closed, open, half_open, forced_open, disabled), 0 for the others.",
    },
    MetricDescription {
        name: "steadfast_breaker_state_seconds_total",
        kind: MetricKind::Counter,
        unit: Some(Unit::Seconds),
        labels: &["agent", "state"],
        help: "Whole seconds the agent's circuit breaker spent in each state, added when it leaves the state.",
    },
    MetricDescription {
        name: "steadfast_breaker_transitions_total",
        kind: MetricKind::Counter,
        unit: None,
        labels: &["agent", "from", "to"],
        help: "Circuit breaker state changes, by the state left and the state entered.",
    },
    MetricDescription {
        name: "steadfast_retries_total",
        kind: MetricKind::Counter,
        unit: None,
        labels: &["agent", "reason"],
        help: "Retries the retry layer scheduled, by the reason the previous attempt failed.",
    },
    MetricDescription {
        name: "steadfast_retries_exhausted_total",
        kind: MetricKind::Counter,
        unit: None,
        labels: AGENT,
        help: "Calls that failed after the retry layer's max_retries ran out.",
    },
    MetricDescription {
        name: "steadfast_retry_budget_exhausted_total",
        kind: MetricKind::Counter,
        unit: None,
        labels: AGENT,
        help: "Retries the retry budget refused (an outage must not multiply load).",
    },
    MetricDescription {
        name: "steadfast_retry_deadline_exceeded_total",
        kind: MetricKind::Counter,
        unit: None,
        labels: AGENT,
        help: "Calls that ran out of the retry layer's overall deadline.",
    },
    MetricDescription {
        name: "steadfast_served_total",
        kind: MetricKind::Counter,
        unit: None,
        labels: &["agent", "source"],
        help: "Answers by who served them: primary, fallback, cache or degraded.",
    },
    MetricDescription {
        name: "steadfast_stream_first_byte_seconds",
        kind: MetricKind::Histogram,
        unit: Some(Unit::Seconds),
        labels: AGENT,
        help: "Time from the call to the first data byte of a guarded streamed answer (time to first token), measured by steadfast-http's StreamGuard.",
    },
    MetricDescription {
        name: "steadfast_streams_total",
        kind: MetricKind::Counter,
        unit: None,
        labels: &["agent", "result"],
        help: "Guarded streamed answers by how they ended: complete, failed (before or after the first byte) or abandoned (the caller stopped reading).",
    },
    MetricDescription {
        name: "steadfast_stream_failures_total",
        kind: MetricKind::Counter,
        unit: None,
        labels: &["agent", "phase", "kind"],
        help: "Guarded streams that failed, by phase (before_first_byte, mid_stream) and kind (first_byte_timeout, stalled, deadline, in_band, body); stalled counts the stalls.",
    },
    MetricDescription {
        name: "steadfast_stream_bytes_total",
        kind: MetricKind::Counter,
        unit: None,
        labels: AGENT,
        help: "Data bytes of guarded streams handed to callers, added when each stream ends.",
    },
    MetricDescription {
        name: "steadfast_dead_letters_total",
        kind: MetricKind::Counter,
        unit: None,
        labels: AGENT,
        help: "Requests dead-lettered (the sink confirmed the record durable).",
    },
    MetricDescription {
        name: "steadfast_dead_letter_failures_total",
        kind: MetricKind::Counter,
        unit: None,
        labels: AGENT,
        help: "Requests the dead-letter sink could not keep (lost unless the caller kept them).",
    },
    MetricDescription {
        name: "steadfast_bulkhead_rejected_total",
        kind: MetricKind::Counter,
        unit: None,
        labels: AGENT,
        help: "Calls the agent's bulkhead refused because it was full.",
    },
    MetricDescription {
        name: "steadfast_concurrency_limit",
        kind: MetricKind::Gauge,
        unit: Some(Unit::Count),
        labels: AGENT,
        help: "Concurrent calls the agent's bulkhead admits now (moves when adaptive).",
    },
    MetricDescription {
        name: "steadfast_concurrency_limit_lowered_total",
        kind: MetricKind::Counter,
        unit: None,
        labels: AGENT,
        help: "Times the adaptive bulkhead lowered the agent's concurrency limit.",
    },
    MetricDescription {
        name: "steadfast_dlq_depth",
        kind: MetricKind::Gauge,
        unit: Some(Unit::Count),
        labels: &["dlq"],
        help: "Records in the dead-letter queue, at the monitor's last check.",
    },
    MetricDescription {
        name: "steadfast_dlq_oldest_seconds",
        kind: MetricKind::Gauge,
        unit: Some(Unit::Seconds),
        labels: &["dlq"],
        help: "Age of the oldest record in the dead-letter queue, at the monitor's last check.",
    },
    MetricDescription {
        name: "steadfast_events_dropped_total",
        kind: MetricKind::Counter,
        unit: None,
        labels: &[],
        help: "Events a lagging event-bus subscriber lost.",
    },
    MetricDescription {
        name: "steadfast_notifications_total",
        kind: MetricKind::Counter,
        unit: None,
        labels: &["notifier", "kind", "outcome"],
        help: "Notifications delivered or not, by notifier, kind (alert, recovery, warning) and outcome (sent, failed, timed_out).",
    },
    MetricDescription {
        name: "steadfast_notifications_dropped_total",
        kind: MetricKind::Counter,
        unit: None,
        labels: &[],
        help: "Notifications dropped because the dispatcher's queue was full (notifiers too slow).",
    },
];

/// The description of the metric called `name`.
pub fn metric(name: &str) -> Option<&'static MetricDescription> {
    METRICS.iter().find(|metric| metric.name == name)
}

/// The bucket bounds suited to the histogram `name` ([`LATENCY_BUCKETS`] or
/// [`ATTEMPT_BUCKETS`]); `None` for anything else.
pub fn buckets_for(name: &str) -> Option<&'static [f64]> {
    match name {
        "steadfast_call_duration_seconds"
        | "steadfast_attempt_duration_seconds"
        | "steadfast_stream_first_byte_seconds" => Some(LATENCY_BUCKETS),
        "steadfast_call_attempts" => Some(ATTEMPT_BUCKETS),
        _ => None,
    }
}

/// Describes every metric of [`METRICS`] (unit and help text) to the recorder in effect. Done
/// for you when a registry or an agent is made; cheap, and repeating it changes nothing.
pub fn describe() {
    for metric in METRICS {
        let (name, help) = (metric.name, metric.help);
        match (metric.kind, metric.unit) {
            (MetricKind::Counter, Some(unit)) => metrics::describe_counter!(name, unit, help),
            (MetricKind::Counter, None) => metrics::describe_counter!(name, help),
            (MetricKind::Gauge, Some(unit)) => metrics::describe_gauge!(name, unit, help),
            (MetricKind::Gauge, None) => metrics::describe_gauge!(name, help),
            (MetricKind::Histogram, Some(unit)) => metrics::describe_histogram!(name, unit, help),
            (MetricKind::Histogram, None) => metrics::describe_histogram!(name, help),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_prometheus_conventions() {
        for metric in METRICS {
            assert!(metric.name.starts_with("steadfast_"), "{}", metric.name);
            assert_eq!(
                metric.kind == MetricKind::Counter,
                metric.name.ends_with("_total"),
                "{}: `_total` on counters only",
                metric.name
            );
            if metric.unit == Some(Unit::Seconds) {
                assert!(
                    metric.name.ends_with("_seconds") || metric.name.ends_with("_seconds_total"),
                    "{}: times in seconds say so",
                    metric.name
                );
            }
            assert!(!metric.help.is_empty() && !metric.help.contains('\n'));
            assert!(metric.labels.iter().all(|label| !label.starts_with("__")));
        }
        let mut names: Vec<_> = METRICS.iter().map(|metric| metric.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), METRICS.len(), "a metric is listed twice");
    }

    #[test]
    fn every_histogram_has_buckets_in_increasing_order() {
        for metric in METRICS.iter().filter(|m| m.kind == MetricKind::Histogram) {
            let buckets = buckets_for(metric.name).expect(metric.name);
            assert!(buckets.windows(2).all(|pair| pair[0] < pair[1]));
        }
    }
}
