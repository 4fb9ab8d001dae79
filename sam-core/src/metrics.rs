//! Metrics the engine records through the [`metrics`](https://docs.rs/metrics)
//! facade.
//!
//! A library only *records*; the program that embeds it chooses an exporter
//! (Prometheus, StatsD, OpenTelemetry, …) by installing a recorder with
//! `metrics::set_global_recorder`. Without one, recording costs next to
//! nothing and goes nowhere. `sam-server` exports these series at
//! `GET /metrics` in the Prometheus text format.
//!
//! | name | type | labels | what |
//! |---|---|---|---|
//! | [`WORKSPACES`] | gauge | `status` | workspaces per lifecycle status, counted on every reconciler pass |
//! | [`PROVISIONING_DURATION`] | histogram (s) | | from entering `creating` (create or restart) to the agent reporting ready |
//! | [`PROVIDER_CALL_DURATION`] | histogram (s) | `provider`, `operation` | every compute and DNS call the engine makes, each retry attempt on its own |
//! | [`PROVIDER_CALL_ERRORS`] | counter | `provider`, `operation`, `kind` | failed provider calls by [`ProviderErrorKind::code`](crate::ports::ProviderErrorKind::code) |
//! | [`RECONCILER_PASS_DURATION`] | histogram (s) | | one [`Engine::reconcile_once`](crate::engine::Engine::reconcile_once) |
//! | [`ORPHANS_FOUND`] | counter | `resource` (`server`, `dns_record`) | orphans the reconciler found past their grace period and deleted |
//! | [`TERMINAL_SESSIONS`] | gauge | | open terminal sessions reported by the agents' heartbeats, summed over workspaces |
//!
//! Durations are wall-clock time, except [`PROVISIONING_DURATION`], which is
//! measured on the engine's [`Clock`](crate::ports::Clock) (it spans several
//! requests and possibly several processes).
//!
//! Gauges describe what *this* engine saw: with several server replicas
//! sharing one store, [`WORKSPACES`] is the same on each (aggregate with
//! `max`), and [`TERMINAL_SESSIONS`] counts the heartbeats each replica
//! received within the heartbeat timeout (with a load balancer that spreads
//! one agent's heartbeats over replicas, the per-replica values overlap).
//!
//! ```
//! // Register names, units and help texts with whatever recorder is installed.
//! sam_core::metrics::describe();
//! for (name, buckets) in sam_core::metrics::HISTOGRAM_BUCKETS {
//!     assert!(name.ends_with("_seconds") && buckets.windows(2).all(|w| w[0] < w[1]));
//! }
//! ```

use metrics::Unit;

/// Gauge: workspaces per status (label `status`, e.g. `running`).
pub const WORKSPACES: &str = "sam_workspaces";
/// Histogram: seconds from entering `creating` to the agent reporting ready.
pub const PROVISIONING_DURATION: &str = "sam_workspace_provisioning_duration_seconds";
/// Histogram: seconds per compute or DNS provider call (labels `provider`,
/// `operation`).
pub const PROVIDER_CALL_DURATION: &str = "sam_provider_call_duration_seconds";
/// Counter: failed provider calls (labels `provider`, `operation`, `kind`).
pub const PROVIDER_CALL_ERRORS: &str = "sam_provider_call_errors_total";
/// Histogram: seconds per reconciler pass.
pub const RECONCILER_PASS_DURATION: &str = "sam_reconciler_pass_duration_seconds";
/// Counter: orphans found and deleted by the reconciler (label `resource`:
/// `server` or `dns_record`).
pub const ORPHANS_FOUND: &str = "sam_reconciler_orphans_found_total";
/// Gauge: open terminal sessions across workspaces, from agent heartbeats.
pub const TERMINAL_SESSIONS: &str = "sam_terminal_sessions_active";

/// Suggested histogram buckets (upper bounds in seconds) per histogram, for
/// exporters that need them up front (Prometheus does).
pub const HISTOGRAM_BUCKETS: [(&str, &[f64]); 3] = [
    // Hetzner measured about a minute end to end; the emulators take
    // milliseconds.
    (PROVISIONING_DURATION, &[0.1, 1.0, 5.0, 15.0, 30.0, 45.0, 60.0, 90.0, 120.0, 180.0, 300.0, 600.0]),
    (PROVIDER_CALL_DURATION, &[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0]),
    (RECONCILER_PASS_DURATION, &[0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 120.0]),
];

/// Registers the unit and help text of every series with the installed
/// recorder. Call it once after installing one; calling it again is harmless.
pub fn describe() {
    metrics::describe_gauge!(WORKSPACES, Unit::Count, "Workspaces per lifecycle status, counted by the reconciler.");
    metrics::describe_histogram!(
        PROVISIONING_DURATION,
        Unit::Seconds,
        "Time from a workspace entering creating to its agent reporting ready."
    );
    metrics::describe_histogram!(
        PROVIDER_CALL_DURATION,
        Unit::Seconds,
        "Duration of compute and DNS provider calls made by the engine (each attempt)."
    );
    metrics::describe_counter!(
        PROVIDER_CALL_ERRORS,
        Unit::Count,
        "Failed compute and DNS provider calls, by error kind."
    );
    metrics::describe_histogram!(RECONCILER_PASS_DURATION, Unit::Seconds, "Duration of one reconciler pass.");
    metrics::describe_counter!(ORPHANS_FOUND, Unit::Count, "Orphan servers and DNS records found and deleted.");
    metrics::describe_gauge!(
        TERMINAL_SESSIONS,
        Unit::Count,
        "Open terminal sessions reported by workspace agents, summed over workspaces."
    );
}

/// Records one provider call.
pub(crate) fn provider_call<T>(
    provider: &'static str,
    operation: &'static str,
    started: std::time::Instant,
    result: &Result<T, crate::ports::ProviderError>,
) {
    metrics::histogram!(PROVIDER_CALL_DURATION, "provider" => provider, "operation" => operation)
        .record(started.elapsed().as_secs_f64());
    if let Err(e) = result {
        metrics::counter!(
            PROVIDER_CALL_ERRORS,
            "provider" => provider,
            "operation" => operation,
            "kind" => e.kind().code()
        )
        .increment(1);
    }
}
