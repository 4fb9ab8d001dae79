//! `startup-order.ld` (see `build.rs`) still names the agent's functions.
//! It is a profile of one build; renamed or removed functions leave
//! patterns that match nothing, and the start-up code scatters again
//! without any build failing. This test fails first: regenerate with
//! `scripts/agent-startup-order.sh`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

/// Whether `name` matches `pattern`, where `*` stands for any run of
/// characters (the only wildcard the generated script uses).
fn glob(pattern: &str, name: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = name.strip_prefix(first) else { return false };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else { return rest.is_empty() };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

#[test]
fn the_glob_is_the_linkers() {
    assert!(glob("_ZN5tokio4park17h*E", "_ZN5tokio4park17h0123456789abcdefE"));
    assert!(!glob("_ZN5tokio4park17h*E", "_ZN5tokio4parkE"));
    assert!(glob("a*b*c", "a-x-b-y-c"));
    assert!(!glob("a*b*c", "a-x-c"));
    assert!(glob("exact", "exact"));
    assert!(!glob("exact", "exactly"));
    assert!(glob("ab*b", "ab-b"));
    assert!(!glob("ab*b", "ab"));
}

#[test]
fn the_startup_order_names_the_agents_functions() {
    let script = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/startup-order.ld")).unwrap();
    // `*(.text.NAME .text.NAME.* …)`: the first pattern of each line.
    let patterns: Vec<&str> = script
        .lines()
        .filter_map(|line| line.trim().strip_prefix("*(.text."))
        .filter_map(|rest| rest.split_whitespace().next())
        .collect();
    assert!(patterns.len() > 500, "startup-order.ld has {} functions", patterns.len());

    // The test build of the agent keeps its symbols; it inlines less than
    // an optimised build, so what the profile saw as a function is one here.
    let nm = std::process::Command::new("nm")
        .args(["--defined-only", env!("CARGO_BIN_EXE_sam-agent")])
        .output()
        .expect("nm (binutils) lists the agent's symbols");
    assert!(nm.status.success(), "nm: {}", String::from_utf8_lossy(&nm.stderr));
    let mut symbols: Vec<String> = String::from_utf8_lossy(&nm.stdout)
        .lines()
        .filter_map(|line| line.split_whitespace().nth(2).map(str::to_owned))
        .collect();
    symbols.sort_unstable();

    let missing: Vec<&str> = patterns
        .iter()
        .copied()
        .filter(|pattern| {
            let prefix = pattern.split('*').next().unwrap_or_default();
            let from = symbols.partition_point(|s| s.as_str() < prefix);
            !symbols[from..].iter().take_while(|s| s.starts_with(prefix)).any(|s| glob(pattern, s))
        })
        .collect();
    // A few are functions only an optimised build has (LTO's specialised
    // copies); a tenth gone means the order no longer describes the agent.
    assert!(
        missing.len() * 10 <= patterns.len(),
        "{} of {} start-up functions are not in the agent any more: regenerate \
         sam-agent/startup-order.ld with scripts/agent-startup-order.sh. First few: {:#?}",
        missing.len(),
        patterns.len(),
        &missing[..missing.len().min(8)]
    );
}
