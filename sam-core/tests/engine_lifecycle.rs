//! The engine's user-story paths with the testkit fakes and a manual clock.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod common;

use std::time::Duration;

use common::{BASE_DOMAIN, Harness, test_config};
use sam_core::domain::InstallationId;
use sam_core::engine::{AgentReport, DriveOutcome, EngineConfig, EngineErrorKind, HeartbeatAction, HeartbeatReport};
use sam_core::lifecycle::{Reason, WorkspaceStatus};
use sam_core::ports::{Audience, DnsProvider, ProviderErrorKind, TokenVerifier};
use sam_core::testkit::fakes::Fault;
use sam_core::testkit::sample_spec;

#[tokio::test]
async fn create_goes_to_running() {
    let h = Harness::new().await;
    let engine = h.engine();
    let ws = h.create(&engine, "api").await;
    assert_eq!(ws.status(), WorkspaceStatus::Creating);
    assert_eq!(ws.version, 1);

    let DriveOutcome::Settled(ws) = engine.drive(h.user, ws.id).await.unwrap() else { panic!("settles") };
    assert_eq!(ws.status(), WorkspaceStatus::Creating, "waits for the agent");
    let server = ws.lifecycle.server.clone().expect("server recorded");
    assert_eq!(h.cloud.servers_of(ws.id).len(), 1);
    let records = h.dns.records_named(&ws.hostname(BASE_DOMAIN));
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].ipv4, server.ipv4);
    assert_eq!(ws.lifecycle.dns_record.as_deref(), Some(records[0].id.as_str()));

    let data = h.cloud.user_data_of(ws.id).unwrap();
    assert!(data.contains("SAM_AGENT_CONTROL_PLANE=https://sam.test\n") && data.contains("arch=amd64"));
    assert!(!data.contains("hello-world"), "no repository data in cloud-init");

    let ws = h.boot_agent(&engine, ws.id).await;
    assert_eq!(ws.status(), WorkspaceStatus::Running);
    let events = engine.events(h.user, ws.id).await.unwrap();
    let names: Vec<&str> = events.iter().map(|e| e.event.as_str()).collect();
    assert_eq!(
        names,
        ["create_requested", "server_created", "dns_record_set", "agent_credential_issued", "agent_ready"]
    );
    h.assert_converged(&[h.user]).await;
}

#[tokio::test]
async fn stop_restart_and_delete() {
    let h = Harness::new().await;
    let engine = h.engine();
    let ws = h.running(&engine, "w").await;
    let first_server = ws.lifecycle.server.clone().unwrap().id;

    let stopping = engine.stop(h.user, ws.id).await.unwrap();
    assert_eq!(stopping.status(), WorkspaceStatus::Stopping);
    let DriveOutcome::Settled(stopped) = engine.drive(h.user, ws.id).await.unwrap() else { panic!() };
    assert_eq!(stopped.status(), WorkspaceStatus::Stopped);
    assert_eq!(stopped.lifecycle.reason, Reason::User);
    assert!(h.cloud.servers().is_empty());
    assert!(h.dns.records().is_empty());
    let err = engine.stop(h.user, ws.id).await.unwrap_err();
    assert_eq!(err.kind, EngineErrorKind::InvalidState);

    let restarting = engine.restart(h.user, ws.id).await.unwrap();
    assert_eq!(restarting.status(), WorkspaceStatus::Creating);
    engine.drive(h.user, ws.id).await.unwrap();
    let running = h.boot_agent(&engine, ws.id).await;
    assert_eq!(running.status(), WorkspaceStatus::Running);
    assert_ne!(running.lifecycle.server.as_ref().unwrap().id, first_server, "a fresh server");
    assert_eq!(running.spec, ws.spec, "same configuration");
    let err = engine.restart(h.user, ws.id).await.unwrap_err();
    assert_eq!(err.kind, EngineErrorKind::InvalidState);

    engine.delete(h.user, ws.id).await.unwrap();
    assert_eq!(engine.drive(h.user, ws.id).await.unwrap(), DriveOutcome::Removed);
    assert!(h.get(ws.id).await.is_none());
    assert!(h.cloud.servers().is_empty());
    assert!(h.dns.records().is_empty());
}

#[tokio::test]
async fn delete_from_every_state() {
    let h = Harness::new().await;
    let engine = h.engine();

    let running = h.running(&engine, "running").await;
    let stopped = h.running(&engine, "stopped").await;
    engine.stop(h.user, stopped.id).await.unwrap();
    engine.drive(h.user, stopped.id).await.unwrap();
    let creating = h.create(&engine, "creating").await;
    engine.drive(h.user, creating.id).await.unwrap(); // server exists, agent not ready
    h.cloud.faults.push("create_server", Fault::Fail(ProviderErrorKind::InvalidConfig));
    let failed = h.create(&engine, "failed").await;
    engine.drive(h.user, failed.id).await.unwrap();
    assert_eq!(h.status(failed.id).await, Some(WorkspaceStatus::Error));

    for ws in [&running, &stopped, &creating, &failed] {
        let deleting = engine.delete(h.user, ws.id).await.unwrap();
        assert_eq!(deleting.status(), WorkspaceStatus::Deleting);
        assert_eq!(engine.drive(h.user, ws.id).await.unwrap(), DriveOutcome::Removed);
    }
    assert!(engine.list(h.user, None).await.unwrap().is_empty());
    assert!(h.cloud.servers().is_empty());
    assert!(h.dns.records().is_empty());
}

