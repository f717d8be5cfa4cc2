//! The SQLite schema can change: a database written before schema versions were
//! recorded (every release up to this one's parent) opens with everything kept and
//! is brought to the current version; a database from a newer release is refused
//! with one line that says so, and is left untouched.

use perfstats::store::{Backend, Query, SCHEMA_VERSION, Store, StoreConfig};
use rusqlite::Connection;
use std::path::Path;

/// The schema statements of the release before versions were recorded, as it
/// wrote them (commit ee0b0f7, src/store/mod.rs `SCHEMA`): the old database's
/// fixture is built from these, with rows of every table.
const SCHEMA_BEFORE_VERSIONS: &str = "
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
CREATE TABLE IF NOT EXISTS skipped (first INTEGER PRIMARY KEY, last INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
";

/// Two runs of three and two reports, as the old release stored them.
fn old_database(path: &Path) {
    let connection = Connection::open(path).unwrap();
    connection
        .execute_batch("PRAGMA journal_mode = WAL;")
        .unwrap();
    connection.execute_batch(SCHEMA_BEFORE_VERSIONS).unwrap();
    connection
        .execute_batch(
            "INSERT INTO runs VALUES (1, 'baseline', 1000, 1), (2, 'netem-40', 2000, 4);
             INSERT INTO reports VALUES
               (1, 1, 100, 101, '1f', 83, 'block 1', 'id-1'),
               (2, 1, 110, 111, '2f', 83, 'block 1', 'id-2'),
               (3, 1, 120, 121, 'ra', 85, 'block 2', 'id-3'),
               (4, 2, 200, 201, '1f', 83, 'block 1', 'id-4'),
               (5, 2, 210, 211, '2f', 77, 'synced', 'id-5');",
        )
        .unwrap();
    let version: u32 = connection
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .unwrap();
    assert_eq!(version, 0, "the old release recorded no schema version");
}

fn user_version(path: &Path) -> u32 {
    Connection::open(path)
        .unwrap()
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .unwrap()
}

#[tokio::test]
async fn a_database_of_the_release_before_versions_opens_with_everything_kept() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    old_database(&path);
    let store = Store::open(StoreConfig::new(Backend::Sqlite(path.clone()))).unwrap();
    let runs: Vec<(String, u64, i64)> = store
        .runs()
        .iter()
        .map(|run| (run.name.to_string(), run.reports, run.started_unix_nano))
        .collect();
    assert_eq!(
        runs,
        [
            ("baseline".to_string(), 3, 1000),
            ("netem-40".to_string(), 2, 2000)
        ]
    );
    assert_eq!(store.current_run().name.as_ref(), "netem-40");
    assert!(
        store.runs().iter().all(|run| run.labels.is_empty()),
        "runs from before labels have none"
    );
    let baseline = store
        .query(Query {
            run: 1,
            limit: 10,
            ..Query::default()
        })
        .await
        .unwrap();
    let kept: Vec<(u64, &str, &str, &str)> = baseline
        .iter()
        .map(|r| {
            (
                r.seq,
                r.sender.as_str(),
                r.message.as_str(),
                r.report_id.as_str(),
            )
        })
        .collect();
    assert_eq!(
        kept,
        [
            (1, "1f", "block 1", "id-1"),
            (2, "2f", "block 1", "id-2"),
            (3, "ra", "block 2", "id-3")
        ]
    );
    let analysis = store.analysis(2).await.unwrap();
    assert_eq!(
        analysis.read().unwrap().reports(),
        2,
        "the current run's analysis is rebuilt"
    );
    // The old ids still dedupe, and a new report goes on after them.
    let again = perfstats::report::Report {
        seq: 0,
        run: 0,
        time_unix_nano: 300,
        received_unix_nano: 301,
        sender: "1f".into(),
        event: perfstats::Event::NewBlockReceived,
        message: "block 1".into(),
        report_id: "id-4".into(),
    };
    let fresh = perfstats::report::Report {
        report_id: "id-6".into(),
        ..again.clone()
    };
    let receipts = store.append(vec![again, fresh]).await.unwrap();
    assert_eq!((receipts[0].seq, receipts[0].duplicate), (4, true));
    assert_eq!((receipts[1].seq, receipts[1].duplicate), (6, false));
    store.close().await;
    drop(store);
    assert_eq!(
        user_version(&path),
        SCHEMA_VERSION,
        "brought to this release's version"
    );
    // And it opens again as it is now.
    let reopened = Store::open(StoreConfig::new(Backend::Sqlite(path))).unwrap();
    assert_eq!(reopened.current_run().reports, 3);
}

#[tokio::test]
async fn a_database_of_a_newer_release_is_refused_and_left_as_it_is() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("newer.db");
    old_database(&path);
    let newer = SCHEMA_VERSION + 1;
    Connection::open(&path)
        .unwrap()
        .pragma_update(None, "user_version", newer)
        .unwrap();
    let refused = Store::open(StoreConfig::new(Backend::Sqlite(path.clone())))
        .err()
        .expect("a newer schema is refused")
        .to_string();
    assert!(
        refused.contains(&format!("schema version {newer}"))
            && refused.contains("newer perfstats")
            && refused.contains(path.to_str().unwrap())
            && !refused.contains('\n'),
        "{refused}"
    );
    assert_eq!(user_version(&path), newer, "left untouched");
}

#[test]
fn a_new_database_starts_at_this_release_s_version() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("new.db");
    let store = Store::open(StoreConfig::new(Backend::Sqlite(path.clone()))).unwrap();
    drop(store);
    assert_eq!(user_version(&path), SCHEMA_VERSION);
    const { assert!(SCHEMA_VERSION >= 1) };
}

/// A database of schema version 1 (the release before labels: the statements
/// above, with `PRAGMA user_version = 1`) gains labels, every run without any,
/// and keeps the labels it is then given.
#[tokio::test]
async fn a_version_1_database_gains_labels() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v1.db");
    old_database(&path);
    Connection::open(&path)
        .unwrap()
        .pragma_update(None, "user_version", 1)
        .unwrap();
    let store = Store::open(StoreConfig::new(Backend::Sqlite(path.clone()))).unwrap();
    assert_eq!(user_version(&path), 2);
    assert_eq!(store.runs().len(), 2);
    assert!(store.runs().iter().all(|run| run.labels.is_empty()));
    let labels: perfstats::labels::Labels = [("netem_ms".to_string(), "40".to_string())].into();
    let labelled = store.set_labels(2, labels.clone()).await.unwrap();
    assert_eq!(labelled.labels, labels);
    store.close().await;
    drop(store);
    let reopened = Store::open(StoreConfig::new(Backend::Sqlite(path))).unwrap();
    let runs = reopened.runs();
    assert!(runs[0].labels.is_empty());
    assert_eq!(runs[1].labels, labels);
    assert_eq!(runs[1].reports, 2, "its reports are all there");
}
