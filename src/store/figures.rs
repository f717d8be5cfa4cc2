//! Finished runs' headline figures ([`RunFigures`]: a few hundred bytes a run),
//! kept for the [`FIGURES_KEPT`] runs whose figures were computed last, so that a
//! sweep across many runs reads them without building any run's analysis again. A
//! finished run gets no new reports; it only loses some when the memory bound
//! evicts them, so figures are kept with the run's evicted count and computed again
//! when it changed. The current run's are computed afresh each time.

use crate::analysis::sweep::RunFigures;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

/// Finished runs whose figures are kept (about 1 KiB each at most).
pub const FIGURES_KEPT: usize = 4096;

/// The kept figures.
#[derive(Default)]
pub(super) struct Figures {
    kept: Mutex<Kept>,
}

/// Figures by run id, and the runs in the order they were first kept in.
#[derive(Default)]
struct Kept {
    /// Figures, and the run's evicted count when they were computed.
    by_run: HashMap<u64, (u64, Arc<RunFigures>)>,
    order: VecDeque<u64>,
}

impl Figures {
    /// Run `run`'s figures, if kept and computed while it had `evicted` reports evicted.
    pub(super) fn get(&self, run: u64, evicted: u64) -> Option<Arc<RunFigures>> {
        let kept = self.kept.lock().expect("figures lock");
        match kept.by_run.get(&run) {
            Some((at, figures)) if *at == evicted => Some(figures.clone()),
            _ => None,
        }
    }

    /// Keeps `figures` as run `run`'s with `evicted` reports evicted, forgetting the
    /// oldest beyond [`FIGURES_KEPT`].
    pub(super) fn keep(&self, run: u64, evicted: u64, figures: Arc<RunFigures>) {
        let mut kept = self.kept.lock().expect("figures lock");
        let Kept { by_run, order } = &mut *kept;
        if by_run.insert(run, (evicted, figures)).is_none() {
            order.push_back(run);
        }
        while order.len() > FIGURES_KEPT {
            if let Some(oldest) = order.pop_front() {
                by_run.remove(&oldest);
            }
        }
    }
}
