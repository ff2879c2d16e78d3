//! Streamed answers: the per-chunk overhead of `steadfast_http::stream::StreamBody` against the
//! bare body (plain bytes, and SSE with the in-band error scanner on), with allocations per
//! chunk; and the time a stack takes to fail over when its primary stalls before its first
//! byte.
//!
//! The chunk rows poll an endless in-memory body with a no-op waker: every poll is ready, so
//! what is measured is the wrapper alone. The failover rows run on a paused-clock runtime, so
//! the first-byte deadline itself costs no wall time: the figure is the mechanism (guard,
//! timer, fallback hop, the backup's first chunk) on top of the deadline you configure.

use std::convert::Infallible;
use std::hint::black_box;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use http_body::{Body, Frame};
use steadfast::fallback::FallbackLayer;
use steadfast::prelude::*;
use steadfast_benches::{BENCH_ALLOCATOR, CountingAllocator, allocations_per_call};
use steadfast_http::HttpClassifier;
use steadfast_http::stream::{StreamBody, StreamConfig, StreamGuardLayer};
use tower::{Layer, ServiceExt, service_fn};

#[global_allocator]
static GLOBAL: CountingAllocator = &BENCH_ALLOCATOR;

/// One OpenAI `chat.completion.chunk` event, as the API sends it (about 200 bytes).
const OPENAI_CHUNK: &[u8] = b"data: {\"id\":\"chatcmpl-AQ3e1hzPgmKdQkNR3KQ3ND5CCWZRp\",\"object\":\"chat.completion.chunk\",\"created\":1730802549,\"model\":\"gpt-4o-2024-08-06\",\"system_fingerprint\":\"fp_45cf54deae\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\" world\"},\"logprobs\":null,\"finish_reason\":null}]}\n\n";

/// A body that yields `chunk` on every poll, for ever.
struct Endless {
    chunk: Bytes,
}

impl Body for Endless {
    type Data = Bytes;
    type Error = Infallible;

    #[inline]
    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(Some(Ok(Frame::data(self.chunk.clone()))))
    }
}

/// Polls one frame of `body`, which must be ready.
#[inline]
fn next_chunk<B: Body + Unpin>(body: &mut B, cx: &mut Context<'_>) -> usize
where
    B::Data: bytes::Buf,
{
    match Pin::new(body).poll_frame(cx) {
        Poll::Ready(Some(Ok(frame))) => frame.data_ref().map_or(0, bytes::Buf::remaining),
        _ => panic!("the endless body ended or failed"),
    }
}

fn chunks(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let _entered = runtime.enter();
    let chunk = Bytes::from_static(OPENAI_CHUNK);
    let config = StreamConfig::builder()
        .first_byte(Duration::from_mins(1))
        .idle(Duration::from_secs(30))
        .total(Duration::from_hours(1))
        .build()
        .unwrap();
    let plain = StreamConfig::builder()
        .first_byte(Duration::from_mins(1))
        .idle(Duration::from_secs(30))
        .scan_sse(false)
        .build()
        .unwrap();
    let mut cx = Context::from_waker(Waker::noop());

    let mut group = c.benchmark_group("stream_chunk");
    let mut bare = Endless {
        chunk: chunk.clone(),
    };
    group.bench_function("bare", |b| {
        b.iter(|| black_box(next_chunk(&mut bare, &mut cx)));
    });
    let mut guarded = StreamBody::new(
        Endless {
            chunk: chunk.clone(),
        },
        plain,
    );
    group.bench_function("stream_body_deadlines", |b| {
        b.iter(|| black_box(next_chunk(&mut guarded, &mut cx)));
    });
    let mut sse = StreamBody::new(
        Endless {
            chunk: chunk.clone(),
        },
        config,
    );
    group.bench_function("stream_body_deadlines_and_sse_scan", |b| {
        b.iter(|| black_box(next_chunk(&mut sse, &mut cx)));
    });
    println!(
        "allocations per chunk [stream_chunk]: bare {:.3}, stream_body_deadlines {:.3}, stream_body_deadlines_and_sse_scan {:.3}",
        allocations_per_call(GLOBAL, 100_000, || {
            black_box(next_chunk(&mut bare, &mut cx));
        }),
        allocations_per_call(GLOBAL, 100_000, || {
            black_box(next_chunk(&mut guarded, &mut cx));
        }),
        allocations_per_call(GLOBAL, 100_000, || {
            black_box(next_chunk(&mut sse, &mut cx));
        }),
    );
    group.finish();
}

/// A body that never yields: a stream stuck before its first byte.
struct Stuck;

impl Body for Stuck {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Pending
    }
}

/// Either body, so the primary and the backup share a response type.
enum Either {
    Stuck(Stuck),
    Live(Endless),
}

impl Body for Either {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            Either::Stuck(body) => Pin::new(body).poll_frame(cx),
            Either::Live(body) => Pin::new(body).poll_frame(cx),
        }
    }
}

fn failover(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    let registry = Registry::new();
    let primary = registry.agent("primary").classifier(HttpClassifier::llm());
    let backup = registry.agent("backup").classifier(HttpClassifier::llm());
    let config = StreamConfig::builder()
        .first_byte(Duration::from_secs(2))
        .build()
        .unwrap();
    let stuck = service_fn(|_: http::Request<()>| async {
        Ok::<_, BoxError>(http::Response::new(Either::Stuck(Stuck)))
    });
    let live = service_fn(|_: http::Request<()>| async {
        Ok::<_, BoxError>(http::Response::new(Either::Live(Endless {
            chunk: Bytes::from_static(OPENAI_CHUNK),
        })))
    });
    let _entered = runtime.enter();
    let stack = FallbackLayer::new(&primary)
        .then(&backup, StreamGuardLayer::new(&backup, config).layer(live))
        .layer(StreamGuardLayer::new(&primary, config).layer(stuck));

    let mut group = c.benchmark_group("stream_failover");
    group.bench_function("primary_stalls_before_first_byte_paused_clock", |b| {
        b.iter(|| {
            let started = tokio::time::Instant::now();
            let answer = runtime
                .block_on(stack.clone().oneshot(http::Request::new(())))
                .unwrap();
            debug_assert!(started.elapsed() >= Duration::from_secs(2));
            black_box(answer)
        });
    });
    group.finish();
}

criterion_group!(benches, chunks, failover);
criterion_main!(benches);
