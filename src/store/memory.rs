//! The memory backend: reports in RAM, oldest evicted beyond a bound, gone when the
//! process ends. Shared between the committer and readers behind a `RwLock` that
//! is held for writing only while a batch is appended.
//!
//! Reports are kept compact (72 bytes plus the message's allocation, against about
//! 320 as `Arc<Report>`): senders interned, UUID report ids as 16 bytes, and the
//! idempotency index keyed by a 64-bit hash of the id.

use super::backend::{Inserted, Reader, StreamPosition, Writer};
use super::{Query, RunInfo};
use crate::error::Error;
use crate::intern::Interner;
use crate::labels::Labels;
use crate::pb::Event;
use crate::report::Report;
use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher;
use std::sync::{Arc, RwLock};

type Hasher = foldhash::fast::RandomState;

/// A report id as kept: a canonical (lower-case, hyphenated) UUID as its 16 bytes
/// (a byte array, not `u128`, so it needs no 16-byte alignment), anything else as
/// text.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum ReportId {
    Uuid([u8; 16]),
    Text(Box<str>),
}

impl ReportId {
    fn new(text: &str) -> ReportId {
        let mut canonical = [0u8; uuid::fmt::Hyphenated::LENGTH];
        match uuid::Uuid::try_parse(text) {
            Ok(uuid)
                if uuid.hyphenated().encode_lower(&mut canonical).as_bytes() == text.as_bytes() =>
            {
                ReportId::Uuid(*uuid.as_bytes())
            }
            _ => ReportId::Text(text.into()),
        }
    }

    fn to_text(&self) -> String {
        match self {
            ReportId::Uuid(bytes) => uuid::Uuid::from_bytes(*bytes).hyphenated().to_string(),
            ReportId::Text(text) => text.to_string(),
        }
    }
}

/// One kept report; its seq is implied by its position. Run 0 (no run has that
/// id) marks a hole: a seq of a stream's message that holds no report.
struct Kept {
    run: u32,
    sender: u32,
    event: Event,
    time_unix_nano: i64,
    received_unix_nano: i64,
    message: Box<str>,
    report_id: ReportId,
}

#[derive(Default)]
struct Data {
    /// Kept reports; `reports[i]` has seq `first_seq + i` (seqs are dense here).
    reports: VecDeque<Kept>,
    first_seq: u64,
    /// Hash of a report id → seq of the kept report with that id.
    by_hash: HashMap<u64, u64, Hasher>,
    /// Report id → seq, for the rare id whose hash another kept id already has.
    collided: HashMap<ReportId, u64, Hasher>,
    hasher: Hasher,
    senders: Interner,
    next_run: u64,
    /// The highest seq taken by a stream's run message or hole not kept yet
    /// (holes are kept when the next report comes).
    taken: u64,
    /// The stream this store holds, once claimed.
    source: Option<String>,
    /// How far that stream is applied, as last recorded.
    position: Option<StreamPosition>,
}

impl Kept {
    fn hole() -> Kept {
        Kept {
            run: 0,
            sender: 0,
            event: Event::Unspecified,
            time_unix_nano: 0,
            received_unix_nano: 0,
            message: Box::default(),
            report_id: ReportId::Text(Box::default()),
        }
    }

    fn is_hole(&self) -> bool {
        self.run == 0
    }
}

impl Data {
    /// Marks every seq below `seq` not kept yet as a hole. A gap as long as the
    /// bound evicts everything kept instead (it would, hole by hole) and jumps.
    fn fill_to(&mut self, seq: u64, max_reports: usize, evicted: &mut Vec<u64>) {
        let gap = seq.saturating_sub(self.next_seq());
        if gap >= max_reports as u64 {
            while let Some(old) = self.reports.pop_front() {
                let seq = self.first_seq;
                self.first_seq += 1;
                if !old.is_hole() {
                    self.forget(&old.report_id, seq);
                    evicted.push(u64::from(old.run));
                }
            }
            self.first_seq = seq;
        }
        while self.next_seq() < seq {
            self.reports.push_back(Kept::hole());
        }
    }

    fn get(&self, seq: u64) -> Option<&Kept> {
        let index = seq.checked_sub(self.first_seq)?;
        self.reports.get(usize::try_from(index).ok()?)
    }