#[tokio::test]
async fn idle_warns_then_stops_and_activity_resets() {
    let h = Harness::new().await;
    let engine = h.engine();
    let ws = h.running(&engine, "idle").await;
    let min = |n: u64| Duration::from_secs(n * 60);

    h.clock.advance(min(24));
    let a = engine.record_heartbeat(h.user, ws.id, HeartbeatReport::new(24 * 60, 1)).await.unwrap();
    assert_eq!(a.action, HeartbeatAction::Continue);
    assert_eq!(a.idle_threshold, 1800);

    h.clock.advance(min(1));
    let a = engine.record_heartbeat(h.user, ws.id, HeartbeatReport::new(25 * 60, 1)).await.unwrap();
    assert_eq!(a.action, HeartbeatAction::Warn);
    let deadline = a.shutdown_at.unwrap();
    assert_eq!(deadline, h.now() + min(5));

    // Someone types: the warning goes away.
    h.clock.advance(min(1));
    let a = engine.record_heartbeat(h.user, ws.id, HeartbeatReport::new(0, 1)).await.unwrap();
    assert_eq!(a.action, HeartbeatAction::Continue);

    h.clock.advance(min(30));
    let a = engine.record_heartbeat(h.user, ws.id, HeartbeatReport::new(30 * 60, 1)).await.unwrap();
    assert_eq!(a.action, HeartbeatAction::Shutdown);
    assert_eq!(h.status(ws.id).await, Some(WorkspaceStatus::Stopping));
    engine.drive(h.user, ws.id).await.unwrap();
    let stopped = h.get(ws.id).await.unwrap();
    assert_eq!(stopped.status(), WorkspaceStatus::Stopped);
    assert_eq!(stopped.lifecycle.reason, Reason::IdleTimeout);
    let a = engine.record_heartbeat(h.user, ws.id, HeartbeatReport::new(0, 0)).await.unwrap();
    assert_eq!(a.action, HeartbeatAction::Shutdown, "a stopped workspace's agent is told to shut down");
    h.assert_converged(&[h.user]).await;
}

/// With heartbeats not yet overdue (here a long heartbeat timeout), the
/// reconciler applies the idle rule to the agent's last report, as a backup
/// for the heartbeat handler.
#[tokio::test]
async fn reconciler_applies_the_idle_rule_to_the_last_report() {
    let mut config = test_config();
    config.heartbeat_timeout = Duration::from_secs(3600);
    let h = Harness::with_config(config).await;
    let engine = h.engine();
    let ws = h.running(&engine, "silent").await;
    engine.record_heartbeat(h.user, ws.id, HeartbeatReport::new(0, 0)).await.unwrap();
    h.clock.advance(Duration::from_secs(29 * 60));
    assert_eq!(engine.reconcile_once().await.unwrap().idle_stops, 0);
    h.clock.advance(Duration::from_secs(60));
    let report = engine.reconcile_once().await.unwrap();
    assert_eq!(report.idle_stops, 1);
    let ws = h.get(ws.id).await.unwrap();
    assert_eq!(ws.status(), WorkspaceStatus::Stopped);
    assert_eq!(ws.lifecycle.reason, Reason::IdleTimeout);
    h.assert_converged(&[h.user]).await;
}

#[tokio::test]
async fn per_workspace_idle_override() {
    let h = Harness::new().await;
    let engine = h.engine();
    let mut ws = h.running(&engine, "short").await;
    ws.idle_timeout_secs = Some(600);
    h.store_update(&ws).await;
    h.clock.advance(Duration::from_secs(600));
    let a = engine.record_heartbeat(h.user, ws.id, HeartbeatReport::new(600, 0)).await.unwrap();
    assert_eq!(a.action, HeartbeatAction::Shutdown);
    assert_eq!(a.idle_threshold, 600);
}

/// Heartbeats overdue: the server gone at the provider releases the
/// workspace; a silent agent whose server is there is marked unreachable
/// (visible, with the reason) and kept, through the idle timeout, until it
/// reports again or stays silent for the whole unreachable timeout; an agent
/// that answers the probe is alive and judged idle only by its own answer.
#[tokio::test]
async fn a_silent_agent_is_marked_and_kept_until_the_unreachable_timeout() {
    let h = Harness::new().await;
    let engine = h.engine();
    let silent = h.running(&engine, "silent").await;
    let gone = h.running(&engine, "gone-server").await;
    let answering = h.running(&engine, "answering").await;
    h.cloud.remove_server_externally(&gone.lifecycle.server.clone().unwrap().id);
    h.agents.answer(&engine.workspace_url(&answering), 0);

    h.clock.advance(h.config.heartbeat_timeout + Duration::from_secs(1));
    let report = engine.reconcile_once().await.unwrap();
    assert_eq!((report.heartbeat_losses, report.marked_unreachable), (1, 1), "{report:?}");
    let ws = h.get(silent.id).await.unwrap();
    assert_eq!(ws.status(), WorkspaceStatus::Running, "kept");
    assert_eq!(ws.lifecycle.reason, Reason::AgentUnreachable);
    let message = ws.lifecycle.error_message.clone().unwrap();
    assert!(message.starts_with("Nothing heard from the agent since"), "{message}");
    assert!(message.contains("the server is running. Kept until"), "{message}");
    assert!(message.contains(&engine.workspace_url(&ws)), "names where it was asked: {message}");
    assert_eq!(h.cloud.servers_of(silent.id).len(), 1);
    assert_eq!(h.dns.records_named(&silent.hostname(BASE_DOMAIN)).len(), 1);
    let gone = h.get(gone.id).await.unwrap();
    assert_eq!((gone.status(), gone.lifecycle.reason), (WorkspaceStatus::Stopped, Reason::ServerGone));
    assert_eq!(h.status(answering.id).await, Some(WorkspaceStatus::Running), "an answering agent is alive");
    assert!(h.get(answering.id).await.unwrap().lifecycle.error_message.is_none());
    let history = engine.events(h.user, silent.id).await.unwrap();
    assert_eq!(history.iter().filter(|e| e.event == "agent_silent").count(), 1);

    // A silent agent is looked into once per heartbeat timeout, not every
    // pass (a region of silent agents must not spend the provider's rate
    // limit).
    let probes = h.agents.probes().len();
    for _ in 0..4 {
        h.clock.advance(Duration::from_secs(60));
        engine.reconcile_once().await.unwrap();
    }
    assert_eq!(h.agents.probes().len(), probes, "no new probe within the heartbeat timeout");
    h.clock.advance(Duration::from_secs(60));
    engine.reconcile_once().await.unwrap();
    assert!(h.agents.probes().len() > probes, "looked into again after it");
    // Marked once; past the idle timeout nothing is stopped for idleness.
    h.clock.advance(h.config.idle_timeout);
    let report = engine.reconcile_once().await.unwrap();
    assert_eq!((report.marked_unreachable, report.idle_stops, report.driven), (0, 0, 0), "{report:?}");
    // The agent reports again: the mark goes.
    engine.record_heartbeat(h.user, silent.id, HeartbeatReport::new(0, 1)).await.unwrap();
    let ws = h.get(silent.id).await.unwrap();
    assert_eq!(
        (ws.status(), ws.lifecycle.reason, ws.lifecycle.error_message),
        (WorkspaceStatus::Running, Reason::Provisioning, None)
    );
    // The answering agent reports itself idle past the threshold: stopped
    // (when it is next looked into).
    h.agents.answer(&engine.workspace_url(&answering), h.config.idle_timeout.as_secs());
    h.clock.advance(h.config.heartbeat_timeout);
    engine.record_heartbeat(h.user, silent.id, HeartbeatReport::new(0, 1)).await.unwrap();
    let report = engine.reconcile_once().await.unwrap();
    assert_eq!(report.idle_stops, 1, "{report:?}");
    assert_eq!(h.status(answering.id).await, Some(WorkspaceStatus::Stopped));

    // Silent again, for the whole unreachable timeout: released.
    h.clock.advance(h.config.heartbeat_timeout);
    assert_eq!(engine.reconcile_once().await.unwrap().marked_unreachable, 1);
    h.clock.advance(h.config.unreachable_timeout - h.config.heartbeat_timeout - Duration::from_secs(1));
    assert_eq!(engine.reconcile_once().await.unwrap().heartbeat_losses, 0);
    assert_eq!(h.status(silent.id).await, Some(WorkspaceStatus::Running));
    h.clock.advance(Duration::from_secs(1));
    assert_eq!(engine.reconcile_once().await.unwrap().heartbeat_losses, 1);
    let ws = h.get(silent.id).await.unwrap();
    assert_eq!((ws.status(), ws.lifecycle.reason), (WorkspaceStatus::Error, Reason::AgentUnreachable));
    assert!(ws.lifecycle.error_message.unwrap().contains("stopped responding for longer than the unreachable timeout"));
    assert!(h.cloud.servers_of(silent.id).is_empty());
    h.assert_converged(&[h.user]).await;
}

