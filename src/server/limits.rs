//! Budgets for what an outsider can make the server hold: live subscribers, reads
//! of the store done to catch subscribers up, exports, the text of `ReportStats`
//! streams still being collected, and the bytes of JSON answers being written
//! (a client that does not read cannot hold more). Each is a semaphore: a request that finds its
//! budget spent is refused at once (HTTP 503 with `Retry-After`, gRPC
//! `RESOURCE_EXHAUSTED`), and whatever was admitted gives its share back when it
//! ends, however it ends.

use crate::error::Error;
pub use crate::error::RETRY_AFTER_SECONDS;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Live-stream (SSE) subscribers at once, by default.
pub const DEFAULT_MAX_SUBSCRIBERS: usize = 256;
/// Exports being written at once, by default.
pub const DEFAULT_MAX_EXPORTS: usize = 8;
/// Text (senders and messages) held by all open `ReportStats` streams together,
/// by default.
pub const DEFAULT_MAX_STREAM_TEXT: usize = 256 << 20;
/// Bytes of JSON answers being written at once, by default.
pub const DEFAULT_MAX_ANSWER_BYTES: usize = 64 << 20;
/// Store reads that catch lagging subscribers up, at once: one shared path, not a
/// thread per subscriber.
const CATCH_UP_READS: usize = 2;

/// How large each budget is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitsConfig {
    /// Live-stream subscribers at once (`--max-subscribers`).
    pub max_subscribers: usize,
    /// Exports at once (`--max-exports`).
    pub max_exports: usize,
    /// Bytes the reports of open `ReportStats` streams hold together: their
    /// structures, ids, senders and messages (`--max-stream-text`).
    pub max_stream_text: usize,
    /// Bytes of JSON answers being written at once (`--max-answer-bytes`).
    pub max_answer_bytes: usize,
    /// Connections at once (`--max-connections`; lowered to fit the descriptor
    /// limit).
    pub max_connections: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_subscribers: DEFAULT_MAX_SUBSCRIBERS,
            max_exports: DEFAULT_MAX_EXPORTS,
            max_stream_text: DEFAULT_MAX_STREAM_TEXT,
            max_answer_bytes: DEFAULT_MAX_ANSWER_BYTES,
            max_connections: super::connections::DEFAULT_MAX_CONNECTIONS,
        }
    }
}

/// The budgets in force, shared by every request.
#[derive(Debug)]
pub struct Limits {
    config: LimitsConfig,
    subscribers: Arc<Semaphore>,
    catch_up: Arc<Semaphore>,
    exports: Arc<Semaphore>,
    stream_text: Arc<Semaphore>,
    answers: Arc<Semaphore>,
    /// The most budgeted bytes held at once since [`Limits::take_high_water`].
    high_water: AtomicUsize,
}

/// A share of a budget, given back when dropped.
#[derive(Debug)]
pub struct Share(OwnedSemaphorePermit);

impl Share {
    /// Holds `other`'s share too, to give both back at once.
    pub fn merge(&mut self, other: Share) {
        self.0.merge(other.0);
    }
}

impl Limits {
    /// Budgets of the given sizes.
    pub fn new(config: LimitsConfig) -> Limits {
        let permits = |count: usize| Arc::new(Semaphore::new(count.min(Semaphore::MAX_PERMITS)));
        Limits {
            config,
            subscribers: permits(config.max_subscribers),
            catch_up: permits(CATCH_UP_READS),
            exports: permits(config.max_exports),
            stream_text: permits(config.max_stream_text),
            answers: permits(config.max_answer_bytes),
            high_water: AtomicUsize::new(0),
        }
    }

    /// The sizes.
    pub fn config(&self) -> LimitsConfig {
        self.config
    }

    /// One live-stream subscriber, or `Busy` when there are `max_subscribers`.
    pub fn subscriber(&self) -> Result<Share, Error> {
        self.subscribers
            .clone()
            .try_acquire_owned()
            .map(Share)
            .map_err(|_| {
                Error::Busy(format!(
                    "stream: {} live subscribers already (--max-subscribers); try again later",
                    self.config.max_subscribers
                ))
            })
    }

    /// One export, or `Busy` when `max_exports` are being written.
    pub fn export(&self) -> Result<Share, Error> {
        self.exports
            .clone()
            .try_acquire_owned()
            .map(Share)
            .map_err(|_| {
                Error::Busy(format!(
                    "export: {} exports are being written already (--max-exports); try again later",
                    self.config.max_exports
                ))
            })
    }

