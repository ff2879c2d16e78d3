//! A hyper client stack against a local fake LLM API (429 + Retry-After, 503, a hang, an outage).
//!
//! `cargo run -p steadfast-examples --example hyper_agent`

use steadfast::BoxError;
use steadfast_examples::hyper_agent::{ATTEMPT_TIMEOUT, OPEN_FOR, run};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), BoxError> {
    println!(
        "hyper_agent: a fake LLM API on 127.0.0.1, hyper-util client with BufferedBody requests"
    );
    println!(
        "stack: backoff_retry(2 retries, HttpClassifier) > circuit_breaker(3 failures, {} ms open) > timeout({} ms) > hyper client\n",
        OPEN_FOR.as_millis(),
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
        "\nserver received {} requests; breaker was {:?} after the outage, ends {:?}",
        summary.server_hits, summary.state_after_outage, summary.final_state
    );
    Ok(())
}
