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

use std::borrow::Cow;
use std::error::Error;
use std::fmt;

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

/// A configuration was refused: which setting of which component, the value given, and what
/// is allowed. Every config of every layer returns this one type from its `build()`.
///
/// ```
/// # #[cfg(feature = "retry")] {
/// use steadfast::retry::RetryConfig;
///
/// let error = RetryConfig::builder().multiplier(f64::NAN).build().unwrap_err();
/// assert_eq!(error.component(), "retry");
/// assert_eq!(error.setting(), "multiplier");
/// assert_eq!(error.value(), Some("NaN"));
/// # }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    component: &'static str,
    setting: Cow<'static, str>,
    value: Option<String>,
    problem: Cow<'static, str>,
}

impl ConfigError {
    /// `setting` of `component` (`"breaker"`, `"retry"`, ...) is wrong: `problem` says what is
    /// allowed or what to do instead.
    pub fn new(
        component: &'static str,
        setting: impl Into<Cow<'static, str>>,
        problem: impl Into<Cow<'static, str>>,
    ) -> Self {
        ConfigError {
            component,
            setting: setting.into(),
            value: None,
            problem: problem.into(),
        }
    }

    /// Records the value that was given.
    #[must_use]
    pub fn with_value(mut self, value: impl fmt::Display) -> Self {
        self.value = Some(value.to_string());
        self
    }

    /// The component whose configuration was refused (`"breaker"`, `"retry"`, `"cache"`, ...).
    pub fn component(&self) -> &'static str {
        self.component
    }

    /// The setting that is wrong, as the config's builder and serde form name it.
    pub fn setting(&self) -> &str {
        &self.setting
    }

    /// The value given, as text, when there was one.
    pub fn value(&self) -> Option<&str> {
        self.value.as_deref()
    }

    /// What is allowed, or what to do instead.
    pub fn problem(&self) -> &str {
        &self.problem
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid {} setting `{}`", self.component, self.setting)?;
        if let Some(value) = &self.value {
            write!(f, " = {value}")?;
        }
        write!(f, ": {}", self.problem)
    }
}

impl Error for ConfigError {}

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
