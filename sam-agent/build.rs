//! Links the agent's start-up code together (`startup-order.ld`).
//!
//! Linux maps a binary's code 64 KiB at a time around each page the process
//! touches (fault-around), so the ~1,400 functions the agent runs to start
//! and serve its first sessions, scattered through 3 MB of code, kept
//! nearly all of it resident: 2.8 MiB of its 6 MiB idle RSS. The linker script puts the functions a
//! profiled start runs first (`scripts/agent-startup-order.sh` regenerates
//! it; `docs/performance.md` has the figures). Optimised builds only: an
//! unoptimised build has ten times the sections, matching the patterns
//! there costs seconds per link, and nobody measures its memory.
fn main() {
    let order = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("startup-order.ld");
    println!("cargo:rerun-if-changed={}", order.display());
    println!("cargo:rerun-if-env-changed=SAM_AGENT_NO_STARTUP_ORDER");
    let optimised = std::env::var("OPT_LEVEL").is_ok_and(|level| level != "0");
    // Linux ELF targets only; the environment variable is the way out for a
    // linker that does not take a linker script with `INSERT`.
    let elf = std::env::var("CARGO_CFG_TARGET_OS").is_ok_and(|os| os == "linux");
    if optimised && elf && std::env::var_os("SAM_AGENT_NO_STARTUP_ORDER").is_none() {
        println!("cargo:rustc-link-arg-bins=-Wl,-T,{}", order.display());
    }
}
