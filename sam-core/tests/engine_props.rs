//! Property test: random interleavings of user actions, agent reports,
//! heartbeats, provider faults, clock jumps, reconciler passes and crashes
//! never panic, never produce an internal error, and always converge to a
//! world with no leaked server or record.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod common;

use std::time::Duration;

use common::Harness;
use proptest::prelude::*;
use sam_core::engine::{AgentReport, EngineErrorKind, HeartbeatReport};
use sam_core::ports::ProviderErrorKind;
use sam_core::testkit::fakes::Fault;

#[derive(Clone, Debug)]
enum Action {
    Create(u8),
    Stop(u8),
    Restart(u8),
    Delete(u8),
    Drive(u8),
    BootAgent(u8),
    FailAgent(u8),
    Heartbeat(u8, u16),
    Fault(u8, u8),
    Advance(u16),
    Reconcile,
    Crash,
}

const OPS: [&str; 6] =
    ["create_server", "find_servers", "delete_server", "get_server", "upsert_a_record", "delete_records"];
const KINDS: [Fault; 5] = [
    Fault::Fail(ProviderErrorKind::Transient),
    Fault::Fail(ProviderErrorKind::RateLimited { retry_after: None }),
    Fault::Fail(ProviderErrorKind::InvalidConfig),
    Fault::Fail(ProviderErrorKind::Capacity),
    Fault::FailAfterWork(ProviderErrorKind::Transient),
];

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        3 => any::<u8>().prop_map(Action::Create),
        2 => any::<u8>().prop_map(Action::Stop),
        2 => any::<u8>().prop_map(Action::Restart),
        1 => any::<u8>().prop_map(Action::Delete),
        3 => any::<u8>().prop_map(Action::Drive),
        3 => any::<u8>().prop_map(Action::BootAgent),
        1 => any::<u8>().prop_map(Action::FailAgent),
        2 => (any::<u8>(), 0u16..3000).prop_map(|(w, idle)| Action::Heartbeat(w, idle)),
        3 => (0u8..OPS.len() as u8, 0u8..KINDS.len() as u8).prop_map(|(o, k)| Action::Fault(o, k)),
        2 => (1u16..1200).prop_map(Action::Advance),
        2 => Just(Action::Reconcile),
        1 => Just(Action::Crash),
    ]
}

fn not_internal<T>(result: Result<T, sam_core::engine::EngineError>) {
    if let Err(e) = result {
        assert_ne!(e.kind, EngineErrorKind::Internal, "internal error: {e}");
    }
}

async fn play(actions: Vec<Action>) {
    let h = Harness::new().await;
    let mut engine = h.engine();
    let mut ids = Vec::new();
    let pick = |ids: &Vec<sam_core::domain::WorkspaceId>, n: u8| (!ids.is_empty()).then(|| ids[n as usize % ids.len()]);
    for (step, action) in actions.into_iter().enumerate() {
        match action {
            Action::Create(n) => {
                match engine
                    .create(
                        h.user,
                        sam_core::testkit::sample_spec(&format!("w{n}-{step}")),
                        sam_core::domain::InstallationId(1),
                    )
                    .await
                {
                    Ok(ws) => ids.push(ws.id),
                    Err(e) => assert!(
                        matches!(
                            e.kind,
                            EngineErrorKind::QuotaExceeded
                                | EngineErrorKind::Unavailable
                                | EngineErrorKind::Precondition
                        ),
                        "{e:?}"
                    ),
                }
            }
            Action::Stop(n) => {
                if let Some(id) = pick(&ids, n) {
                    not_internal(engine.stop(h.user, id).await);
                }
            }
            Action::Restart(n) => {
                if let Some(id) = pick(&ids, n) {
                    not_internal(engine.restart(h.user, id).await);
                }
            }
            Action::Delete(n) => {
                if let Some(id) = pick(&ids, n) {
                    not_internal(engine.delete(h.user, id).await);
                }
            }
            Action::Drive(n) => {
                if let Some(id) = pick(&ids, n) {
                    not_internal(engine.drive(h.user, id).await);
                }
            }
            Action::BootAgent(n) => {
                if let Some(id) = pick(&ids, n)
                    && let Some(token) = h.bootstrap_token(id)
                    && engine.redeem_bootstrap(&token).await.is_ok()
                {
                    not_internal(engine.report_agent(h.user, id, &AgentReport::Ready).await);
                }
            }
            Action::FailAgent(n) => {
                if let Some(id) = pick(&ids, n) {
                    not_internal(
                        engine.report_agent(h.user, id, &AgentReport::Failed { message: "boom".into() }).await,
                    );
                }
            }
            Action::Heartbeat(n, idle) => {
                if let Some(id) = pick(&ids, n) {
                    let report = HeartbeatReport::new(u64::from(idle), 1);
                    not_internal(engine.record_heartbeat(h.user, id, report).await);
                }
            }
            Action::Fault(op, kind) => {
                let op = OPS[op as usize];
                let plan = if op.contains("record") { &h.dns.faults } else { &h.cloud.faults };
                plan.push(op, KINDS[kind as usize]);
            }
            Action::Advance(secs) => h.clock.advance(Duration::from_secs(u64::from(secs))),
            Action::Reconcile => not_internal(engine.reconcile_once().await),
            Action::Crash => {
                drop(engine);
                engine = h.engine();
            }
        }
        h.assert_lifecycle_invariants().await;
    }
    h.clock.advance(h.config.lease_ttl + Duration::from_secs(1));
    h.settle_everything(&engine).await;
    h.assert_converged(&[h.user]).await;
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn random_interleavings_converge(actions in proptest::collection::vec(action(), 1..60)) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
        runtime.block_on(play(actions));
    }
}