    fn next_seq(&self) -> u64 {
        self.first_seq + self.reports.len() as u64
    }

    /// The seq of the kept report whose id is `id`, if any.
    fn find(&self, id: &ReportId) -> Option<u64> {
        let hash = self.hasher.hash_one(id);
        let owner = self.by_hash.get(&hash).copied();
        owner
            .filter(|seq| self.get(*seq).is_some_and(|kept| kept.report_id == *id))
            .or_else(|| self.collided.get(id).copied())
    }

    fn remember(&mut self, id: &ReportId, seq: u64) {
        let hash = self.hasher.hash_one(id);
        match self.by_hash.entry(hash) {
            std::collections::hash_map::Entry::Occupied(_) => {
                self.collided.insert(id.clone(), seq);
            }
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(seq);
            }
        }
    }

    fn forget(&mut self, id: &ReportId, seq: u64) {
        if self.collided.remove(id).is_none() {
            let hash = self.hasher.hash_one(id);
            if self.by_hash.get(&hash) == Some(&seq) {
                self.by_hash.remove(&hash);
            }
        }
    }

    fn report(&self, seq: u64, kept: &Kept) -> Report {
        Report {
            seq,
            run: u64::from(kept.run),
            time_unix_nano: kept.time_unix_nano,
            received_unix_nano: kept.received_unix_nano,
            sender: self.senders.name(kept.sender).to_string(),
            event: kept.event,
            message: kept.message.to_string(),
            report_id: kept.report_id.to_text(),
        }
    }
}

/// The writer half.
pub(super) struct MemoryWriter {
    data: Arc<RwLock<Data>>,
    max_reports: usize,
}

/// The reader half.
pub(super) struct MemoryReader {
    data: Arc<RwLock<Data>>,
}

/// An empty memory store keeping at most `max_reports`.
pub(super) fn open(max_reports: usize) -> (MemoryWriter, MemoryReader) {
    let data = Arc::new(RwLock::new(Data {
        first_seq: 1,
        next_run: 1,
        ..Data::default()
    }));
    (
        MemoryWriter {
            data: data.clone(),
            max_reports: max_reports.max(1),
        },
        MemoryReader { data },
    )
}

impl Writer for MemoryWriter {
    fn load_runs(&mut self) -> Result<Vec<RunInfo>, Error> {
        Ok(Vec::new())
    }

    fn last_seq(&mut self) -> Result<u64, Error> {
        let data = self.data.read().expect("memory lock");
        Ok((data.next_seq() - 1).max(data.taken))
    }

    fn create_run(
        &mut self,
        _name: &str,
        _started_unix_nano: i64,
        first_seq: u64,
        _labels: &Labels,
    ) -> Result<u64, Error> {
        let mut data = self.data.write().expect("memory lock");
        // A stream's run message sits at first_seq - 1.
        data.taken = data.taken.max(first_seq - 1);
        let id = data.next_run;
        data.next_run += 1;
        Ok(id)
    }

    fn insert(&mut self, reports: Vec<Report>) -> Result<(Vec<Inserted>, Vec<u64>), Error> {
        let mut data = self.data.write().expect("memory lock");
        let mut outcomes = Vec::with_capacity(reports.len());
        let mut evicted = Vec::new();
        for mut report in reports {
            let report_id = ReportId::new(&report.report_id);
            if let Some(seq) = data.find(&report_id) {
                let run = data.get(seq).map_or(report.run, |kept| u64::from(kept.run));
                outcomes.push(Inserted::Duplicate { seq, run });
                if report.seq != 0 {
                    data.fill_to(report.seq + 1, self.max_reports, &mut evicted);
                }
                continue;
            }
            data.fill_to(report.seq, self.max_reports, &mut evicted);
            report.seq = data.next_seq();
            data.remember(&report_id, report.seq);
            let sender = data.senders.intern(&report.sender);
            data.reports.push_back(Kept {
                run: u32::try_from(report.run).unwrap_or(u32::MAX),
                sender,
                event: report.event,
                time_unix_nano: report.time_unix_nano,
                received_unix_nano: report.received_unix_nano,
                message: report.message.as_str().into(),
                report_id,
            });
            outcomes.push(Inserted::New(Arc::new(report)));
        }
        while data.reports.len() > self.max_reports {
            let seq = data.first_seq;
            let old = data.reports.pop_front().expect("more than max_reports");
            data.first_seq += 1;
            if !old.is_hole() {
                data.forget(&old.report_id, seq);
                evicted.push(u64::from(old.run));
            }
        }
        Ok((outcomes, evicted))
    }

