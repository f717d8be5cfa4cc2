//! The SQLite backend: one database file in WAL mode, a writer connection owned by
//! the committer thread and a separate reader connection, so reads never block writes.
//!
//! The WAL is checkpointed by a thread of its own (`checkpoint`), not in commits.
//!
//! `synchronous = NORMAL` with WAL: a committed transaction survives the process
//! being killed (the data is in the OS page cache before the commit returns); a
//! power cut may lose the last few commits.

use super::backend::{Inserted, Reader, StreamPosition, Writer};
use super::checkpoint::{Checkpointer, WRITER_CHECKPOINT_PAGES};
use super::{Query, RunInfo};
use crate::error::Error;
use crate::labels::Labels;
use crate::pb::Event;
use crate::report::Report;
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use std::path::Path;
use std::sync::{Arc, Mutex};

/// How long a commit waits for another process's write lock before failing.
const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(200);

/// The schema, one migration a version: `MIGRATIONS[i]` takes a database from
/// version `i` to `i + 1` (kept in `PRAGMA user_version`). Version 0 is a new file,
/// or one written before versions were recorded (the first release's tables, which
/// the first migration's `IF NOT EXISTS` keeps as they are). A migration that
/// shipped is never edited: a change to what is stored is a new one at the end,
/// with a test that opens a database of the version before.
const MIGRATIONS: &[&str] = &[SCHEMA_V1, SCHEMA_V2];

/// Version 1: runs, reports, skipped stream seqs, and what the store holds.
const SCHEMA_V1: &str = "
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    started_unix_nano INTEGER NOT NULL,
    first_seq INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS reports (
    seq INTEGER PRIMARY KEY,
    run INTEGER NOT NULL REFERENCES runs(id),
    time_unix_nano INTEGER NOT NULL,
    received_unix_nano INTEGER NOT NULL,
    sender TEXT NOT NULL,
    event INTEGER NOT NULL,
    message TEXT NOT NULL,
    report_id TEXT NOT NULL UNIQUE
);
-- Ranges of a stream's seqs that hold no report and no run (a duplicate beyond
-- the stream's window, a message that is not a report, messages the stream no
-- longer has): only when materialising a stream.
CREATE TABLE IF NOT EXISTS skipped (first INTEGER PRIMARY KEY, last INTEGER NOT NULL);
-- What the reports came from: absent for a server of its own, else the stream.
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
";

/// Version 2: run labels, a JSON object of strings a run (`{}` for the runs
/// before), read and written whole: a run has at most 32.
const SCHEMA_V2: &str = "
ALTER TABLE runs ADD COLUMN labels TEXT NOT NULL DEFAULT '{}';
";

/// The schema version this release writes.
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

/// Brings the database at `path` to [`SCHEMA_VERSION`] in one transaction, or
/// refuses one written by a newer release (whose data this one could misread).
fn migrate(connection: &Connection, path: &Path) -> Result<(), Error> {
    let failed = |error: rusqlite::Error| {
        Error::Unavailable(format!(
            "cannot update database {} to schema version {SCHEMA_VERSION}: {error}",
            path.display()
        ))
    };
    connection
        .execute_batch("BEGIN IMMEDIATE")
        .map_err(failed)?;
    let migrated = (|| {
        let version: u32 = connection.query_row("PRAGMA user_version", [], |row| row.get(0))?;
        if version > SCHEMA_VERSION {
            return Ok(Err(Error::Unavailable(format!(
                "database {} has schema version {version}, written by a newer perfstats \
                 (this one reads up to {SCHEMA_VERSION}): run that release, or use another --db",
                path.display()
            ))));
        }
        for (from, migration) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            connection.execute_batch(migration)?;
            connection.pragma_update(None, "user_version", from as u32 + 1)?;
        }
        Ok(Ok(()))
    })();
    let outcome = match migrated {
        Ok(Ok(())) => connection.execute_batch("COMMIT").map_err(failed),
        Ok(Err(refused)) => Err(refused),
        Err(error) => Err(failed(error)),
    };
    if outcome.is_err() {
        let _ = connection.execute_batch("ROLLBACK");
    }
    outcome
}

