//! Examples of embedding `sam-core`; run them with
//! `cargo run -p sam-examples --example <name>`.
