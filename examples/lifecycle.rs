//! Prints the workspace state machine's transition table as implemented:
//! for every status and event, the next status and the effects the engine must
//! perform, or why the event is refused.
//!
//! `cargo run -p sam-examples --example lifecycle`

use std::net::Ipv4Addr;

use sam_core::domain::ServerId;
use sam_core::lifecycle::{Event, ServerRef, WorkspaceStatus, transition};
use sam_core::testkit::typical_lifecycle;

fn main() {
    let server = ServerRef { id: ServerId("1".into()), ipv4: Ipv4Addr::new(192, 0, 2, 1) };
    let events = [
        Event::CreateRequested,
        Event::ServerCreated(server.clone()),
        Event::DnsRecordSet { record_id: "r".into() },
        Event::AgentReady,
        Event::ProvisioningFailed { message: "m".into() },
        Event::ProvisioningTimedOut { message: "m".into() },
        Event::StopRequested,
        Event::IdleTimeout,
        Event::AgentUnreachable,
        Event::ServerGone,
        Event::StopFinished,
        Event::RestartRequested,
        Event::DeleteRequested,
        Event::CleanupFinished,
    ];
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