    /// Waits for a turn to read the store for a lagging subscriber.
    pub async fn catch_up(&self) -> Share {
        Share(
            self.catch_up
                .clone()
                .acquire_owned()
                .await
                .expect("the catch-up semaphore is never closed"),
        )
    }

    /// Bytes of text open `ReportStats` streams hold now.
    pub fn stream_text_held(&self) -> usize {
        self.config
            .max_stream_text
            .min(Semaphore::MAX_PERMITS)
            .saturating_sub(self.stream_text.available_permits())
    }

    /// Bytes the byte budgets (open `ReportStats` calls, answers being written)
    /// hold now.
    pub fn held_bytes(&self) -> usize {
        self.stream_text_held() + self.answer_bytes_held()
    }

    /// The most bytes the byte budgets held at once since [`Limits::reset_high_water`]
    /// (at least what they hold now).
    pub fn high_water(&self) -> usize {
        self.high_water
            .fetch_max(self.held_bytes(), Ordering::Relaxed)
            .max(self.held_bytes())
    }

    /// Starts the count of [`Limits::high_water`] again from what is held now.
    pub fn reset_high_water(&self) {
        self.high_water.store(self.held_bytes(), Ordering::Relaxed);
    }

    /// `bytes` more for an open `ReportStats` stream's reports, or `Busy` when all
    /// open streams together would hold more than `max_stream_text`.
    pub fn stream_text(&self, bytes: usize) -> Result<Share, Error> {
        let bytes = u32::try_from(bytes).unwrap_or(u32::MAX);
        let share = self.stream_text.clone().try_acquire_many_owned(bytes);
        self.high_water
            .fetch_max(self.held_bytes(), Ordering::Relaxed);
        share
            .map(Share)
            .map_err(|_| {
                Error::Busy(format!(
                    "stream: open ReportStats calls hold {} bytes of reports already (--max-stream-text); \
                     nothing of this stream was stored, try again later",
                    self.config.max_stream_text
                ))
            })
    }

    /// The most bytes one answer is counted for: an answer larger than the whole
    /// budget is written when it has the budget to itself.
    fn answer_cost(&self, bytes: usize) -> u32 {
        let whole = self.config.max_answer_bytes.min(Semaphore::MAX_PERMITS);
        u32::try_from(bytes.min(whole)).unwrap_or(u32::MAX)
    }

    /// `bytes` of a JSON answer about to be written, or `Busy` when the answers
    /// being written would hold more than `max_answer_bytes` together.
    pub fn answer(&self, bytes: usize) -> Result<Share, Error> {
        let share = self
            .answers
            .clone()
            .try_acquire_many_owned(self.answer_cost(bytes));
        self.high_water
            .fetch_max(self.held_bytes(), Ordering::Relaxed);
        share.map(Share).map_err(|_| {
            Error::Busy(format!(
                "answer: answers of {} bytes in all are being written already \
                     (--max-answer-bytes); try again later",
                self.config.max_answer_bytes
            ))
        })
    }

    /// Bytes of JSON answers being written now.
    pub fn answer_bytes_held(&self) -> usize {
        self.config
            .max_answer_bytes
            .min(Semaphore::MAX_PERMITS)
            .saturating_sub(self.answers.available_permits())
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits::new(LimitsConfig::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spent_budget_refuses_until_a_share_comes_back() {
        let limits = Limits::new(LimitsConfig {
            max_subscribers: 2,
            max_exports: 1,
            max_stream_text: 100,
            max_answer_bytes: 1_000,
            max_connections: 10,
        });
        let first = limits.subscriber().unwrap();
        let _second = limits.subscriber().unwrap();
        assert!(
            matches!(limits.subscriber(), Err(Error::Busy(text)) if text.contains("--max-subscribers"))
        );
        drop(first);
        assert!(limits.subscriber().is_ok());
        let export = limits.export().unwrap();
        assert!(limits.export().is_err());
        drop(export);
        let text = limits.stream_text(60).unwrap();
        assert!(limits.stream_text(60).is_err());
        let _more = limits.stream_text(40).unwrap();
        drop(text);
        assert!(limits.stream_text(60).is_ok());
        let answer = limits.answer(700).unwrap();
        assert!(
            matches!(limits.answer(400), Err(Error::Busy(text)) if text.contains("--max-answer-bytes"))
        );
        assert_eq!(limits.answer_bytes_held(), 700);
        drop(answer);
        // Larger than the whole budget: written when it has the budget to itself.
        let huge = limits.answer(5_000).unwrap();
        assert!(limits.answer(1).is_err());
        drop(huge);
        assert_eq!(limits.answer_bytes_held(), 0);
    }
}