#[tokio::test]
async fn provisioning_timeout_names_the_step_and_cleans_up() {
    let h = Harness::new().await;
    let engine = h.engine();
    let ws = h.create(&engine, "slow").await;
    engine.drive(h.user, ws.id).await.unwrap();
    assert_eq!(h.cloud.servers().len(), 1);
    h.clock.advance(h.config.provision_timeout);
    let report = engine.reconcile_once().await.unwrap();
    assert_eq!(report.provision_timeouts, 1);
    let ws = h.get(ws.id).await.unwrap();
    assert_eq!(ws.status(), WorkspaceStatus::Error);
    assert_eq!(ws.lifecycle.reason, Reason::ProvisionTimeout);
    let message = ws.lifecycle.error_message.as_deref().unwrap();
    assert!(message.contains("waiting for the workspace agent"));
    assert!(
        message.ends_with("Nothing was heard from the VM: it did not boot, or could not reach this control plane.")
    );
    assert!(h.cloud.servers().is_empty());
    assert!(h.dns.records().is_empty());
    h.assert_converged(&[h.user]).await;
}

/// The VM's own boot reports (cloud-init, before the agent exists): with
/// the bootstrap token, which they do not spend; the last one is what a
/// provisioning timeout names; a failed one fails the workspace at once;
/// once the agent has redeemed the token, it reports instead.
#[tokio::test]
async fn vm_boot_reports_use_the_bootstrap_token_without_spending_it() {
    use sam_core::wire::BootProgress;
    let report = |step: &str, status: &str, message: &str| BootProgress {
        step: step.into(),
        status: status.into(),
        message: message.into(),
    };
    let h = Harness::new().await;
    let engine = h.engine();
    let stuck = h.create(&engine, "stuck").await;
    engine.drive(h.user, stuck.id).await.unwrap();
    let token = h.bootstrap_token(stuck.id).unwrap();
    engine.report_vm_boot(&token, report("packages", "done", "in 3 s")).await.unwrap();
    engine.report_vm_boot(&token, report("agent-start", "running", "")).await.unwrap();
    let refused = engine.report_vm_boot("not-a-token", report("packages", "done", "")).await.unwrap_err();
    assert_eq!(refused.kind, EngineErrorKind::Unauthorized);
    let history = engine.events(h.user, stuck.id).await.unwrap();
    assert!(history.iter().any(|e| e.message.as_deref() == Some("packages done: in 3 s")), "{history:?}");

    // A second workspace: its VM's failed step fails it now.
    let broken = h.create(&engine, "broken").await;
    engine.drive(h.user, broken.id).await.unwrap();
    let broken_token = h.bootstrap_token(broken.id).unwrap();
    let failed =
        report("packages", "failed", "exit status 100 after 2 s; its last lines:\nE: Unable to locate package");
    engine.report_vm_boot(&broken_token, failed).await.unwrap();
    let ws = h.get(broken.id).await.unwrap();
    assert_eq!(ws.status(), WorkspaceStatus::Error);
    assert!(ws.lifecycle.error_message.unwrap().ends_with("E: Unable to locate package"));

    // Not spent: the agent still redeems it, and then the VM's reports stop.
    let third = h.create(&engine, "third").await;
    engine.drive(h.user, third.id).await.unwrap();
    let third_token = h.bootstrap_token(third.id).unwrap();
    engine.report_vm_boot(&third_token, report("agent-download", "done", "")).await.unwrap();
    engine.redeem_bootstrap(&third_token).await.unwrap();
    let late = engine.report_vm_boot(&third_token, report("agent-start", "done", "")).await.unwrap_err();
    assert_eq!(late.kind, EngineErrorKind::Unauthorized);

    h.clock.advance(h.config.provision_timeout);
    engine.reconcile_once().await.unwrap();
    let ws = h.get(stuck.id).await.unwrap();
    assert_eq!(ws.lifecycle.reason, Reason::ProvisionTimeout);
    assert!(ws.lifecycle.error_message.unwrap().ends_with("Last seen: agent-start running."));
}

