//! The engine test harness lives in `sam_core::testkit::harness`, so
//! `sam-providers` can run the same scenarios on SQLite and PostgreSQL.

#![allow(unused_imports)]

pub use sam_core::testkit::harness::*;
