use std::future::Future;
use std::time::Duration;

use super::RetryPolicy;
use crate::domain::WorkspaceId;
use crate::ports::ProviderError;
use crate::secret::fill_random;

/// Runs `call` until it succeeds, fails with a non-retryable error, or the
/// policy's attempts are spent. Waits with exponential backoff and full jitter,
/// never less than a provider's `Retry-After` (capped by `max_delay`).
///
/// The only retry layer for a call: an error that says the adapter already
/// retried it ([`ProviderError::already_retried`], the HTTP adapters' own
/// policy) is returned at once, so attempts never multiply; what still fails
/// is left for the reconciler's next pass.
pub(crate) async fn with_retry<T, F, Fut>(
    policy: RetryPolicy,
    operation: &'static str,
    workspace: WorkspaceId,
    mut call: F,
) -> Result<T, ProviderError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, ProviderError>>,
{
    let mut attempt = 1;
    loop {
        match call().await {
            Ok(value) => return Ok(value),
            Err(e) if e.is_retryable() && !e.already_retried() && attempt < policy.max_attempts => {
                let delay = backoff(policy, attempt, e.retry_after());
                tracing::warn!(
                    workspace_id = %workspace,
                    operation,
                    attempt,
                    error_kind = e.kind().code(),
                    delay_ms = delay.as_millis() as u64,
                    "retryable provider error"
                );
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                attempt += 1;
            }
            Err(e) if attempt > 1 => return Err(e.with_attempts(attempt)),
            Err(e) => return Err(e),
        }
    }
}

fn backoff(policy: RetryPolicy, attempt: u32, retry_after: Option<Duration>) -> Duration {
    let exp = policy.initial_delay.saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
    let ceiling = exp.min(policy.max_delay);
    let mut bytes = [0u8; 4];
    let jittered = if fill_random(&mut bytes).is_ok() {
        ceiling.mul_f64(f64::from(u32::from_le_bytes(bytes)) / f64::from(u32::MAX))
    } else {
        ceiling
    };
    match retry_after {
        Some(wait) => jittered.max(wait).min(policy.max_delay),
        None => jittered,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_bounded_and_honours_retry_after() {
        let policy = RetryPolicy {
            max_attempts: 5,
            initial_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(2),
        };
        for attempt in 1..10 {
            let d = backoff(policy, attempt, None);
            assert!(d <= Duration::from_secs(2));
        }
        assert_eq!(backoff(policy, 1, Some(Duration::from_secs(1))), Duration::from_secs(1));
        assert_eq!(backoff(policy, 1, Some(Duration::from_secs(60))), Duration::from_secs(2), "capped");
    }

    async fn calls_until_given_up(error: fn() -> ProviderError) -> (u32, ProviderError) {
        let calls = std::cell::Cell::new(0u32);
        let result: Result<(), _> = with_retry(RetryPolicy::immediate(3), "op", WorkspaceId::new(), || {
            calls.set(calls.get() + 1);
            std::future::ready(Err(error()))
        })
        .await;
        (calls.get(), result.expect_err("never succeeds"))
    }

    #[tokio::test]
    async fn attempts_never_multiply_across_layers() {
        use crate::ports::ProviderErrorKind;
        let (calls, err) = calls_until_given_up(|| ProviderError::new(ProviderErrorKind::Transient, "503")).await;
        assert_eq!(calls, 3, "an adapter that does not retry is retried here");
        assert_eq!(err.attempts(), 3);
        assert!(err.to_string().ends_with("(after 3 attempts)"), "{err}");
        let (calls, err) =
            calls_until_given_up(|| ProviderError::new(ProviderErrorKind::Transient, "503").with_attempts(5)).await;
        assert_eq!(calls, 1, "an adapter that already retried is not retried again");
        assert_eq!(err.attempts(), 5);
    }
}
