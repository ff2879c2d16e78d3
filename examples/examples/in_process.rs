//! A flaky in-process agent behind degrade > fallback > retry > circuit breaker > timeout, with
//! seeded chaos.
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
        "stack: degrade > fallback(backup agent, then cache) > backoff_retry(2 retries) > circuit_breaker(3 failures, 150 ms open) > timeout(100 ms) > chaos > agent\n"
    );
    let summary = run(settings).await?;
    for line in &summary.timeline {
        println!("{line}");
    }
    let rows = [
        ("sent", summary.sent),
        ("primary, first time", summary.answered_first_time),
        ("primary, after retries", summary.answered_after_retry),
        ("backup agent", summary.answered_by_backup),
        ("cache", summary.answered_from_cache),
        ("degraded", summary.degraded),
        ("failed", summary.failed),
    ];
    println!("\naccounting");
    for (label, count) in rows {
        println!("  {label:<26}{count:>4}");
    }
    println!(
        "  {:<26}{:>4}  ({})",
        "accounted for",
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
    println!("  primary agent work done   {:>4}", summary.agent_calls);
    println!("  backup agent calls        {:>4}", summary.backup_calls);
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
