//! chainrule's core: expression graphs, symbolic reverse-mode differentiation, a simplifier,
//! text printing and parsing, and a compiler from graphs to tapes evaluated in chunks over
//! large batches. No Python here: the `chainrule-py` crate binds it.
//!
//! Pipeline: [`build`] makes hash-consed, simplified [`expr::Expr`] nodes; [`grad`] builds
//! derivative graphs from them; [`compile::Function`] schedules a graph into a [`tape::Tape`];
//! [`eval`] runs the tape over NumPy-style broadcast batches, chunk by chunk, on [`pool`].
#![warn(missing_docs)]

pub mod build;
pub mod compile;
pub mod error;
pub mod eval;
pub mod expr;
mod function;
pub mod grad;
pub mod graph;
pub mod kernels;
pub mod ops;
pub mod parse;
pub mod pool;
pub mod print;
pub mod reference;
pub mod serial;
mod shape;
pub mod simplify;
pub mod subst;
pub mod tape;

pub use function::Function;
pub use error::{Error, Result};
pub use expr::Expr;
