//! A flaky in-process agent behind retry > circuit breaker > timeout, with seeded chaos.
//!
//! `cargo run -p steadfast-examples --example in_process [SEED]`

use steadfast_examples::in_process::{Settings, run};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), steadfast::BoxError> {
    let mut settings = Settings::default();
    if let Some(seed) = std::env::args().nth(1).and_then(|text| text.parse().ok()) {
        settings.seed = seed;
    }
    println!(
        "in_process: {} prompts every {} ms to a flaky summarizer (chaos seed {}), outage from {} ms for {} ms",
        settings.requests,
        settings.pace.as_millis(),
        settings.seed,
        settings.outage_after.as_millis(),
        settings.outage_for.as_millis(),
    );
    println!(
        "stack: backoff_retry(2 retries) > circuit_breaker(3 failures, 150 ms open) > timeout(100 ms) > chaos > agent\n"
    );
    let summary = run(settings).await?;
    for line in &summary.timeline {
        println!("{line}");
    }
    println!("\naccounting");
    println!("  sent                      {:>4}", summary.sent);
    println!(
        "  answered first time       {:>4}",
        summary.answered_first_time
    );
    println!(
        "  answered after retries    {:>4}",
        summary.answered_after_retry
    );
    println!(
        "  failed fast (open)        {:>4}",
        summary.failed_circuit_open
    );
    println!(
        "  failed after retries      {:>4}",
        summary.failed_after_retries
    );
    println!(
        "  accounted for             {:>4}  ({})",
        summary.accounted(),
        if summary.accounted() == summary.sent {
            "every request"
        } else {
            "MISMATCH"
        }
    );
    println!("\nunder the hood");
    println!(
        "  attempts by retry layer   {:>4}  = {} let through + {} refused by the breaker",
        summary.attempts, summary.breaker_calls, summary.breaker_rejected
    );
    println!("  agent work done           {:>4}", summary.agent_calls);
    println!(
        "  chaos injected            {:>4} errors, {} outage failures, {} delays past the timeout",
        summary.injected_errors, summary.injected_outage_failures, summary.injected_delays
    );
    println!(
        "  breaker opened {} time(s), closed {} time(s), ends {:?}",
        summary.breaker_opened, summary.breaker_closed, summary.final_state
    );
    Ok(())
}
