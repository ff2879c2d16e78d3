//! The spans of a call, captured by a small `tracing` layer: one `steadfast.call` per logical
//! call with its outcome, provenance and attempts; `steadfast.attempt` and `steadfast.fallback`
//! spans as its children; every value a plain string or number (nothing `Debug`-formatted).
#![cfg(all(
    feature = "retry",
    feature = "fallback",
    feature = "circuit-breaker",
    feature = "degrade",
    feature = "dead-letter"
))]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use steadfast::prelude::*;
use tower::{ServiceBuilder, ServiceExt, service_fn};
use tracing::Subscriber;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

/// One captured span: its name, its parent (index into the captured list), its fields as text,
/// and the fields that were recorded through `Debug` (or `Display`) rather than as plain values.
#[derive(Clone, Debug, Default)]
struct Captured {
    name: &'static str,
    parent: Option<usize>,
    fields: BTreeMap<String, String>,
    formatted: Vec<String>,
}

/// The spans captured so far, and where each live span id is in the list.
#[derive(Default)]
struct Captures {
    spans: Vec<Captured>,
    ids: BTreeMap<u64, usize>,
}

#[derive(Clone, Default)]
struct Spans(Arc<Mutex<Captures>>);

struct Fields<'a>(&'a mut Captured);

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.fields.insert(field.name().into(), value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.fields.insert(field.name().into(), value.to_string());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.fields.insert(field.name().into(), value.to_string());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.fields.insert(field.name().into(), value.to_string());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.fields.insert(field.name().into(), value.to_string());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.formatted.push(field.name().into());
        self.0
            .fields
            .insert(field.name().into(), format!("{value:?}"));
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Spans {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut captured = Captured {
            name: attrs.metadata().name(),
            ..Captured::default()
        };
        attrs.record(&mut Fields(&mut captured));
        let parent = ctx
            .span(id)
            .and_then(|span| span.parent())
            .map(|parent| parent.id().into_u64());
        let mut captures = self.0.lock().unwrap();
        captured.parent = parent.and_then(|parent| captures.ids.get(&parent).copied());
        let index = captures.spans.len();
        captures.ids.insert(id.into_u64(), index);
        captures.spans.push(captured);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, _: Context<'_, S>) {
        let mut captures = self.0.lock().unwrap();
        if let Some(&index) = captures.ids.get(&id.into_u64()) {
            values.record(&mut Fields(&mut captures.spans[index]));
        }
    }

    fn on_close(&self, id: Id, _: Context<'_, S>) {
        // Ids are reused once a span closes: forget the mapping, keep the capture.
        self.0.lock().unwrap().ids.remove(&id.into_u64());
    }
}

impl Spans {
    fn all(&self) -> Vec<Captured> {
        self.0.lock().unwrap().spans.clone()
    }
}

/// Runs `body` with a subscriber capturing spans; returns what it captured.
async fn capture<F: Future<Output = ()>>(body: F) -> Vec<Captured> {
    let spans = Spans::default();
    let subscriber = tracing_subscriber::registry().with(spans.clone());
    let _default = tracing::subscriber::set_default(subscriber);
    body.await;
    let all = spans.all();
    for span in &all {
        assert!(
            span.formatted.is_empty(),
            "span {} has Debug/Display-formatted fields {:?}: {:?}",
            span.name,
            span.formatted,
            span.fields
        );
    }
    all
}

fn field<'a>(span: &'a Captured, name: &str) -> &'a str {
    span.fields
        .get(name)
        .unwrap_or_else(|| panic!("{} has no `{name}`: {:?}", span.name, span.fields))
}

/// The indexes of the children of `parent` named `name`, in creation order.
fn children(all: &[Captured], parent: usize, name: &str) -> Vec<usize> {
    (0..all.len())
        .filter(|&index| all[index].parent == Some(parent) && all[index].name == name)
        .collect()
}

