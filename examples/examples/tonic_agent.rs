//! A tonic gRPC agent wrapped by the layers, judged by `GrpcClassifier`.
//!
//! `cargo run -p steadfast-examples --example tonic_agent`

use steadfast::BoxError;
use steadfast_examples::tonic_agent::{ATTEMPT_TIMEOUT, OPEN_FOR, run};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), BoxError> {
    println!(
        "tonic_agent: a gRPC Agent/Ask server on 127.0.0.1 (hand-written prost messages, no protoc)"
    );
    println!(
        "stack: backoff_retry(2 retries) > circuit_breaker(3 failures, {} ms open) > timeout({} ms) > GrpcAgent, classified by GrpcClassifier\n",
        OPEN_FOR.as_millis(),
        ATTEMPT_TIMEOUT.as_millis()
    );
    let summary = run().await?;
    for (index, exchange) in summary.exchanges.iter().enumerate() {
        let result = match (&exchange.answer, &exchange.error) {
            (Some(answer), _) => format!("OK {answer}"),
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
        "\nserver received {} calls; the breaker counted {} failures and ignored {} caller fault(s); it was {:?} after the outage and ends {:?}",
        summary.server_hits,
        summary.breaker_failures,
        summary.breaker_caller_faults,
        summary.state_after_outage,
        summary.final_state
    );
    Ok(())
}
