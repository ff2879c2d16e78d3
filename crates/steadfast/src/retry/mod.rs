//! Retry with exponential backoff, jitter, `Retry-After`, a retry budget and a deadline.
//!
//! (The layer itself is being built; its errors are defined here first because other layers,
//! such as dead-letter, report attempt counts from them.)

mod error;

pub use error::{BudgetExhausted, DeadlineExceeded, RetriesExhausted, attempts_of};