    fn skip(&mut self, seq: u64) -> Result<(), Error> {
        let mut data = self.data.write().expect("memory lock");
        data.taken = data.taken.max(seq);
        Ok(())
    }

    /// Runs are kept by the store itself: nothing to record here.
    fn stream_position(&mut self) -> Result<Option<StreamPosition>, Error> {
        Ok(self.data.read().expect("memory lock").position)
    }

    fn set_stream_position(&mut self, position: StreamPosition) -> Result<(), Error> {
        self.data.write().expect("memory lock").position = Some(position);
        Ok(())
    }

    fn set_run_start(&mut self, _id: u64, _started_unix_nano: i64) -> Result<(), Error> {
        Ok(())
    }

    /// Runs are kept by the store itself: nothing to record here.
    fn set_labels(&mut self, _id: u64, _labels: &Labels) -> Result<(), Error> {
        Ok(())
    }

    fn source(&mut self) -> Result<(Option<String>, bool), Error> {
        let data = self.data.read().expect("memory lock");
        let reports = data.reports.iter().any(|kept| !kept.is_hole());
        Ok((data.source.clone(), reports))
    }

    /// A memory store starts empty, so it takes any stream first, and then only
    /// that one for as long as the process lives.
    fn claim(&mut self, source: Option<&str>) -> Result<(), Error> {
        let mut data = self.data.write().expect("memory lock");
        match (data.source.as_deref(), source) {
            (recorded, source) if recorded == source => Ok(()),
            (None, Some(source)) => {
                data.source = Some(source.to_string());
                data.position = Some(StreamPosition::default());
                Ok(())
            }
            (None, None) => Ok(()),
            (Some(recorded), source) => Err(Error::Unavailable(format!(
                "--memory: this server holds {recorded}, not {}: restart it",
                source.unwrap_or("reports of its own")
            ))),
        }
    }
}

impl Data {
    /// The positions of the kept reports with seqs in `from..to`.
    fn positions(&self, from: u64, to: u64) -> std::ops::Range<usize> {
        let position = |seq: u64| {
            usize::try_from(
                seq.saturating_sub(self.first_seq)
                    .min(self.reports.len() as u64),
            )
            .unwrap_or(usize::MAX)
        };
        let start = position(from);
        start..position(to).max(start)
    }
}

impl Reader for MemoryReader {
    fn query(&self, query: &Query, seqs: std::ops::Range<u64>) -> Result<Vec<Arc<Report>>, Error> {
        let data = self.data.read().expect("memory lock");
        let sender = match &query.sender {
            Some(name) => match data.senders.get(name) {
                Some(id) => Some(id),
                None => return Ok(Vec::new()),
            },
            None => None,
        };
        let from = query.after.saturating_add(1).max(seqs.start);
        let to = query.before.map_or(seqs.end, |before| before.min(seqs.end));
        let positions = data.positions(from, to);
        let text = query.text.as_deref();
        let selected = |index: &usize| {
            let kept = &data.reports[*index];
            u64::from(kept.run) == query.run
                && sender.is_none_or(|sender| sender == kept.sender)
                && query.event.is_none_or(|event| event == kept.event)
                && text.is_none_or(|text| {
                    kept.message.contains(text) || data.senders.name(kept.sender).contains(text)
                })
                && query
                    .time
                    .is_none_or(|(from, to)| (from..to).contains(&kept.time_unix_nano))
        };
        let report = |index: usize| {
            Arc::new(data.report(data.first_seq + index as u64, &data.reports[index]))
        };
        Ok(if query.descending {
            positions
                .rev()
                .filter(selected)
                .take(query.limit)
                .map(report)
                .collect()
        } else {
            positions
                .filter(selected)
                .take(query.limit)
                .map(report)
                .collect()
        })
    }

