//! The workspace state machine: every status × event against the table,
//! the user-story paths, and property tests of random event sequences.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::net::Ipv4Addr;

use proptest::prelude::*;
use sam_core::domain::ServerId;
use sam_core::lifecycle::*;
use sam_core::testkit::{every_event, typical_lifecycle};

fn server(id: &str) -> ServerRef {
    ServerRef { id: ServerId(id.into()), ipv4: Ipv4Addr::new(192, 0, 2, 10) }
}

/// The transition table as implemented: (from, event) -> Some(to) or None (illegal).
fn expected(from: WorkspaceStatus, event: &Event) -> Option<WorkspaceStatus> {
    use WorkspaceStatus as S;
    match (from, event) {
        (_, Event::DeleteRequested) => Some(S::Deleting),
        (S::Pending, Event::CreateRequested) => Some(S::Creating),
        (S::Pending, Event::ProvisioningFailed { .. } | Event::ProvisioningTimedOut { .. }) => Some(S::Error),
        (S::Pending, Event::StopRequested) => Some(S::Stopped),
        (S::Creating, Event::ServerCreated(_)) => Some(S::Creating),
        (S::Creating, Event::DnsRecordSet { .. }) => Some(S::Creating),
        (S::Creating, Event::AgentReady) => Some(S::Creating), // no DNS yet in this fixture
        (S::Creating, Event::ProvisioningFailed { .. } | Event::ProvisioningTimedOut { .. }) => Some(S::Error),
        (S::Creating, Event::StopRequested) => Some(S::Stopping),
        (S::Creating, Event::ServerGone) => Some(S::Error),
        (S::Running, Event::StopRequested | Event::IdleTimeout | Event::ServerGone) => Some(S::Stopping),
        (S::Running, Event::AgentUnreachable) => Some(S::Error),
        (S::Stopping, Event::StopRequested | Event::ServerGone) => Some(S::Stopping),
        (S::Stopping, Event::StopFinished) => Some(S::Stopped),
        (S::Stopped, Event::RestartRequested) => Some(S::Creating),
        (S::Error, Event::ServerGone | Event::StopFinished) => Some(S::Error),
        (S::Error, Event::RestartRequested) => Some(S::Creating),
        (S::Deleting, Event::ServerGone | Event::CleanupFinished) => Some(S::Deleting),
        _ => None,
    }
}

#[test]
fn every_status_and_event_matches_the_table() {
    let mut legal = 0;
    let mut illegal = 0;
    for status in WorkspaceStatus::ALL {
        for event in every_event() {
            let from = typical_lifecycle(status);
            let got = transition(&from, &event);
            match (expected(status, &event), got) {
                (Some(to), Ok(t)) => {
                    legal += 1;
                    assert_eq!(t.state.status, to, "{status} + {}", event.name());
                    assert_eq!(t.state.check_invariants(), Ok(()), "{status} + {}", event.name());
                }
                (None, Err(e)) => {
                    illegal += 1;
                    assert_eq!(e.status, status);
                    assert_eq!(e.event, event.name());
                    assert!(!e.to_string().is_empty());
                }
                (want, got) => panic!("{status} + {}: expected {want:?}, got {got:?}", event.name()),
            }
        }
    }
    assert_eq!(legal + illegal, 7 * 14);
    assert_eq!(legal, 31);
}

#[test]
fn happy_path_create_to_running() {
    let s = LifecycleState::new();
    let t = transition(&s, &Event::CreateRequested).unwrap();
    assert_eq!(t.effects, vec![Effect::CreateServer]);
    let t = transition(&t.state, &Event::ServerCreated(server("7"))).unwrap();
    assert_eq!(t.effects, vec![Effect::UpsertDns { ipv4: Ipv4Addr::new(192, 0, 2, 10) }]);
    let t = transition(&t.state, &Event::DnsRecordSet { record_id: "r".into() }).unwrap();
    assert_eq!(t.state.status, WorkspaceStatus::Creating);
    let t = transition(&t.state, &Event::AgentReady).unwrap();
    assert_eq!(t.state.status, WorkspaceStatus::Running);
    assert_eq!(t.state.reason, Reason::Provisioning);
    assert!(t.effects.is_empty());
}

