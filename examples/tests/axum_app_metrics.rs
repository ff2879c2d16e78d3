//! The axum example's `/metrics` against its `/status`: both come from the agent's one event
//! path, so after the same traffic every counter of the registry snapshot equals its Prometheus
//! series, and no series reports under a name the app never gave.
//!
//! Its own test binary (so its own process): the Prometheus recorder is global, and a second
//! run of the example in the same process would add to the same series.

use std::collections::BTreeMap;

use serde_json::Value;
use steadfast_examples::axum_app::run;

/// One sample of the Prometheus text format: name, labels, value.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// The samples of a Prometheus text exposition (comments skipped). The labels steadfast writes
/// hold no escaped quotes or commas, which keeps this parser short.
fn parse(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| {
            let (series, value) = line
                .rsplit_once(' ')
                .unwrap_or_else(|| panic!("no value in `{line}`"));
            let value = value
                .parse()
                .unwrap_or_else(|_| panic!("`{value}` is not a number in `{line}`"));
            let (name, labels) = match series.split_once('{') {
                Some((name, labels)) => (name, labels.trim_end_matches('}')),
                None => (series, ""),
            };
            let labels = labels
                .split(',')
                .filter(|pair| !pair.is_empty())
                .map(|pair| {
                    let (key, value) = pair
                        .split_once('=')
                        .unwrap_or_else(|| panic!("bad label `{pair}` in `{line}`"));
                    (key.to_string(), value.trim_matches('"').to_string())
                })
                .collect();
            Sample {
                name: name.to_string(),
                labels,
                value,
            }
        })
        .collect()
}

/// The sum of `name`'s series for `agent` whose labels also match `labels` (`None`: the label
/// may take any value but must be there). 0 when there is none: a counter never incremented
/// need not be exported.
fn sum(samples: &[Sample], name: &str, agent: &str, labels: &[(&str, Option<&str>)]) -> u64 {
    samples
        .iter()
        .filter(|sample| sample.name == name)
        .filter(|sample| sample.labels.get("agent").map(String::as_str) == Some(agent))
        .filter(|sample| {
            labels.iter().all(|(key, value)| {
                sample
                    .labels
                    .get(*key)
                    .is_some_and(|found| value.is_none_or(|value| found == value))
            })
        })
        .map(|sample| sample.value as u64)
        .sum()
}

/// The metric series a snapshot counter is exported as (see the table in `steadfast::events`);
/// `None` for a field that is no per-agent counter.
fn series_of(field: &str, samples: &[Sample], agent: &str) -> Option<u64> {
    let served = |source| {
        sum(
            samples,
            "steadfast_served_total",
            agent,
            &[("source", Some(source))],
        )
    };
    Some(match field {
        "retries" => sum(
            samples,
            "steadfast_retries_total",
            agent,
            &[("reason", None)],
        ),
        "retries_exhausted" => sum(samples, "steadfast_retries_exhausted_total", agent, &[]),
        "retry_budget_exhausted" => sum(
            samples,
            "steadfast_retry_budget_exhausted_total",
            agent,
            &[],
        ),
        "deadlines_exceeded" => sum(
            samples,
            "steadfast_retry_deadline_exceeded_total",
            agent,
            &[],
        ),
        "primary" => served("primary"),
        "fallbacks" => served("fallback"),
        "cache_hits" => served("cache"),
        "degraded" => served("degraded"),
        "dead_lettered" => sum(samples, "steadfast_dead_letters_total", agent, &[]),
        "dead_letter_failures" => sum(samples, "steadfast_dead_letter_failures_total", agent, &[]),
        "bulkhead_rejected" => sum(samples, "steadfast_bulkhead_rejected_total", agent, &[]),
        "concurrency_limit_lowered" => sum(
            samples,
            "steadfast_concurrency_limit_lowered_total",
            agent,
            &[],
        ),
        // A gauge the dead-letter monitor sets, exported per queue (`dlq`), not per agent.
        "dlq_depth" => return None,
        other => panic!("the snapshot counter `{other}` has no series mapped in this test"),
    })
}

/// The `steadfast_calls_total` series a breaker count is exported as; `None` for a count with
/// no series (slow calls are not a call outcome).
fn calls_of(field: &str, samples: &[Sample], agent: &str) -> Option<u64> {
    let outcome = |outcome| {
        sum(
            samples,
            "steadfast_calls_total",
            agent,
            &[("outcome", Some(outcome))],
        )
    };
    Some(match field {
        "calls" => {
            sum(
                samples,
                "steadfast_calls_total",
                agent,
                &[("outcome", None)],
            ) - outcome("rejected")
        }
        "successes" => outcome("success"),
        "failures" => outcome("transient") + outcome("rate_limited") + outcome("agent_fault"),
        "caller_faults" => outcome("caller_fault"),
        "rejected" => outcome("rejected"),
        "slow_calls" => return None,
        other => panic!("the breaker count `{other}` has no series mapped in this test"),
    })
}

#[tokio::test]
async fn every_status_counter_equals_its_metrics_series_and_no_series_is_for_a_default_agent() {
    let summary = run().await.unwrap();
    let samples = parse(&summary.metrics);
    assert!(
        samples
            .iter()
            .any(|sample| sample.name.starts_with("steadfast_")),
        "no steadfast series in /metrics:\n{}",
        summary.metrics
    );

    // Only agents the app named: nothing reports under a default name.
    assert!(
        !summary.metrics.contains(r#"agent="agent""#),
        "{}",
        summary.metrics
    );
    for sample in &samples {
        if let Some(agent) = sample.labels.get("agent") {
            assert_eq!(agent, "summarizer", "{sample:?}");
        }
    }

    let agents = summary.status["agents"].as_array().unwrap();
    assert_eq!(agents.len(), 1);
    let agent = &agents[0];
    let name = agent["name"].as_str().unwrap();
    let mut compared = BTreeMap::new();
    for (field, value) in agent["counters"].as_object().unwrap() {
        let Some(exported) = series_of(field, &samples, name) else {
            continue;
        };
        assert_eq!(
            value.as_u64(),
            Some(exported),
            "/status counter `{field}` vs its /metrics series:\n{}",
            summary.metrics
        );
        compared.insert(format!("counters.{field}"), exported);
    }
    for (field, value) in agent["breaker"]["counts"].as_object().unwrap() {
        let Some(exported) = calls_of(field, &samples, name) else {
            continue;
        };
        assert_eq!(
            value.as_u64(),
            Some(exported),
            "/status breaker count `{field}` vs steadfast_calls_total:\n{}",
            summary.metrics
        );
        compared.insert(format!("breaker.{field}"), exported);
    }
    assert_eq!(
        agent["breaker"]["state"],
        Value::from("open"),
        "{:#}",
        summary.status
    );
    assert_eq!(
        sum(
            &samples,
            "steadfast_breaker_state",
            name,
            &[("state", Some("open"))]
        ),
        1,
        "the state gauge says open"
    );

    // The run exercised what is compared: retries, a give-up, a trip and rejections.
    for key in [
        "counters.retries",
        "counters.retries_exhausted",
        "breaker.successes",
        "breaker.failures",
        "breaker.rejected",
    ] {
        assert!(compared[key] > 0, "{key} is 0: {compared:?}");
    }
}
