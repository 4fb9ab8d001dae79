//! The workspace state machine's cost per transition, as a ratio to cloning the
//! state it transforms (the least any transition must do, measured in the same
//! run).

use std::hint::black_box;
use std::net::Ipv4Addr;

use criterion::{Criterion, criterion_group, criterion_main};
use sam_core::domain::ServerId;
use sam_core::lifecycle::{Event, LifecycleState, ServerRef, transition};

fn full_life() -> Vec<Event> {
    vec![
        Event::CreateRequested,
        Event::ServerCreated(ServerRef { id: ServerId("42".into()), ipv4: Ipv4Addr::new(192, 0, 2, 1) }),
        Event::DnsRecordSet { record_id: "rec".into() },
        Event::AgentReady,
        Event::IdleTimeout,
        Event::StopFinished,
        Event::RestartRequested,
        Event::DeleteRequested,
        Event::CleanupFinished,
    ]
}

fn run_life(events: &[Event]) -> usize {
    let mut state = LifecycleState::new();
    let mut effects = 0;
    for event in events {
        if let Ok(t) = transition(&state, event) {
            effects += t.effects.len();
            state = t.state;
        }
    }
    effects
}

fn clone_baseline(events: &[Event]) -> usize {
    let mut state = LifecycleState::new();
    for _ in events {
        state = black_box(state.clone());
    }
    state.dns_record.map_or(0, |r| r.len())
}

fn bench(c: &mut Criterion) {
    let events = full_life();
    let mut group = c.benchmark_group("lifecycle");
    group.bench_function("baseline_clone_state_x9", |b| b.iter(|| clone_baseline(black_box(&events))));
    group.bench_function("full_life_9_transitions", |b| b.iter(|| run_life(black_box(&events))));
    group.finish();

    let baseline = sam_benches::median_per_iteration(15, 20_000, || {
        black_box(clone_baseline(black_box(&events)));
    });
    let measured = sam_benches::median_per_iteration(15, 20_000, || {
        black_box(run_life(black_box(&events)));
    });
    println!(
        "lifecycle: full life (9 transitions) = {:.2}x the cost of 9 state clones ({:?} vs {:?} per life)",
        measured.as_secs_f64() / baseline.as_secs_f64().max(f64::EPSILON),
        measured,
        baseline
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
