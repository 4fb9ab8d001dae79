//! # sam-agent
//!
//! The agent that runs on every workspace VM. It redeems its single-use
//! bootstrap token at the control plane, clones the repository and starts the
//! devcontainer, then serves the browser terminal: an embedded xterm.js page
//! and a WebSocket (`/ws/terminal`) whose binary frames carry raw PTY bytes and
//! whose text frames carry JSON control messages. Every tab gets its own shell
//! inside the devcontainer, with reattach after a dropped connection. It
//! tracks activity (terminal input or output) and heartbeats to the control
//! plane, which answers `continue`, `warn` or `shutdown`.
//!
//! Not built yet: the agent lands with its own issue.

fn main() {
    println!("sam-agent {}: not built yet (see the VM agent issue)", env!("CARGO_PKG_VERSION"));
}
