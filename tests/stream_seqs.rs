//! The store applying a shared stream's messages at the stream's sequences (what
//! `serve --nats` does on every server), on both backends: reports keep their
//! seqs, runs start after their message, holes are accounted for, counts and the
//! resume point survive a restart, and a database refuses another history.

use perfstats::pb::Event;
use perfstats::report::Report;
use perfstats::store::{Backend, Query, Store, StoreConfig};

fn report(seq: u64, id: &str) -> Report {
    Report {
        seq,
        run: 0,
        time_unix_nano: seq as i64 * 1_000_000,
        received_unix_nano: seq as i64 * 1_000_000,
        sender: format!("n{seq}"),
        event: Event::NewBlockReceived,
        message: format!("block {seq}"),
        report_id: id.into(),
    }
}

async fn seqs_of(store: &Store, run: u64) -> Vec<u64> {
    store
        .query(Query {
            run,
            limit: 1000,
            ..Query::default()
        })
        .await
        .unwrap()
        .iter()
        .map(|report| report.seq)
        .collect()
}

/// Seq 1–2 reports; 3 a run; 4 a report; 5 a duplicate id (a hole); 6 not a
/// report (a hole); 7 a report. Returns the second run's id.
async fn apply_a_stream(store: &Store) -> u64 {
    store
        .append(vec![report(1, "a"), report(2, "b")])
        .await
        .unwrap();
    let run = store
        .applier()
        .new_run_at(3, Some("second".into()), Default::default(), 77)
        .await
        .unwrap();
    assert_eq!(run.started_unix_nano, 77);
    let receipts = store
        .append(vec![report(4, "c"), report(5, "a")])
        .await
        .unwrap();
    assert!(!receipts[0].duplicate);
    assert!(
        receipts[1].duplicate,
        "the store refuses a second copy of an id"
    );
    assert_eq!(receipts[1].seq, 1, "a duplicate names the original");
    store.applier().skip(6).await.unwrap();
    store.append(vec![report(7, "d")]).await.unwrap();
    assert_eq!(store.applier().applied(), 7);
    run.id
}

#[tokio::test]
async fn memory_keeps_stream_seqs_with_holes() {
    let store = Store::open(StoreConfig::new(Backend::Memory { max_reports: 100 })).unwrap();
    let second = apply_a_stream(&store).await;
    assert_eq!(seqs_of(&store, 1).await, [1, 2]);
    assert_eq!(seqs_of(&store, second).await, [4, 7]);
    let runs = store.runs();
    assert_eq!((runs[0].reports, runs[1].reports), (2, 2));
    assert_eq!(store.run_of(4).unwrap().name.as_ref(), "second");
    let analysis = store.analysis(second).await.unwrap();
    let nodes = analysis.read().unwrap().nodes().len();
    assert_eq!(nodes, 2, "the analysis saw the run's two reports' senders");
}

#[tokio::test]
async fn sqlite_keeps_stream_seqs_counts_and_resume_point_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("stream.db");
    let source = "NATS stream S created at 1 ns".to_string();
    let second = {
        let store = Store::open(StoreConfig::new(Backend::Sqlite(db.clone()))).unwrap();
        store.applier().claim(Some(source.clone())).await.unwrap();
        let second = apply_a_stream(&store).await;
        store.close().await;
        second
    };
    let store = Store::open(StoreConfig::new(Backend::Sqlite(db.clone()))).unwrap();
    assert_eq!(
        store.applier().applied(),
        7,
        "resumes after the last message applied"
    );
    let runs = store.runs();
    assert_eq!(
        (runs[0].reports, runs[1].reports),
        (2, 2),
        "holes (the run message, the duplicate, the stranger) are not counted"
    );
    assert_eq!(seqs_of(&store, second).await, [4, 7]);
    store.applier().claim(Some(source.clone())).await.unwrap();
    // A trailing hole is remembered too.
    store.applier().skip(8).await.unwrap();
    store.close().await;
    let store = Store::open(StoreConfig::new(Backend::Sqlite(db.clone()))).unwrap();
    assert_eq!(store.applier().applied(), 8);

    let other = store
        .applier()
        .claim(Some("NATS stream S created at 2 ns".into()))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        other.contains("created at 1 ns") && other.contains("created at 2 ns"),
        "{other}"
    );
    let own = store.applier().claim(None).await.unwrap_err().to_string();
    assert!(own.contains("of its own"), "{own}");
}