/// Labels as stored: a JSON object.
fn labels_json(labels: &Labels) -> String {
    serde_json::to_string(labels).expect("string pairs always serialise")
}

/// The writer connection.
pub(super) struct SqliteWriter {
    connection: Connection,
    /// The highest seq taken (by a report, a run's message or a hole), once read.
    taken: Option<u64>,
    /// The last range of skipped seqs, once read (`Some(None)`: there is none).
    last_hole: Option<Hole>,
    /// Checkpoints the WAL beside this connection's commits.
    _checkpointer: Checkpointer,
}

/// The last range of skipped seqs, `(first, last)`, if any.
type Hole = Option<(u64, u64)>;

/// The reader connection.
pub(super) struct SqliteReader {
    connection: Mutex<Connection>,
}

/// Opens (creating if needed) the database at `path`, with a clear error naming the
/// path and the cause when it cannot.
pub(super) fn open(path: &Path) -> Result<(SqliteWriter, SqliteReader), Error> {
    let failed = |error: rusqlite::Error| {
        Error::Unavailable(format!("cannot open database {}: {error}", path.display()))
    };
    let connection = Connection::open(path).map_err(failed)?;
    // Another process holding a write lock makes a commit wait this long, then
    // fail with UNAVAILABLE (retryable) instead of stalling ingest.
    connection.busy_timeout(BUSY_TIMEOUT).map_err(failed)?;
    connection
        .execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;")
        .map_err(failed)?;
    connection
        .pragma_update(None, "wal_autocheckpoint", WRITER_CHECKPOINT_PAGES)
        .map_err(failed)?;
    // The WAL file is cut back to this after a checkpoint lets it start over.
    connection
        .pragma_update(None, "journal_size_limit", 64i64 << 20)
        .map_err(failed)?;
    migrate(&connection, path)?;
    let checkpointer = Checkpointer::start(path)?;
    let reader = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(failed)?;
    Ok((
        SqliteWriter {
            connection,
            taken: None,
            last_hole: None,
            _checkpointer: checkpointer,
        },
        SqliteReader {
            connection: Mutex::new(reader),
        },
    ))
}

