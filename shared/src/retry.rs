//! Retry policy for publishing: 3 retries with exponential backoff from 100 ms to 5 s.
//! Whole calls are retried by the SDK with the same numbers; failed batch entries by us.

use std::time::Duration;

use aws_smithy_types::retry::RetryConfig;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub retries: u32,
    pub initial: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            retries: 3,
            initial: Duration::from_millis(100),
            max: Duration::from_secs(5),
        }
    }
}

impl Backoff {
    /// Delay before retry number `attempt` (0-based): initial × 2^attempt, capped.
    pub fn delay(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt);
        self.initial.saturating_mul(factor).min(self.max)
    }

    /// A random delay from zero to `delay(attempt)` ("full jitter"), so that racing
    /// writers retrying together spread out.
    pub fn jittered(&self, attempt: u32) -> Duration {
        use std::hash::BuildHasher;
        let random = std::collections::hash_map::RandomState::new().hash_one(attempt);
        let ceiling = self.delay(attempt).as_nanos() as u64;
        Duration::from_nanos(random % ceiling.max(1))
    }

    /// The SDK's standard retry mode with these numbers; it retries only transient errors
    /// (throttling, 5xx, timeouts, connection failures), never validation errors.
    pub fn sdk_retry_config(&self) -> RetryConfig {
        RetryConfig::standard()
            .with_max_attempts(self.retries + 1)
            .with_initial_backoff(self.initial)
            .with_max_backoff(self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn when_attempts_grow_should_double_the_delay_up_to_the_cap() {
        let backoff = Backoff::default();
        let delays: Vec<_> = (0..8).map(|a| backoff.delay(a).as_millis()).collect();
        assert_eq!(delays, [100, 200, 400, 800, 1600, 3200, 5000, 5000]);
    }

    #[test]
    fn when_jittered_should_stay_below_the_delay_and_spread() {
        let backoff = Backoff::default();
        let delays: Vec<Duration> = (0..50).map(|_| backoff.jittered(3)).collect();
        assert!(delays.iter().all(|d| *d < backoff.delay(3)), "{delays:?}");
        let distinct: std::collections::HashSet<_> = delays.iter().collect();
        assert!(distinct.len() > 40, "{delays:?}");
    }
}
