use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use crate::ports::{ProviderError, ProviderErrorKind};
use crate::testkit::lock;

/// A fault a fake performs on one call of one operation.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Fault {
    /// Fail before doing anything.
    Fail(ProviderErrorKind),
    /// Do the work, then fail as if the response was lost (a timeout after the
    /// provider acted).
    FailAfterWork(ProviderErrorKind),
}

/// Per-operation queues of faults: each call of an operation takes the next
/// fault queued for it, if any.
#[derive(Debug, Default)]
pub struct FaultPlan(Mutex<HashMap<&'static str, VecDeque<Fault>>>);

impl FaultPlan {
    /// Queues `fault` for the next call of `operation` (e.g. `create_server`).
    pub fn push(&self, operation: &'static str, fault: Fault) {
        lock(&self.0).entry(operation).or_default().push_back(fault);
    }

    /// Removes every queued fault.
    pub fn clear(&self) {
        lock(&self.0).clear();
    }

    /// Takes the next fault for `operation`.
    pub fn take(&self, operation: &'static str) -> Option<Fault> {
        lock(&self.0).get_mut(operation).and_then(VecDeque::pop_front)
    }

    /// Applies a `Fail` fault; returns a `FailAfterWork` fault for the caller to
    /// apply after doing the work.
    pub(crate) fn before(&self, operation: &'static str) -> Result<Option<ProviderErrorKind>, ProviderError> {
        match self.take(operation) {
            Some(Fault::Fail(kind)) => Err(injected(operation, kind)),
            Some(Fault::FailAfterWork(kind)) => Ok(Some(kind)),
            None => Ok(None),
        }
    }
}

pub(crate) fn injected(operation: &str, kind: ProviderErrorKind) -> ProviderError {
    ProviderError::new(kind, format!("injected fault on {operation}: {}", kind.code()))
}

/// Finishes an operation that may carry a `FailAfterWork` fault.
pub(crate) fn after<T>(
    operation: &'static str,
    pending: Option<ProviderErrorKind>,
    value: T,
) -> Result<T, ProviderError> {
    match pending {
        Some(kind) => Err(injected(operation, kind)),
        None => Ok(value),
    }
}
