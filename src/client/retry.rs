//! `RetryPolicy`: how often and how patiently a report is retried.

use rand::Rng;
use std::future::Future;
use std::time::Duration;
use tonic::{Code, Status};

/// How long to wait between attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backoff {
    /// A uniformly random pause from `min` to `max` inclusive (the seed: 5–15 ms).
    Uniform {
        /// Shortest pause.
        min: Duration,
        /// Longest pause.
        max: Duration,
    },
    /// Exponential backoff with full jitter: before retry `n` (from 0), a random
    /// pause from 0 to `min(max, initial × 2ⁿ)`.
    Exponential {
        /// The cap of the first pause.
        initial: Duration,
        /// The cap of every pause.
        max: Duration,
    },
}

/// How a report is retried: at most `max_retries` retries after the first attempt,
/// `backoff` between attempts, each attempt bounded by `attempt_timeout`. Only
/// failures that can succeed on retry are retried (see [`is_retryable`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt (the seed's cap: 50).
    pub max_retries: u32,
    /// The pause between attempts.
    pub backoff: Backoff,
    /// The deadline of one attempt; `None` waits as long as the call takes.
    pub attempt_timeout: Option<Duration>,
}

/// The seed's behaviour: up to 50 retries, 5–15 ms apart, 5 s per attempt.
impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 50,
            backoff: Backoff::Uniform {
                min: Duration::from_millis(5),
                max: Duration::from_millis(15),
            },
            attempt_timeout: Some(Duration::from_secs(5)),
        }
    }
}

impl RetryPolicy {
    /// A single attempt, never retried.
    pub fn never() -> Self {
        RetryPolicy {
            max_retries: 0,
            ..RetryPolicy::default()
        }
    }

    /// Up to `max_retries` retries with exponential backoff and full jitter, from
    /// `initial` up to `max` between attempts.
    pub fn exponential(max_retries: u32, initial: Duration, max: Duration) -> Self {
        RetryPolicy {
            max_retries,
            backoff: Backoff::Exponential { initial, max },
            ..RetryPolicy::default()
        }
    }

    /// The pause before retry number `retry` (from 0).
    pub fn delay(&self, retry: u32) -> Duration {
        let mut rng = rand::rng();
        match self.backoff {
            Backoff::Uniform { min, max } => rng.random_range(min..=max.max(min)),
            Backoff::Exponential { initial, max } => {
                let cap = initial
                    .saturating_mul(2u32.saturating_pow(retry.min(31)))
                    .min(max);
                rng.random_range(Duration::ZERO..=cap)
            }
        }
    }

    /// Runs `attempt` until it succeeds, fails with a status not worth retrying, or
    /// the retries are used up; returns the last outcome.
    pub async fn run<T, F, Fut>(&self, attempt: F) -> Result<T, Status>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, Status>>,
    {
        self.run_observed(attempt, |_| {}).await
    }

    /// [`RetryPolicy::run`], calling `failed` with the status of every failed
    /// attempt (a timed-out one included), retried or not, before the pause.
    pub(crate) async fn run_observed<T, F, Fut>(
        &self,
        mut attempt: F,
        mut failed: impl FnMut(&Status),
    ) -> Result<T, Status>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, Status>>,
    {
        let mut retry = 0;
        loop {
            let outcome = match self.attempt_timeout {
                Some(limit) => tokio::time::timeout(limit, attempt())
                    .await
                    .unwrap_or_else(|_| {
                        Err(Status::deadline_exceeded(format!(
                            "no answer within {limit:?}"
                        )))
                    }),
                None => attempt().await,
            };
            if let Err(status) = &outcome {
                failed(status);
            }
            match outcome {
                Err(status) if retry < self.max_retries && is_retryable(&status) => {
                    tracing::debug!(retry, %status, "retrying report");
                    tokio::time::sleep(self.delay(retry)).await;
                    retry += 1;
                }
                outcome => return outcome,
            }
        }
    }
}

/// Whether a failure can succeed on retry: the server was unreachable or busy, the
/// attempt timed out or was aborted, or the connection broke (any status carrying
/// a transport error, e.g. `CANCELLED` "connection closed" when the server shut
/// down mid-call). Never `INVALID_ARGUMENT` and the like.
pub fn is_retryable(status: &Status) -> bool {
    let transport = || {
        std::error::Error::source(status)
            .is_some_and(|source| source.is::<tonic::transport::Error>())
    };
    match status.code() {
        Code::Unavailable | Code::DeadlineExceeded | Code::ResourceExhausted | Code::Aborted => {
            true
        }
        _ => transport(),
    }
}

/// Sleeps for a uniformly random 5 to 15 ms (inclusive), as the seed's
/// `RandomShortSleep` did between attempts.
pub async fn random_short_sleep() {
    let millis = rand::rng().random_range(5..=15);
    tokio::time::sleep(Duration::from_millis(millis)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uniform_delays_stay_in_range() {
        let policy = RetryPolicy::default();
        for retry in 0..1000 {
            let delay = policy.delay(retry);
            assert!((5..=15).contains(&delay.as_millis()), "{delay:?}");
        }
    }

    #[test]
    fn exponential_delays_grow_to_the_cap() {
        let policy =
            RetryPolicy::exponential(10, Duration::from_millis(10), Duration::from_millis(100));
        assert!((0..200).all(|_| policy.delay(0) <= Duration::from_millis(10)));
        assert!((0..200).all(|_| policy.delay(30) <= Duration::from_millis(100)));
        assert!((0..200).any(|_| policy.delay(5) > Duration::from_millis(50)));
    }

    #[test]
    fn only_transient_codes_are_retryable() {
        assert!(is_retryable(&Status::unavailable("down")));
        assert!(is_retryable(&Status::deadline_exceeded("slow")));
        assert!(!is_retryable(&Status::invalid_argument("bad")));
        assert!(!is_retryable(&Status::unauthenticated("who")));
        assert!(!is_retryable(&Status::unknown("plain unknown")));
    }

    #[tokio::test]
    async fn every_failed_attempt_is_observed_a_timed_out_one_included() {
        let policy = RetryPolicy {
            max_retries: 2,
            backoff: Backoff::Uniform {
                min: Duration::ZERO,
                max: Duration::ZERO,
            },
            attempt_timeout: Some(Duration::from_millis(20)),
        };
        let mut attempts = 0;
        let mut observed = Vec::new();
        let outcome: Result<(), Status> = policy
            .run_observed(
                || {
                    attempts += 1;
                    let attempt = attempts;
                    async move {
                        match attempt {
                            1 => std::future::pending().await,
                            2 => Err(Status::unavailable("down")),
                            _ => Err(Status::invalid_argument("bad")),
                        }
                    }
                },
                |status| observed.push(status.code()),
            )
            .await;
        assert_eq!(outcome.unwrap_err().code(), Code::InvalidArgument);
        assert_eq!(
            observed,
            [
                Code::DeadlineExceeded,
                Code::Unavailable,
                Code::InvalidArgument
            ]
        );
    }

    #[tokio::test]
    async fn the_cap_counts_retries_after_the_first_attempt() {
        let policy = RetryPolicy {
            max_retries: 3,
            backoff: Backoff::Uniform {
                min: Duration::ZERO,
                max: Duration::ZERO,
            },
            attempt_timeout: None,
        };
        let mut attempts = 0;
        let outcome: Result<(), Status> = policy
            .run(|| {
                attempts += 1;
                async { Err(Status::unavailable("down")) }
            })
            .await;
        assert_eq!(outcome.unwrap_err().code(), Code::Unavailable);
        assert_eq!(attempts, 4);
    }
}
