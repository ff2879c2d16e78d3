//! A stack built for each request, as `steadfast-http`'s reqwest middleware builds one: fallback,
//! retry and breaker layers (made once, cloned per request) over a fresh agent, called once and
//! dropped, the call completed on the thread that made it (`same`) or handed to another thread
//! that completes it (`cross`, as a multi-thread runtime does when a task resumes on another
//! worker). It prints the time per request, and the allocations per request of `same`.
//!
//! `cargo run --profile bench -p steadfast-benches --bin per_request -- <same|cross> <requests>`
//!
//! What it guards: a change to how a call holds its layer's state (`sync::counted`) must not
//! make the building and dropping of a stack expensive. The count biased to its thread
//! (`benches/experiments/biased-count.patch`) made `cross` about 3 times slower, and about 20
//! times before a settler on the owner thread skipped `membarrier` (`benches/analysis.md`, "The
//! biased count on a Xeon host").

use std::hint::black_box;

use steadfast::fallback::FallbackLayer;
use steadfast::prelude::*;
use steadfast_benches::{
    BENCH_ALLOCATOR, CountingAllocator, agent, allocations_per_call, answer_now, ready_now,
};
use tokio::time::Instant;
use tower::{Service, ServiceBuilder};

#[global_allocator]
static GLOBAL: CountingAllocator = &BENCH_ALLOCATOR;

fn main() {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_else(|| "same".into());
    let requests: u32 = args.next().and_then(|n| n.parse().ok()).unwrap_or(100_000);
    let registry = Registry::new();
    let (primary, backup) = (registry.agent("primary"), registry.agent("backup"));
    let fallback = FallbackLayer::new(&primary).then(&backup, agent());
    let retry = BackoffRetryLayer::new(&primary, RetryConfig::default());
    let breaker = CircuitBreakerLayer::new(&primary, BreakerConfig::default());
    // One request's stack, built, made ready and called; the stack is dropped at once, as
    // `ServiceExt::oneshot` drops it, so the call's future is the last holder of each state.
    let call = || {
        let mut stack = ServiceBuilder::new()
            .layer(fallback.clone())
            .layer(retry.clone())
            .layer(breaker.clone())
            .service(agent());
        ready_now(&mut stack).expect("the agent is ready");
        stack.call(black_box(1))
    };
    let start = Instant::now();
    match mode.as_str() {
        "same" => {
            for _ in 0..requests {
                black_box(answer_now(call()).ok());
            }
        }
        "cross" => {
            let (send, receive) = std::sync::mpsc::sync_channel(64);
            std::thread::scope(|scope| {
                scope.spawn(move || {
                    for future in receive {
                        let answer: Result<u64, _> = answer_now(future);
                        black_box(answer.ok());
                    }
                });
                for _ in 0..requests {
                    send.send(call()).expect("the completing thread runs");
                }
                // The completing thread ends when the channel closes.
                drop(send);
            });
        }
        other => panic!("unknown mode `{other}`: same or cross"),
    }
    let per_request = start.elapsed() / requests.max(1);
    println!("{mode}: {} ns per request", per_request.as_nanos());
    if mode == "same" {
        let allocations = allocations_per_call(GLOBAL, 10_000, || {
            black_box(answer_now(call()).ok());
        });
        println!("{mode}: {allocations:.2} allocations per request");
    }
}
