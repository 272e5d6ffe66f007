//! Core errors as Python exceptions: `ChainruleError` (a ValueError) and its subclasses, and a
//! guard that turns a panic in the core (a bug) into a RuntimeError instead of a crash.

use std::panic::{catch_unwind, AssertUnwindSafe};

use chainrule_core::error::Error;
use pyo3::create_exception;
use pyo3::exceptions::{PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;

create_exception!(chainrule, ChainruleError, PyValueError, "Base class of chainrule's errors (a ValueError).");
create_exception!(chainrule, ParseError, ChainruleError, "Text that is not a valid expression; the message points at the position.");
create_exception!(chainrule, ShapeError, ChainruleError, "Argument shapes that do not broadcast together.");

pub(crate) fn to_py(e: Error) -> PyErr {
    let msg = e.to_string();
    match e {
        Error::Parse { .. } => ParseError::new_err(msg),
        Error::Shape { .. } => ShapeError::new_err(msg),
        Error::InputCount { .. } => PyTypeError::new_err(msg),
        Error::Internal(_) | Error::Interrupted => PyRuntimeError::new_err(msg),
        Error::UnknownVariable { .. } | Error::DuplicateInput(_) | Error::InvalidName(_) | Error::Corrupt(_) | Error::Unsupported(_) => {
            ChainruleError::new_err(msg)
        }
    }
}

/// Runs core code that takes user input, turning a panic (a bug) into a Python exception.
pub(crate) fn guarded<T>(f: impl FnOnce() -> Result<T, Error>) -> PyResult<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r.map_err(to_py),
        Err(_) => Err(PyRuntimeError::new_err("internal error in chainrule (please report it)")),
    }
}
