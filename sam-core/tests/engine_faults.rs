//! Fault schedules: for every provider step, inject an error, a timeout after
//! the provider did the work, and a process crash; then let the reconciler
//! converge and check that nothing leaked and nothing is stuck.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Harness, test_config};
use sam_core::engine::{Engine, EngineErrorKind};
use sam_core::lifecycle::WorkspaceStatus;
use sam_core::ports::{Clock, ProviderErrorKind};
use sam_core::testkit::fakes::{Fault, MemoryStore};

const COMPUTE_OPS: [&str; 4] = ["create_server", "find_servers", "delete_server", "get_server"];
const DNS_OPS: [&str; 2] = ["upsert_a_record", "delete_records"];

#[derive(Clone, Copy, Debug)]
enum Scenario {
    Provision,
    /// Provision under the fault, then the user deletes before it recovers.
    ProvisionThenDelete,
    Stop,
    Delete,
    Restart,
}

#[derive(Clone, Copy, Debug)]
enum Injected {
    /// Enough retryable failures to exhaust the in-step retries.
    Transient,
    /// A permanent failure.
    Permanent,
    /// The provider does the work, then the response is lost (timeout).
    LostResponse,
}

fn push_faults(h: &Harness, op: &'static str, injected: Injected) {
    let fault = match injected {
        Injected::Transient => Fault::Fail(ProviderErrorKind::Transient),
        Injected::Permanent => Fault::Fail(ProviderErrorKind::InvalidConfig),
        Injected::LostResponse => Fault::FailAfterWork(ProviderErrorKind::Transient),
    };
    let plan = if DNS_OPS.contains(&op) { &h.dns.faults } else { &h.cloud.faults };
    for _ in 0..4 {
        plan.push(op, fault);
    }
}

/// Plays the agents of every workspace that waits for one; a token that no
/// longer redeems (used, expired, or on an adopted server) is fine: that
/// workspace will time out instead.
async fn boot_waiting_agents(h: &Harness, engine: &Engine) {
    for ws in h.store.list_workspaces(h.user, Some(WorkspaceStatus::Creating)).await.unwrap() {
        if ws.lifecycle.server.is_none() {
            continue;
        }
        let Some(token) = h.bootstrap_token(ws.id) else { continue };
        if engine.redeem_bootstrap(&token).await.is_ok() {
            let _ = engine.report_agent(h.user, ws.id, &sam_core::engine::AgentReport::Ready).await;
        }
    }
}

async fn run_case(scenario: Scenario, op: &'static str, injected: Injected, crash: bool) {
    let h = Harness::new().await;
    let mut engine = h.engine();
    let ws = match scenario {
        Scenario::Provision | Scenario::ProvisionThenDelete => None,
        _ => Some(h.running(&engine, "victim").await),
    };
    if let (Scenario::Restart, Some(ws)) = (scenario, &ws) {
        engine.stop(h.user, ws.id).await.unwrap();
        engine.drive(h.user, ws.id).await.unwrap();
    }
    push_faults(&h, op, injected);

    let id = match (scenario, &ws) {
        (Scenario::Provision, _) => h.create(&engine, "victim").await.id,
        (Scenario::ProvisionThenDelete, _) => {
            let id = h.create(&engine, "victim").await.id;
            engine.drive(h.user, id).await.unwrap();
            engine.delete(h.user, id).await.unwrap().id
        }
        (Scenario::Stop, Some(ws)) => engine.stop(h.user, ws.id).await.unwrap().id,
        (Scenario::Delete, Some(ws)) => engine.delete(h.user, ws.id).await.unwrap().id,
        (Scenario::Restart, Some(ws)) => match engine.restart(h.user, ws.id).await {
            Ok(ws) => ws.id,
            Err(e) => {
                assert_eq!(e.kind, EngineErrorKind::Unavailable, "{e}");
                ws.id
            }
        },
        _ => unreachable!(),
    };

    if crash {
        // The process dies after persisting the action, holding the lease.
        drop(engine);
        let now = h.clock.now();
        h.store.try_acquire_lease(&format!("workspace:{id}"), "dead-engine", h.config.lease_ttl, now).await.unwrap();
        engine = h.engine();
    } else {
        engine.drive(h.user, id).await.unwrap();
    }
    h.cloud.faults.clear();
    h.dns.faults.clear();
    h.quiesce(&engine).await;
    h.clock.advance(h.config.lease_ttl + Duration::from_secs(1));
    h.quiesce(&engine).await;
    // The engine cleaned up by itself, before any orphan grace period ran out.
    assert!(h.config.lease_ttl + Duration::from_secs(1) < h.config.orphan_grace);
    h.assert_no_leaks(&[h.user]).await;
    boot_waiting_agents(&h, &engine).await;
    h.settle_everything(&engine).await;
    h.assert_converged(&[h.user]).await;
}

#[tokio::test]
async fn every_fault_at_every_step_converges() {
    let mut cases = 0;
    for scenario in
        [Scenario::Provision, Scenario::ProvisionThenDelete, Scenario::Stop, Scenario::Delete, Scenario::Restart]
    {
        for op in COMPUTE_OPS.iter().chain(DNS_OPS.iter()) {
            for injected in [Injected::Transient, Injected::Permanent, Injected::LostResponse] {
                for crash in [false, true] {
                    run_case(scenario, op, injected, crash).await;
                    cases += 1;
                }
            }
        }
    }
    assert_eq!(cases, 5 * 6 * 3 * 2);
}

