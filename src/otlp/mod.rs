//! OpenTelemetry logs in: the OpenTelemetry project's own generated OTLP types
//! (`opentelemetry-proto`), a whole `ExportLogsServiceRequest` turned into reports
//! ([`map_request`], pure: no I/O, no server), the partial success that answers the
//! records that could not become reports, the OTLP/JSON body ([`json`]) and the
//! descriptor set that server reflection lists `LogsService` from.
//!
//! How one log record becomes one report (sender, event, message, time, report id)
//! is [`record`]'s, with the README's table.

pub mod json;
pub mod record;

pub use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceRequest, ExportLogsServiceResponse,
    logs_service_server::{LogsService, LogsServiceServer},
};
pub use opentelemetry_proto::tonic::common::v1::{
    AnyValue, ArrayValue, KeyValue, KeyValueList, any_value,
};
pub use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
pub use opentelemetry_proto::tonic::resource::v1::Resource;

use crate::event::InvalidReport;
use crate::report::Report;
use prost::Message;

/// Largest OTLP request taken, in bytes of protobuf (or JSON) after any gzip is
/// undone, and the largest gzip body: 4 MiB, the limit the OTLP exporters and the
/// Collector are built around (the SDKs' batches of 512 records are ~100 KiB).
pub const MAX_REQUEST_BYTES: usize = 4 << 20;

/// The gRPC path prefix of the OTLP logs service.
pub const GRPC_PATH_PREFIX: &str = "/opentelemetry.proto.collector.logs.v1.LogsService/";

/// The HTTP path of OTLP/HTTP logs.
pub const HTTP_PATH: &str = "/v1/logs";

/// The files of `opentelemetry-proto`'s descriptor set that `LogsService` needs:
/// the others (traces, metrics, profiles) describe services this server does not
/// serve, so reflection must not list them.
const LOGS_FILES: [&str; 4] = [
    "opentelemetry/proto/common/v1/common.proto",
    "opentelemetry/proto/resource/v1/resource.proto",
    "opentelemetry/proto/logs/v1/logs.proto",
    "opentelemetry/proto/collector/logs/v1/logs_service.proto",
];

/// The descriptor set of the OTLP logs service and the messages it uses, from the
/// one `opentelemetry-proto` ships, for server reflection.
pub fn logs_descriptor_set() -> prost_types::FileDescriptorSet {
    let mut set = prost_types::FileDescriptorSet::decode(opentelemetry_proto::DESCRIPTORS)
        .expect("opentelemetry-proto ships a valid descriptor set");
    let mut seen = std::collections::HashSet::new();
    set.file.retain(|file| {
        let name = file.name();
        LOGS_FILES.contains(&name) && seen.insert(name.to_string())
    });
    set
}

/// A log record that could not become a report: its position in the request
/// (counting every record of every resource and scope, from 0) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The record's position in the request, from 0.
    pub index: usize,
    /// The rule it broke (the same as for `PerformanceData`).
    pub invalid: InvalidReport,
}

/// A request as reports: those to store, in the request's order, and the records
/// refused one by one.
#[derive(Debug, Default)]
pub struct Mapped {
    /// The reports, validated, ready to store.
    pub reports: Vec<Report>,
    /// The records that could not become reports.
    pub refused: Vec<Refusal>,
}

impl Mapped {
    /// The partial success to answer with: `None` when every record became a
    /// report; else the count refused and a message naming the first problem.
    pub fn partial_success(&self) -> Option<ExportLogsPartialSuccess> {
        let first = self.refused.first()?;
        let total = self.reports.len() + self.refused.len();
        Some(ExportLogsPartialSuccess {
            rejected_log_records: self.refused.len() as i64,
            error_message: format!(
                "{} of {total} log records refused, the first: log record {} (counting from 0 \
                 across the request): {}",
                self.refused.len(),
                first.index,
                first.invalid
            ),
        })
    }
}

/// Turns every log record of `request` into a report received at
/// `received_unix_nano`, or a refusal; nothing is dropped silently.
pub fn map_request(request: &ExportLogsServiceRequest, received_unix_nano: i64) -> Mapped {
    let mut mapped = Mapped::default();
    let mut index = 0;
    for resource_logs in &request.resource_logs {
        let resource = resource_logs.resource.as_ref();
        for scope_logs in &resource_logs.scope_logs {
            for log_record in &scope_logs.log_records {
                match record::to_report(resource, log_record, received_unix_nano) {
                    Ok(report) => mapped.reports.push(report),
                    Err(invalid) => mapped.refused.push(Refusal { index, invalid }),
                }
                index += 1;
            }
        }
    }
    mapped
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pb::Event;

    fn text(key: &str, value: &str) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue {
                value: Some(any_value::Value::StringValue(value.into())),
            }),
            ..Default::default()
        }
    }

    fn named(event_name: &str, body: &str) -> LogRecord {
        LogRecord {
            time_unix_nano: 5,
            event_name: event_name.into(),
            body: Some(AnyValue {
                value: Some(any_value::Value::StringValue(body.into())),
            }),
            ..Default::default()
        }
    }

    fn request(records: Vec<LogRecord>) -> ExportLogsServiceRequest {
        ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                resource: Some(Resource {
                    attributes: vec![text("service.instance.id", "1f")],
                    ..Default::default()
                }),
                scope_logs: vec![ScopeLogs {
                    log_records: records,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }

    #[test]
    fn valid_records_become_reports_and_the_rest_are_counted_with_the_first_problem() {
        let mapped = map_request(
            &request(vec![
                named("new-block-received", "block 1"),
                named("", "no event"),
                named("EVENT_INITIAL_SYNC_COMPLETED", "synced"),
                named("nope", "unknown"),
            ]),
            9,
        );
        let events: Vec<Event> = mapped.reports.iter().map(|report| report.event).collect();
        assert_eq!(
            events,
            [Event::NewBlockReceived, Event::InitialSyncCompleted]
        );
        let indexes: Vec<usize> = mapped.refused.iter().map(|refusal| refusal.index).collect();
        assert_eq!(indexes, [1, 3]);
        let partial = mapped.partial_success().unwrap();
        assert_eq!(partial.rejected_log_records, 2);
        assert_eq!(
            partial.error_message,
            "2 of 4 log records refused, the first: log record 1 (counting from 0 across the \
             request): event: missing: set the log record's event_name or the attribute \
             perfstats.event"
        );
    }

    #[test]
    fn a_request_of_valid_records_has_no_partial_success() {
        let mapped = map_request(&request(vec![named("83", "b")]), 9);
        assert_eq!(mapped.reports.len(), 1);
        assert_eq!(mapped.partial_success(), None);
        assert_eq!(map_request(&request(vec![]), 9).partial_success(), None);
    }

    #[test]
    fn the_descriptor_set_holds_the_logs_service_and_nothing_else() {
        let set = logs_descriptor_set();
        let names: Vec<&str> = set.file.iter().map(|file| file.name()).collect();
        assert_eq!(names.len(), 4, "{names:?}");
        let services: Vec<&str> = set
            .file
            .iter()
            .flat_map(|file| file.service.iter().map(|service| service.name()))
            .collect();
        assert_eq!(services, ["LogsService"]);
        let logs = set
            .file
            .iter()
            .find(|file| file.name() == "opentelemetry/proto/logs/v1/logs.proto")
            .unwrap();
        let record = logs
            .message_type
            .iter()
            .find(|message| message.name() == "LogRecord")
            .unwrap();
        assert!(
            record
                .field
                .iter()
                .any(|field| field.name() == "event_name" && field.number() == 12)
        );
    }
}
