//! `steadfast_served_total{agent, source}` counts who answered: primary, fallback, cache,
//! degraded.
#![cfg(all(feature = "fallback", feature = "degrade"))]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use metrics::{
    Counter, CounterFn, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit,
};
use steadfast::cache::{CacheConfig, ResponseCache};
use steadfast::degrade::DegradeLayer;
use steadfast::fallback::FallbackLayer;
use steadfast::prelude::*;
use tower::{ServiceBuilder, ServiceExt, service_fn};

/// Keeps every counter registered with it, by name and labels.
#[derive(Default)]
struct Counters(Mutex<BTreeMap<String, Arc<Count>>>);

#[derive(Default)]
struct Count(AtomicU64);

impl CounterFn for Count {
    fn increment(&self, value: u64) {
        self.0.fetch_add(value, Ordering::SeqCst);
    }
    fn absolute(&self, value: u64) {
        self.0.store(value, Ordering::SeqCst);
    }
}

impl Counters {
    fn get(&self, name: &str) -> u64 {
        self.0
            .lock()
            .unwrap()
            .get(name)
            .map_or(0, |count| count.0.load(Ordering::SeqCst))
    }
}

impl Recorder for Counters {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        let labels: Vec<String> = key
            .labels()
            .map(|label| format!("{}={}", label.key(), label.value()))
            .collect();
        let name = format!("{}{{{}}}", key.name(), labels.join(","));
        let count = self.0.lock().unwrap().entry(name).or_default().clone();
        Counter::from_arc(count)
    }

    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::noop()
    }

    fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::noop()
    }
}

#[tokio::test(start_paused = true)]
async fn served_total_counts_each_source() {
    let recorder = Counters::default();
    let primary_up = Arc::new(AtomicBool::new(true));
    let backup_up = Arc::new(AtomicBool::new(true));
    let switch = |up: &Arc<AtomicBool>, name: &'static str| {
        let up = up.clone();
        service_fn(move |prompt: String| {
            let ok = up.load(Ordering::SeqCst);
            async move {
                if ok {
                    Ok(format!("{name}: {prompt}"))
                } else {
                    Err(BoxError::from(format!("{name} down")))
                }
            }
        })
    };
    let cache = ResponseCache::new(CacheConfig::default(), |prompt: &String| {
        Some(prompt.clone())
    });
    // Counters bind to the recorder installed when the layers are built.
    let agent = metrics::with_local_recorder(&recorder, || {
        ServiceBuilder::new()
            .layer(
                DegradeLayer::new(|(): &(), _: &BoxError| Some("template".to_string()))
                    .named("assistant"),
            )
            .layer(
                FallbackLayer::new()
                    .named("assistant")
                    .then_named("backup", switch(&backup_up, "backup"))
                    .then_cache(cache),
            )
            .service(switch(&primary_up, "primary"))
    });

    agent.clone().oneshot("cached".into()).await.unwrap();
    primary_up.store(false, Ordering::SeqCst);
    agent.clone().oneshot("q".into()).await.unwrap();
    backup_up.store(false, Ordering::SeqCst);
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_eq!(
        agent.clone().oneshot("cached".into()).await.unwrap(),
        "primary: cached"
    );
    assert_eq!(agent.oneshot("new".into()).await.unwrap(), "template");

    for source in ["primary", "fallback", "cache", "degraded"] {
        assert_eq!(
            recorder.get(&format!(
                "steadfast_served_total{{agent=assistant,source={source}}}"
            )),
            1,
            "source {source}"
        );
    }
}
