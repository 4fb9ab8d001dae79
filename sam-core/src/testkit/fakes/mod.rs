//! In-memory implementations of every port.

mod agents;
mod certificates;
mod cipher;
mod clock;
mod compute;
mod dns;
mod edge;
mod faults;
mod github;
mod store;
mod tokens;

pub use agents::FakeAgents;
pub use certificates::FakeOriginCa;
pub use cipher::FakeCipher;
pub use clock::ManualClock;
pub use compute::FakeCloud;
pub use dns::FakeDnsZone;
pub use edge::FakeEdge;
pub use faults::{Fault, FaultPlan};
pub use github::FakeGithub;
pub use store::MemoryStore;
pub use tokens::FakeTokenAuthority;
