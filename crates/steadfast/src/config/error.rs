//! [`StackConfigError`]: what was wrong, in which file, on which line, in which field.

use std::fmt;

use crate::error::BoxError;

/// What kind of problem a [`StackConfigError`] reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The file could not be read.
    Read,
    /// The text is not valid TOML or JSON.
    Syntax,
    /// A key is not part of the schema (a typo, or a setting of a later version).
    UnknownField,
    /// A value has the wrong type, or is out of range (a bad duration, a rate over 1, ...).
    Invalid,
    /// A fallback chain names an agent the file does not define.
    UnknownAgent,
    /// Building the stack failed: the application could not make an agent's service, its
    /// classifier kind is unknown, a dead-letter store could not be opened, ...
    Build,
}

/// A stack file was refused, or the stack it describes could not be built. The message names
/// the file, the line and column (when known) and the field, as a dotted path:
///
/// ```text
/// stack.toml:14:8: field `agents.primary.retry.base`: invalid value: ...
/// ```
#[derive(Debug)]
pub struct StackConfigError {
    pub(crate) kind: ErrorKind,
    pub(crate) origin: String,
    pub(crate) location: Option<(usize, usize)>,
    pub(crate) field: String,
    pub(crate) message: String,
    pub(crate) source: Option<BoxError>,
}

impl StackConfigError {
    pub(crate) fn new(
        kind: ErrorKind,
        origin: &str,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        StackConfigError {
            kind,
            origin: origin.to_owned(),
            location: None,
            field: field.into(),
            message: message.into(),
            source: None,
        }
    }

    pub(crate) fn at(mut self, location: Option<(usize, usize)>) -> Self {
        self.location = location;
        self
    }

    pub(crate) fn with_source(mut self, source: BoxError) -> Self {
        self.source = Some(source);
        self
    }

    /// What kind of problem this is.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The file (or `<toml>` / `<json>` for text given directly).
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The line, counted from 1, when known.
    pub fn line(&self) -> Option<usize> {
        self.location.map(|(line, _)| line)
    }

    /// The column, counted from 1, when known.
    pub fn column(&self) -> Option<usize> {
        self.location.map(|(_, column)| column)
    }

    /// The field, as a dotted path (`agents.primary.retry.base`, `agents.primary.fallback[1]`);
    /// empty when the problem is the whole file.
    pub fn field(&self) -> &str {
        &self.field
    }

    /// What is wrong, and what is allowed.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for StackConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.origin)?;
        if let Some((line, column)) = self.location {
            write!(f, ":{line}:{column}")?;
        }
        if !self.field.is_empty() {
            write!(f, ": field `{}`", self.field)?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for StackConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|source| source as &(dyn std::error::Error + 'static))
    }
}