#[tokio::test]
async fn a_database_of_its_own_refuses_a_stream_but_an_empty_one_takes_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("own.db");
    let store = Store::open(StoreConfig::new(Backend::Sqlite(db.clone()))).unwrap();
    store.applier().claim(None).await.unwrap();
    store.append(vec![report(0, "x")]).await.unwrap();
    let refused = store
        .applier()
        .claim(Some("NATS stream S created at 1 ns".into()))
        .await
        .unwrap_err()
        .to_string();
    assert!(refused.contains("of its own"), "{refused}");

    let empty = Store::open(StoreConfig::new(Backend::Sqlite(dir.path().join("new.db")))).unwrap();
    empty
        .applier()
        .claim(Some("NATS stream S created at 1 ns".into()))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_stream_run_with_a_taken_or_bad_name_gets_the_default_everywhere() {
    let store = Store::open(StoreConfig::new(Backend::Memory { max_reports: 10 })).unwrap();
    let taken = store
        .applier()
        .new_run_at(1, Some("run-1".into()), Default::default(), 5)
        .await
        .unwrap();
    assert_eq!(taken.name.as_ref(), "run-2");
    let digits = store
        .applier()
        .new_run_at(2, Some("123".into()), Default::default(), 6)
        .await
        .unwrap();
    assert_eq!(digits.name.as_ref(), "run-3");
    assert_eq!(store.applier().applied(), 2);
    assert!(store.check_new_run_name("run-3").is_err());
    assert!(store.check_new_run_name("fresh").is_ok());
}

/// Labels from the stream: bad ones are dropped with the run (as a bad name is),
/// a replacement names its run by first seq, and its message's seq is applied
/// whether or not the labels could be (a run this store lacks: `NOT_FOUND`).
#[tokio::test]
async fn stream_labels_apply_by_first_seq_and_bad_ones_change_nothing() {
    let store = Store::open(StoreConfig::new(Backend::Memory { max_reports: 10 })).unwrap();
    let applier = store.applier();
    let bad: perfstats::labels::Labels = [("Bad Key".to_string(), "1".to_string())].into();
    let run = applier
        .new_run_at(1, Some("swept".into()), bad.clone(), 5)
        .await
        .unwrap();
    assert!(
        run.labels.is_empty(),
        "labels that break the rules are dropped"
    );
    assert_eq!(run.first_seq, 2);
    let good: perfstats::labels::Labels = [("netem_ms".to_string(), "40".to_string())].into();
    let labelled = applier.label_at(2, 2, good.clone()).await.unwrap();
    assert_eq!((labelled.name.as_ref(), &labelled.labels), ("swept", &good));
    assert_eq!(applier.applied(), 2);
    let refused = applier.label_at(3, 2, bad).await.unwrap_err();
    assert!(
        matches!(refused, perfstats::Error::BadRequest(_)),
        "{refused}"
    );
    let unknown = applier.label_at(4, 99, good.clone()).await.unwrap_err();
    assert!(
        matches!(unknown, perfstats::Error::NotFound(_)),
        "{unknown}"
    );
    assert_eq!(
        applier.applied(),
        4,
        "both messages' seqs are applied as holes"
    );
    assert_eq!(
        store.current_run().labels,
        good,
        "unchanged by the refused ones"
    );
}