fn retry() -> RetryConfig {
    RetryConfig::builder()
        .max_retries(2)
        .base(Duration::from_millis(10))
        .jitter(Jitter::None)
        .build()
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_call_span_holds_its_attempts_and_the_fallback_hop_with_its_own_call() {
    let registry = Registry::new();
    let gpt = registry.agent("gpt");
    let claude = registry.agent("claude");
    let backup = ServiceBuilder::new()
        .layer(BackoffRetryLayer::new(&claude, retry()))
        .service(service_fn(|prompt: String| async move {
            Ok::<_, BoxError>(format!("claude: {prompt}"))
        }));
    let stack = ServiceBuilder::new()
        .layer(FallbackLayer::new(&gpt).then(&claude, backup))
        .layer(BackoffRetryLayer::new(&gpt, retry()))
        .layer(CircuitBreakerLayer::new(&gpt, BreakerConfig::default()))
        .service(service_fn(|_: String| async move {
            Err::<String, BoxError>("overloaded".into())
        }));

    let all = capture(async {
        let answer = stack.oneshot("hi".to_string()).await.unwrap();
        assert_eq!(answer, "claude: hi");
    })
    .await;

    let roots: Vec<usize> = (0..all.len())
        .filter(|&i| all[i].parent.is_none())
        .collect();
    assert_eq!(roots.len(), 1, "one span per logical call: {all:#?}");
    let call = &all[roots[0]];
    assert_eq!(call.name, "steadfast.call");
    assert_eq!(field(call, "agent"), "gpt");
    assert_eq!(field(call, "otel.name"), "steadfast.call gpt");
    assert_eq!(field(call, "otel.kind"), "internal");
    assert_eq!(field(call, "outcome"), "success");
    assert_eq!(field(call, "provenance"), "fallback");
    assert_eq!(field(call, "fallback"), "claude");
    assert_eq!(field(call, "attempts"), "3");
    assert_eq!(field(call, "otel.status_code"), "OK");

    // The primary's three attempts, each failed, numbered in order.
    let attempts = children(&all, roots[0], "steadfast.attempt");
    assert_eq!(attempts.len(), 3, "{all:#?}");
    for (number, &index) in attempts.iter().enumerate() {
        let attempt = &all[index];
        assert_eq!(field(attempt, "agent"), "gpt");
        assert_eq!(field(attempt, "attempt"), (number + 1).to_string());
        assert_eq!(field(attempt, "otel.kind"), "client");
        assert_eq!(field(attempt, "outcome"), "transient");
        assert_eq!(field(attempt, "otel.status_code"), "ERROR");
    }

    // Then one fallback hop, and under it the backup's own call and attempt.
    let hops = children(&all, roots[0], "steadfast.fallback");
    assert_eq!(hops.len(), 1, "{all:#?}");
    let hop = &all[hops[0]];
    assert_eq!(field(hop, "agent"), "gpt");
    assert_eq!(field(hop, "alternative"), "claude");
    assert_eq!(field(hop, "source"), "fallback");
    assert_eq!(field(hop, "outcome"), "success");
    assert_eq!(field(hop, "otel.status_code"), "OK");
    let backup_calls = children(&all, hops[0], "steadfast.call");
    assert_eq!(backup_calls.len(), 1, "{all:#?}");
    let backup_call = &all[backup_calls[0]];
    assert_eq!(field(backup_call, "agent"), "claude");
    assert_eq!(field(backup_call, "provenance"), "primary");
    assert_eq!(field(backup_call, "attempts"), "1");
    let backup_attempts = children(&all, backup_calls[0], "steadfast.attempt");
    assert_eq!(backup_attempts.len(), 1);
    assert_eq!(field(&all[backup_attempts[0]], "outcome"), "success");

    // Nothing else: no stray spans outside the tree.
    assert_eq!(all.len(), 1 + 3 + 1 + 1 + 1, "{all:#?}");
}

#[tokio::test(start_paused = true)]
async fn without_a_fallback_layer_the_retry_layer_owns_the_call_span() {
    let gpt = Agent::new("gpt");
    let failures = Arc::new(Mutex::new(1));
    let stack = ServiceBuilder::new()
        .layer(BackoffRetryLayer::new(&gpt, retry()))
        .service(service_fn(move |prompt: String| {
            let failures = failures.clone();
            async move {
                let mut left = failures.lock().unwrap();
                if *left > 0 {
                    *left -= 1;
                    return Err::<String, BoxError>("reset".into());
                }
                Ok(prompt)
            }
        }));

    let all = capture(async {
        assert_eq!(stack.clone().oneshot("a".into()).await.unwrap(), "a");
    })
    .await;
    assert_eq!(all[0].name, "steadfast.call");
    assert_eq!(all[0].parent, None);
    assert_eq!(field(&all[0], "outcome"), "success");
    assert_eq!(field(&all[0], "provenance"), "primary");
    assert_eq!(field(&all[0], "attempts"), "2");
    let attempts = children(&all, 0, "steadfast.attempt");
    assert_eq!(attempts.len(), 2);
    assert_eq!(field(&all[attempts[0]], "outcome"), "transient");
    assert_eq!(field(&all[attempts[1]], "outcome"), "success");
    assert_eq!(all.len(), 3, "{all:#?}");
}

#[tokio::test(start_paused = true)]
async fn a_failed_call_says_so_with_the_error_status() {
    let gpt = Agent::new("gpt");
    let stack = ServiceBuilder::new()
        .layer(BackoffRetryLayer::new(&gpt, retry()))
        .service(service_fn(|_: String| async move {
            Err::<String, BoxError>("down".into())
        }));
    let all = capture(async {
        assert!(stack.oneshot("a".into()).await.is_err());
    })
    .await;
    let call = &all[0];
    assert_eq!(call.name, "steadfast.call");
    assert_eq!(field(call, "outcome"), "transient");
    assert_eq!(field(call, "otel.status_code"), "ERROR");
    assert_eq!(field(call, "attempts"), "3");
    assert!(!call.fields.contains_key("provenance"), "{call:?}");
}

#[tokio::test(start_paused = true)]
async fn the_outermost_layer_owns_the_call_span_and_each_layer_adds_what_it_knows() {
    let registry = Registry::new();
    let gpt = registry.agent("gpt");
    let claude = registry.agent("claude");
    let sink = MemorySink::new(8);
    let failing = |_: String| async move { Err::<String, BoxError>("down".into()) };
    let stack = ServiceBuilder::new()
        .layer(DegradeLayer::new(&gpt, |(): &(), _: &BoxError| {
            Some("try again later".to_string())
        }))
        .layer(
            DeadLetterLayer::new(&gpt, sink.clone())
                .encoder(|prompt: &String| Ok::<_, BoxError>(bytes::Bytes::from(prompt.clone()))),
        )
        .layer(FallbackLayer::new(&gpt).then(&claude, service_fn(failing)))
        .layer(BackoffRetryLayer::new(&gpt, retry()))
        .service(service_fn(failing));

    let all = capture(async {
        assert_eq!(stack.oneshot("hi".into()).await.unwrap(), "try again later");
    })
    .await;

    let roots: Vec<usize> = (0..all.len())
        .filter(|&i| all[i].parent.is_none())
        .collect();
    assert_eq!(roots.len(), 1, "one span per logical call: {all:#?}");
    let call = &all[roots[0]];
    assert_eq!(call.name, "steadfast.call");
    assert_eq!(field(call, "agent"), "gpt");
    assert_eq!(field(call, "provenance"), "degraded");
    assert_eq!(field(call, "attempts"), "3");
    assert_eq!(field(call, "otel.status_code"), "ERROR");
    assert_ne!(field(call, "outcome"), "success");
    let records = sink.records();
    assert_eq!(records.len(), 1);
    assert_eq!(field(call, "dead_letter"), records[0].id.to_string());
    // The record names the call span as its trace.
    assert!(records[0].trace_id.is_some());

    assert_eq!(
        children(&all, roots[0], "steadfast.attempt").len(),
        3,
        "{all:#?}"
    );
    let hops = children(&all, roots[0], "steadfast.fallback");
    assert_eq!(hops.len(), 1, "{all:#?}");
    assert_eq!(field(&all[hops[0]], "otel.status_code"), "ERROR");
    assert_eq!(all.len(), 1 + 3 + 1, "{all:#?}");
}