#[test]
fn agent_ready_before_dns_becomes_running_when_dns_lands() {
    let s = typical_lifecycle(WorkspaceStatus::Creating);
    let t = transition(&s, &Event::AgentReady).unwrap();
    assert_eq!(t.state.status, WorkspaceStatus::Creating);
    let t = transition(&t.state, &Event::DnsRecordSet { record_id: "r".into() }).unwrap();
    assert_eq!(t.state.status, WorkspaceStatus::Running);
}

#[test]
fn agent_ready_needs_a_server() {
    let mut s = typical_lifecycle(WorkspaceStatus::Creating);
    s.server = None;
    assert!(transition(&s, &Event::AgentReady).is_err());
    assert!(transition(&s, &Event::DnsRecordSet { record_id: "r".into() }).is_err());
}

#[test]
fn a_second_different_server_is_refused() {
    let s = typical_lifecycle(WorkspaceStatus::Creating);
    assert!(transition(&s, &Event::ServerCreated(server("1"))).is_ok());
    let err = transition(&s, &Event::ServerCreated(server("2"))).unwrap_err();
    assert!(err.why.contains("different server"));
}

#[test]
fn stop_and_idle_clean_up_both_resources() {
    let running = typical_lifecycle(WorkspaceStatus::Running);
    for (event, reason) in [(Event::StopRequested, Reason::User), (Event::IdleTimeout, Reason::IdleTimeout)] {
        let t = transition(&running, &event).unwrap();
        assert_eq!(t.effects, vec![Effect::DeleteServer, Effect::DeleteDns]);
        assert_eq!(t.state.reason, reason);
        let done = transition(&t.state, &Event::StopFinished).unwrap();
        assert_eq!(done.state.status, WorkspaceStatus::Stopped);
        assert!(!done.state.holds_resources());
        assert_eq!(done.state.reason, reason, "the stop reason survives the finish");
    }
}

#[test]
fn failures_record_message_and_clean_up() {
    let creating = typical_lifecycle(WorkspaceStatus::Creating);
    let t = transition(&creating, &Event::ProvisioningFailed { message: "no capacity in hel1".into() }).unwrap();
    assert_eq!(t.state.status, WorkspaceStatus::Error);
    assert_eq!(t.state.reason, Reason::ProviderError);
    assert_eq!(t.state.error_message.as_deref(), Some("no capacity in hel1"));
    assert_eq!(t.effects, vec![Effect::DeleteServer, Effect::DeleteDns]);
    let t2 = transition(&t.state, &Event::StopFinished).unwrap();
    assert_eq!(t2.state.status, WorkspaceStatus::Error);
    assert!(!t2.state.holds_resources());
    assert_eq!(t2.state.error_message.as_deref(), Some("no capacity in hel1"));

    let t = transition(&creating, &Event::ProvisioningTimedOut { message: "waiting for agent".into() }).unwrap();
    assert_eq!(t.state.reason, Reason::ProvisionTimeout);
}

#[test]
fn restart_from_error_with_leftovers_cleans_before_creating() {
    let mut failed = typical_lifecycle(WorkspaceStatus::Error);
    failed.server = Some(server("9"));
    let t = transition(&failed, &Event::RestartRequested).unwrap();
    assert_eq!(t.effects, vec![Effect::DeleteServer, Effect::DeleteDns, Effect::CreateServer]);
    assert_eq!(t.state.status, WorkspaceStatus::Creating);
    assert!(t.state.error_message.is_none());
    assert!(!t.state.holds_resources());

    let clean = typical_lifecycle(WorkspaceStatus::Stopped);
    let t = transition(&clean, &Event::RestartRequested).unwrap();
    assert_eq!(t.effects, vec![Effect::CreateServer]);
}

#[test]
fn delete_works_from_every_state_and_removes_row_only_after_cleanup() {
    for status in WorkspaceStatus::ALL {
        let t = transition(&typical_lifecycle(status), &Event::DeleteRequested).unwrap();
        assert_eq!(t.state.status, WorkspaceStatus::Deleting);
        assert_eq!(t.effects, vec![Effect::DeleteServer, Effect::DeleteDns]);
        assert!(!t.effects.contains(&Effect::RemoveWorkspace));
        let done = transition(&t.state, &Event::CleanupFinished).unwrap();
        assert_eq!(done.effects, vec![Effect::RemoveWorkspace]);
        assert!(!done.state.holds_resources());
    }
}