impl Writer for SqliteWriter {
    fn load_runs(&mut self) -> Result<Vec<RunInfo>, Error> {
        let mut runs = self
            .connection
            .prepare("SELECT id, name, started_unix_nano, first_seq, labels FROM runs ORDER BY id")?
            .query_map([], |row| {
                let labels: String = row.get(4)?;
                Ok(RunInfo {
                    id: row.get(0)?,
                    name: row.get::<_, String>(1)?.into(),
                    started_unix_nano: row.get(2)?,
                    first_seq: row.get(3)?,
                    reports: 0,
                    evicted: 0,
                    current: false,
                    labels: serde_json::from_str(&labels).map_err(|error| {
                        rusqlite::Error::FromSqlConversionFailure(
                            4,
                            rusqlite::types::Type::Text,
                            Box::new(error),
                        )
                    })?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        // A run's reports are the seqs from its first_seq to the next run's, and
        // seqs have no gaps but the skipped ones (rowids are max + 1; nothing is
        // ever deleted; a failed commit inserts nothing; a stream's run message
        // sits just before its run's first_seq): its count is its largest seq -
        // first_seq + 1 - the skipped seqs below that, one index lookup per run
        // (plus the skipped ranges, rare), so loading is O(runs · log n), not
        // O(runs²).
        let mut largest = self
            .connection
            .prepare("SELECT max(seq) FROM reports WHERE seq < ?1")?;
        // Ranges do not overlap: those starting inside, and the one before that
        // reaches in; both found through the key.
        let mut skipped = self.connection.prepare(
            "SELECT coalesce(sum(min(last, ?2) - max(first, ?1) + 1), 0)
             FROM skipped
             WHERE first BETWEEN ?1 AND ?2
                OR (first = (SELECT max(first) FROM skipped WHERE first < ?1) AND last >= ?1)",
        )?;
        let ends: Vec<u64> = runs
            .iter()
            .skip(1)
            .map(|run| run.first_seq)
            .chain([i64::MAX as u64])
            .collect();
        for (run, end) in runs.iter_mut().zip(ends) {
            let last: Option<u64> =
                largest.query_row([end.min(i64::MAX as u64) as i64], |row| row.get(0))?;
            run.reports = match last.filter(|last| *last >= run.first_seq) {
                Some(last) => {
                    let holes: u64 = skipped
                        .query_row([sql_seq(run.first_seq), sql_seq(last)], |row| row.get(0))?;
                    last - run.first_seq + 1 - holes
                }
                None => 0,
            };
        }
        drop(largest);
        drop(skipped);
        if let Some(last) = runs.last_mut() {
            last.current = true;
        }
        Ok(runs)
    }

    fn last_seq(&mut self) -> Result<u64, Error> {
        Ok(self.connection.query_row(
            "SELECT max((SELECT coalesce(max(seq), 0) FROM reports),
                        (SELECT coalesce(max(last), 0) FROM skipped),
                        (SELECT coalesce(max(first_seq) - 1, 0) FROM runs))",
            [],
            |row| row.get(0),
        )?)
    }

    fn skip(&mut self, seq: u64) -> Result<(), Error> {
        let taken = self.taken()?;
        if seq > taken {
            let mut hole = self.last_hole()?;
            record_skipped(&self.connection, &mut hole, taken + 1, seq)?;
            self.taken = Some(seq);
            self.last_hole = Some(hole);
        }
        Ok(())
    }

    fn set_run_start(&mut self, id: u64, started_unix_nano: i64) -> Result<(), Error> {
        self.connection.execute(
            "UPDATE runs SET started_unix_nano = ?2 WHERE id = ?1",
            params![id, started_unix_nano],
        )?;
        Ok(())
    }

    fn set_labels(&mut self, id: u64, labels: &Labels) -> Result<(), Error> {
        self.connection.execute(
            "UPDATE runs SET labels = ?2 WHERE id = ?1",
            params![id, labels_json(labels)],
        )?;
        Ok(())
    }

    fn source(&mut self) -> Result<(Option<String>, bool), Error> {
        let recorded = self
            .connection
            .query_row("SELECT value FROM meta WHERE key = 'source'", [], |row| {
                row.get(0)
            })
            .optional()?;
        let reports = self
            .connection
            .query_row("SELECT 1 FROM reports LIMIT 1", [], |_| Ok(()))
            .optional()?
            .is_some();
        Ok((recorded, reports))
    }

    fn claim(&mut self, source: Option<&str>) -> Result<(), Error> {
        let transaction = self.connection.transaction()?;
        let recorded: Option<String> = transaction
            .query_row("SELECT value FROM meta WHERE key = 'source'", [], |row| {
                row.get(0)
            })
            .optional()?;
        let has_reports = transaction
            .query_row("SELECT 1 FROM reports LIMIT 1", [], |_| Ok(()))
            .optional()?
            .is_some();
        let own = "reports of a server of its own (no --nats)";
        match (recorded.as_deref(), source) {
            (recorded, source) if recorded == source => Ok(()),
            (None, Some(source)) if !has_reports => {
                transaction.execute(
                    "INSERT INTO meta (key, value) VALUES ('source', ?1)",
                    [source],
                )?;
                // Recorded from the start, so a store without it is one of a release
                // before batches, whose stream seqs were its seqs.
                write_position(&transaction, StreamPosition::default())?;
                transaction.commit()?;
                Ok(())
            }
            (recorded, source) => Err(Error::Unavailable(format!(
                "--db: this database holds {}, not {}: use another database file",
                recorded.unwrap_or(own),
                source.unwrap_or(own),
            ))),
        }
    }

    fn create_run(
        &mut self,
        name: &str,
        started_unix_nano: i64,
        first_seq: u64,
        labels: &Labels,
    ) -> Result<u64, Error> {
        // A stream's run message sits at first_seq - 1; seqs the stream no longer
        // has before it are skipped.
        let taken = self.taken()?;
        let mut hole = self.last_hole()?;
        let transaction = self.connection.transaction()?;
        if first_seq > taken + 2 {
            record_skipped(&transaction, &mut hole, taken + 1, first_seq - 2)?;
        }
        transaction.execute(
            "INSERT INTO runs (name, started_unix_nano, first_seq, labels) \
             VALUES (?1, ?2, ?3, ?4)",
            params![name, started_unix_nano, first_seq, labels_json(labels)],
        )?;
        let id = transaction.last_insert_rowid() as u64;
        transaction.commit()?;
        self.taken = Some(taken.max(first_seq - 1));
        self.last_hole = Some(hole);
        Ok(id)
    }

    fn stream_position(&mut self) -> Result<Option<StreamPosition>, Error> {
        let recorded: Option<String> = self
            .connection
            .query_row(
                "SELECT value FROM meta WHERE key = 'stream_position'",
                [],
                |row| row.get(0),
            )
            .optional()?;
        recorded
            .map(|text| {
                let (message, seq) = text.split_once(' ').unwrap_or((&text, ""));
                match (message.parse(), seq.parse()) {
                    (Ok(message), Ok(seq)) => Ok(StreamPosition { message, seq }),
                    _ => Err(Error::Unavailable(format!(
                        "--db: the stream position recorded in this database is unreadable: {text:?}"
                    ))),
                }
            })
            .transpose()
    }

    fn set_stream_position(&mut self, position: StreamPosition) -> Result<(), Error> {
        write_position(&self.connection, position)
    }

    fn insert(&mut self, reports: Vec<Report>) -> Result<(Vec<Inserted>, Vec<u64>), Error> {
        let mut taken = self.taken()?;
        let mut hole = self.last_hole()?;
        let transaction = self.connection.transaction()?;
        let mut outcomes = Vec::with_capacity(reports.len());
        {
            let mut insert = transaction.prepare_cached(
                "INSERT INTO reports
                   (seq, run, time_unix_nano, received_unix_nano, sender, event, message, report_id)
                 VALUES (?8, ?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (report_id) DO NOTHING",
            )?;
            let mut existing =
                transaction.prepare_cached("SELECT seq, run FROM reports WHERE report_id = ?1")?;
            for mut report in reports {
                let given = report.seq;
                if given > taken + 1 {
                    // Seqs the stream no longer has.
                    record_skipped(&transaction, &mut hole, taken + 1, given - 1)?;
                }
                let inserted = insert.execute(params![
                    report.run,
                    report.time_unix_nano,
                    report.received_unix_nano,
                    report.sender,
                    report.event as i32,
                    report.message,
                    report.report_id,
                    (given != 0).then(|| sql_seq(given)),
                ])?;
                if inserted == 1 {
                    report.seq = transaction.last_insert_rowid() as u64;
                    taken = taken.max(report.seq);
                    outcomes.push(Inserted::New(Arc::new(report)));
                } else {
                    if given != 0 {
                        // A second copy of an id: its seq holds nothing.
                        record_skipped(&transaction, &mut hole, given, given)?;
                        taken = taken.max(given);
                    }
                    let (seq, run) = existing
                        .query_row([&report.report_id], |row| Ok((row.get(0)?, row.get(1)?)))?;
                    outcomes.push(Inserted::Duplicate { seq, run });
                }
            }
        }
        transaction.commit()?;
        self.taken = Some(taken);
        self.last_hole = Some(hole);
        Ok((outcomes, Vec::new()))
    }
}

impl SqliteWriter {
    /// The last range of skipped seqs, read once and then kept current.
    fn last_hole(&mut self) -> Result<Hole, Error> {
        if let Some(hole) = self.last_hole {
            return Ok(hole);
        }
        let hole = self
            .connection
            .query_row(
                "SELECT first, last FROM skipped ORDER BY first DESC LIMIT 1",
                [],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()?;
        self.last_hole = Some(hole);
        Ok(hole)
    }

    /// The highest seq taken, read once and then kept current by every write.
    fn taken(&mut self) -> Result<u64, Error> {
        match self.taken {
            Some(taken) => Ok(taken),
            None => {
                let taken = self.last_seq()?;
                self.taken = Some(taken);
                Ok(taken)
            }
        }
    }
}

/// Records how far the stream is applied, as `"<message> <seq>"` in `meta`.
fn write_position(connection: &Connection, position: StreamPosition) -> Result<(), Error> {
    connection
        .prepare_cached(
            "INSERT INTO meta (key, value) VALUES ('stream_position', ?1)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        )?
        .execute([format!("{} {}", position.message, position.seq)])?;
    Ok(())
}

/// Records that seqs `first..=last` (all above any recorded) hold no report and no
/// run: the last range `hole` grows when they follow it (a resent backlog of
/// duplicates is one row, not one per report), else a new range starts.
fn record_skipped(
    connection: &Connection,
    hole: &mut Hole,
    first: u64,
    last: u64,
) -> Result<(), Error> {
    match *hole {
        Some((start, end)) if end + 1 == first => {
            connection
                .prepare_cached("UPDATE skipped SET last = ?2 WHERE first = ?1")?
                .execute([sql_seq(start), sql_seq(last)])?;
            *hole = Some((start, last));
        }
        _ => {
            connection
                .prepare_cached("INSERT INTO skipped (first, last) VALUES (?1, ?2)")?
                .execute([sql_seq(first), sql_seq(last)])?;
            *hole = Some((first, last));
        }
    }
    Ok(())
}

/// The columns of a report, in the order [`report_from_row`] reads them.
const COLUMNS: &str =
    "seq, run, time_unix_nano, received_unix_nano, sender, event, message, report_id";

fn report_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Report> {
    Ok(Report {
        seq: row.get(0)?,
        run: row.get(1)?,
        time_unix_nano: row.get(2)?,
        received_unix_nano: row.get(3)?,
        sender: row.get(4)?,
        event: Event::try_from(row.get::<_, i32>(5)?).unwrap_or(Event::Unspecified),
        message: row.get(6)?,
        report_id: row.get(7)?,
    })
}

/// A seq as SQLite's signed integer.
fn sql_seq(seq: u64) -> i64 {
    seq.min(i64::MAX as u64) as i64
}

impl Reader for SqliteReader {
    fn query(&self, query: &Query, seqs: std::ops::Range<u64>) -> Result<Vec<Arc<Report>>, Error> {
        let connection = self.connection.lock().expect("reader lock");
        let order = if query.descending { "DESC" } else { "ASC" };
        let mut statement = connection.prepare_cached(&format!(
            "SELECT {COLUMNS}
             FROM reports
             WHERE seq > ?2 AND seq >= ?7 AND seq < ?8 AND run = ?1
               AND (?3 IS NULL OR sender = ?3)
               AND (?4 IS NULL OR event = ?4)
               AND (?5 IS NULL OR instr(message, ?5) > 0 OR instr(sender, ?5) > 0)
               AND (?9 IS NULL OR (time_unix_nano >= ?9 AND time_unix_nano < ?10))
             ORDER BY seq {order} LIMIT ?6"
        ))?;
        let end = query.before.map_or(seqs.end, |before| before.min(seqs.end));
        let rows = statement.query_map(
            params![
                query.run,
                sql_seq(query.after),
                query.sender,
                query.event.map(|event| event as i32),
                query.text,
                query.limit as i64,
                sql_seq(seqs.start),
                sql_seq(end),
                query.time.map(|(from, _)| from),
                query.time.map(|(_, to)| to),
            ],
            |row| report_from_row(row).map(Arc::new),
        )?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    fn scan(
        &self,
        seqs: std::ops::Range<u64>,
        limit: usize,
        visit: &mut dyn FnMut(Report),
    ) -> Result<u64, Error> {
        let connection = self.connection.lock().expect("reader lock");
        let mut statement = connection.prepare_cached(
            "SELECT seq, run, time_unix_nano, 0, sender, event, message, ''
             FROM reports WHERE seq >= ?1 AND seq < ?2 ORDER BY seq LIMIT ?3",
        )?;
        let mut rows = statement.query(params![
            sql_seq(seqs.start),
            sql_seq(seqs.end),
            limit as i64
        ])?;
        let mut last = 0;
        while let Some(row) = rows.next()? {
            let report = report_from_row(row)?;
            last = report.seq;
            visit(report);
        }
        Ok(last)
    }
}