#[tokio::test]
async fn provider_errors_become_actionable_messages() {
    let cases = [
        (ProviderErrorKind::Unauthorized, "Update it in Settings"),
        (ProviderErrorKind::QuotaExceeded, "limit"),
        (ProviderErrorKind::Capacity, "no capacity for a small server in fsn1; try another location"),
        (ProviderErrorKind::InvalidConfig, "Hetzner refused the request"),
    ];
    for (kind, expected) in cases {
        let h = Harness::new().await;
        let engine = h.engine();
        for _ in 0..3 {
            h.cloud.faults.push("create_server", Fault::Fail(kind));
        }
        let ws = h.create(&engine, "w").await;
        engine.drive(h.user, ws.id).await.unwrap();
        let ws = h.get(ws.id).await.unwrap();
        assert_eq!(ws.status(), WorkspaceStatus::Error, "{kind:?}");
        let message = ws.lifecycle.error_message.unwrap();
        assert!(message.contains(expected), "{kind:?}: {message}");
        if kind != ProviderErrorKind::InvalidConfig {
            // Only an invalid request carries the adapter's (sanitised) detail.
            assert!(!message.contains("injected"), "no upstream text: {message}");
        }
        h.assert_converged(&[h.user]).await;
    }
}

#[tokio::test]
async fn create_checks_preconditions() {
    let h = Harness::new().await;
    let engine = h.engine();
    let stranger = h.store.upsert_user(&sam_core::testkit::sample_new_user(7), h.now()).await.unwrap();
    let err = engine.create(stranger.id, sample_spec("x"), InstallationId(1)).await.unwrap_err();
    assert_eq!(err.kind, EngineErrorKind::Precondition);
    assert!(err.message.contains("Connect your Hetzner token"));

    let err = engine.create(h.user, sample_spec("x"), InstallationId(555)).await.unwrap_err();
    assert_eq!(err.kind, EngineErrorKind::Precondition);
    assert!(err.message.contains("GitHub App"));

    let mut spec = sample_spec("x");
    spec.vm_location = "ash".parse().unwrap();
    let err = engine.create(h.user, spec, InstallationId(1)).await.unwrap_err();
    assert_eq!(err.kind, EngineErrorKind::Invalid);
    assert_eq!(err.field, Some("vmLocation"));

    h.create(&engine, "x").await;
    let err = engine.create(h.user, sample_spec("x"), InstallationId(1)).await.unwrap_err();
    assert_eq!(err.kind, EngineErrorKind::NameTaken);

    h.store.mark_installation_removed(InstallationId(1), h.now()).await.unwrap();
    let err = engine.create(h.user, sample_spec("y"), InstallationId(1)).await.unwrap_err();
    assert!(err.message.contains("uninstalled"));
}

#[tokio::test]
async fn other_users_cannot_touch_a_workspace() {
    let h = Harness::new().await;
    let engine = h.engine();
    let ws = h.running(&engine, "mine").await;
    let other = h.add_user(5151).await;
    for err in [
        engine.get(other, ws.id).await.unwrap_err(),
        engine.stop(other, ws.id).await.unwrap_err(),
        engine.delete(other, ws.id).await.unwrap_err(),
        engine.restart(other, ws.id).await.unwrap_err(),
        engine.issue_terminal_token(other, ws.id, None).await.unwrap_err(),
        engine.record_heartbeat(other, ws.id, HeartbeatReport::new(0, 0)).await.unwrap_err(),
    ] {
        assert_eq!(err.kind, EngineErrorKind::NotFound);
    }
    assert_eq!(h.status(ws.id).await, Some(WorkspaceStatus::Running));
}

#[tokio::test]
async fn terminal_tokens_only_for_running_workspaces() {
    let h = Harness::new().await;
    let engine = h.engine();
    let ws = h.create(&engine, "t").await;
    let err = engine.issue_terminal_token(h.user, ws.id, None).await.unwrap_err();
    assert_eq!(err.kind, EngineErrorKind::InvalidState);
    assert!(err.message.contains("start it first"));
    engine.drive(h.user, ws.id).await.unwrap();
    h.boot_agent(&engine, ws.id).await;
    let access = engine.issue_terminal_token(h.user, ws.id, None).await.unwrap();
    assert!(access.url.starts_with(&format!("https://ws-{}.{BASE_DOMAIN}/auth/callback?token=", ws.id)));
    let claims = h.tokens.verify(access.token.expose(), Audience::WorkspaceTerminal, h.now()).await.unwrap();
    assert_eq!(claims.workspace, ws.id);
    assert_eq!(claims.subject, h.user);
}

#[tokio::test]
async fn agent_failure_report_shows_why() {
    let h = Harness::new().await;
    let engine = h.engine();
    let ws = h.create(&engine, "broken").await;
    engine.drive(h.user, ws.id).await.unwrap();
    let token = h.bootstrap_token(ws.id).unwrap();
    engine.redeem_bootstrap(&token).await.unwrap();
    engine.report_agent(h.user, ws.id, &AgentReport::Progress { step: "cloning".into() }).await.unwrap();
    let output =
        AgentReport::Output { step: "clone".into(), lines: "Receiving objects: 100%\nResolving deltas".into() };
    engine.report_agent(h.user, ws.id, &output).await.unwrap();
    let long = format!("{}\nerror: devcontainer build failed: npm ERR! \u{1b}[31mE404\u{1b}[0m", "x".repeat(10_000));
    engine.report_agent(h.user, ws.id, &AgentReport::Failed { message: long }).await.unwrap();
    let ws = h.get(ws.id).await.unwrap();
    assert_eq!(ws.status(), WorkspaceStatus::Error);
    assert!(ws.lifecycle.holds_resources(), "the report only records; cleanup is the drive's job");
    engine.drive(h.user, ws.id).await.unwrap();
    let ws = h.get(ws.id).await.unwrap();
    let message = ws.lifecycle.error_message.unwrap();
    assert!(message.starts_with("The workspace failed to start: "));
    assert!(message.ends_with("devcontainer build failed: npm ERR!  [31mE404 [0m"), "{message}");
    assert!(message.len() < 8 * 1024 + 100, "cut, keeping the end: {}", message.len());
    assert!(h.cloud.servers().is_empty(), "failed workspace cleaned up");
    let history = engine.events(h.user, ws.id).await.unwrap();
    assert!(history.iter().any(|e| e.event == "agent_progress" && e.message.as_deref() == Some("cloning")));
    assert!(history.iter().any(|e| e.event == "agent_output"
        && e.message.as_deref() == Some("clone\nReceiving objects: 100%\nResolving deltas")));
    // Output of a boot that is over is refused.
    let late = engine.report_agent(h.user, ws.id, &output).await.unwrap_err();
    assert_eq!(late.kind, sam_core::engine::EngineErrorKind::InvalidState);
}