#[test]
fn server_gone_while_running_still_removes_dns() {
    let t = transition(&typical_lifecycle(WorkspaceStatus::Running), &Event::ServerGone).unwrap();
    assert_eq!(t.state.status, WorkspaceStatus::Stopping);
    assert_eq!(t.state.reason, Reason::ServerGone);
    assert!(t.state.server.is_none());
    assert!(t.effects.contains(&Effect::DeleteDns));
}

#[test]
fn user_facing_rejections_explain_themselves() {
    let err = transition(&typical_lifecycle(WorkspaceStatus::Stopped), &Event::StopRequested).unwrap_err();
    assert_eq!(err.to_string(), "cannot apply stop_requested to a stopped workspace: the workspace is already stopped");
    let err = transition(&typical_lifecycle(WorkspaceStatus::Running), &Event::RestartRequested).unwrap_err();
    assert!(err.why.contains("already running"));
}

fn arb_event() -> impl Strategy<Value = Event> {
    prop_oneof![
        Just(Event::CreateRequested),
        (1u8..4).prop_map(|n| Event::ServerCreated(ServerRef {
            id: ServerId(n.to_string()),
            ipv4: Ipv4Addr::new(10, 0, 0, n)
        })),
        "[a-z]{1,4}".prop_map(|record_id| Event::DnsRecordSet { record_id }),
        Just(Event::AgentReady),
        ".{0,20}".prop_map(|message| Event::ProvisioningFailed { message }),
        ".{0,20}".prop_map(|message| Event::ProvisioningTimedOut { message }),
        Just(Event::StopRequested),
        Just(Event::IdleTimeout),
        Just(Event::AgentUnreachable),
        Just(Event::ServerGone),
        Just(Event::StopFinished),
        Just(Event::RestartRequested),
        Just(Event::DeleteRequested),
        Just(Event::CleanupFinished),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Random event sequences never panic, never reach an inconsistent state, and
    /// a rejected event is reported for the state it was applied to.
    #[test]
    fn random_sequences_keep_invariants(events in proptest::collection::vec(arb_event(), 0..60)) {
        let mut s = LifecycleState::new();
        let mut removed = false;
        for event in &events {
            if removed {
                break;
            }
            match transition(&s, event) {
                Ok(t) => {
                    prop_assert_eq!(t.state.check_invariants(), Ok(()), "after {}", event.name());
                    // Entering a state without resources from one with them always
                    // asks for cleanup first.
                    if t.effects.contains(&Effect::RemoveWorkspace) {
                        prop_assert!(!t.state.holds_resources());
                        removed = true;
                    }
                    if t.state.status == WorkspaceStatus::Stopped && s.status != WorkspaceStatus::Stopped {
                        prop_assert!(s.status == WorkspaceStatus::Stopping || s.status == WorkspaceStatus::Pending);
                    }
                    if t.state.status == WorkspaceStatus::Running {
                        prop_assert!(t.state.server.is_some() && t.state.dns_record.is_some());
                    }
                    s = t.state;
                }
                Err(e) => {
                    prop_assert_eq!(e.status, s.status);
                }
            }
        }
    }

    /// Every way out of running or creating into a non-running state carries
    /// cleanup effects, so no path silently abandons a server.
    #[test]
    fn leaving_an_active_state_always_cleans_up(events in proptest::collection::vec(arb_event(), 0..40)) {
        let mut s = LifecycleState::new();
        for event in &events {
            if let Ok(t) = transition(&s, event) {
                let was_active = matches!(s.status, WorkspaceStatus::Creating | WorkspaceStatus::Running);
                let now_inactive = matches!(t.state.status, WorkspaceStatus::Stopping | WorkspaceStatus::Error | WorkspaceStatus::Deleting);
                if was_active && now_inactive {
                    prop_assert!(t.effects.contains(&Effect::DeleteServer));
                    prop_assert!(t.effects.contains(&Effect::DeleteDns));
                }
                if t.effects.contains(&Effect::RemoveWorkspace) {
                    break;
                }
                s = t.state;
            }
        }
    }
}
