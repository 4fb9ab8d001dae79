//! Fault plans shared by the emulators: per-endpoint latency, injected errors
//! and dropped responses, plus a log of the requests each emulator received.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;

use super::lock;

/// An error an emulator answers with instead of handling the request. Each
/// emulator renders it in its own service's error format.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum InjectedError {
    /// 429 with the service's rate-limit error and headers.
    TooManyRequests,
    /// 500.
    Internal,
    /// 503.
    Unavailable,
    /// Hetzner's `resource_unavailable` (412); other emulators answer 503.
    ResourceUnavailable,
    /// Any status with the service's generic error body.
    Status(u16),
}

/// What to do to matching requests.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Fault {
    /// Answer with an error without handling the request.
    Error(InjectedError),
    /// Handle the request (so it takes effect), then hold the response for
    /// this long before sending it: a client with a shorter timeout sees a
    /// timeout although the server acted ("accept the create but drop the
    /// response").
    DropResponse(Duration),
    /// Delay the request by this long, then handle it normally.
    Latency(Duration),
}

#[derive(Debug, Clone)]
struct Rule {
    method: String,
    path: String,
    fault: Fault,
    remaining: Option<u32>,
}

impl Rule {
    fn matches(&self, method: &str, path: &str) -> bool {
        let method_ok = self.method == "*" || self.method.eq_ignore_ascii_case(method);
        let path_ok = match self.path.strip_suffix('*') {
            Some(prefix) => path.starts_with(prefix),
            None => path == self.path,
        };
        method_ok && path_ok
    }
}

/// One request an emulator received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    /// Method.
    pub method: String,
    /// Path (without query).
    pub path: String,
    /// Query string, if any.
    pub query: Option<String>,
    /// When it arrived.
    pub at: Instant,
}

#[derive(Debug, Default)]
struct PlanState {
    rules: Vec<Rule>,
    log: Vec<RecordedRequest>,
}

/// The fault plan of one emulator. Rules match by method (`"*"` for any) and
/// path (exact, or a prefix when it ends in `*`, e.g. `"/v1/servers*"`); the
/// first matching error/drop rule with uses left applies, and every matching
/// latency rule with uses left adds its delay. Rules given a number of uses
/// disappear once used up.
#[derive(Debug, Clone, Default)]
pub struct FaultPlan {
    state: Arc<Mutex<PlanState>>,
}

pub(crate) type Renderer = fn(InjectedError) -> Response;

impl FaultPlan {
    /// Applies `fault` to the next `times` matching requests.
    pub fn inject(&self, method: &str, path: &str, fault: Fault, times: u32) {
        self.push(method, path, fault, Some(times));
    }

    /// Applies `fault` to every matching request until [`FaultPlan::clear`].
    pub fn always(&self, method: &str, path: &str, fault: Fault) {
        self.push(method, path, fault, None);
    }

    /// Adds latency to every matching request.
    pub fn latency(&self, method: &str, path: &str, delay: Duration) {
        self.always(method, path, Fault::Latency(delay));
    }

    /// Removes every rule.
    pub fn clear(&self) {
        lock(&self.state).rules.clear();
    }

    /// Every request received so far (oldest first).
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.state).log.clone()
    }

    /// How many requests matched `method` and `path` (same matching as rules).
    pub fn count(&self, method: &str, path: &str) -> usize {
        let probe = Rule {
            method: method.to_owned(),
            path: path.to_owned(),
            fault: Fault::Latency(Duration::ZERO),
            remaining: None,
        };
        lock(&self.state).log.iter().filter(|r| probe.matches(&r.method, &r.path)).count()
    }

    /// Forgets the request log.
    pub fn clear_requests(&self) {
        lock(&self.state).log.clear();
    }

    fn push(&self, method: &str, path: &str, fault: Fault, remaining: Option<u32>) {
        lock(&self.state).rules.push(Rule { method: method.to_owned(), path: path.to_owned(), fault, remaining });
    }

    /// Records the request and decides what happens to it.
    fn take(&self, method: &str, path: &str, query: Option<&str>) -> (Duration, Option<Fault>) {
        let mut state = lock(&self.state);
        state.log.push(RecordedRequest {
            method: method.to_owned(),
            path: path.to_owned(),
            query: query.map(str::to_owned),
            at: Instant::now(),
        });
        let mut delay = Duration::ZERO;
        let mut chosen = None;
        for rule in state.rules.iter_mut() {
            if !rule.matches(method, path) {
                continue;
            }
            match rule.fault {
                Fault::Latency(d) if rule.remaining != Some(0) => {
                    if let Some(n) = rule.remaining.as_mut() {
                        *n -= 1;
                    }
                    delay += d;
                }
                Fault::Latency(_) => {}
                fault if chosen.is_none() && rule.remaining != Some(0) => {
                    if let Some(n) = rule.remaining.as_mut() {
                        *n -= 1;
                    }
                    chosen = Some(fault);
                }
                _ => {}
            }
        }
        state.rules.retain(|r| r.remaining != Some(0));
        (delay, chosen)
    }
}

/// The axum middleware that applies a plan.
pub(crate) async fn middleware(
    State((plan, render)): State<(FaultPlan, Renderer)>,
    request: Request,
    next: Next,
) -> Response {
    let method = request.method().as_str().to_owned();
    let path = request.uri().path().to_owned();
    let (delay, fault) = plan.take(&method, &path, request.uri().query());
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    match fault {
        Some(Fault::Error(error)) => render(error),
        Some(Fault::DropResponse(hold)) => {
            let response = next.run(request).await;
            tokio::time::sleep(hold).await;
            response
        }
        Some(Fault::Latency(_)) | None => next.run(request).await,
    }
}
