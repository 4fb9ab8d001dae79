//! The rendered user-data checked by the real tools, not by snapshots
//! alone: `cloud-init schema` (Debian's cloud-init) accepts every variant,
//! and `shellcheck` finds nothing in the shell cloud-init runs. The tools come
//! from `scripts/test.d/40-containers.sh`; without them the test fails unless
//! `SAM_SKIP_CONTAINERS=1`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::io::Write as _;
use std::process::{Command, Stdio};

use sam_core::cloud_init::{CloudInitParams, render};

fn tools_present() -> bool {
    let found = |tool: &str| Command::new(tool).arg("--version").output().is_ok_and(|o| o.status.success());
    if found("cloud-init") && found("shellcheck") {
        return true;
    }
    assert_eq!(
        std::env::var("SAM_SKIP_CONTAINERS").as_deref(),
        Ok("1"),
        "cloud-init and shellcheck are missing: run ./scripts/test (scripts/test.d/40-containers.sh), \
         or set SAM_SKIP_CONTAINERS=1"
    );
    eprintln!("SKIPPED (SAM_SKIP_CONTAINERS=1)");
    false
}

fn shellcheck(script: &str) -> Result<(), String> {
    let mut check = Command::new("shellcheck")
        .args(["--shell=sh", "--severity=style", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    check.stdin.take().unwrap().write_all(script.as_bytes()).unwrap();
    let out = check.wait_with_output().unwrap();
    if out.status.success() { Ok(()) } else { Err(String::from_utf8_lossy(&out.stdout).into_owned()) }
}

#[test]
fn every_variant_passes_cloud_init_schema_and_shellcheck() {
    if !tools_present() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let sha = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
    for (n, (sha256, tls, arm)) in
        [(Some(sha), true, Some(sha)), (None, false, None), (Some(sha), false, None), (None, true, Some(sha))]
            .into_iter()
            .enumerate()
    {
        let data = render(&CloudInitParams {
            control_plane_url: "https://sam.example.dev",
            bootstrap_token: "Zm9vYmFyYmF6cXV4cXV1eGNvcmdl_-",
            agent_sha256: sha256,
            agent_sha256_arm64: arm,
            agent_tls: tls,
        })
        .unwrap();
        let file = dir.path().join(format!("user-data-{n}.yaml"));
        std::fs::write(&file, &data).unwrap();
        let schema = Command::new("cloud-init").args(["schema", "--config-file"]).arg(&file).output().unwrap();
        let said = format!("{}{}", String::from_utf8_lossy(&schema.stdout), String::from_utf8_lossy(&schema.stderr));
        assert!(schema.status.success() && said.contains("Valid cloud-config"), "variant {n}: {said}\n{data}");

        // The one script it runs is the boot script (written verbatim: a
        // unit test of cloud_init checks that).
        assert!(data.contains(&format!("runcmd:\n  - [sh, {}]\n", sam_core::cloud_init::BOOT_SCRIPT_PATH)));
    }
    if let Err(found) = shellcheck(sam_core::cloud_init::BOOT_SCRIPT) {
        panic!("shellcheck on the boot script:\n{found}");
    }
}
