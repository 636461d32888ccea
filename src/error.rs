//! One error type for the crate: every public op returns `Result`, and a
//! message names the op and the shapes involved so a user can act on it.

use std::fmt;

#[derive(Debug, Clone, PartialEq)]
pub enum Error {
    /// Shapes that do not fit the op: `op` is the op's name.
    Shape { op: &'static str, msg: String },
    /// Tensors on different devices passed to one op.
    Device { op: &'static str, msg: String },
    /// An argument out of its domain (negative padding where none is allowed, ...).
    Invalid { op: &'static str, msg: String },
    /// A device or library that is not available on this machine.
    Unavailable(String),
    /// Reading or writing files, or a malformed file.
    Io(String),
    /// A broken internal invariant (a bug in this crate, never user input).
    Internal(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Shape { op, msg } => write!(f, "{op}: shape mismatch: {msg}"),
            Error::Device { op, msg } => write!(f, "{op}: device mismatch: {msg}"),
            Error::Invalid { op, msg } => write!(f, "{op}: invalid argument: {msg}"),
            Error::Unavailable(msg) => write!(f, "unavailable: {msg}"),
            Error::Io(msg) => write!(f, "{msg}"),
            Error::Internal(msg) => write!(f, "internal error (a bug in stylegan2): {msg}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Io(e.to_string())
    }
}

pub type Result<T> = std::result::Result<T, Error>;

/// Shorthand for a shape error.
pub(crate) fn shape_err<T>(op: &'static str, msg: impl Into<String>) -> Result<T> {
    Err(Error::Shape {
        op,
        msg: msg.into(),
    })
}

/// Shorthand for an invalid-argument error.
pub(crate) fn invalid<T>(op: &'static str, msg: impl Into<String>) -> Result<T> {
    Err(Error::Invalid {
        op,
        msg: msg.into(),
    })
}