#[tokio::test]
async fn orphans_are_deleted_after_the_grace_period() {
    let h = Harness::new().await;
    let engine = h.engine();
    let kept = h.running(&engine, "kept").await;
    let planted = h.cloud.plant_server(
        common::CLOUD_TOKEN,
        [
            ("sam-managed".to_owned(), "true".to_owned()),
            ("sam-workspace".to_owned(), sam_core::domain::WorkspaceId::new().to_string()),
            ("sam-deployment".to_owned(), h.config.deployment.to_string()),
        ]
        .into(),
    );
    let stray_name = format!("{}.{BASE_DOMAIN}", sam_core::domain::WorkspaceId::new().dns_label());
    h.dns.upsert_a_record(&stray_name, "192.0.2.50".parse().unwrap(), Some(&h.config.deployment)).await.unwrap();
    h.dns.create_raw("unrelated.example.org", "192.0.2.51".parse().unwrap());

    let report = engine.reconcile_once().await.unwrap();
    assert_eq!(report.orphan_servers_deleted + report.orphan_records_deleted, 0, "grace period first");
    h.clock.advance(h.config.orphan_grace);
    engine.record_heartbeat(h.user, kept.id, HeartbeatReport::new(0, 1)).await.unwrap();
    let report = engine.reconcile_once().await.unwrap();
    assert_eq!(report.orphan_servers_deleted, 1);
    assert_eq!(report.orphan_records_deleted, 1);
    assert!(h.cloud.servers().iter().all(|s| s.id != planted.id));
    assert!(h.dns.records_named(&stray_name).is_empty());
    assert_eq!(
        h.dns.records_named("unrelated.example.org").len(),
        1,
        "records outside the workspace zone are left alone"
    );
    assert_eq!(h.cloud.servers_of(kept.id).len(), 1, "a live workspace's server stays");
    assert_eq!(h.status(kept.id).await, Some(WorkspaceStatus::Running));
}

/// The inventory finds this deployment's servers and records, lists another
/// deployment's labelled server without touching it, and deletes only ours.
#[tokio::test]
async fn inventory_finds_ours_and_deletes_only_ours() {
    use sam_core::engine::Inventory;
    use sam_core::ports::{LABEL_MANAGED, LABEL_WORKSPACE};
    let h = Harness::new().await;
    let engine = h.engine();
    let ws = h.running(&engine, "inventoried").await;
    let foreign = h.cloud.plant_server(
        common::CLOUD_TOKEN,
        [(LABEL_MANAGED.to_owned(), "true".to_owned()), (LABEL_WORKSPACE.to_owned(), "not-ours".to_owned())].into(),
    );
    h.dns.create_raw(&format!("ws-x.staging.{BASE_DOMAIN}"), [10, 0, 0, 9].into());

    let inventory = engine.inventory().await;
    assert!(inventory.unreadable.is_empty(), "{:?}", inventory.unreadable);
    let [account] = inventory.accounts.as_slice() else { panic!("one connected account: {inventory:?}") };
    assert_eq!(account.owner, h.user);
    assert_eq!(account.servers.len(), 1);
    assert_eq!(account.servers[0].workspace_id(), Some(ws.id));
    assert_eq!(account.others.iter().map(|s| &s.id).collect::<Vec<_>>(), vec![&foreign.id]);
    assert_eq!(inventory.records.len(), 1, "only ws-<id>.<base>, not a sub-domain's: {:?}", inventory.records);

    let mut deleted = Vec::new();
    let failures = inventory.delete(engine.inventory_ports(), |what| deleted.push(what.to_owned())).await;
    assert!(failures.is_empty(), "{failures:?}");
    assert_eq!(deleted.len(), 2, "{deleted:?}");
    assert!(inventory.servers_left(engine.inventory_ports()).await.is_empty());
    assert_eq!(h.cloud.servers().iter().map(|s| &s.id).collect::<Vec<_>>(), vec![&foreign.id], "theirs is left");
    assert_eq!(h.dns.records().len(), 1, "the sub-domain's record is left");
    assert!(Inventory::take(engine.inventory_ports()).await.accounts[0].servers.is_empty());
}

