//! The core's one error type. Every failure that user input can cause is a variant here, so the
//! binding layer can map each to the right Python exception; nothing on a user-reachable path
//! panics.

use thiserror::Error;

/// Everything that can go wrong in the core because of what a user asked for.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum Error {
    /// Text that is not a valid expression; `pos` is a byte offset into `text`.
    #[error("{message} at position {pos}\n  {line}\n  {caret}^", caret = " ".repeat(*column))]
    Parse {
        /// What was expected or found.
        message: String,
        /// Byte offset of the offending token in the whole text.
        pos: usize,
        /// The line the error is on.
        line: String,
        /// Character column of the offending token within `line`.
        column: usize,
    },
    /// A variable appears in an expression but not in the function's inputs.
    #[error("variable '{name}' is used but not in inputs=[{inputs}]")]
    UnknownVariable {
        /// The missing variable.
        name: String,
        /// The inputs that were given, comma separated.
        inputs: String,
    },
    /// The same variable is listed twice in a function's inputs.
    #[error("variable '{0}' is listed twice in inputs")]
    DuplicateInput(String),
    /// A call got the wrong number of arguments.
    #[error("function takes {expected} arguments ({inputs}) but {given} were given")]
    InputCount {
        /// How many inputs the function has.
        expected: usize,
        /// How many were passed.
        given: usize,
        /// The input names.
        inputs: String,
    },
    /// Argument shapes that do not broadcast together.
    #[error("shapes {shapes} do not broadcast together (arguments {names})")]
    Shape {
        /// The shapes, as Python would print them.
        shapes: String,
        /// The names of the arguments involved.
        names: String,
    },
    /// A variable name that is not an identifier or is reserved.
    #[error("invalid variable name {0:?}: use a letter or '_' followed by letters, digits or '_', and not a function name")]
    InvalidName(String),
    /// Bytes that are not a serialized graph of a version this build reads.
    #[error("cannot load chainrule data: {0}")]
    Corrupt(String),
    /// A request the core cannot answer correctly; the message says what and how to avoid it.
    #[error("not supported: {0}")]
    Unsupported(String),
    /// The evaluation was cancelled (Ctrl-C) before it finished; outputs are incomplete.
    #[error("evaluation interrupted")]
    Interrupted,
    /// A broken invariant of the core, not of the input: buffers of other lengths than the
    /// prepared call's shapes handed to the evaluator, or a tape that does not fit how it is run
    /// (a bug; the message says which).
    #[error("internal error in chainrule (please report it): {0}")]
    Internal(String),
}

/// Result alias for the core.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// A parse error at byte offset `pos` of `text`, carrying the line for display.
    pub fn parse(text: &str, pos: usize, message: impl Into<String>) -> Error {
        let pos = pos.min(text.len());
        let start = text[..pos].rfind(['\n', ';']).map_or(0, |i| i + 1);
        let end = text[pos..].find(['\n', ';']).map_or(text.len(), |i| pos + i);
        Error::Parse { message: message.into(), pos, line: text[start..end].to_string(), column: text[start..pos].chars().count() }
    }
}
