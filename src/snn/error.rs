//! What can be wrong with a network description.

/// A network whose matrices or parameters do not fit together.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SnnError {
    #[error("shape mismatch in {what}: expected {expected} elements, got {got}")]
    Shape {
        what: String,
        expected: usize,
        got: usize,
    },
    #[error("invalid parameters: {0}")]
    InvalidParams(String),
}
