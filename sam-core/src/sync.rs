//! Small synchronisation helpers.

/// Locks a mutex, recovering the data if another thread panicked while
/// holding it: every structure guarded this way stays valid between
/// statements, so poisoning carries no information worth failing for.
pub(crate) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
