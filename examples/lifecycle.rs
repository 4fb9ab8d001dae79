//! Prints the workspace state machine's transition table as implemented:
//! for every status and event, the next status and the effects the engine must
//! perform, or why the event is refused.
//!
//! `cargo run -p sam-examples --example lifecycle`

use sam_core::lifecycle::{WorkspaceStatus, transition};
use sam_core::testkit::{every_event, typical_lifecycle};

fn main() {
    let events = every_event();
    println!("| from | event | to | effects |");
    println!("|---|---|---|---|");
    for status in WorkspaceStatus::ALL {
        let state = typical_lifecycle(status);
        for event in &events {
            match transition(&state, event) {
                Ok(t) => println!("| {status} | {} | {} | {:?} |", event.name(), t.state.status, t.effects),
                Err(e) => println!("| {status} | {} | refused | {} |", event.name(), e.why),
            }
        }
    }
}
