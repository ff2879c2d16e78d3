//! `steadfast_served_total{agent, source}` counts who answered: primary, fallback, cache,
//! degraded.
#![cfg(all(feature = "fallback", feature = "degrade"))]

#[path = "support/metrics.rs"]
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use steadfast::cache::{CacheConfig, ResponseCache};
use steadfast::degrade::DegradeLayer;
use steadfast::fallback::FallbackLayer;
use steadfast::prelude::*;
use support::TestRecorder;
use tower::{ServiceBuilder, ServiceExt, service_fn};

#[tokio::test(start_paused = true)]
async fn served_total_counts_each_source() {
    let recorder = TestRecorder::default();
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
    // The primary's counter is registered as the layer is made, the others as their events
    // are emitted: the recorder is this thread's for the whole test (a current-thread
    // runtime runs every call here).
    let _recorder = metrics::set_default_local_recorder(&recorder);
    let registry = Registry::new();
    let assistant = registry.agent("assistant");
    let agent = ServiceBuilder::new()
        .layer(DegradeLayer::new(&assistant, |(): &(), _: &BoxError| {
            Some("template".to_string())
        }))
        .layer(
            FallbackLayer::new(&assistant)
                .then(&registry.agent("backup"), switch(&backup_up, "backup"))
                .then_cache(cache),
        )
        .service(switch(&primary_up, "primary"));

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
            recorder.counter(&format!(
                "steadfast_served_total{{agent=assistant,source={source}}}"
            )),
            1,
            "source {source}"
        );
        assert_eq!(
            recorder.counter(&format!(
                "steadfast_served_total{{agent=backup,source={source}}}"
            )),
            0,
            "counted on the agent the call was for, not on the one that answered"
        );
    }
    // The registry's counters come from the same events.
    let counters = registry.counters("assistant").unwrap();
    assert_eq!(
        (
            counters.primary,
            counters.fallbacks,
            counters.cache_hits,
            counters.degraded
        ),
        (1, 1, 1, 1)
    );
}
