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
    /// A valid network that the code asked cannot handle (e.g. synapse types beyond W_fast and
    /// W_slow for the local rule or the DYNAP-SE1 mapping).
    #[error("{0}")]
    Unsupported(String),
}