#[tokio::test]
async fn lost_create_response_is_adopted_not_duplicated() {
    let h = Harness::new().await;
    let engine = h.engine();
    h.cloud.faults.push("create_server", Fault::FailAfterWork(ProviderErrorKind::Transient));
    let ws = h.create(&engine, "lost").await;
    engine.drive(h.user, ws.id).await.unwrap();
    let ws = h.get(ws.id).await.unwrap();
    assert!(ws.lifecycle.server.is_some(), "the retry found the server by label");
    assert_eq!(h.cloud.servers_of(ws.id).len(), 1);
    assert_eq!(h.cloud.create_count(), 1, "no second server");
}

#[tokio::test]
async fn dns_goes_first_and_a_server_is_kept_while_its_record_stays() {
    let h = Harness::new().await;
    let engine = h.engine();
    let a = h.running(&engine, "a").await;
    let b = h.running(&engine, "b").await;

    for _ in 0..3 {
        h.cloud.faults.push("delete_server", Fault::Fail(ProviderErrorKind::Transient));
    }
    engine.stop(h.user, a.id).await.unwrap();
    engine.drive(h.user, a.id).await.unwrap();
    assert!(h.dns.records_named(&a.hostname(common::BASE_DOMAIN)).is_empty(), "DNS gone although the server is not");
    assert_eq!(h.cloud.servers_of(a.id).len(), 1);
    assert_eq!(h.status(a.id).await, Some(WorkspaceStatus::Stopping));

    // The record cannot be deleted for a long while (a revoked DNS token,
    // say): the server is kept through every retry and the workspace says why.
    for _ in 0..300 {
        h.dns.faults.push("delete_records", Fault::Fail(ProviderErrorKind::Transient));
    }
    engine.stop(h.user, b.id).await.unwrap();
    engine.drive(h.user, b.id).await.unwrap();
    for _ in 0..5 {
        engine.reconcile_once().await.unwrap();
    }
    assert_eq!(h.cloud.servers_of(b.id).len(), 1, "no address is freed while a record points at it");
    assert_eq!(h.dns.records_named(&b.hostname(common::BASE_DOMAIN)).len(), 1);
    let stuck = h.get(b.id).await.unwrap();
    assert_eq!(stuck.status(), WorkspaceStatus::Stopping, "still releasing, retried");
    let why = stuck.lifecycle.error_message.unwrap();
    assert!(why.contains("cannot be deleted") && why.contains("the server is kept"), "{why}");
    let history = engine.events(h.user, b.id).await.unwrap();
    assert_eq!(history.iter().filter(|e| e.event == "cleanup_blocked").count(), 1, "said once, not every retry");

    h.dns.faults.clear();
    h.quiesce(&engine).await;
    assert_eq!(h.status(a.id).await, Some(WorkspaceStatus::Stopped));
    let b = h.get(b.id).await.unwrap();
    assert_eq!((b.status(), b.lifecycle.error_message), (WorkspaceStatus::Stopped, None));
    h.assert_converged(&[h.user]).await;
}

#[tokio::test]
async fn delete_while_creating_cancels_provisioning() {
    let h = Harness::new().await;
    let engine = h.engine();
    let ws = h.create(&engine, "cancel").await;
    engine.delete(h.user, ws.id).await.unwrap();
    assert_eq!(engine.drive(h.user, ws.id).await.unwrap(), sam_core::engine::DriveOutcome::Removed);
    assert!(h.cloud.servers().is_empty());
    assert_eq!(h.cloud.create_count(), 0, "no server was created for a cancelled workspace");
}

#[tokio::test]
async fn credential_removed_while_running_keeps_retrying_visibly() {
    let store = Arc::new(MemoryStore::new());
    let h = Harness::with_store(store.clone(), test_config()).await;
    let engine = h.engine();
    let ws = h.running(&engine, "orphaned-token").await;
    assert!(store.remove_credential(h.user, sam_core::domain::CredentialProvider::HETZNER));
    engine.stop(h.user, ws.id).await.unwrap();
    engine.drive(h.user, ws.id).await.unwrap();
    assert_eq!(h.status(ws.id).await, Some(WorkspaceStatus::Stopping), "cannot delete the server without the token");
    assert!(h.dns.records().is_empty(), "the DNS half still completes");
    let report = engine.reconcile_once().await.unwrap();
    assert!(report.failures >= 1);
}

/// GitHub does not issue the clone token the first time: the bootstrap
/// token is not spent, the agent's retry with the same token succeeds, and a
/// third use is refused.
#[tokio::test]
async fn a_failed_bootstrap_leaves_the_token_usable() {
    let h = Harness::new().await;
    let engine = h.engine();
    let ws = h.create(&engine, "retry-boot").await;
    engine.drive(h.user, ws.id).await.unwrap();
    let token = h.bootstrap_token(ws.id).expect("user data carries the token");
    h.github.faults.push("installation_token", Fault::Fail(ProviderErrorKind::Transient));
    let first = engine.redeem_bootstrap(&token).await.unwrap_err();
    assert_eq!(first.kind, EngineErrorKind::Unavailable, "try again: {first:?}");
    let grant = engine.redeem_bootstrap(&token).await.expect("the same token works on the retry");
    assert_eq!(grant.workspace_id, ws.id);
    assert_eq!(engine.redeem_bootstrap(&token).await.unwrap_err().kind, EngineErrorKind::Unauthorized, "then spent");
}
