//! steadfast's spans exported through `tracing-opentelemetry` and OpenTelemetry's stdout
//! exporter: no collector, no network. The primary agent fails, the retry layer tries it three
//! times, the fallback layer hands the call to a backup agent; the console shows one
//! `steadfast.call` span with three `steadfast.attempt` children and one `steadfast.fallback`
//! hop, under which the backup's own call runs. Each span's `otel.status_code` becomes its
//! OpenTelemetry status and the other fields its attributes.
//!
//! `cargo run -p steadfast-examples --example otel_stdout`

use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use steadfast::prelude::*;
use tower::{ServiceBuilder, ServiceExt, service_fn};
use tracing_subscriber::layer::SubscriberExt;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), BoxError> {
    // Each span is printed as it ends (the simple processor exports synchronously).
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(opentelemetry_stdout::SpanExporter::default())
        .build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("steadfast-example")));
    tracing::subscriber::set_global_default(subscriber)?;

    let registry = Registry::new();
    let gpt = registry.agent("gpt");
    let claude = registry.agent("claude");
    let retry = RetryConfig::builder()
        .max_retries(2)
        .base(Duration::from_millis(5))
        .jitter(Jitter::None)
        .build()?;
    let backup = ServiceBuilder::new()
        .layer(BackoffRetryLayer::new(&claude, retry.clone()))
        .service(service_fn(|prompt: String| async move {
            Ok::<_, BoxError>(format!("claude answers: {prompt}"))
        }));
    let stack = ServiceBuilder::new()
        .layer(FallbackLayer::new(&gpt).then(&claude, backup))
        .layer(BackoffRetryLayer::new(&gpt, retry))
        .layer(CircuitBreakerLayer::new(&gpt, BreakerConfig::default()))
        .service(service_fn(|_: String| async move {
            Err::<String, BoxError>("gpt is overloaded".into())
        }));

    let answer = stack.oneshot("summarise the incident".to_string()).await?;
    println!("answer: {answer}");
    provider.shutdown()?;
    Ok(())
}