/// Control plane down for 10, then 45 minutes while 20 workspaces run: the
/// restarted engine destroys nothing (no missed heartbeat, no idle time is
/// counted for the outage), judges agents again only a full heartbeat
/// timeout after its start, and then only the one that stays silent.
#[tokio::test]
async fn a_control_plane_outage_is_not_evidence_against_agents() {
    let mut config = test_config();
    config.max_active_per_user = 20;
    let h = Harness::with_config(config).await;
    let engine = h.engine();
    let mut running = Vec::new();
    for n in 0..20 {
        running.push(h.running(&engine, &format!("busy-{n}")).await);
    }
    drop(engine);
    for outage in [Duration::from_secs(10 * 60), Duration::from_secs(45 * 60)] {
        h.clock.advance(outage);
        let restarted = h.engine();
        let report = restarted.reconcile_once().await.unwrap();
        assert_eq!((report.heartbeat_losses, report.idle_stops), (0, 0), "after {outage:?} down: {report:?}");
        for ws in &running {
            assert_eq!(h.status(ws.id).await, Some(WorkspaceStatus::Running), "after {outage:?} down");
        }
        assert_eq!(h.cloud.servers().len(), 20);
        assert_eq!(h.dns.records().len(), 20);
        // A minute later every agent but the last has heartbeated again.
        h.clock.advance(Duration::from_secs(60));
        for ws in &running[..19] {
            restarted.record_heartbeat(h.user, ws.id, HeartbeatReport::new(0, 1)).await.unwrap();
        }
        assert_eq!(restarted.reconcile_once().await.unwrap().heartbeat_losses, 0, "still within the grace");
        drop(restarted);
    }
    // The silent agent is judged a full timeout after the last start.
    let restarted = h.engine();
    h.clock.advance(h.config.heartbeat_timeout + Duration::from_secs(1));
    for ws in &running[..19] {
        restarted.record_heartbeat(h.user, ws.id, HeartbeatReport::new(0, 1)).await.unwrap();
    }
    let report = restarted.reconcile_once().await.unwrap();
    assert_eq!(report.marked_unreachable, 1, "{report:?}");
    let silent = h.get(running[19].id).await.unwrap();
    assert_eq!((silent.status(), silent.lifecycle.reason), (WorkspaceStatus::Running, Reason::AgentUnreachable));
    for ws in &running[..19] {
        assert_eq!(h.status(ws.id).await, Some(WorkspaceStatus::Running));
    }
}

/// Two deployments (two databases) on one cloud project and one DNS zone,
/// 50 workspaces each, even under one base domain: with orphan sweeps running
/// well past the grace period neither deletes or changes anything of the
/// other's, and taking one down leaves the other intact.
#[tokio::test]
async fn two_deployments_on_one_project_and_zone_leave_each_other_alone() {
    use sam_core::domain::DeploymentId;
    let mut production = test_config();
    production.max_active_per_user = 50;
    production.deployment = DeploymentId::new("production").unwrap();
    let staging = EngineConfig { deployment: DeploymentId::new("staging").unwrap(), ..production.clone() };
    let p = Harness::with_config(production).await;
    let s = Harness::beside(&p, staging).await;
    let (pe, se) = (p.engine(), s.engine());
    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    for n in 0..50 {
        ours.push(p.running(&pe, &format!("prod-{n}")).await.id);
        theirs.push(s.running(&se, &format!("staging-{n}")).await.id);
    }
    assert_eq!((p.cloud.servers().len(), p.dns.records().len()), (100, 100));
    for _ in 0..3 {
        p.clock.advance(p.config.orphan_grace);
        for (h, engine, ids) in [(&p, &pe, &ours), (&s, &se, &theirs)] {
            for id in ids {
                engine.record_heartbeat(h.user, *id, HeartbeatReport::new(0, 1)).await.unwrap();
            }
        }
        for engine in [&pe, &se] {
            let report = engine.reconcile_once().await.unwrap();
            assert_eq!(report.orphan_servers_deleted + report.orphan_records_deleted, 0, "{report:?}");
            assert_eq!((report.driven, report.adopted, report.failures), (0, 0, 0), "{report:?}");
        }
    }
    assert_eq!((p.cloud.servers().len(), p.dns.records().len()), (100, 100), "nothing deleted");
    for (h, ids) in [(&p, &ours), (&s, &theirs)] {
        for id in ids {
            assert_eq!(h.status(*id).await, Some(WorkspaceStatus::Running));
            assert_eq!(h.cloud.servers_of(*id)[0].deployment(), Some(h.config.deployment.as_str()));
        }
    }

    let inventory = pe.inventory().await;
    assert_eq!(inventory.accounts[0].servers.len(), 50);
    assert_eq!(inventory.accounts[0].others.len(), 50, "the other deployment's servers are listed, not taken");
    assert_eq!((inventory.records.len(), inventory.other_records.len()), (50, 50));
    let failures = inventory.delete(pe.inventory_ports(), |_| {}).await;
    assert!(failures.is_empty(), "{failures:?}");
    assert_eq!((p.cloud.servers().len(), p.dns.records().len()), (50, 50));
    assert!(p.cloud.servers().iter().all(|server| server.deployment() == Some("staging")));
    assert!(p.dns.records().iter().all(|r| r.owner.as_ref().is_some_and(|o| o.as_str() == "staging")));
    p.clock.advance(p.config.orphan_grace);
    for id in &theirs {
        se.record_heartbeat(s.user, *id, HeartbeatReport::new(0, 1)).await.unwrap();
    }
    let report = se.reconcile_once().await.unwrap();
    assert!(!report.changed_anything(), "{report:?}");
    for id in &theirs {
        assert_eq!(s.status(*id).await, Some(WorkspaceStatus::Running));
    }
}

/// After an upgrade, the servers and records of this deployment's
/// workspaces made before they carried its id are marked with it once (and
/// so are swept and torn down like the rest); unmarked ones that no
/// workspace here names are never deleted, however old.
#[tokio::test]
async fn resources_from_before_deployment_ids_are_adopted_or_left_alone() {
    use sam_core::ports::{LABEL_DEPLOYMENT, LABEL_MANAGED, LABEL_WORKSPACE};
    let h = Harness::new().await;
    let engine = h.engine();
    let ws = h.running(&engine, "legacy").await;
    let server = h.cloud.servers_of(ws.id)[0].clone();
    let name = ws.hostname(BASE_DOMAIN);
    h.cloud.remove_label(&server.id, LABEL_DEPLOYMENT);
    h.dns.remove_owner(&name);
    let stranger = h.cloud.plant_server(
        common::CLOUD_TOKEN,
        [
            (LABEL_MANAGED.to_owned(), "true".to_owned()),
            (LABEL_WORKSPACE.to_owned(), sam_core::domain::WorkspaceId::new().to_string()),
        ]
        .into(),
    );
    let stranger_record = format!("{}.{BASE_DOMAIN}", sam_core::domain::WorkspaceId::new().dns_label());
    h.dns.create_raw(&stranger_record, "192.0.2.77".parse().unwrap());

    let report = engine.reconcile_once().await.unwrap();
    assert_eq!(report.adopted, 2, "{report:?}");
    assert_eq!(h.cloud.servers_of(ws.id)[0].deployment(), Some(h.config.deployment.as_str()));
    assert_eq!(h.dns.records_named(&name)[0].owner.as_ref(), Some(&h.config.deployment));
    for _ in 0..3 {
        h.clock.advance(h.config.orphan_grace);
        engine.record_heartbeat(h.user, ws.id, HeartbeatReport::new(0, 1)).await.unwrap();
        let report = engine.reconcile_once().await.unwrap();
        assert_eq!(report.adopted + report.orphan_servers_deleted + report.orphan_records_deleted, 0);
    }
    assert!(h.cloud.servers().iter().any(|s| s.id == stranger.id), "an unmarked stranger is never deleted");
    assert_eq!(h.dns.records_named(&stranger_record).len(), 1);
    let inventory = engine.inventory().await;
    assert_eq!(inventory.accounts[0].others.len(), 1);
    assert_eq!(inventory.other_records.len(), 1);
}

