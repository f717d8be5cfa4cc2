//! The memory backend: reports in RAM, oldest evicted beyond a bound, gone when the
//! process ends. Shared between the writer thread and readers behind a `RwLock`
//! that the writer holds only while it appends a batch.

use super::{Inserted, Query, Reader, Report, RunInfo, Writer};
use crate::error::Error;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

#[derive(Default)]
struct Data {
    /// Kept reports in seq order.
    reports: VecDeque<Arc<Report>>,
    /// `report_id` → (seq, run) of every kept report.
    by_id: HashMap<String, (u64, u64)>,
    next_seq: u64,
    next_run: u64,
}

/// The writer half.
pub(super) struct MemoryWriter {
    data: Arc<RwLock<Data>>,
    max_reports: usize,
    evicted: Arc<AtomicU64>,
}

/// The reader half.
pub(super) struct MemoryReader {
    data: Arc<RwLock<Data>>,
}

/// An empty memory store keeping at most `max_reports`; `evicted` counts the rest.
pub(super) fn open(max_reports: usize, evicted: Arc<AtomicU64>) -> (MemoryWriter, MemoryReader) {
    let data = Arc::new(RwLock::new(Data {
        next_seq: 1,
        next_run: 1,
        ..Data::default()
    }));
    (
        MemoryWriter {
            data: data.clone(),
            max_reports: max_reports.max(1),
            evicted,
        },
        MemoryReader { data },
    )
}

impl Writer for MemoryWriter {
    fn load_runs(&mut self) -> Result<Vec<RunInfo>, Error> {
        Ok(Vec::new())
    }

    fn last_seq(&mut self) -> Result<u64, Error> {
        Ok(0)
    }

    fn create_run(&mut self, _name: &str, _started_unix_nano: i64) -> Result<u64, Error> {
        let mut data = self.data.write().expect("memory lock");
        let id = data.next_run;
        data.next_run += 1;
        Ok(id)
    }

    fn insert(&mut self, reports: Vec<Report>) -> Result<Vec<Inserted>, Error> {
        let mut data = self.data.write().expect("memory lock");
        let mut outcomes = Vec::with_capacity(reports.len());
        for mut report in reports {
            if let Some(&(seq, run)) = data.by_id.get(&report.report_id) {
                outcomes.push(Inserted::Duplicate { seq, run });
                continue;
            }
            report.seq = data.next_seq;
            data.next_seq += 1;
            data.by_id
                .insert(report.report_id.clone(), (report.seq, report.run));
            let report = Arc::new(report);
            data.reports.push_back(report.clone());
            outcomes.push(Inserted::New(report));
        }
        while data.reports.len() > self.max_reports {
            if let Some(old) = data.reports.pop_front() {
                data.by_id.remove(&old.report_id);
                self.evicted.fetch_add(1, Ordering::Relaxed);
            }
        }
        Ok(outcomes)
    }
}

impl Reader for MemoryReader {
    fn query(&self, query: &Query) -> Result<Vec<Arc<Report>>, Error> {
        let data = self.data.read().expect("memory lock");
        let start = data
            .reports
            .partition_point(|report| report.seq <= query.after);
        Ok(data
            .reports
            .range(start..)
            .filter(|report| query.matches(report))
            .take(query.limit)
            .cloned()
            .collect())
    }
}
