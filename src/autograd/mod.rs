//! Reverse-mode autograd with owned tapes.
//!
//! A tensor's tape is a type parameter: [`NoTape`] records nothing (inference, and the compiler
//! refuses `backward()` on it), [`OwnedTape`] records one backward closure per op. The tape moves
//! from the inputs of an op into its output; a binary op merges the tapes of both operands. A taped
//! tensor can be cloned: the clones share one recording, so a tensor used twice, a residual
//! connection or a model with several outputs need no tape juggling, and their gradients add up.
//!
//! Every op records through [`Tape::add_backward_op`] with an [`OpRecord`] (its name, input and
//! output ids, output sizes); a recorder for export (tracing) is another implementation of the same
//! trait, and [`OwnedTape::recorded_ops`] lists what a tape holds.

mod gradients;
mod tape;

pub use gradients::{Gradients, UniqueId};
pub(crate) use tape::capture;
pub use tape::{Merge, NoTape, OpRecord, OwnedTape, Tape};
