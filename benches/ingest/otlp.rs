//! OTLP/gRPC logs against `ReportStats`, into the same `perfstats serve` with SQLite
//! in the same run: batches of 512 records (what the SDKs' batch processors send),
//! 4 in flight, rounds interleaved; records per second and perfstats' CPU per
//! record. `cargo bench --bench ingest -- --otlp` runs only this section.

use super::{STREAMS_IN_FLIGHT, Settings, Target, median, report};
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient;
use perfstats::otlp::{
    AnyValue, ExportLogsServiceRequest, KeyValue, LogRecord, Resource, ResourceLogs, ScopeLogs,
    any_value::Value,
};
use perfstats::pb::performance_stats_client::PerformanceStatsClient;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// Records in one export or one `ReportStats` call.
const BATCH: usize = 512;

fn text(value: String) -> Option<AnyValue> {
    Some(AnyValue {
        value: Some(Value::StringValue(value)),
    })
}

/// One export of `BATCH` records from `sender`, each as `ReportStats` would carry
/// it (the same time, event and message; its report id derived by the server).
fn export(sender: &str) -> ExportLogsServiceRequest {
    let log_records = (0..BATCH)
        .map(|_| {
            let report = report(sender);
            LogRecord {
                time_unix_nano: report.time_unix_nano as u64,
                observed_time_unix_nano: report.time_unix_nano as u64,
                event_name: "EVENT_TRANSACTION_RECEIVED".into(),
                body: text(report.message),
                ..Default::default()
            }
        })
        .collect();
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(Resource {
                attributes: vec![KeyValue {
                    key: "service.instance.id".into(),
                    value: text(sender.to_string()),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            scope_logs: vec![ScopeLogs {
                log_records,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// Records per second and CPU µs per record of `target` over `settings.duration`,
/// sending batches over OTLP (`otlp`) or `ReportStats`.
async fn drive(target: &Target, otlp: bool, settings: &Settings) -> (f64, f64) {
    let channels = target.channels().await;
    let records = Arc::new(AtomicU64::new(0));
    let cpu_before = target.cpu_seconds();
    let started = Instant::now();
    let deadline = started + settings.duration;
    let mut tasks = Vec::new();
    for worker in 0..STREAMS_IN_FLIGHT {
        let channel = channels[worker % channels.len()].clone();
        let records = records.clone();
        let sender = format!("otlp{worker}");
        tasks.push(tokio::spawn(async move {
            let mut logs = LogsServiceClient::new(channel.clone());
            let mut stats = PerformanceStatsClient::new(channel);
            while Instant::now() < deadline {
                if otlp {
                    let answer = logs.export(export(&sender)).await.unwrap().into_inner();
                    assert_eq!(answer.partial_success, None);
                } else {
                    let batch: Vec<_> = (0..BATCH).map(|_| report(&sender)).collect();
                    let ack = stats.report_stats(tokio_stream::iter(batch)).await.unwrap();
                    assert_eq!(ack.get_ref().accepted, BATCH as u64);
                }
                records.fetch_add(BATCH as u64, Ordering::Relaxed);
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = target.cpu_seconds() - cpu_before;
    let count = records.load(Ordering::Relaxed) as f64;
    (count / elapsed, cpu * 1e6 / count.max(1.0))
}

/// Prints each round's figures and the medians, OTLP against `ReportStats`.
pub async fn compare(settings: &Settings) {
    let target = Target::start("sqlite");
    println!(
        "\nOTLP/gRPC logs against ReportStats, SQLite, batches of {BATCH} records, \
         {STREAMS_IN_FLIGHT} in flight, {} round(s) of {:?}:",
        settings.rounds, settings.duration
    );
    println!(
        "{:>5} {:>12} {:>12} {:>14}",
        "round", "call", "records/s", "cpu µs/record"
    );
    let mut rows: [Vec<(f64, f64)>; 2] = [Vec::new(), Vec::new()];
    for round in 1..=settings.rounds {
        for (index, otlp) in [false, true].into_iter().enumerate() {
            let (per_second, cpu) = drive(&target, otlp, settings).await;
            let call = if otlp { "OTLP Export" } else { "ReportStats" };
            println!("{round:>5} {call:>12} {per_second:>12.0} {cpu:>14.2}");
            rows[index].push((per_second, cpu));
        }
    }
    let pick = |index: usize, get: fn(&(f64, f64)) -> f64| {
        median(&mut rows[index].iter().map(get).collect::<Vec<_>>())
    };
    for (index, call) in ["ReportStats", "OTLP Export"].iter().enumerate() {
        println!(
            "median {call:>12}: {:.0} records/s, {:.2} µs CPU per record",
            pick(index, |row| row.0),
            pick(index, |row| row.1)
        );
    }
    println!(
        "OTLP / ReportStats: ×{:.2} records/s, ×{:.2} CPU per record",
        pick(1, |row| row.0) / pick(0, |row| row.0),
        pick(1, |row| row.1) / pick(0, |row| row.1)
    );
}
