//! `reqwest::Client` as a tower `Service` under the layers, against a local fake LLM API.
//!
//! `cargo run -p steadfast-examples --example reqwest_client`

use steadfast::BoxError;
use steadfast_examples::reqwest_client::{ATTEMPT_TIMEOUT, run};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), BoxError> {
    println!(
        "reqwest_client: reqwest::Requests in, through steadfast-http's BufferRequestLayer and ReqwestAgent"
    );
    println!(
        "stack: BufferRequestLayer > [fallback to a bigger model on another host, via Rebase] > backoff_retry(2 retries) > circuit_breaker > timeout({} ms) > ReqwestAgent(reqwest::Client)\n",
        ATTEMPT_TIMEOUT.as_millis()
    );
    let summary = run().await?;
    for (index, exchange) in summary.exchanges.iter().enumerate() {
        let result = match (&exchange.status, &exchange.error) {
            (Some(status), _) => format!("HTTP {status} {}", exchange.body),
            (None, Some(error)) => format!("error: {error}"),
            (None, None) => String::new(),
        };
        println!(
            "#{} {:<38} {} attempt(s) {:>5} ms  {result}",
            index + 1,
            exchange.label,
            exchange.attempts,
            exchange.elapsed.as_millis()
        );
    }
    println!(
        "\nserver received {} requests; the bigger model {}",
        summary.server_hits, summary.big_model_hits
    );

    println!(
        "\nthe same stack as one reqwest-middleware `.with(Resilience::new().backoff_retry(..).circuit_breaker(..).timeout(..))`\n"
    );
    let summary = steadfast_examples::resilient_middleware::run().await?;
    for (index, exchange) in summary.exchanges.iter().enumerate() {
        let result = match (&exchange.status, &exchange.error) {
            (Some(status), _) => format!("HTTP {status}"),
            (None, Some(error)) => format!("error: {error}"),
            (None, None) => String::new(),
        };
        println!(
            "#{} {:<38} {} attempt(s) {:>5} ms  {result}",
            index + 1,
            exchange.label,
            exchange.attempts,
            exchange.elapsed.as_millis()
        );
    }
    println!("\nserver received {} requests", summary.server_hits);
    Ok(())
}