#[tokio::test]
async fn seqs_the_stream_no_longer_has_are_holes_on_both_backends() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("gaps.db");
    for backend in [
        Backend::Sqlite(db.clone()),
        Backend::Memory { max_reports: 100 },
    ] {
        let store = Store::open(StoreConfig::new(backend.clone())).unwrap();
        store
            .append(vec![report(1, "a"), report(2, "b"), report(10, "c")])
            .await
            .unwrap();
        let second = store
            .applier()
            .new_run_at(12, None, Default::default(), 5)
            .await
            .unwrap();
        store.append(vec![report(13, "d")]).await.unwrap();
        assert_eq!(store.applier().applied(), 13);
        assert_eq!(seqs_of(&store, 1).await, [1, 2, 10]);
        assert_eq!(seqs_of(&store, second.id).await, [13]);
        let counts: Vec<u64> = store.runs().iter().map(|run| run.reports).collect();
        assert_eq!(counts, [3, 1], "{backend:?}");
        store.close().await;
    }
    // Reopened, SQLite counts the same: the gaps 3–9 and 11 are recorded.
    let store = Store::open(StoreConfig::new(Backend::Sqlite(db))).unwrap();
    let counts: Vec<u64> = store.runs().iter().map(|run| run.reports).collect();
    assert_eq!(counts, [3, 1]);
    assert_eq!(store.applier().applied(), 13);
}

#[tokio::test]
async fn a_gap_longer_than_the_memory_bound_evicts_instead_of_filling() {
    let store = Store::open(StoreConfig::new(Backend::Memory { max_reports: 5 })).unwrap();
    store
        .append(vec![report(1, "a"), report(2, "b")])
        .await
        .unwrap();
    store.append(vec![report(10_000_000, "c")]).await.unwrap();
    assert_eq!(seqs_of(&store, 1).await, [10_000_000]);
    let run = &store.runs()[0];
    assert_eq!((run.reports, run.evicted), (1, 2));
    assert_eq!(store.applier().applied(), 10_000_000);
}

#[tokio::test]
async fn a_memory_store_holds_one_stream_for_its_life() {
    let store = Store::open(StoreConfig::new(Backend::Memory { max_reports: 5 })).unwrap();
    store
        .applier()
        .claim(Some("stream A".into()))
        .await
        .unwrap();
    store
        .applier()
        .claim(Some("stream A".into()))
        .await
        .unwrap();
    let refused = store
        .applier()
        .claim(Some("stream B".into()))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        refused.contains("stream A") && refused.contains("stream B"),
        "{refused}"
    );
}

#[tokio::test]
async fn a_resent_backlog_of_duplicates_is_one_skipped_range() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("backlog.db");
    {
        let store = Store::open(StoreConfig::new(Backend::Sqlite(db.clone()))).unwrap();
        store
            .append(vec![report(1, "a"), report(2, "b"), report(3, "c")])
            .await
            .unwrap();
        // The same three ids again, past the stream's window, then a new one.
        for (seq, id) in [(4, "a"), (5, "b"), (6, "c")] {
            store.append(vec![report(seq, id)]).await.unwrap();
        }
        store.applier().skip(7).await.unwrap();
        store.append(vec![report(8, "d")]).await.unwrap();
        store.close().await;
    }
    let ranges: Vec<(u64, u64)> = rusqlite::Connection::open(&db)
        .unwrap()
        .prepare("SELECT first, last FROM skipped ORDER BY first")
        .unwrap()
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(ranges, [(4, 7)]);
    let store = Store::open(StoreConfig::new(Backend::Sqlite(db))).unwrap();
    assert_eq!(store.runs()[0].reports, 4);
    assert_eq!(seqs_of(&store, 1).await, [1, 2, 3, 8]);
}

#[tokio::test]
async fn a_streams_database_gets_no_run_of_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("stream.db");
    let store = Store::open(StoreConfig::new(Backend::Sqlite(db.clone()))).unwrap();
    store
        .applier()
        .claim(Some("NATS stream S (id 1)".into()))
        .await
        .unwrap();
    store.close().await;
    let refused = Store::open(StoreConfig {
        new_run: Some("local".into()),
        ..StoreConfig::new(Backend::Sqlite(db.clone()))
    })
    .err()
    .expect("a local run in a stream's database")
    .to_string();
    assert!(refused.contains("POST /api/runs"), "{refused}");
    let store = Store::open(StoreConfig::new(Backend::Sqlite(db))).unwrap();
    assert_eq!(store.runs().len(), 1, "nothing was added");
}
