//! Errors shared by every layer.
//!
//! Each layer has its own typed errors (`CircuitOpen`, `RetriesExhausted`, ...), all returned as
//! [`BoxError`] so layers compose, and all downcastable:
//!
//! ```
//! # #[cfg(feature = "circuit-breaker")] {
//! use steadfast::BoxError;
//! use steadfast::circuit_breaker::CircuitOpen;
//!
//! fn explain(err: &BoxError) -> String {
//!     match steadfast::error::find::<CircuitOpen>(err.as_ref()) {
//!         Some(open) => format!("agent `{}` is resting", open.agent()),
//!         None => format!("failed: {err}"),
//!     }
//! }
//! # }
//! ```

use std::error::Error;

/// The error type every layer returns: a boxed, thread-safe error. The same as tower's
/// `BoxError`.
pub type BoxError = Box<dyn Error + Send + Sync>;

/// Finds the first error of type `T` in `error` and its `source()` chain.
///
/// Layers wrap what they could not handle (`DeadLettered` wraps `RetriesExhausted` wraps the
/// agent's error), so the error a caller wants to react to is often a few `source()`s deep.
pub fn find<'a, T: Error + 'static>(error: &'a (dyn Error + 'static)) -> Option<&'a T> {
    let mut current: Option<&'a (dyn Error + 'static)> = Some(error);
    while let Some(err) = current {
        if let Some(found) = err.downcast_ref::<T>() {
            return Some(found);
        }
        current = err.source();
    }
    None
}

/// The error and its `source()` chain as strings, outermost first (for logs, events and dead
/// letters).
pub fn chain(error: &(dyn Error + 'static)) -> Vec<String> {
    let mut out = Vec::new();
    let mut current: Option<&(dyn Error + 'static)> = Some(error);
    while let Some(err) = current {
        out.push(err.to_string());
        current = err.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fmt;

    #[derive(Debug)]
    struct Outer(BoxError);
    impl fmt::Display for Outer {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("outer")
        }
    }
    impl Error for Outer {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            Some(self.0.as_ref())
        }
    }

    #[derive(Debug)]
    struct Inner;
    impl fmt::Display for Inner {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("inner")
        }
    }
    impl Error for Inner {}

    #[test]
    fn find_walks_the_source_chain() {
        let err: BoxError = Box::new(Outer(Box::new(Inner)));
        assert!(find::<Inner>(err.as_ref()).is_some());
        assert!(find::<Outer>(err.as_ref()).is_some());
        assert_eq!(chain(err.as_ref()), vec!["outer", "inner"]);
    }
}
