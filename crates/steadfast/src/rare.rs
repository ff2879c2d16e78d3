//! [`Rare`]: an optional box that a call seldom fills, whose drop costs one branch when empty.
//!
//! A response future keeps what only some calls need (the spans while a subscriber listens,
//! retry's failure state and timer) boxed in an `Option`, so that the future, moved on every
//! call, stays small. Dropping such an `Option<Box<T>>` is a call to its drop glue, which the
//! compiler keeps out of line because dropping a `T` is large (a `Span`, a `Sleep`), and which
//! only then finds the `Option` empty: in the 5-layer stack of `benches/src/bin/hotpath.rs`,
//! four such calls per call (`perf`: 5 % of the row). A `Rare` tests for emptiness inline and
//! calls out of line only to drop what is there.

use std::mem::ManuallyDrop;

/// An optional value, empty on the common path (module doc): a `Box<T>` or `Pin<Box<T>>` in a
/// future, or a guard such as the `EnteredSpan` of [`trace::enter`](crate::trace).
///
/// The value sits in a `ManuallyDrop` so that the `Option` itself has no drop glue; every way
/// to replace or remove it gives the old value back or drops it, so nothing leaks.
pub(crate) struct Rare<P>(Option<ManuallyDrop<P>>);

impl<P> Rare<P> {
    /// Empty.
    #[inline]
    pub(crate) const fn none() -> Self {
        Rare(None)
    }

    /// Holding `value`, if any.
    #[inline]
    pub(crate) fn from_option(value: Option<P>) -> Self {
        Rare(value.map(ManuallyDrop::new))
    }

    /// The value, if any.
    #[inline]
    pub(crate) fn as_ref(&self) -> Option<&P> {
        self.0.as_deref()
    }

    /// The value, mutably, if any.
    #[inline]
    pub(crate) fn as_mut(&mut self) -> Option<&mut P> {
        self.0.as_deref_mut()
    }

    /// Removes the value, leaving this empty.
    #[inline]
    pub(crate) fn take(&mut self) -> Option<P> {
        self.0.take().map(ManuallyDrop::into_inner)
    }

    /// Holds `value`, dropping the previous one, if any.
    pub(crate) fn set(&mut self, value: P) {
        drop(self.take());
        self.0 = Some(ManuallyDrop::new(value));
    }

    /// The value, made by `make` if there is none.
    pub(crate) fn get_or_insert_with(&mut self, make: impl FnOnce() -> P) -> &mut P {
        self.0.get_or_insert_with(|| ManuallyDrop::new(make()))
    }
}

impl<T> Rare<Box<T>> {
    /// The boxed value, if any.
    #[inline]
    pub(crate) fn as_deref(&self) -> Option<&T> {
        self.0.as_deref().map(|value| &**value)
    }
}

impl<P> Drop for Rare<P> {
    #[inline]
    fn drop(&mut self) {
        if let Some(value) = self.take() {
            drop_rare(value);
        }
    }
}

/// Drops a value a [`Rare`] held, out of line.
#[cold]
#[inline(never)]
fn drop_rare<P>(value: P) {
    drop(value);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn every_value_held_is_dropped_exactly_once() {
        let value = Arc::new(());
        let mut rare = Rare::from_option(Some(Box::new(value.clone())));
        assert_eq!(Arc::strong_count(&value), 2);
        rare.set(Box::new(value.clone()));
        assert_eq!(
            Arc::strong_count(&value),
            2,
            "the replaced value was dropped"
        );
        let taken = rare.take();
        assert!(rare.as_ref().is_none());
        assert_eq!(Arc::strong_count(&value), 2, "taken, not dropped");
        drop(taken);
        assert_eq!(Arc::strong_count(&value), 1);
        rare.get_or_insert_with(|| Box::new(value.clone()));
        let kept = rare
            .get_or_insert_with(|| unreachable!("already there"))
            .clone();
        assert_eq!(Arc::strong_count(&value), 3);
        drop(kept);
        drop(rare);
        assert_eq!(Arc::strong_count(&value), 1, "dropped with its holder");
        drop(Rare::<Box<Arc<()>>>::none());
    }
}
