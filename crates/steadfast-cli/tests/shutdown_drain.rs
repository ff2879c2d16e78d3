//! Shutdown drain under load: `DeadLetter(SqliteSink) > Shutdown > agent`, 64 callers calling
//! in a loop, `Shutdown::drain` mid-load. Nothing may be lost: every call either completes or
//! ends `DeadLettered` with a record in the store (after reopening it) whose reason is
//! `"shutdown"` (cancelled at the drain deadline) or `"shutting down"` (refused after the
//! drain began).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use steadfast::BoxError;
use steadfast::dead_letter::{DeadLetterLayer, DeadLetterSink, DeadLettered};
use steadfast::shutdown::{CancelledByShutdown, Shutdown, ShutdownLayer, ShuttingDown};
use steadfast_sqlite::SqliteSink;
use tower::util::BoxCloneSyncService;
use tower::{ServiceBuilder, ServiceExt, service_fn};

const CALLERS: u64 = 64;

type Stack = BoxCloneSyncService<u64, u64, BoxError>;

/// How one call ended, from the caller's side.
#[derive(Debug, Default)]
struct Outcomes {
    completed: u64,
    /// Completed after the drain began (admitted before it).
    completed_while_draining: u64,
    cancelled: Vec<steadfast::dead_letter::DeadLetterId>,
    refused: Vec<steadfast::dead_letter::DeadLetterId>,
    other: Vec<String>,
}

/// Call latency in milliseconds for `caller`'s `n`th call: 1-40 ms, except that every even
/// caller's third call takes 5 s (so those are surely in flight at the drain deadline, while the
/// odd callers' short calls finish during the drain).
fn latency_ms(caller: u64, n: u64) -> u64 {
    if caller.is_multiple_of(2) && n == 2 {
        5_000
    } else {
        1 + (caller * 31 + n * 17) % 40
    }
}

/// One caller: calls until the shutdown refuses it (bounded: the drain comes first).
async fn call_until_refused(stack: Stack, shutdown: Shutdown, caller: u64) -> Outcomes {
    let mut outcomes = Outcomes::default();
    for n in 0..10_000 {
        match stack.clone().oneshot(latency_ms(caller, n)).await {
            Ok(_) => {
                outcomes.completed += 1;
                if shutdown.is_closing() {
                    outcomes.completed_while_draining += 1;
                }
            }
            Err(error) => {
                let Some(dead) = steadfast::error::find::<DeadLettered>(error.as_ref()) else {
                    outcomes
                        .other
                        .push(steadfast::error::chain(error.as_ref()).join(": "));
                    continue;
                };
                if steadfast::error::find::<ShuttingDown>(error.as_ref()).is_some() {
                    outcomes.refused.push(dead.id());
                    return outcomes;
                }
                if steadfast::error::find::<CancelledByShutdown>(error.as_ref()).is_some() {
                    outcomes.cancelled.push(dead.id());
                } else {
                    outcomes
                        .other
                        .push(format!("dead-lettered for another reason: {error}"));
                }
            }
        }
    }
    outcomes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_under_load_completes_or_dead_letters_every_call() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteSink::open(dir.path()).unwrap();
    let shutdown = Shutdown::new();
    let summariser = steadfast::Agent::new("summariser");
    let agent_calls = Arc::new(AtomicU64::new(0));
    let counted = agent_calls.clone();
    let stack: Stack = BoxCloneSyncService::new(
        ServiceBuilder::new()
            .layer(
                DeadLetterLayer::new(&summariser, store.clone())
                    .encoder(|ms: &u64| Ok::<_, BoxError>(Bytes::from(ms.to_string()))),
            )
            .layer(ShutdownLayer::new(&summariser, &shutdown))
            .service(service_fn(move |ms: u64| {
                counted.fetch_add(1, Ordering::Relaxed);
                async move {
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                    Ok::<_, BoxError>(ms)
                }
            })),
    );

    let mut callers = tokio::task::JoinSet::new();
    for caller in 0..CALLERS {
        callers.spawn(call_until_refused(stack.clone(), shutdown.clone(), caller));
    }

    tokio::time::sleep(Duration::from_millis(300)).await;
    let in_flight_before = shutdown.in_flight();
    let drain = shutdown.drain(Duration::from_millis(500)).await;

    let mut all = Outcomes::default();
    while let Some(outcomes) = callers.join_next().await {
        let mut outcomes = outcomes.unwrap();
        all.completed += outcomes.completed;
        all.completed_while_draining += outcomes.completed_while_draining;
        all.cancelled.append(&mut outcomes.cancelled);
        all.refused.append(&mut outcomes.refused);
        all.other.append(&mut outcomes.other);
    }
    println!(
        "drain: {} agent calls, {in_flight_before} in flight at the drain, {drain:?}; completed {}, \
         of which while draining {}, dead-lettered as cancelled {}, dead-lettered as refused {}",
        agent_calls.load(Ordering::Relaxed),
        all.completed,
        all.completed_while_draining,
        all.cancelled.len(),
        all.refused.len(),
    );

    assert!(
        all.other.is_empty(),
        "calls lost or misfiled: {:?}",
        all.other
    );
    assert_eq!(drain.still_running, 0);
    assert!(
        drain.cancelled > 0,
        "the 5 s calls outlive the 500 ms drain"
    );
    assert_eq!(
        all.cancelled.len(),
        drain.cancelled,
        "every cancelled call was dead-lettered"
    );
    assert_eq!(
        all.refused.len() as u64,
        CALLERS,
        "each caller ends on one refusal"
    );
    assert!(
        all.completed > CALLERS,
        "calls completed before and during the drain"
    );
    // Every admitted call reached the agent once and ended exactly once.
    assert_eq!(
        agent_calls.load(Ordering::Relaxed),
        all.completed + all.cancelled.len() as u64,
    );

    drop(stack);
    drop(store);
    let reopened = SqliteSink::open(dir.path()).unwrap();
    for (ids, reason) in [
        (&all.cancelled, "shutdown"),
        (&all.refused, "shutting down"),
    ] {
        for id in ids {
            let record = reopened
                .get(*id)
                .await
                .unwrap()
                .unwrap_or_else(|| panic!("dead letter {id} is missing from the store"));
            assert_eq!(record.reason, reason, "record {id}");
        }
    }
    assert_eq!(
        reopened.stats().await.unwrap().depth,
        (all.cancelled.len() + all.refused.len()) as u64,
        "the store holds exactly the dead letters the callers were told about",
    );
}
