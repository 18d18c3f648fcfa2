//! Per-connection rate limiting: a token bucket over client messages, and the point at which a client
//! that keeps flooding is closed rather than answered.

use tokio::time::Instant;

use crate::config::RateLimit;

/// What to do with one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admit {
    /// Within the rate.
    Allowed,
    /// Over the rate: refuse it. `first` is true for the first refusal after an allowed message.
    Limited { first: bool },
    /// Over the rate too many times in a row: close the connection (said once).
    Exceeded,
}

/// The bucket of one connection.
#[derive(Debug)]
pub(crate) struct Bucket {
    limit: RateLimit,
    tokens: f64,
    last: Instant,
    /// Refusals since the last allowed message.
    refused: u32,
}

impl Bucket {
    pub(crate) fn new(limit: RateLimit, now: Instant) -> Self {
        Bucket {
            tokens: f64::from(limit.burst),
            limit,
            last: now,
            refused: 0,
        }
    }

    /// Takes a token for one message arriving at `now`.
    pub(crate) fn take(&mut self, now: Instant) -> Admit {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * f64::from(self.limit.per_second))
            .min(f64::from(self.limit.burst));
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            self.refused = 0;
            return Admit::Allowed;
        }
        self.refused = self.refused.saturating_add(1);
        if self.refused == self.limit.close_after {
            return Admit::Exceeded;
        }
        Admit::Limited {
            first: self.refused == 1,
        }
    }

    /// Milliseconds until the next token.
    pub(crate) fn retry_after_ms(&self) -> u64 {
        let missing = (1.0 - self.tokens).max(0.0);
        (missing / f64::from(self.limit.per_second) * 1000.0).ceil() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::time::Duration;

    fn limit() -> RateLimit {
        RateLimit {
            per_second: 10,
            burst: 3,
            close_after: 5,
        }
    }

    #[test]
    fn allows_a_burst_then_the_rate() {
        let start = Instant::now();
        let mut bucket = Bucket::new(limit(), start);
        for _ in 0..3 {
            assert_eq!(bucket.take(start), Admit::Allowed);
        }
        assert_eq!(bucket.take(start), Admit::Limited { first: true });
        assert_eq!(bucket.take(start), Admit::Limited { first: false });
        assert_eq!(bucket.retry_after_ms(), 100);
        assert_eq!(
            bucket.take(start + Duration::from_millis(100)),
            Admit::Allowed
        );
    }

    #[test]
    fn a_client_that_keeps_flooding_is_told_to_go_once() {
        let start = Instant::now();
        let mut bucket = Bucket::new(limit(), start);
        let verdicts: Vec<Admit> = (0..10).map(|_| bucket.take(start)).collect();
        assert_eq!(
            verdicts.iter().filter(|v| **v == Admit::Exceeded).count(),
            1
        );
        assert_eq!(verdicts[7], Admit::Exceeded);
    }
}
