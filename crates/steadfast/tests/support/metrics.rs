//! A `metrics` recorder for tests: every counter and gauge by `name{label=value,...}` (labels
//! sorted). Include it with `#[path = "support/metrics.rs"] mod support;` and install it with
//! `metrics::with_local_recorder`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};

/// Keeps every counter and gauge registered with it.
#[derive(Default)]
pub(crate) struct TestRecorder {
    values: Mutex<BTreeMap<String, Arc<AtomicU64>>>,
}

impl TestRecorder {
    fn slot(&self, key: &Key) -> Arc<AtomicU64> {
        let mut labels: Vec<String> = key
            .labels()
            .map(|label| format!("{}={}", label.key(), label.value()))
            .collect();
        labels.sort();
        let name = format!("{}{{{}}}", key.name(), labels.join(","));
        self.values.lock().unwrap().entry(name).or_default().clone()
    }

    /// The counter `name{labels}`, 0 if never registered.
    pub(crate) fn counter(&self, name: &str) -> u64 {
        self.values
            .lock()
            .unwrap()
            .get(name)
            .map_or(0, |value| value.load(Ordering::SeqCst))
    }

    /// Whether `name{labels}` was ever registered (a counter at 0 may be).
    #[allow(dead_code)] // not every test binary asks
    pub(crate) fn registered(&self, name: &str) -> bool {
        self.values.lock().unwrap().contains_key(name)
    }

    /// The gauge `name{labels}`, NaN if never registered.
    #[allow(dead_code)] // not every test binary reads gauges
    pub(crate) fn gauge(&self, name: &str) -> f64 {
        self.values
            .lock()
            .unwrap()
            .get(name)
            .map_or(f64::NAN, |value| {
                f64::from_bits(value.load(Ordering::SeqCst))
            })
    }

    /// Every counter and gauge registered so far, by `name{labels}`.
    #[allow(dead_code)] // not every test binary lists the series
    pub(crate) fn series(&self) -> Vec<String> {
        self.values.lock().unwrap().keys().cloned().collect()
    }
}

impl Recorder for TestRecorder {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        Counter::from_arc(self.slot(key))
    }
    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::from_arc(self.slot(key))
    }
    fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::noop()
    }
}
