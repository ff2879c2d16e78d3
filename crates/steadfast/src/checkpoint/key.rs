//! [`StepKey`]: which step of which workflow a request is.

use std::fmt;
use std::sync::Arc;

/// The longest workflow id or step id accepted, in bytes.
pub const MAX_KEY_LEN: usize = 200;

/// A workflow id plus a step id: the key a step's answer is stored under.
///
/// Both parts are non-empty, at most [`MAX_KEY_LEN`] bytes and free of control characters (they
/// appear in tables, logs and commands an operator copies).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StepKey {
    workflow: Arc<str>,
    step: Arc<str>,
}

impl StepKey {
    /// The key of `step` in `workflow`, checked.
    pub fn new(workflow: impl AsRef<str>, step: impl AsRef<str>) -> Result<Self, InvalidStepKey> {
        let workflow = workflow.as_ref();
        let step = step.as_ref();
        check_part("workflow", workflow)?;
        check_part("step", step)?;
        Ok(StepKey {
            workflow: Arc::from(workflow),
            step: Arc::from(step),
        })
    }

    /// The workflow id.
    pub fn workflow(&self) -> &str {
        &self.workflow
    }

    /// The step id.
    pub fn step(&self) -> &str {
        &self.step
    }
}

/// Checks a workflow id on its own (the workflow-state calls take only that part).
pub fn check_workflow(workflow: &str) -> Result<(), InvalidStepKey> {
    check_part("workflow", workflow)
}

fn check_part(part: &'static str, value: &str) -> Result<(), InvalidStepKey> {
    let reason = if value.is_empty() {
        "it is empty"
    } else if value.len() > MAX_KEY_LEN {
        "it is longer than 200 bytes"
    } else if value.chars().any(char::is_control) {
        "it contains a control character"
    } else {
        return Ok(());
    };
    Err(InvalidStepKey {
        part,
        value: value.chars().take(40).collect(),
        reason,
    })
}

impl fmt::Debug for StepKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StepKey({}/{})", self.workflow, self.step)
    }
}

impl fmt::Display for StepKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.workflow, self.step)
    }
}

/// A workflow or step id that cannot be a checkpoint key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid checkpoint {part} id `{value:?}`: {reason}; use 1 to 200 bytes of printable text")]
pub struct InvalidStepKey {
    part: &'static str,
    value: String,
    reason: &'static str,
}

impl InvalidStepKey {
    /// `"workflow"` or `"step"`.
    pub fn part(&self) -> &'static str {
        self.part
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_refuse_empty_long_and_control_characters() {
        assert!(StepKey::new("wf-1", "plan").is_ok());
        assert_eq!(StepKey::new("", "plan").unwrap_err().part(), "workflow");
        assert_eq!(StepKey::new("wf", "a\nb").unwrap_err().part(), "step");
        assert!(StepKey::new("x".repeat(201), "s").is_err());
        assert_eq!(StepKey::new("wf", "plan").unwrap().to_string(), "wf/plan");
    }
}
