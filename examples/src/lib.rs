//! # steadfast examples
//!
//! Each example's logic lives here as a function returning a summary, so the binaries in
//! `examples/examples/` print it and the tests in `examples/tests/` assert on it:
//!
//! | example | run with | shows |
//! |---|---|---|
//! | [`in_process`] | `cargo run -p steadfast-examples --example in_process` | a flaky in-process agent (seeded chaos) behind degrade > fallback (backup, cache) > retry > breaker > timeout; every request accounted for |
//! | [`hyper_agent`] | `cargo run -p steadfast-examples --example hyper_agent` | a hyper client against a local fake LLM API: 429 + `Retry-After`, 503, a hang, an outage |
//! | [`axum_app`] | `cargo run -p steadfast-examples --example axum_app` | an axum route served through the stack in `Router::route_layer` (errors become 502/503 answers), plus the status routes and `/metrics` (Prometheus), which agree |
//! | [`reqwest_client`] | `cargo run -p steadfast-examples --example reqwest_client` | `reqwest::Client` under the layers with steadfast-http's `BufferRequestLayer` and `ReqwestAgent`, a fallback to a bigger model on another host (`Rebase`), and [`resilient_middleware`]: the stack as one reqwest-middleware `.with(...)` |
//! | [`tonic_agent`] | `cargo run -p steadfast-examples --example tonic_agent` | a tonic gRPC agent under the layers with `GrpcClassifier` |
//! | `otel_stdout` | `cargo run -p steadfast-examples --example otel_stdout` | steadfast's spans (`steadfast.call` > `steadfast.attempt`, `steadfast.fallback`) through `tracing-opentelemetry` to OpenTelemetry's stdout exporter; no network |
//!
//! Every example listens on `127.0.0.1:0` only, runs for a few seconds at most and stops by
//! itself.
//!
//! [`in_process`] runs the full order, `Degrade > Fallback > Retry > CircuitBreaker > Timeout`;
//! the dead-letter layer joins it (between degrade and fallback) when it lands. The network
//! examples keep to `Retry > CircuitBreaker > Timeout` to show what each client brings; each
//! marks where the outer layers go.
#![forbid(unsafe_code)]

pub mod axum_app;
pub mod hyper_agent;
pub mod in_process;
pub mod mock_llm;
pub mod reqwest_client;
pub mod resilient_middleware;
pub mod tonic_agent;

use std::time::Duration;

/// Milliseconds, for printing.
pub(crate) fn millis(duration: Duration) -> u128 {
    duration.as_millis()
}
