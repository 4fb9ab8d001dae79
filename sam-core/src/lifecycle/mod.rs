//! The workspace lifecycle: statuses, the reasons shown next to them, and the
//! pure state machine `(state, event) -> (state, effects)`.
//!
//! The machine performs no I/O. The engine persists the new state first and then
//! performs the [`Effect`]s through the ports; because every effect is
//! idempotent, a crash between the two is repaired by performing them again.

mod machine;
mod status;

pub use machine::{Effect, Event, LifecycleState, ServerRef, Transition, TransitionError, transition};
pub use status::{Reason, WorkspaceStatus};
