//! Provenance: who answered a call (the primary agent, a fallback, the cache, or a degraded
//! answer).
//!
//! `FallbackLayer` (feature `fallback`) and `DegradeLayer` (feature `degrade`) say where each response came from in two ways:
//!
//! - the metric `steadfast_served_total{agent, source}` (`source` is `primary`, `fallback`,
//!   `cache`, `degraded` or `checkpoint`), which gives the primary, fallback and degradation rates;
//! - on the response itself, when asked to (`.mark_responses()` on the layer) and when the
//!   response type implements [`Provenance`]: `http::Response<B>` does (feature `http`, as a
//!   response extension), [`Attributed<T>`] wraps any other type, and your own types can
//!   implement the trait.
//!
//! A response that carries no mark was answered by the primary: marking the primary's answers
//! would cost an allocation on every successful call (an http extension map is allocated on
//! first insert), so it is left implicit and [`Provenance::served`] reports [`Served::Primary`].
//!
//! ```
//! use std::time::Duration;
//! use steadfast::provenance::{Attributed, Provenance, Served};
//!
//! let mut reply = Attributed::new("cached answer");
//! assert_eq!(reply.served(), Served::Primary);
//! reply.set_served(Served::Cache { age: Duration::from_secs(42) });
//! assert_eq!(reply.served().source(), "cache");
//! ```

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// Who answered a call.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Served {
    /// The primary agent answered.
    Primary,
    /// A fallback alternative answered (the primary failed, or its circuit was open).
    Fallback {
        /// The alternative's name, as given to the fallback layer.
        name: Arc<str>,
    },
    /// A cached answer was served because the live agents failed.
    Cache {
        /// How old the cached answer was when served.
        age: Duration,
    },
    /// A degraded answer (template, partial data, "try again later") replaced an error.
    Degraded {
        /// Why: the reason the error was classified with (`"timeout"`, `"circuit open"`, ...).
        reason: Cow<'static, str>,
    },
    /// A workflow step that already completed was answered from the checkpoint store, without
    /// calling the agent (`CheckpointLayer`, feature `checkpoint`).
    Checkpoint {
        /// How long ago the step's answer was stored.
        age: Duration,
    },
}

impl Served {
    /// The value of the `source` label: `primary`, `fallback`, `cache` or `degraded`.
    pub const fn source(&self) -> &'static str {
        match self {
            Served::Primary => "primary",
            Served::Fallback { .. } => "fallback",
            Served::Cache { .. } => "cache",
            Served::Degraded { .. } => "degraded",
            Served::Checkpoint { .. } => "checkpoint",
        }
    }

    /// `true` when the primary agent answered.
    pub const fn is_primary(&self) -> bool {
        matches!(self, Served::Primary)
    }
}

impl fmt::Display for Served {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Served::Primary => f.write_str("primary"),
            Served::Fallback { name } => write!(f, "fallback `{name}`"),
            Served::Cache { age } => write!(f, "cache (age {age:?})"),
            Served::Degraded { reason } => write!(f, "degraded ({reason})"),
            Served::Checkpoint { age } => write!(f, "checkpoint (age {age:?})"),
        }
    }
}

/// A response that can say who answered it.
///
/// Implemented for `http::Response<B>` (feature `http`, stored as a response extension) and
/// [`Attributed<T>`]; implement it for your own response types to have the layers mark them.
pub trait Provenance {
    /// Records who answered.
    fn set_served(&mut self, served: Served);

    /// Who answered: [`Served::Primary`] when nothing was recorded.
    fn served(&self) -> Served;
}

/// Any value plus who answered it: the [`Provenance`] carrier for response types that have no
/// room for it themselves.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Attributed<T> {
    /// The response.
    pub value: T,
    /// Who answered; `None` means the primary.
    pub served: Option<Served>,
}

impl<T> Attributed<T> {
    /// A value with no provenance recorded yet (that is, from the primary).
    pub const fn new(value: T) -> Self {
        Attributed {
            value,
            served: None,
        }
    }

    /// The response, without its provenance.
    pub fn into_inner(self) -> T {
        self.value
    }
}

impl<T> Provenance for Attributed<T> {
    fn set_served(&mut self, served: Served) {
        self.served = Some(served);
    }

    fn served(&self) -> Served {
        self.served.clone().unwrap_or(Served::Primary)
    }
}

#[cfg(feature = "http")]
impl<B> Provenance for http::Response<B> {
    fn set_served(&mut self, served: Served) {
        self.extensions_mut().insert(served);
    }

    fn served(&self) -> Served {
        self.extensions()
            .get::<Served>()
            .cloned()
            .unwrap_or(Served::Primary)
    }
}

/// How a layer writes provenance onto a response. [`Unmarked`] (the default) writes nothing;
/// [`Marked`] uses the response's [`Provenance`] impl. Chosen with a layer's `mark_responses()`.
pub trait MarkServed<Res> {
    /// Writes `served` onto `response` (or not).
    fn mark(&self, response: &mut Res, served: &Served);
}

/// Leaves responses as they are (provenance only in metrics).
#[derive(Clone, Copy, Debug, Default)]
pub struct Unmarked;

impl<Res> MarkServed<Res> for Unmarked {
    #[inline]
    fn mark(&self, _response: &mut Res, _served: &Served) {}
}

/// Marks responses through their [`Provenance`] impl.
#[derive(Clone, Copy, Debug, Default)]
pub struct Marked;

impl<Res: Provenance> MarkServed<Res> for Marked {
    #[inline]
    fn mark(&self, response: &mut Res, served: &Served) {
        response.set_served(served.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unmarked_attributed_value_reports_primary() {
        let reply = Attributed::new(1);
        assert_eq!(reply.served(), Served::Primary);
    }

    #[test]
    fn marked_attributed_value_reports_who_answered() {
        let mut reply = Attributed::new(1);
        Marked.mark(
            &mut reply,
            &Served::Fallback {
                name: Arc::from("cheap"),
            },
        );
        assert_eq!(reply.served().source(), "fallback");
        assert_eq!(reply.served().to_string(), "fallback `cheap`");
    }

    #[cfg(feature = "http")]
    #[test]
    fn http_response_carries_provenance_as_extension() {
        let mut response = http::Response::new(());
        assert_eq!(response.served(), Served::Primary);
        response.set_served(Served::Degraded {
            reason: Cow::Borrowed("timeout"),
        });
        assert_eq!(
            response.extensions().get::<Served>(),
            Some(&Served::Degraded {
                reason: Cow::Borrowed("timeout")
            })
        );
    }
}