    fn scan(
        &self,
        seqs: std::ops::Range<u64>,
        limit: usize,
        visit: &mut dyn FnMut(Report),
    ) -> Result<u64, Error> {
        let data = self.data.read().expect("memory lock");
        let mut last = 0;
        for index in data.positions(seqs.start, seqs.end).take(limit) {
            let seq = data.first_seq + index as u64;
            let kept = &data.reports[index];
            if !kept.is_hole() {
                visit(data.report(seq, kept));
            }
            last = seq;
        }
        Ok(last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_report_stays_small() {
        assert_eq!(std::mem::size_of::<Kept>(), 72);
    }

    fn report(id: &str, message: &str) -> Report {
        Report {
            seq: 0,
            run: 1,
            time_unix_nano: 5,
            received_unix_nano: 6,
            sender: "1f".into(),
            event: Event::NewBlockReceived,
            message: message.into(),
            report_id: id.into(),
        }
    }

    fn query(after: u64) -> Query {
        Query {
            run: 1,
            after,
            limit: 100,
            ..Query::default()
        }
    }

    #[test]
    fn reports_come_back_as_stored_and_ids_round_trip() {
        let (mut writer, reader) = open(10);
        let uuid = uuid::Uuid::now_v7().to_string();
        let upper = uuid::Uuid::now_v7().to_string().to_uppercase();
        writer
            .insert(vec![
                report(&uuid, "a"),
                report(&upper, "b"),
                report("free text", "c"),
            ])
            .unwrap();
        let read = reader.query(&query(0), 0..u64::MAX).unwrap();
        let ids: Vec<&str> = read.iter().map(|r| r.report_id.as_str()).collect();
        assert_eq!(ids, [uuid.as_str(), upper.as_str(), "free text"]);
        assert_eq!(
            *read[1],
            Report {
                seq: 2,
                ..report(&upper, "b")
            }
        );
    }

    #[test]
    fn duplicates_are_found_until_evicted() {
        let (mut writer, reader) = open(2);
        let (outcomes, evicted) = writer
            .insert(vec![
                report("x", "1"),
                report("y", "2"),
                report("x", "again"),
            ])
            .unwrap();
        assert!(matches!(
            outcomes[2],
            Inserted::Duplicate { seq: 1, run: 1 }
        ));
        assert!(evicted.is_empty());
        let (_, evicted) = writer.insert(vec![report("z", "3")]).unwrap();
        assert_eq!(evicted, [1], "x was the oldest");
        let (outcomes, _) = writer
            .insert(vec![report("y", "dup"), report("x", "new")])
            .unwrap();
        assert!(matches!(outcomes[0], Inserted::Duplicate { seq: 2, .. }));
        assert!(matches!(&outcomes[1], Inserted::New(report) if report.seq == 4));
        let seqs: Vec<u64> = reader
            .query(&query(0), 0..u64::MAX)
            .unwrap()
            .iter()
            .map(|r| r.seq)
            .collect();
        assert_eq!(seqs, [3, 4]);
        let after: Vec<u64> = reader
            .query(&query(3), 0..u64::MAX)
            .unwrap()
            .iter()
            .map(|r| r.seq)
            .collect();
        assert_eq!(after, [4]);
    }

    #[test]
    fn a_hash_collision_still_tells_ids_apart() {
        let (mut writer, _) = open(10);
        writer.insert(vec![report("a", "1")]).unwrap();
        {
            // Force a collision: file "b" under the hash of "a".
            let mut data = writer.data.write().unwrap();
            let hash_b = data.hasher.hash_one(ReportId::new("b"));
            let hash_a = data.hasher.hash_one(ReportId::new("a"));
            let seq_a = data.by_hash.remove(&hash_a).unwrap();
            data.by_hash.insert(hash_b, seq_a);
        }
        let (outcomes, _) = writer
            .insert(vec![report("b", "2"), report("b", "3")])
            .unwrap();
        assert!(matches!(&outcomes[0], Inserted::New(report) if report.seq == 2));
        assert!(matches!(outcomes[1], Inserted::Duplicate { seq: 2, .. }));
    }
}
