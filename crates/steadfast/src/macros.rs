//! Macros shared by the layers' configuration builders.

/// A builder setter: `setter!(/// docs \n name: Type);` becomes a `#[must_use]` method that sets
/// the field of the same name and returns the builder.
#[allow(unused_macros)] // used by the configs of whichever layers are compiled in
macro_rules! setter {
    ($(#[$doc:meta])* $name:ident: $ty:ty) => {
        $(#[$doc])*
        #[must_use]
        pub fn $name(mut self, $name: $ty) -> Self {
            self.$name = $name;
            self
        }
    };
}
