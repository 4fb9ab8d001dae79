//! Conformance suites: async functions that take any implementation of a port
//! and assert its contract, panicking with a message on the first violation.
//! Every adapter runs the suite of its port (the way `object_store` runs one
//! integration suite over every backend), so the fakes and the real adapters
//! are held to the same behaviour.

pub mod agent_probe;
pub mod certificates;
pub mod cipher;
pub mod compute;
pub mod dns;
pub mod edge;
pub mod store;
pub mod tokens;
