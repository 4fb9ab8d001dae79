//! The `sam` binary without a control plane: what it says before a login
//! and with a damaged one. (Against a control plane: `sam-server`'s dev-mode
//! test `the_cli_drives_a_workspace_from_a_local_terminal`. This file also
//! makes `cargo test --workspace` build the binary that test runs.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

fn sam(config: &std::path::Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_sam"))
        .args(args)
        .env("SAM_CONFIG", config)
        .env_remove("SAM_URL")
        .env_remove("SAM_TOKEN")
        .output()
        .unwrap();
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

#[test]
fn it_says_what_to_do_before_a_login_and_with_a_damaged_one() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("login.json");
    let (ok, out) = sam(&config, &["list"]);
    assert!(!ok && out.contains("not logged in: run `sam login"), "{out}");
    std::fs::write(&config, "{not json").unwrap();
    let (ok, out) = sam(&config, &["list"]);
    assert!(!ok && out.contains("damaged"), "{out}");
    // Nothing listens there: a clear error, and nothing saved.
    let _ = std::fs::remove_file(&config);
    let (ok, out) = sam(&config, &["login", "--url", "http://127.0.0.1:9", "--token", "sam_pat_x"]);
    assert!(!ok && out.contains("reaching http://127.0.0.1:9"), "{out}");
    assert!(!config.exists());
    let (ok, out) = sam(&config, &["--help"]);
    assert!(ok, "{out}");
    for command in ["login", "list", "create", "stop", "restart", "delete", "open", "shell"] {
        assert!(out.contains(command), "{command} in {out}");
    }
}