/// An agent that sends a certificate request at bootstrap gets a
/// certificate for its workspace's name only; the workspace records it and
/// releasing the workspace revokes it. An origin CA that fails leaves the
/// bootstrap token usable for the agent's retry.
#[tokio::test]
async fn agents_get_an_origin_certificate_for_their_name_revoked_on_release() {
    use sam_core::testkit::fakes::Fault;
    use sam_core::wire::BootstrapRequest;
    let h = Harness::new().await;
    let engine = h.engine();
    let ws = h.create(&engine, "tls").await;
    engine.drive(h.user, ws.id).await.unwrap();
    let token = h.bootstrap_token(ws.id).unwrap();
    let request = BootstrapRequest {
        csr: Some(format!(
            "-----BEGIN CERTIFICATE REQUEST-----\nMII{}\n-----END CERTIFICATE REQUEST-----\n",
            "B".repeat(80)
        )),
    };
    for _ in 0..3 {
        h.origin_ca.faults.push("issue", Fault::Fail(ProviderErrorKind::Transient));
    }
    let err = engine.redeem_bootstrap_with(&token, &request).await.unwrap_err();
    assert_eq!(err.kind, EngineErrorKind::Unavailable, "{err:?}");
    let grant = engine.redeem_bootstrap_with(&token, &request).await.expect("the token is still usable");
    assert!(grant.origin_certificate.as_deref().is_some_and(|c| c.starts_with("-----BEGIN CERTIFICATE-----")));
    assert_eq!(h.origin_ca.valid_hostnames(), vec![ws.hostname(BASE_DOMAIN)], "for its own name only");
    let recorded = h.get(ws.id).await.unwrap().lifecycle.origin_certificate;
    assert!(recorded.is_some(), "recorded on the workspace");
    let garbage = BootstrapRequest { csr: Some("hello".into()) };
    let other = h.create(&engine, "tls-2").await;
    engine.drive(h.user, other.id).await.unwrap();
    let err = engine.redeem_bootstrap_with(&h.bootstrap_token(other.id).unwrap(), &garbage).await.unwrap_err();
    assert_eq!(err.kind, EngineErrorKind::Invalid);

    engine.report_agent(h.user, ws.id, &AgentReport::Ready).await.unwrap();
    engine.stop(h.user, ws.id).await.unwrap();
    engine.drive(h.user, ws.id).await.unwrap();
    let stopped = h.get(ws.id).await.unwrap();
    assert_eq!(stopped.status(), WorkspaceStatus::Stopped);
    assert_eq!(stopped.lifecycle.origin_certificate, None);
    assert!(h.origin_ca.valid_hostnames().is_empty(), "revoked on release");
}

fn tls_request() -> sam_core::wire::BootstrapRequest {
    sam_core::wire::BootstrapRequest {
        csr: Some(format!(
            "-----BEGIN CERTIFICATE REQUEST-----\nMII{}\n-----END CERTIFICATE REQUEST-----\n",
            "B".repeat(80)
        )),
    }
}

/// An Origin CA that refuses (here: the token lacks the permission) fails
/// the workspace at once, saying what the operator must fix; what was made
/// is released.
#[tokio::test]
async fn an_origin_ca_that_refuses_fails_the_workspace_with_the_fix() {
    let h = Harness::new().await;
    let engine = h.engine();
    let ws = h.create(&engine, "no-permission").await;
    engine.drive(h.user, ws.id).await.unwrap();
    h.origin_ca.faults.push("issue", Fault::Fail(ProviderErrorKind::Unauthorized));
    let err = engine.redeem_bootstrap_with(&h.bootstrap_token(ws.id).unwrap(), &tls_request()).await.unwrap_err();
    assert_eq!(err.kind, EngineErrorKind::InvalidState, "{err:?}");
    let failed = h.get(ws.id).await.unwrap();
    assert_eq!(failed.status(), WorkspaceStatus::Error);
    let message = failed.lifecycle.error_message.unwrap();
    assert!(message.contains("SSL and Certificates: Edit"), "{message}");
    let again = engine.redeem_bootstrap_with(&h.bootstrap_token(ws.id).unwrap(), &tls_request()).await;
    assert_eq!(again.unwrap_err().kind, EngineErrorKind::Unauthorized, "the token is no use any more");
    h.settle_everything(&engine).await;
    h.assert_no_leaks(&[h.user]).await;
    assert!(h.cloud.servers_of(ws.id).is_empty() && h.dns.records().is_empty());
}

