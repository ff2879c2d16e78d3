//! The README's in-process setup, as a user writes it: an agent called in-process (a local
//! model, a tool) behind fallback > retry > circuit breaker > timeout.

use std::time::Duration;

use steadfast::fallback::FallbackLayer;
use steadfast::prelude::*;
use tower::{ServiceBuilder, ServiceExt, service_fn};

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let registry = Registry::new();
    let local = registry.agent("local-model");
    let backup = registry.agent("backup-model");

    let backup_model =
        service_fn(|prompt: String| async move { Ok::<_, BoxError>(format!("backup: {prompt}")) });
    let agent = ServiceBuilder::new()
        .layer(FallbackLayer::new(&local).then(&backup, backup_model))
        .layer(BackoffRetryLayer::new(
            &local,
            RetryConfig::builder()
                .max_retries(2)
                .base(Duration::from_millis(10))
                .build()?,
        ))
        .layer(CircuitBreakerLayer::new(&local, BreakerConfig::default()))
        .timeout(Duration::from_secs(30))
        .service(service_fn(|_prompt: String| async move {
            Err::<String, BoxError>("the local model crashed".into())
        }));

    let reply = agent.oneshot("hello".to_owned()).await?;
    if reply != "backup: hello" {
        return Err(format!("expected the backup's answer, got {reply:?}").into());
    }
    let counts = registry
        .breaker("local-model")
        .ok_or("no breaker")?
        .counts();
    if counts.failures != 3 {
        return Err(format!("expected 3 failed attempts, the breaker counted {counts:?}").into());
    }
    println!(
        "in-process: {reply} (after {} failed attempts)",
        counts.failures
    );
    Ok(())
}
