//! How long to wait before trying a transient failure again: exponential, with jitter, and
//! never sooner than the backend asked (`Retry-After`).

use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The wait after the first failure (before jitter).
    pub base: Duration,
    /// The longest wait.
    pub max: Duration,
}

impl Backoff {
    /// The wait before attempt `failures + 1`: between half and all of `base * 2^failures`
    /// (capped at `max`), chosen at random so that items that failed together do not come back
    /// together; at least `retry_after`.
    pub fn delay(&self, failures: u32, retry_after: Option<Duration>) -> Duration {
        let ceiling = self
            .base
            .saturating_mul(1u32 << failures.min(20))
            .min(self.max);
        let half = ceiling / 2;
        let jitter = half.mul_f64(random_fraction());
        (half + jitter).max(retry_after.unwrap_or(Duration::ZERO))
    }
}

/// A number in [0, 1) from the operating system's randomness (through a v4 UUID, which nmp
/// already depends on).
pub fn random_fraction() -> f64 {
    let bits = (uuid::Uuid::new_v4().as_u128() >> 75) as u64; // 53 random bits
    bits as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    const BACKOFF: Backoff = Backoff {
        base: Duration::from_millis(100),
        max: Duration::from_secs(10),
    };

    #[test]
    fn the_wait_doubles_with_each_failure_within_its_jitter() {
        for failures in 0..5 {
            let ceiling = Duration::from_millis(100 * (1 << failures));
            for _ in 0..50 {
                let delay = BACKOFF.delay(failures, None);
                assert!(delay >= ceiling / 2 && delay <= ceiling, "{delay:?}");
            }
        }
    }

    #[test]
    fn the_wait_is_capped() {
        assert!(BACKOFF.delay(40, None) <= Duration::from_secs(10));
    }

    #[test]
    fn retry_after_is_honoured() {
        assert!(BACKOFF.delay(0, Some(Duration::from_secs(7))) >= Duration::from_secs(7));
    }

    #[test]
    fn the_jitter_varies() {
        let delays: std::collections::HashSet<Duration> =
            (0..20).map(|_| BACKOFF.delay(3, None)).collect();
        assert!(delays.len() > 1);
    }
}