/// An unavailable Origin CA: each redemption retries within the step, the
/// agent retries the redemption, and after the last the workspace fails
/// with a message and nothing left behind.
#[tokio::test]
async fn an_unavailable_origin_ca_is_retried_then_fails_the_workspace() {
    let h = Harness::new().await;
    let engine = h.engine();
    let ws = h.create(&engine, "ca-down").await;
    engine.drive(h.user, ws.id).await.unwrap();
    let token = h.bootstrap_token(ws.id).unwrap();
    let per_step = h.config.retry.max_attempts as usize;
    for _ in 0..per_step * sam_core::engine::ORIGIN_CA_ATTEMPTS as usize {
        h.origin_ca.faults.push("issue", Fault::Fail(ProviderErrorKind::Transient));
    }
    for attempt in 1..sam_core::engine::ORIGIN_CA_ATTEMPTS {
        let err = engine.redeem_bootstrap_with(&token, &tls_request()).await.unwrap_err();
        assert_eq!(err.kind, EngineErrorKind::Unavailable, "attempt {attempt}: {err:?}");
        assert_eq!(h.status(ws.id).await, Some(WorkspaceStatus::Creating));
    }
    let err = engine.redeem_bootstrap_with(&token, &tls_request()).await.unwrap_err();
    assert_eq!(err.kind, EngineErrorKind::InvalidState, "{err:?}");
    let failed = h.get(ws.id).await.unwrap();
    assert_eq!(failed.status(), WorkspaceStatus::Error);
    assert!(failed.lifecycle.error_message.as_deref().is_some_and(|m| m.contains("Origin CA")), "{failed:?}");
    h.settle_everything(&engine).await;
    h.assert_no_leaks(&[h.user]).await;
    assert!(h.origin_ca.valid_hostnames().is_empty());
}

/// A certificate issued but never recorded (the answer was lost, or a
/// restart forgot it) is revoked with the workspace all the same.
#[tokio::test]
async fn release_revokes_certificates_nobody_recorded() {
    use sam_core::ports::OriginCertificateAuthority as _;
    let h = Harness::new().await;
    let engine = h.engine();
    let ws = h.create(&engine, "lost-answer").await;
    engine.drive(h.user, ws.id).await.unwrap();
    let host = h.config.hostname(&ws.id);
    let csr = tls_request().csr.unwrap();
    h.origin_ca.issue(&csr, &host).await.unwrap();
    engine.redeem_bootstrap_with(&h.bootstrap_token(ws.id).unwrap(), &tls_request()).await.unwrap();
    assert_eq!(h.origin_ca.valid_hostnames().len(), 2);
    engine.report_agent(h.user, ws.id, &AgentReport::Ready).await.unwrap();
    engine.delete(h.user, ws.id).await.unwrap();
    h.settle_everything(&engine).await;
    assert!(h.origin_ca.valid_hostnames().is_empty(), "both revoked");
    h.assert_no_leaks(&[h.user]).await;
}

/// An Origin CA that refuses to list or revoke (the token lost the
/// permission) does not hold up a release: the server and record go, the
/// certificate is left to expire (only Cloudflare's edge trusts it).
#[tokio::test]
async fn a_refusing_origin_ca_does_not_hold_up_a_release() {
    let h = Harness::new().await;
    let engine = h.engine();
    let ws = h.create(&engine, "refused").await;
    engine.drive(h.user, ws.id).await.unwrap();
    engine.redeem_bootstrap_with(&h.bootstrap_token(ws.id).unwrap(), &tls_request()).await.unwrap();
    engine.report_agent(h.user, ws.id, &AgentReport::Ready).await.unwrap();
    for _ in 0..10 {
        h.origin_ca.faults.push("certificates_for", Fault::Fail(ProviderErrorKind::Unauthorized));
        h.origin_ca.faults.push("revoke", Fault::Fail(ProviderErrorKind::Unauthorized));
    }
    engine.delete(h.user, ws.id).await.unwrap();
    h.settle_everything(&engine).await;
    h.assert_no_leaks(&[h.user]).await;
    assert!(h.cloud.servers_of(ws.id).is_empty() && h.dns.records().is_empty(), "released");
    assert_eq!(h.origin_ca.valid_hostnames().len(), 1, "left to expire");
}

/// Issue 22: once an arm64 agent is served, a size maps to an Arm type
/// where the location offers a cheaper one; the server's user data carries
/// both agents' checksums (the VM fetches its own), and the price shown
/// for that size and location is the Arm type's, the one billed.
#[tokio::test]
async fn sizes_map_to_cheaper_arm_types_once_an_arm64_agent_is_served() {
    let arm_sha = "60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752";
    let mut h = Harness::new().await;
    let engine = h.engine();
    let ws = h.create(&engine, "x86-only").await;
    engine.drive(h.user, ws.id).await.unwrap();
    assert_eq!(h.cloud.servers_of(ws.id)[0].server_type, "cx23", "no arm64 agent: x86");

    h.config.agent_sha256_arm64 = Some(arm_sha.into());
    let engine = h.engine();
    let ws = h.create(&engine, "arm").await;
    engine.drive(h.user, ws.id).await.unwrap();
    assert_eq!(h.cloud.servers_of(ws.id)[0].server_type, "cax11");
    let data = h.cloud.user_data_of(ws.id).unwrap();
    assert!(data.contains(&format!("SAM_BOOT_AGENT_SHA256_ARM64={arm_sha}")), "{data}");
    assert!(data.contains("aarch64 | arm64) arch=arm64"));

    let accounts = sam_core::accounts::Accounts::new(
        h.ports(),
        h.github.clone(),
        sam_core::accounts::AccountsConfig::default().with_server_architectures(engine.config().server_architectures()),
    );
    let account = accounts.cloud_accounts(h.user).await.unwrap().remove(0);
    let sizes = account.catalogue.unwrap().sizes;
    let small = |location: &str| {
        sizes.iter().find(|o| o.size == sam_core::domain::VmSize::Small && o.location == location).unwrap().clone()
    };
    assert_eq!((small("fsn1").server_type.as_str(), small("fsn1").hourly.as_str()), ("cax11", "0.0055"));
    assert_eq!((small("hel1").server_type.as_str(), small("hel1").hourly.as_str()), ("cx23", "0.0060"));

    // An operator whose image is x86 only turns it off.
    h.config.arm_servers = false;
    let engine = h.engine();
    let ws = h.create(&engine, "x86-again").await;
    engine.drive(h.user, ws.id).await.unwrap();
    assert_eq!(h.cloud.servers_of(ws.id)[0].server_type, "cx23");
}
