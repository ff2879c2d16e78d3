//! Draining under tokio's paused clock.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::{Instant, sleep};
use tower::{Layer, ServiceExt, service_fn};

use super::*;
use crate::BoxError;

type Agent = tower::util::BoxCloneService<u64, u64, BoxError>;

/// An agent that answers after the given number of seconds.
fn sleeper(shutdown: &Shutdown) -> Agent {
    tower::util::BoxCloneService::new(
        ShutdownLayer::new(&crate::Agent::new("gpt"), shutdown).layer(service_fn(
            |secs: u64| async move {
                sleep(Duration::from_secs(secs)).await;
                Ok::<_, BoxError>(secs)
            },
        )),
    )
}

fn recording() -> (Shutdown, Arc<Mutex<Vec<CancelledCall>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    let shutdown = Shutdown::with_hook(move |call| sink.lock().unwrap().push(call.clone()));
    (shutdown, seen)
}

#[tokio::test(start_paused = true)]
async fn drain_with_nothing_in_flight_returns_at_once() {
    let shutdown = Shutdown::new();
    let report = shutdown.drain(Duration::from_secs(30)).await;
    assert!(report.clean());
    assert_eq!(report.waited, Duration::ZERO);
    assert!(shutdown.is_closing());
}

#[tokio::test(start_paused = true)]
async fn drain_waits_for_calls_that_finish_before_the_deadline() {
    let (shutdown, cancelled) = recording();
    let agent = sleeper(&shutdown);
    let calls: Vec<_> = [2, 4]
        .into_iter()
        .map(|secs| tokio::spawn(agent.clone().oneshot(secs)))
        .collect();
    tokio::task::yield_now().await;
    assert_eq!(shutdown.in_flight(), 2);
    let report = shutdown.drain(Duration::from_secs(10)).await;
    assert_eq!(report.in_flight_at_start, 2);
    assert!(report.clean(), "{report:?}");
    assert_eq!(report.waited, Duration::from_secs(4));
    for (call, secs) in calls.into_iter().zip([2, 4]) {
        assert_eq!(call.await.unwrap().unwrap(), secs);
    }
    assert!(cancelled.lock().unwrap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn calls_still_running_at_the_deadline_are_cancelled_and_handed_to_the_hook() {
    let (shutdown, cancelled) = recording();
    let agent = sleeper(&shutdown);
    let quick = tokio::spawn(agent.clone().oneshot(1));
    let slow = tokio::spawn(agent.clone().oneshot(600));
    tokio::task::yield_now().await;
    sleep(Duration::from_secs(2)).await; // the slow call has run 2 s when the drain starts
    let started = Instant::now();
    let report = shutdown.drain(Duration::from_secs(5)).await;
    assert_eq!(started.elapsed(), Duration::from_secs(5));
    assert_eq!(report.in_flight_at_start, 1);
    assert_eq!(report.cancelled, 1);
    assert_eq!(report.still_running, 0);
    assert_eq!(quick.await.unwrap().unwrap(), 1);
    let error = slow.await.unwrap().unwrap_err();
    let error = error.downcast_ref::<CancelledByShutdown>().unwrap();
    assert_eq!(error.agent(), "gpt");
    assert_eq!(error.in_flight_for(), Duration::from_secs(7));
    assert_eq!(
        cancelled.lock().unwrap().as_slice(),
        std::slice::from_ref(error)
    );
    assert_eq!(shutdown.in_flight(), 0);
}

#[tokio::test(start_paused = true)]
async fn new_calls_are_refused_once_closing_without_reaching_the_agent() {
    let shutdown = Shutdown::new();
    let reached = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = reached.clone();
    let agent = ShutdownLayer::new(&crate::Agent::new("gpt"), &shutdown).layer(service_fn(
        move |(): ()| {
            flag.store(true, std::sync::atomic::Ordering::SeqCst);
            async { Ok::<_, BoxError>(()) }
        },
    ));
    shutdown.close();
    let error = agent.oneshot(()).await.unwrap_err();
    let refused = error.downcast_ref::<ShuttingDown>().unwrap();
    assert_eq!(refused.agent(), "gpt");
    assert!(error.to_string().contains("shutting down"), "{error}");
    assert!(!reached.load(std::sync::atomic::Ordering::SeqCst));
    assert_eq!(shutdown.in_flight(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_call_whose_future_is_never_polled_again_is_reported_as_still_running() {
    let shutdown = Shutdown::new();
    let mut agent = sleeper(&shutdown);
    let mut abandoned = tower::Service::call(agent.ready().await.unwrap(), 600);
    // Poll once so it is pending, then never again.
    assert!(futures_poll_once(&mut abandoned).await);
    let report = shutdown
        .drain_with_grace(Duration::from_secs(1), Duration::from_millis(50))
        .await;
    assert_eq!(report.cancelled, 0);
    assert_eq!(report.still_running, 1);
    assert_eq!(report.waited, Duration::from_millis(1050));
    drop(abandoned);
    assert_eq!(shutdown.in_flight(), 0);
}

#[tokio::test(start_paused = true)]
async fn dropping_an_admitted_call_leaves_the_in_flight_count() {
    let shutdown = Shutdown::new();
    let mut agent = sleeper(&shutdown);
    let call = tower::Service::call(agent.ready().await.unwrap(), 5);
    assert_eq!(shutdown.in_flight(), 1);
    drop(call);
    assert_eq!(shutdown.in_flight(), 0);
}

/// Polls `future` once; true if it was pending.
async fn futures_poll_once<F: std::future::Future + Unpin>(future: &mut F) -> bool {
    std::future::poll_fn(|cx| {
        std::task::Poll::Ready(std::pin::Pin::new(&mut *future).poll(cx).is_pending())
    })
    .await
}

#[tokio::test(start_paused = true)]
async fn a_drain_with_no_limit_waits_for_the_calls_and_does_not_panic() {
    let shutdown = Shutdown::new();
    let agent = ShutdownLayer::new(&crate::Agent::new("gpt"), &shutdown).layer(service_fn(
        |secs: u64| async move {
            tokio::time::sleep(Duration::from_secs(secs)).await;
            Ok::<_, BoxError>(secs)
        },
    ));
    let call = tokio::spawn(agent.oneshot(3_600));
    tokio::task::yield_now().await;
    let report = shutdown.drain(Duration::MAX).await;
    assert_eq!(report.cancelled, 0);
    assert_eq!(report.waited, Duration::from_secs(3_600));
    assert_eq!(call.await.unwrap().unwrap(), 3_600);
    let report = shutdown
        .drain_with_grace(Duration::ZERO, Duration::MAX)
        .await;
    assert_eq!(report.in_flight_at_start, 0);
}
