//! Who waits for a message this server published: by the message's id, until
//! this server has applied it (`materialise` hands over what the store said) or
//! its publishing failed. Answers come from the store, so a report already stored
//! (sent again, or at once through another server) is answered as the duplicate
//! it is, with the seq every server stores it at.

use crate::error::Error;
use crate::store::{Receipt, RunInfo};
use std::collections::HashMap;
use std::sync::Mutex;
use tokio::sync::{OwnedSemaphorePermit, oneshot};

/// Where one piece of a call's reports is answered.
pub(super) type PieceReply = oneshot::Sender<Result<Vec<Receipt>, Error>>;

/// One piece of a call in a published batch: how many of its reports are in it,
/// where they are answered, and their share of the budget of reports awaiting,
/// held until they are answered (whether or not the caller still waits).
pub(super) struct PieceWaiter {
    pub count: usize,
    pub reply: PieceReply,
    pub _budget: Option<OwnedSemaphorePermit>,
}

/// What the publisher of one message waits for.
pub(super) enum Waiter {
    /// The receipts of a batch's reports: for each piece joined into it, in order,
    /// how many of its reports are in the batch and where they are answered.
    Reports(Vec<PieceWaiter>),
    /// The run a run's start or labels message made or changed.
    Run(oneshot::Sender<Result<RunInfo, Error>>),
}

impl Waiter {
    /// Answers every piece or the run with `error`.
    pub(super) fn fail(self, error: &Error) {
        match self {
            Waiter::Reports(pieces) => {
                for piece in pieces {
                    let _ = piece.reply.send(Err(error.clone()));
                }
            }
            Waiter::Run(reply) => {
                let _ = reply.send(Err(error.clone()));
            }
        }
    }

    /// Answers a batch's pieces with `receipts`, one a report in the batch's order;
    /// a waiter of something else (or a count that does not match) fails instead.
    pub(super) fn deliver(self, receipts: Vec<Receipt>) {
        match self {
            Waiter::Reports(pieces)
                if pieces.iter().map(|piece| piece.count).sum::<usize>() == receipts.len() =>
            {
                let mut receipts = receipts.into_iter();
                for piece in pieces {
                    let _ = piece
                        .reply
                        .send(Ok(receipts.by_ref().take(piece.count).collect()));
                }
            }
            other => other.fail(&Error::Unavailable(
                "the stream's message was applied here but not as the reports sent: retry".into(),
            )),
        }
    }

    /// Answers a run's message with what applying it gave.
    pub(super) fn deliver_run(self, outcome: Result<RunInfo, Error>) {
        match (self, outcome) {
            (Waiter::Run(reply), outcome) => {
                let _ = reply.send(outcome);
            }
            (other, _) => other.fail(&Error::Unavailable(
                "the stream's message was applied here as a run, not as reports: retry".into(),
            )),
        }
    }
}

/// The waiters of messages published here and not yet applied or failed.
#[derive(Default)]
pub(super) struct Waiters {
    by_id: Mutex<HashMap<Box<str>, Waiter>>,
}

impl Waiters {
    /// Waits for the message published with `id`.
    pub(super) fn insert(&self, id: &str, waiter: Waiter) {
        self.by_id
            .lock()
            .expect("waiters lock")
            .insert(id.into(), waiter);
    }

    /// The waiter of the message with `id`, if it still waits.
    pub(super) fn take(&self, id: &str) -> Option<Waiter> {
        self.by_id.lock().expect("waiters lock").remove(id)
    }

    /// How many messages are waited for.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.by_id.lock().expect("waiters lock").len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn receipt(seq: u64) -> Receipt {
        Receipt {
            seq,
            duplicate: false,
            run: Arc::from("r"),
        }
    }

    fn piece(count: usize, reply: PieceReply) -> PieceWaiter {
        PieceWaiter {
            count,
            reply,
            _budget: None,
        }
    }

    #[test]
    fn a_batch_answers_each_piece_its_own_receipts() {
        let waiters = Waiters::default();
        let (first, mut first_rx) = oneshot::channel();
        let (second, mut second_rx) = oneshot::channel();
        waiters.insert(
            "m",
            Waiter::Reports(vec![piece(2, first), piece(1, second)]),
        );
        assert!(waiters.take("other").is_none());
        waiters
            .take("m")
            .unwrap()
            .deliver(vec![receipt(5), receipt(6), receipt(7)]);
        assert_eq!(waiters.len(), 0);
        assert_eq!(
            first_rx.try_recv().unwrap().unwrap(),
            [receipt(5), receipt(6)]
        );
        assert_eq!(second_rx.try_recv().unwrap().unwrap(), [receipt(7)]);
    }

    #[test]
    fn receipts_that_do_not_match_the_pieces_fail_them() {
        let (first, mut first_rx) = oneshot::channel();
        Waiter::Reports(vec![piece(2, first)]).deliver(vec![receipt(5)]);
        assert!(matches!(
            first_rx.try_recv().unwrap(),
            Err(Error::Unavailable(_))
        ));
    }
}
