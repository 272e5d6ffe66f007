//! chainrule's core: expression graphs, symbolic reverse-mode differentiation, a simplifier,
//! text printing and parsing, and a compiler from graphs to tapes evaluated in chunks over
//! large batches. No Python here: the `chainrule-py` crate binds it.
//!
//! Pipeline: [`build`] makes hash-consed, simplified [`Expr`] nodes; [`grad`] builds
//! derivative graphs from them; a [`Function`] analyses a graph once and compiles it into a
//! [`Tape`] per pattern of single-value inputs; the evaluator runs the tape over NumPy-style
//! broadcast batches, chunk by chunk, on [`pool`], through the [`kernels`].
//!
//! The modules that are vocabularies of free functions are public namespaces, spelled as in
//! the Python API and the text format (`build::mul`, `parse::parse_one`, `print::to_text`,
//! `serial::encode`, `grad::grad`); the machinery (the node store, graphs, the compiler, the
//! evaluator, shapes, substitution, the simplifier) is private, and the types and functions
//! the binding and the tests need are re-exported below.
#![warn(missing_docs)]

pub mod array;
pub mod build;
mod compile;
pub mod error;
mod eval;
mod expr;
mod function;
pub mod grad;
mod graph;
pub mod kernels;
pub mod ops;
pub mod parse;
pub mod pool;
pub mod print;
pub mod reference;
pub mod serial;
mod shape;
mod simplify;
mod subst;
mod tape;
pub mod train;

pub use compile::ShapeClass;
pub use error::{Error, Result};
pub use eval::Call;
pub use expr::{live_nodes, registry_pages, Expr, Kind, Name, Over, Tag};
pub use function::{Function, Shapes};
pub use graph::{Graph, NodeId};
pub use shape::InputView;
pub use subst::substitute;
pub use tape::{chunk_len, Affine, Arg, Instr, MatVec, OuterSum, OutputSource, Pass, Reg, ScalarInstr, Slot, Source, Tape, CHUNK};
