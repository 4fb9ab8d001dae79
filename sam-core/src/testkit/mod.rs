//! In-memory fakes of every port and the conformance suites every adapter runs
//! (feature `testkit`).
//!
//! The fakes are faithful where it matters for catching bugs: the fake DNS zone
//! accepts a second record with the same name (as Cloudflare does), the fake
//! store enforces optimistic concurrency exactly like a database, and the fake
//! cloud can be told to fail, or to create a server and then lose the response.
//! They pass the same conformance suites as the real adapters.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! use sam_core::testkit::{conformance, fakes::FakeCloud};
//! let cloud = FakeCloud::new();
//! let token = cloud.add_token("valid-token");
//! conformance::compute::run(&cloud, &token, "fsn1").await;
//! # }
//! ```

#![allow(clippy::unwrap_used, clippy::expect_used)] // conformance suites report failure by panicking, like assert!

pub mod conformance;
pub mod fakes;
mod fixtures;
pub mod harness;

pub use fixtures::{every_event, sample_new_user, sample_spec, sample_workspace, typical_lifecycle, typical_server};

pub(crate) use crate::sync::lock;
