//! A registry's counters by name, so tests can compare them with what they derive from events
//! or metrics. Include it with `#[path = "support/counters.rs"] mod counters;`.

use std::collections::BTreeMap;

use steadfast::registry::CountersSnapshot;

/// Every counter of `counters`, by its field name.
pub(crate) fn by_name(counters: &CountersSnapshot) -> BTreeMap<&'static str, u64> {
    BTreeMap::from([
        ("retries", counters.retries),
        ("retries_exhausted", counters.retries_exhausted),
        ("retry_budget_exhausted", counters.retry_budget_exhausted),
        ("deadlines_exceeded", counters.deadlines_exceeded),
        ("primary", counters.primary),
        ("fallbacks", counters.fallbacks),
        ("cache_hits", counters.cache_hits),
        ("degraded", counters.degraded),
        ("dead_lettered", counters.dead_lettered),
        ("dead_letter_failures", counters.dead_letter_failures),
        ("dlq_depth", counters.dlq_depth),
        ("bulkhead_rejected", counters.bulkhead_rejected),
        (
            "concurrency_limit_lowered",
            counters.concurrency_limit_lowered,
        ),
    ])
}

/// The counters that events fill: all but `primary` (the fallback layer counts its primary's
/// answers without an event), `bulkhead_rejected` (a bulkhead counts refusals without one)
/// and `dlq_depth` (a gauge a dead-letter monitor sets).
#[allow(dead_code)] // not every test binary needs it
pub(crate) fn event_fed(counters: &CountersSnapshot) -> BTreeMap<&'static str, u64> {
    let mut counters = by_name(counters);
    counters.remove("primary");
    counters.remove("dlq_depth");
    counters.remove("bulkhead_rejected");
    counters
}
