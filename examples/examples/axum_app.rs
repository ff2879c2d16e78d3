//! An axum app serving a route through the stack (`Router::route_layer`), with the status routes
//! merged in.
//!
//! `cargo run -p steadfast-examples --example axum_app`

use steadfast::BoxError;
use steadfast_examples::axum_app::run;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), BoxError> {
    println!(
        "axum_app: POST /summarize served through route_layer(ErrorResponseLayer > BufferRequestLayer > retry > breaker > timeout); status routes merged in"
    );
    println!("the agent goes down before the 4th prompt\n");
    let summary = run().await?;
    println!("served on {}", summary.url);
    for exchange in &summary.prompts {
        let retry_after = exchange
            .retry_after
            .as_ref()
            .map(|seconds| format!(" (Retry-After: {seconds})"))
            .unwrap_or_default();
        let agent = exchange
            .agent
            .as_ref()
            .map(|agent| format!(" (x-steadfast-agent: {agent})"))
            .unwrap_or_default();
        println!(
            "{} -> {}{retry_after}{agent} {}",
            exchange.request, exchange.status, exchange.body
        );
    }
    println!(
        "GET /health -> {} {}",
        summary.health.status, summary.health.body
    );
    println!(
        "GET /status ->\n{}",
        serde_json::to_string_pretty(&summary.status)?
    );
    println!("GET /metrics -> (steadfast's series)");
    for line in summary.metrics.lines() {
        if line.starts_with("steadfast_") {
            println!("{line}");
        }
    }
    Ok(())
}
